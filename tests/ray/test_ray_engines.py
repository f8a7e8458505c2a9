"""Generation engines as Ray actors: the same episodes as a local engine for the same seeds,
each episode on one engine, weights pushed to all, and an engine killed mid-run costs no
episode."""

import json

import pytest
import ray
import torch
from train_helpers import guess_config

from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.hf_backend import HFPolicy
from tirgym.agents.ray_engines import EnginesConfig, RayEnginePool
from tirgym.trainer.loop import Callback, Trainer

pytestmark = pytest.mark.ray

GUESS = "tirgym/GuessNumber-v0"
KW = {"low": 1, "high": 16}
PARAMS = SamplingParams(seed=5, max_new_tokens=10)
LIMITS = RolloutLimits(max_turns=3)


def tasks(n=4):
    return [Task(GUESS, s, kwargs=KW) for s in range(n)]


@pytest.fixture(scope="module")
def pool(local_ray, tiny_path):
    p = RayEnginePool(EnginesConfig(backend="ray", num_engines=2), "hf", tiny_path)
    yield p
    p.close()


def same(a, b):
    """The same tokens and stops; logprobs up to the float noise of another batch makeup."""
    assert [(e.token_ids, e.stop_reason) for e in a] == [(e.token_ids, e.stop_reason) for e in b]
    for x, y in zip(a, b, strict=True):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)
    return True


class Recording:
    """Keeps the streams the pool opens (to see where each episode was routed)."""

    def __init__(self, pool, monkeypatch, on_step=None):
        self.streams, real = [], pool.open_stream

        def open_stream(params):
            s = real(params)
            self.streams.append(s)
            if on_step is not None:
                step = s.step
                s.step = lambda: (on_step(s), step())[1]
            return s

        monkeypatch.setattr(pool, "open_stream", open_stream)


def test_engines_on_ray_sample_what_a_local_engine_samples(pool, tiny_path, monkeypatch):
    local = rollout(HFPolicy.from_pretrained(tiny_path), tasks(), 2, PARAMS, LIMITS)
    rec = Recording(pool, monkeypatch)
    remote = rollout(pool, tasks(), 2, PARAMS, LIMITS)
    assert same(local, remote)
    assert all(e.turns and e.stop_reason != "error" for e in remote)
    (stream,) = rec.streams
    assert all(len(engines) == 1 for engines in stream.routed.values())  # sticky
    assert {i for engines in stream.routed.values() for i in engines} == {0, 1}  # balanced
    assert sum(len(e.turns) for e in remote) > len(remote)  # later turns went home too


def test_weights_pushed_to_every_engine(pool, tiny_path):
    local = HFPolicy.from_pretrained(tiny_path)
    g = torch.Generator().manual_seed(0)
    new = {
        n: p.detach() + 0.05 * torch.randn(p.shape, generator=g)
        for n, p in local.model.named_parameters()
    }
    local.update_weights(new.items())
    pool.update_weights(new.items())
    try:
        prompts = [[1, 2, 3, 4], [5, 6, 7], [8, 9], [10, 11, 12]]
        params = SamplingParams(seeds=[1, 2, 3, 4], max_new_tokens=6)
        want = local.generate(prompts, params)
        got = pool.generate(prompts, params)
        assert [c.token_ids for c in got] == [c.token_ids for c in want]
        for a, b in zip(got, want, strict=True):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    finally:
        orig = HFPolicy.from_pretrained(tiny_path).model.named_parameters()
        pool.update_weights(orig)


def test_an_engine_killed_mid_rollout_loses_no_episode(pool, tiny_path, monkeypatch):
    local = rollout(HFPolicy.from_pretrained(tiny_path), tasks(), 2, PARAMS, LIMITS)
    killed = []

    def kill_once(stream):
        if not killed and stream.inflight and len(stream.home) == 8:
            killed.append(pool.engines[1])
            ray.kill(pool.engines[1], no_restart=True)

    Recording(pool, monkeypatch, on_step=kill_once)
    before = pool.replaced
    remote = rollout(pool, tasks(), 2, PARAMS, LIMITS)
    assert killed and pool.replaced == before + 1 and pool.resubmitted > 0
    assert same(local, remote)  # resubmitted turns sample exactly what they would have


class Graded(Callback):
    """A reward that differs within a group, so every step really changes the weights."""

    def on_episodes(self, trainer, step, episodes):
        for e in episodes:
            e.outcome_reward = (sum(e.token_ids) % 7) / 7


def test_two_training_steps_through_engines_on_ray(local_ray, tiny_path, tmp_path):
    """The engines sample with the trainer's weights: at step 2 (after an update was
    pushed) the trainer's recomputed logprobs still match the engines' sampled ones."""
    cfg = guess_config(
        tiny_path,
        tmp_path / "run",
        seed=1,
        steps=2,
        optim={"lr": 1e-2},
        eval={"before": False, "after": False},
        log={"progress": False, "plot": False, "tensorboard": False},
        checkpoint={"every": 0, "final": False},
        backend={"engines": {"backend": "ray", "num_engines": 2}},
    )
    tr = Trainer(cfg, callbacks=[Graded()], quiet=True)
    try:
        tr.run()
        assert isinstance(tr.policy, RayEnginePool) and len(tr.policy.engines) == 2
    finally:
        tr.close()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    m = [json.loads(x) for x in lines if x.strip()]
    assert [x["step"] for x in m] == [1, 2]
    assert all(x["grad_norm"] > 0 for x in m)  # the weights moved after step 1
    assert all(abs(x["logprob_gap_mean"]) < 1e-4 for x in m), m
