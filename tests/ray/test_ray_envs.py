"""Env workers on Ray: same episodes as local envs, actor loss survived, training through them."""

import json
import time

import pytest
import ray

from tirgym.agents import rollout
from tirgym.agents.ray_envs import EnvWorkersConfig, RayEnvPool
from tirgym.agents.scripted import ReplayPolicy
from tirgym.agents.types import SamplingParams, Task

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("local_ray")]

GUESS = {"low": 1, "high": 16, "max_turns": 4}
GUESSES = ["<answer>8</answer>", "<answer>4</answer>", "<answer>12</answer>", "<answer>2</answer>"]


def kill(actor):
    """Kill an actor and wait until Ray reports it dead: `ray.kill` only asks, so a call made
    right after it can still reach the live process."""
    ray.kill(actor, no_restart=True)
    deadline = time.monotonic() + 30
    with pytest.raises(ray.exceptions.RayActorError):
        while time.monotonic() < deadline:
            ray.get(actor.ping.remote(), timeout=30)
            time.sleep(0.05)


def tasks(n=4):
    return [Task("tirgym/GuessNumber-v0", seed=s, kwargs=GUESS) for s in range(n)]


def fingerprint(eps):
    return [
        (e.group_id, e.stop_reason, e.success, e.outcome_reward, e.token_ids, e.messages)
        for e in eps
    ]


@pytest.fixture
def pool():
    p = RayEnvPool(EnvWorkersConfig(backend="ray", num_workers=2))
    yield p
    p.close()


def test_seeded_hf_rollout_matches_local_envs(tiny_path, pool):
    """The continuous schedule on the tiny model: same seeds, same tokens and replies."""
    from tirgym.agents.hf_backend import HFPolicy

    policy = HFPolicy.from_pretrained(tiny_path)
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=7)
    local = rollout(policy, tasks(3), group_size=2, params=params)
    remote = rollout(policy, tasks(3), group_size=2, params=params, make_env=pool.make)
    assert fingerprint(remote) == fingerprint(local)
    assert all(len(e.turns) >= 1 and "error" not in e.info for e in remote)
    assert pool.replaced == 0


class KillingPolicy(ReplayPolicy):
    """Replays fixed guesses; at `kill_turn` it kills the first actor of the pool (mid-run:
    episodes on it have stepped, others are still going)."""

    def __init__(self, pool, kill_turn=2):
        super().__init__(GUESSES)
        self.pool, self.kill_turn, self.killed = pool, kill_turn, False

    def act(self, requests, params):
        if not self.killed and any(r.turn == self.kill_turn for r in requests):
            kill(self.pool.actors[0])
            self.killed = True
        return super().act(requests, params)


def test_killed_actor_episodes_are_replayed_exactly(pool):
    local = rollout(ReplayPolicy(GUESSES), tasks(), group_size=2)
    policy = KillingPolicy(pool)
    remote = rollout(policy, tasks(), group_size=2, make_env=pool.make)
    assert policy.killed and pool.replaced >= 1 and pool.replayed >= 1
    assert fingerprint(remote) == fingerprint(local)
    # the run goes on: the pool has a live actor in the dead one's place
    again = rollout(ReplayPolicy(GUESSES), tasks(), group_size=2, make_env=pool.make)
    assert fingerprint(again) == fingerprint(local)


def test_killed_actor_episodes_are_marked_errored_when_replay_is_off():
    pool = RayEnvPool(EnvWorkersConfig(backend="ray", num_workers=2, on_worker_loss="error"))
    try:
        seen = []
        eps = rollout(
            KillingPolicy(pool), tasks(), group_size=2, make_env=pool.make, on_episode=seen.append
        )
    finally:
        pool.close()
    assert len(eps) == len(seen) == 8  # every episode is reported, none dropped
    errored = [e for e in eps if e.stop_reason == "error"]
    assert errored and len(errored) < len(eps)
    assert all("EnvWorkerLost" in e.info["error"] for e in errored)
    # the episodes on the live actor played to their end
    assert all(e.stop_reason in ("env_done", "max_turns") for e in eps if e not in errored)


def test_nondeterministic_env_is_not_replayed_silently(pool):
    env = pool.make("tirgym/GuessNumber-v0", **GUESS)
    env.reset(seed=3)
    env.step(GUESSES[0])
    env._history[0] = (GUESSES[0], "a reply the env would not give again")
    kill(env.actor)
    from tirgym.agents.ray_envs import EnvWorkerLost

    with pytest.raises(EnvWorkerLost, match="replied differently"):
        env.step(GUESSES[1])
    env.close()


def test_two_training_steps_through_ray_env_workers(tiny_path, tmp_path, monkeypatch):
    from tirgym.trainer.loop import train

    made = []
    real_make = RayEnvPool.make
    monkeypatch.setattr(
        RayEnvPool, "make", lambda self, *a, **k: made.append(a[0]) or real_make(self, *a, **k)
    )

    cfg = {
        "model": tiny_path,
        "seed": 1,
        "steps": 2,
        "output_dir": str(tmp_path / "run"),
        "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": GUESS, "seeds": [0, 1000]}],
        "rollout": {
            "group_size": 2,
            "tasks_per_step": 2,
            "max_new_tokens": 6,
            "max_total_tokens": 512,
            "env_workers": {"backend": "ray", "num_workers": 2},
        },
        "optim": {"lr": 1e-3},
        "eval": {"before": False, "after": False},
        "log": {"progress": False},
    }
    run = train(cfg, quiet=True)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward_mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["episodes"] == 4 for r in steps)
    assert len(made) == 8  # every training episode's env lived in a Ray actor


def test_env_workers_options_are_checked_in_one_line(tiny_path):
    from tirgym.errors import TirgymError
    from tirgym.trainer.config import apply_overrides, build_config

    base = {"model": tiny_path, "envs": [{"id": "tirgym/GuessNumber-v0"}]}
    cfg = build_config(apply_overrides(dict(base), ["rollout.env_workers.backend=ray"]))
    assert cfg.rollout.env_workers.backend == "ray" and cfg.rollout.env_workers.num_workers == 2
    with pytest.raises(TirgymError, match="env_workers") as e:
        build_config(apply_overrides(dict(base), ["rollout.env_workers.backend=slurm"]))
    assert "\n" not in str(e.value)
