"""Asynchronous RL: k = 0 is the synchronous loop, k >= 1 samples with pinned older weights,
and a generator that dies mid-batch costs no episode and repeats none after --resume."""

import json
from collections import Counter

import pytest
import torch
from train_helpers import guess_config

from tirgym.episode import Episode, load_jsonl
from tirgym.errors import TirgymError
from tirgym.trainer.async_rl import AsyncGenerator, sampling_version, split_stale
from tirgym.trainer.loop import Callback, Trainer


def config(tiny_path, out, **extra):
    return (
        guess_config(
            tiny_path,
            out,
            seed=3,
            steps=3,
            optim={"lr": 1e-2},
            eval={"before": False, "after": False},
            log={"progress": False, "plot": False, "tensorboard": False},
            checkpoint={"every": 1, "final": False},
        )
        | extra
    )


class Graded(Callback):
    """A reward that differs within a group (the tiny model never wins the game), so every
    step has nonzero advantages and really changes the weights."""

    def on_episodes(self, trainer, step, episodes):
        for e in episodes:
            e.outcome_reward = (sum(e.token_ids) % 7) / 7


def metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def test_sampling_version_is_pinned_and_bounded():
    assert [sampling_version(s, 0, 0) for s in (1, 2, 3)] == [0, 1, 2]
    assert [sampling_version(s, 0, 2) for s in (1, 2, 3, 4, 5)] == [0, 0, 0, 1, 2]
    assert [sampling_version(s, 4, 1) for s in (5, 6, 7)] == [4, 4, 5]  # resumed at 4


def test_split_stale_drops_only_versions_older_than_k():
    eps = [Episode("e", i, policy_version=v) for i, v in enumerate([3, 1, 2, None])]
    fresh, stale = split_stale(eps, trainer_version=3, k=1)
    assert [e.seed for e in fresh] == [0, 2, 3] and [e.seed for e in stale] == [1]


def test_old_episode_lines_load_without_a_version():
    d = Episode("e", 1).to_dict()
    del d["policy_version"]
    assert Episode.from_dict(d).policy_version is None


def test_k0_async_path_reproduces_the_sync_loop(tiny_path, tmp_path):
    sync = Trainer(config(tiny_path, tmp_path / "sync"), callbacks=[Graded()], quiet=True)
    sync.run()
    tr = Trainer(config(tiny_path, tmp_path / "async0"), callbacks=[Graded()], quiet=True)
    tr.setup()
    tr.generator = AsyncGenerator(tr, 0)  # the async code path, at staleness 0
    try:
        tr.run()
    finally:
        tr.close()
    a, b = metrics(tmp_path / "sync"), metrics(tmp_path / "async0")
    assert len(a) == len(b) == 3
    assert all(m["grad_norm"] > 0 for m in a)  # the weights really move
    for ma, mb in zip(a, b, strict=True):
        for key in ("loss", "grad_norm", "reward_mean", "logprob_gap_mean", "is_ratio_mean"):
            assert ma[key] == pytest.approx(mb[key], abs=1e-6), key
        assert mb["async_staleness"] == 0
    for k, v in sync.model.state_dict().items():
        assert torch.allclose(v, tr.model.state_dict()[k], atol=1e-6), k
    eps = load_jsonl(tmp_path / "async0" / "episodes.jsonl")
    assert [e.policy_version for e in eps] == [e.info["train_step"] - 1 for e in eps]


@pytest.mark.slow
def test_k1_samples_with_the_weights_one_update_behind(tiny_path, tmp_path):
    extra = {"async": {"max_staleness": 1}, "correction": {"mis_cap": 1.01}}
    tr = Trainer(config(tiny_path, tmp_path / "k1", **extra), callbacks=[Graded()], quiet=True)
    tr.setup()
    gen = tr.generator
    try:
        tr.run()
    finally:
        tr.close()
    eps = load_jsonl(tmp_path / "k1" / "episodes.jsonl")
    by_step = {e.info["train_step"]: e.policy_version for e in eps}
    assert by_step == {1: 0, 2: 0, 3: 1}
    m = metrics(tmp_path / "k1")
    assert [x["async_staleness"] for x in m] == [0, 1, 1]
    assert all(x["async_dropped_episodes"] == 0 for x in m)
    # step 1 trains on its own weights' samples; steps 2-3 on samples one update old, where
    # masked IS drops the tokens whose probability moved by more than 1%
    assert m[0]["is_masked_frac"] == 0 and m[0]["is_ratio_max"] == pytest.approx(1, abs=1e-3)
    assert all(0 < x["is_masked_frac"] <= 1 and x["is_ratio_max"] > 1.01 for x in m[1:])
    assert tr.generator is None and not gen.thread.is_alive()  # stopped once training ends


