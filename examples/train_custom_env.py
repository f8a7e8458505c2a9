"""Train on your own environment from a Python script.

    python examples/train_custom_env.py [--seed N]   # a few minutes on a 2-core CPU

Defines a one-turn env (echo a colour word back), registers it in this file, warm-starts
a tiny model on the env's own solver (SFT on 16 demos), then runs 20 GRPO steps of 64
episodes with a custom reward callback, and prints held-out success (32 unseen seeds x 4
samples at temperature 1, the distribution RL optimises) before and after RL.

Measured on a 2-core CPU (240-290 s of CPU time per run), seeds 0, 1, 2:
55.5% -> 84.4%, 44.5% -> 84.4%, 51.6% -> 85.2%: after RL 84.7% +- 0.5 (sd over seeds),
a gain of +34.1 +- 5.5 points; the spread is mostly in where SFT leaves the model. Each
held-out figure is a mean over 128 episodes, so sampling alone moves it by about 4 points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tirgym
from tirgym.envs.base import Outcome, TextEnv
from tirgym.trainer import Callback, train

COLOURS = ["red", "green", "blue", "yellow"]


class EchoColourEnv(TextEnv):
    description = "Repeat the colour you are given."

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("max_turns", 1)
        super().__init__(**kwargs)
        self.colour = COLOURS[0]

    def instructions(self) -> str:
        return f"{self.description} Answer with the colour word as <answer>colour</answer>."

    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        self.colour = COLOURS[int(rng.integers(len(COLOURS)))]
        return f"The colour is {self.colour}."

    def on_answer(self, answer: str) -> Outcome:
        ok = answer.strip().lower() == self.colour
        return Outcome(reply="Right." if ok else "Wrong.", terminated=True, success=ok)

    def solve(self) -> str:
        return f"<answer>{self.colour}</answer>"


tirgym.register(
    "example/EchoColour-v0", f"{__name__}:EchoColourEnv", description="Echo a colour word."
)


class ConcisenessPenalty(Callback):
    """A custom reward, applied before advantages: each sampled token past the answer's
    own length costs a little, so rambling wins score below clean ones."""

    def on_episodes(self, trainer, step, episodes):
        for ep in episodes:
            ep.outcome_reward -= 0.02 * max(0, ep.num_sampled_tokens - 8)
        return episodes

    def on_step_end(self, trainer, step, metrics):
        print(f"  [callback] step {step}: success {metrics['success_rate']:.2f}")


def config(seed: int) -> dict[str, Any]:
    return {
        "name": f"example-echo-seed{seed}",
        "model": "tiny",
        "seed": seed,
        "steps": 20,
        "envs": [{"id": "example/EchoColour-v0", "seeds": [0, 10_000]}],
        "rollout": {
            "group_size": 8,
            "tasks_per_step": 8,
            "max_new_tokens": 12,
            "max_total_tokens": 512,
        },
        "sft": {
            "demos": {"policy": "solver", "episodes": 16},
            "epochs": 15,
            "batch_size": 4,
            "lr": 1e-3,
        },
        "advantage": {"estimator": "grpo"},
        "loss": {"agg": "seq-mean-token-mean"},
        "update": {"ppo_epochs": 2, "minibatches": 2},
        "optim": {"lr": 5e-4},
        "eval": {"num_seeds": 32, "temperature": 1.0, "samples": 4},
        "checkpoint": {"every": 0},
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seed", type=int, default=0, help="Run seed (model init, tasks, sampling)."
    )
    args = parser.parse_args()
    # overwrite: rerunning the example replaces its previous run instead of refusing
    run_dir = train(config(args.seed), callbacks=[ConcisenessPenalty()], overwrite=True)
    print(f"done: {run_dir}")
