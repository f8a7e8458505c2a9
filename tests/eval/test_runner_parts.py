"""The runner's pure parts: seed ranges, entry resolution, per-entry seeds, warnings,
chunking, torn-file repair."""

from __future__ import annotations

from pathlib import Path

import pytest

from tirgym.episode import Episode, append_jsonl
from tirgym.errors import TirgymError
from tirgym.eval.metrics import EvalEntry
from tirgym.eval.runner import (
    _by_entry,
    entry_seeds,
    load_finished,
    parse_seeds,
    plan_warnings,
    repair_jsonl,
    resolve_entries,
)

BASE = range(1000, 1020)


def test_parse_seeds_forms() -> None:
    assert parse_seeds(None, BASE) == list(BASE)
    assert parse_seeds("3", BASE) == [1000, 1001, 1002]
    assert parse_seeds(2, BASE) == [1000, 1001]
    assert parse_seeds("5:8", BASE) == [5, 6, 7]
    assert parse_seeds("5-8", BASE) == [5, 6, 7, 8]
    assert parse_seeds("4,2,9", BASE) == [4, 2, 9]
    assert parse_seeds(range(3), BASE) == [0, 1, 2]
    for bad in ("x", "5:5", "1,1", "0", "a-b"):
        with pytest.raises(TirgymError):
            parse_seeds(bad, BASE)


def test_resolve_entries_suite_plus_envs_and_errors() -> None:
    entries, settings, name = resolve_entries("smoke", ["tirgym/GuessNumber-v0"], {"high": 50})
    assert name == "smoke" and settings.num_seeds == 5
    assert entries[-1] == EvalEntry(
        id="tirgym/GuessNumber-v0", kwargs={"high": 50}, name="tirgym/GuessNumber-v0[high=50]"
    )
    assert entries[-1].kwargs == {"high": 50}
    with pytest.raises(TirgymError, match="GuessNumber"):
        resolve_entries(None, ["tirgym/GuesNumber-v0"])  # typo -> suggestion
    with pytest.raises(TirgymError, match="distinct names"):
        resolve_entries(None, ["tirgym/GuessNumber-v0", "tirgym/GuessNumber-v0"])
    with pytest.raises(TirgymError, match="nothing to evaluate"):
        resolve_entries(None, None)


def test_keys_run_entry_by_entry_in_plan_order() -> None:
    keys = [("A", s, i) for s in range(3) for i in range(2)] + [("B", 0, 0), ("B", 1, 0)]
    runs = list(_by_entry(keys))
    assert [label for label, _ in runs] == ["A", "B"]
    assert sum((r for _, r in runs), []) == keys


def _ep(seed: int, sample: int) -> Episode:
    e = Episode(env_id="tirgym/GuessNumber-v0", seed=seed, success=True)
    e.info["eval"] = {"entry": "G", "sample": sample}
    return e


def test_torn_line_is_cut_and_duplicates_ignored(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    append_jsonl(path, [_ep(1, 0), _ep(1, 1), _ep(1, 0)])  # a duplicate key: first copy wins
    with open(path, "a") as f:
        f.write(_ep(2, 0).to_json()[:25])  # SIGKILL mid-write
    done = load_finished(path)
    assert sorted(done) == [("G", 1, 0), ("G", 1, 1)]
    assert path.read_text().endswith("\n")  # repaired: the next append starts a fresh line
    append_jsonl(path, [_ep(2, 0)])
    assert sorted(load_finished(path)) == [("G", 1, 0), ("G", 1, 1), ("G", 2, 0)]
    assert repair_jsonl(path) == 0


def test_entry_seeds_run_each_dataset_row_once_by_default() -> None:
    default = list(BASE)
    rows = EvalEntry(id="x", name="D", num_tasks=3)
    generated = EvalEntry(id="x", name="G")
    assert entry_seeds(rows, None, default) == [1000, 1001, 1002]  # rows 1, 2, 0: each once
    assert entry_seeds(generated, None, default) == default
    assert entry_seeds(rows, [1, 2], default) == [1, 2]  # given seeds always win


def test_plan_warnings() -> None:
    g, d = EvalEntry(id="x", name="G"), EvalEntry(id="x", name="D", num_tasks=3)
    seeds = {"G": list(range(20)), "D": [0, 1, 2]}
    assert plan_warnings([g, d], seeds, samples=1, temperature=0.0) == []
    assert plan_warnings([g, d], seeds, samples=4, temperature=1.0) == []
    (t0,) = plan_warnings([g, d], seeds, samples=4, temperature=0.0)
    assert "4 samples per task at temperature 0" in t0 and "pass@4 = success@1" in t0
    (wrap,) = plan_warnings([d], {"D": list(range(20))}, samples=1, temperature=0.0)
    assert "D: 20 seeds wrap around its 3 dataset rows" in wrap and "up to 7 times" in wrap
    # two seeds on one row wrap even when there are fewer seeds than rows
    assert plan_warnings([d], {"D": [0, 3]}, samples=1, temperature=0.0)


def test_eval_samples_as_the_trainer_does_given_the_same_numbers(monkeypatch) -> None:
    from tirgym.eval import runner
    from tirgym.trainer.config import build_config

    seen = []
    real = runner._rollout

    def spy(policy, tasks, params, limits, **kw):
        seen.append((params, limits))
        return real(policy, tasks, params=params, limits=limits, **kw)

    monkeypatch.setattr(runner, "_rollout", spy)
    r = build_config(
        {
            "envs": ["tirgym/GuessNumber-v0"],
            "rollout": {
                "temperature": 0.7,
                "top_p": 0.9,
                "max_new_tokens": 33,
                "max_turns": 4,
                "max_total_tokens": 999,
                "episode_timeout_s": 12.0,
            },
        }
    ).rollout
    runner.evaluate(
        "solver",
        envs=["tirgym/GuessNumber-v0"],
        seeds=[5],
        temperature=r.temperature,
        top_p=r.top_p,
        max_new_tokens=r.max_new_tokens,
        max_turns=r.max_turns,
        max_total_tokens=r.max_total_tokens,
        episode_timeout_s=r.episode_timeout_s,
        sampling_seed=11,
        write_report=False,
    )
    assert seen == [r.engine_args(11)]
