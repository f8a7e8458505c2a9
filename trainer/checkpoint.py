"""Checkpoints: model (safetensors, `from_pretrained`-loadable), optimizer, scheduler, RNG, state.

Layout of run_dir/checkpoints/step_000042/:
  model/              save_pretrained output (+ tokenizer); LoRA runs hold the adapter
  optimizer.pt        optimizer state (per rank under FSDP2: optimizer.rank{r}.pt)
  scheduler.pt        LR scheduler state
  rng.pt              python, numpy, torch (and CUDA) RNG states of rank 0
  trainer_state.json  step, data position, before-RL eval, anything the loop keeps
A checkpoint is written to a temporary folder and renamed, so a crash never leaves a
half-written one behind `latest_checkpoint`.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

CKPT_DIR = "checkpoints"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{step:06d}"


def save_model(model, tokenizer, out: Path, state_dict: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    kw = {"state_dict": state_dict} if state_dict is not None else {}
    model.save_pretrained(out, safe_serialization=True, **kw)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)


def save_policy(model, tokenizer, out: Path, state_dict: dict | None = None) -> None:
    """The trained policy as a plain transformers dir that `hf:DIR`, `vllm:DIR` and
    `from_pretrained` load alone. A LoRA run's adapters are merged into the weights they
    were trained on (an adapter dir would name the base model, not the SFT weights
    under it, and would not load without peft)."""
    from tirgym.trainer.model import inference_weights

    if not hasattr(model, "get_base_model"):
        save_model(model, tokenizer, out, state_dict)
        return
    named = state_dict if state_dict is not None else dict(model.state_dict())
    save_model(model.get_base_model(), tokenizer, out, dict(inference_weights(named, model)))


def save_checkpoint(
    run_dir: Path,
    step: int,
    model,
    tokenizer,
    optimizer,
    scheduler,
    state: dict[str, Any],
    keep_last: int = 2,
    rank: int = 0,
    model_state: dict | None = None,
    sharded_optimizer: bool = False,
) -> Path:
    """Write a checkpoint (rank 0 writes everything except sharded optimizer states)."""
    final = step_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        save_model(model, tokenizer, tmp / "model", state_dict=model_state)
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **state}, indent=2))
        if not sharded_optimizer:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if sharded_optimizer:
        _barrier()
        torch.save(optimizer.state_dict(), tmp / f"optimizer.rank{rank}.pt")
        _barrier()
    if rank == 0:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        _prune(Path(run_dir) / CKPT_DIR, keep_last)
    _barrier()
    return final


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _prune(folder: Path, keep_last: int) -> None:
    done = sorted(p for p in folder.glob("step_*") if not p.name.endswith(".tmp"))
    for old in done[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    folder = Path(run_dir) / CKPT_DIR
    if not folder.is_dir():
        return None
    done = sorted(
        p
        for p in folder.glob("step_*")
        if not p.name.endswith(".tmp") and (p / "trainer_state.json").exists()
    )
    return done[-1] if done else None


def load_training_state(ckpt: Path, optimizer, scheduler, rank: int = 0) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG (the model is loaded from ckpt/model beforehand)."""
    shard = ckpt / f"optimizer.rank{rank}.pt"
    opt_path = shard if shard.exists() else ckpt / "optimizer.pt"
    optimizer.load_state_dict(torch.load(opt_path, map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
    set_rng_state(torch.load(ckpt / "rng.pt", weights_only=False))
    return json.loads((ckpt / "trainer_state.json").read_text())
