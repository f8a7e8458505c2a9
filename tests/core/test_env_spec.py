"""One env spec for suites, the training mix, eval rows and rollout tasks: a suite entry keeps
its label (the key of sampling streams, episodes and metrics) in every role it plays."""

import pytest
from pydantic import ValidationError

import tirgym
from tirgym.agents.types import Task
from tirgym.env_spec import EnvSpec
from tirgym.eval.runner import resolve_entries
from tirgym.trainer.config import build_config
from tirgym.trainer.tasks import TaskSampler, expand_mix


def test_label_is_the_name_else_the_id():
    assert EnvSpec(id="tirgym/Maze-v0").label == "tirgym/Maze-v0"
    assert EnvSpec(id="tirgym/Maze-v0", name="Maze-easy").label == "Maze-easy"
    with pytest.raises(ValidationError):
        EnvSpec(id="tirgym/Maze-v0", weight=2.0)  # a bare spec has no weight


def test_by_kwargs_names_each_setting_apart():
    plain = EnvSpec.by_kwargs("tirgym/GuessNumber-v0", {})
    high = EnvSpec.by_kwargs("tirgym/GuessNumber-v0", {"low": 1, "high": 50})
    assert plain.label == "tirgym/GuessNumber-v0" and plain.name is None
    assert high.label == "tirgym/GuessNumber-v0[high=50,low=1]"
    assert high.kwargs == {"low": 1, "high": 50}


def test_task_keeps_its_positional_form():
    t = Task("tirgym/GuessNumber-v0", 7, {"high": 9}, "G", sample_index=2)
    assert (t.id, t.seed, t.kwargs, t.label, t.sample_index) == (
        "tirgym/GuessNumber-v0",
        7,
        {"high": 9},
        "G",
        2,
    )
    assert Task("tirgym/GuessNumber-v0", 1).kwargs == {}


def test_a_suite_entry_has_one_label_in_training_and_eval():
    suite = tirgym.get_suite("smoke")
    cfg = build_config({"envs": [{"suite": "smoke", "weight": 2.0, "seeds": [0, 100]}]})
    mix = expand_mix(cfg.envs)
    rows, _, _ = resolve_entries("smoke")
    want = [e.label for e in suite.envs]
    assert [m.label for m in mix] == want == [r.label for r in rows]
    assert sum(m.weight for m in mix) == pytest.approx(2.0)
    tasks = TaskSampler(cfg.envs, seed=0).draw(50)
    assert {t.label for t in tasks} <= set(want)
    by_label = {e.label: e for e in suite.envs}
    for t in tasks:
        assert t.id == by_label[t.label].id and t.kwargs == by_label[t.label].kwargs
        assert 0 <= t.seed < 100
