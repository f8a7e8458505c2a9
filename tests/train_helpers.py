"""The small training config the trainer and viewer tests run: GuessNumber 1..4 in two
turns, two tasks a step, 512 tokens an episode; each test module sets the rest."""

from pathlib import Path
from typing import Any

GUESS_1_TO_4 = {"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 4, "max_turns": 2}}


def guess_config(
    model: str,
    out: Path,
    *,
    seed: int,
    steps: int,
    group_size: int = 2,
    max_new_tokens: int = 6,
    seeds: tuple[int, int] | None = (0, 1000),
    **sections: Any,
) -> dict[str, Any]:
    """A fresh config dict (callers may change it); `sections` add or replace whole sections.
    `seeds` None leaves the env's training seeds at the default range."""
    env = {**GUESS_1_TO_4, "kwargs": dict(GUESS_1_TO_4["kwargs"])}
    if seeds is not None:
        env["seeds"] = list(seeds)
    cfg = {
        "model": model,
        "seed": seed,
        "steps": steps,
        "output_dir": str(out),
        "envs": [env],
        "rollout": {
            "group_size": group_size,
            "tasks_per_step": 2,
            "max_new_tokens": max_new_tokens,
            "max_total_tokens": 512,
        },
    }
    cfg.update(sections)
    return cfg
