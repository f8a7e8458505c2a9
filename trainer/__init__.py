"""The trainer: RL (GRPO family) and SFT for tirgym envs.

    from tirgym.trainer import load_config, train
    run_dir = train(load_config("configs/quickstart.yaml", ["steps=20"]))

Heavy modules (torch, transformers) load on first use of `train`/`Trainer`/`sft_main`.
"""

from __future__ import annotations

from typing import Any

from tirgym.trainer.config import TrainConfig, build_config, load_config

__all__ = [
    "Callback",
    "TrainConfig",
    "Trainer",
    "TrainingStopped",
    "build_config",
    "load_config",
    "sft_main",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in ("train", "Trainer", "Callback"):
        from tirgym.trainer import loop

        return getattr(loop, name)
    if name == "TrainingStopped":
        from tirgym.trainer.signals import TrainingStopped

        return TrainingStopped
    if name == "sft_main":
        from tirgym.trainer.sft import sft_main

        return sft_main
    raise AttributeError(name)
