"""A short training run completes with every advantage estimator and logs the reasoning metrics.

The tiny random model rarely earns env rewards in two steps, so a callback gives every
turn and every outcome a reward hashed from the sampled text: groups then differ, every
estimator has a non-zero advantage somewhere and the update really moves the weights.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from tirgym.episode import load_jsonl
from tirgym.trainer.loop import Callback, train
from tirgym.trainer.reasoning_metrics import (
    reflections_per_response,
    response_length_stats,
    tool_stats,
    void_turn_ratio,
)

ESTIMATORS = {
    "grpo": {"estimator": "grpo"},
    "drgrpo": {"estimator": "drgrpo"},
    "rloo": {"estimator": "rloo"},
    "wreinforce": {"estimator": "wreinforce"},
    "turn_return": {"estimator": "turn_return"},
    "mtgrpo": {"estimator": "mtgrpo"},
    "gigpo": {"estimator": "gigpo"},
    "grpo+hicra": {"estimator": "grpo", "hicra": True},
}
# each metric logged every step (docs/ALGORITHMS.md) and its metrics.jsonl key
REQUIRED = {
    "token entropy": "token_entropy",
    "semantic entropy": "semantic_entropy",
    "planning-token ratio": "planning_token_ratio",
    "reflection-word counts": "reflections_per_response",
    "response length mean": "response_tokens_mean",
    "response length p95": "response_tokens_p95",
    "void-turn ratio": "void_turn_ratio",
    "tool calls per episode": "tool_calls_per_episode",
    "tool error rate": "tool_error_rate",
}
STEPS, TASKS, GROUP = 2, 2, 3
VOCAB = 512


def _h(text: str, mod: int) -> float:
    return (int(hashlib.md5(text.encode()).hexdigest(), 16) % mod) / mod


class HashedRewards(Callback):
    """Deterministic per-text rewards, so advantages are non-zero for every estimator."""

    def on_episodes(self, trainer, step, episodes):
        for ep in episodes:
            for t in ep.turns:
                t.reward = _h(t.text, 7)
                t.reward_components = {"hashed": t.reward}
            ep.outcome_reward = _h("".join(t.text for t in ep.turns), 2)
        return episodes


def config(tiny_path, out, advantage):
    return {
        "model": tiny_path,
        "seed": 1,
        "steps": STEPS,
        "output_dir": str(out),
        "envs": [
            {
                "id": "tirgym/Maze-v0",
                "kwargs": {
                    "difficulty": "easy",
                    "max_turns": 2,
                    "moves_per_turn": 2,
                    "progress_reward": 0.1,
                    "step_cost": 0.01,
                },
                "seeds": [0, 1000],
            }
        ],
        "rollout": {
            "group_size": GROUP,
            "tasks_per_step": TASKS,
            "max_new_tokens": 8,
            "max_total_tokens": 1024,
        },
        "advantage": advantage,
        "optim": {"lr": 1e-2},
        "eval": {"before": False, "after": False},
        "checkpoint": {"every": 0, "final": False},
        "log": {"progress": False, "plot": False, "tensorboard": False, "save_episodes": True},
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_training_run_logs_reasoning_metrics(tiny_path, tmp_path, name):
    run_dir = train(
        config(tiny_path, tmp_path / name, ESTIMATORS[name]),
        callbacks=[HashedRewards()],
        quiet=True,
    )
    rows = [
        json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()
    ]
    steps = [r for r in rows if "reward_mean" in r]
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert (run_dir / "config.yaml").read_text().count(
        f"estimator: {ESTIMATORS[name]['estimator']}"
    ) == 1

    missing = {what: key for what, key in REQUIRED.items() if any(key not in r for r in steps)}
    assert not missing, f"metrics.jsonl lacks {missing}"

    # the update did something: non-zero advantages reached the loss
    assert any(r["grad_norm"] > 0 for r in steps), "all advantages were zero"

    # the logged values agree with the episodes of each step (episodes.jsonl, in step order)
    episodes = load_jsonl(run_dir / "episodes.jsonl")
    per_step = TASKS * GROUP
    assert len(episodes) == STEPS * per_step
    for k, r in enumerate(steps):
        eps = episodes[k * per_step : (k + 1) * per_step]
        mean, p95 = response_length_stats(eps)
        calls, err_rate = tool_stats(eps)
        assert r["response_tokens_mean"] == pytest.approx(mean)
        assert r["response_tokens_p95"] == pytest.approx(p95)
        assert r["void_turn_ratio"] == pytest.approx(void_turn_ratio(eps))
        assert r["tool_calls_per_episode"] == pytest.approx(calls)
        assert r["tool_error_rate"] == pytest.approx(err_rate)
        assert r["reflections_per_response"] == pytest.approx(reflections_per_response(eps))
        assert 0.0 < r["token_entropy"] <= math.log(VOCAB) + 1e-6
        assert r["semantic_entropy"] >= 0.0
        assert 0.0 <= r["planning_token_ratio"] <= 1.0
        assert r["reward_mean"] == pytest.approx(np.mean([e.total_reward for e in eps]))