class DieAt(Graded):
    """Raises inside the generator thread while it rolls out the batch of `step`."""

    def __init__(self, step):
        self.step = step

    def on_episodes(self, trainer, step, episodes):
        if step == self.step:
            raise RuntimeError("generator killed mid-batch")
        super().on_episodes(trainer, step, episodes)


@pytest.mark.slow
def test_generator_killed_mid_batch_resumes_losing_and_repeating_nothing(tiny_path, tmp_path):
    cfg = {"steps": 4, "async": {"max_staleness": 1}}
    ref = Trainer(config(tiny_path, tmp_path / "ref", **cfg), callbacks=[Graded()], quiet=True)
    ref.run()
    ref.close()
    run = tmp_path / "run"
    tr = Trainer(config(tiny_path, run, **cfg), callbacks=[DieAt(3)], quiet=True)
    with pytest.raises(RuntimeError, match="killed mid-batch"):
        tr.run()
    tr.close()
    # batch 3 was being generated during update 2: step 2 is the last checkpoint
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1].endswith("2")
    again = Trainer(config(tiny_path, run, **cfg), callbacks=[Graded()], resume=True, quiet=True)
    again.run()
    again.close()

    def tasks(path):
        return Counter(
            (e.info["train_step"], e.seed, e.group_id) for e in load_jsonl(path / "episodes.jsonl")
        )

    assert tasks(run) == tasks(tmp_path / "ref")  # the same tasks, each once
    assert [m["step"] for m in metrics(run)] == [1, 2, 3, 4]


def test_async_refuses_what_it_cannot_run(tiny_path, tmp_path):
    from tirgym.trainer.async_process import ProcessGenerator

    cfg = config(tiny_path, tmp_path / "v", **{"async": {"max_staleness": 1}})
    cfg["backend"] = {"name": "vllm"}
    cfg["eval"] = {"every": 2}
    tr = Trainer(cfg, quiet=True)
    with pytest.raises(TirgymError, match="periodic held-out eval.*eval.every=0"):
        AsyncGenerator(tr, 1)  # the generator owns the engine
    tr.cfg.eval.every = 0
    with pytest.raises(TirgymError, match="backend 'vllm' takes async.generator=thread"):
        ProcessGenerator(tr, 1)


def test_partial_rollouts_need_a_staleness_above_zero(tiny_path, tmp_path):
    from tirgym.trainer.config import build_config

    with pytest.raises(TirgymError, match="partial_rollouts needs async.max_staleness >= 1"):
        build_config(config(tiny_path, tmp_path / "p", **{"async": {"partial_rollouts": True}}))


@pytest.mark.slow
def test_partial_rollouts_take_the_update_that_lands_mid_batch(tiny_path, tmp_path, monkeypatch):
    """With k=1 batch s is generated while update s-1 runs; when that update lands the
    batch's later turns are sampled with it. Generation is slowed down here so that every
    update lands mid-batch."""
    import time

    from tirgym.agents.hf_backend import HFPolicy

    real = HFPolicy.open_stream

    def slow_stream(self, *a, **k):
        stream = real(self, *a, **k)
        step = stream.step

        def slow_step():
            time.sleep(0.05)
            return step()

        stream.step = slow_step
        return stream

    monkeypatch.setattr(HFPolicy, "open_stream", slow_stream)
    extra = {"async": {"max_staleness": 1, "partial_rollouts": True}, "steps": 4}
    tr = Trainer(config(tiny_path, tmp_path / "p", **extra), callbacks=[Graded()], quiet=True)
    try:
        tr.run()
    finally:
        tr.close()
    m = metrics(tmp_path / "p")
    assert [x["step"] for x in m] == [1, 2, 3, 4]
    assert sum(x["async_mid_batch_loads"] for x in m) >= 2, m
    assert max(x["async_newer_turn_share"] for x in m) > 0
    assert partial_versions(tmp_path / "p", k=1) > 0  # some episodes crossed an update


def partial_versions(run_dir, k):
    """Check every episode's turn versions (never going back, never newer than the trainer
    that took it, the episode's own the oldest, within k); the number that crossed an update."""
    crossed = 0
    for e in load_jsonl(run_dir / "episodes.jsonl"):
        versions = [t.policy_version for t in e.turns]
        trainer_version = e.info["train_step"] - 1
        assert versions == sorted(versions) and versions[-1] <= trainer_version
        assert e.policy_version == versions[0] >= trainer_version - k
        crossed += versions[0] != versions[-1]
    return crossed
