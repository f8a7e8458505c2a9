"""The run directory: what a run starts from (fresh or a checkpoint) and what it keeps.

run_dir/
  config.yaml        the config the run started with
  checkpoints/       step_NNNNNN/ (see checkpoint.py)
  metrics.jsonl      one line per logged step (and the evals)
  episodes.jsonl     every step's episodes, tagged with info["train_step"]
  summary.json       before/after held-out success, wall time, SFT metrics
  sft_model/, final_model/, tiny_model/, tensorboard/, learning_curves.png, ...
"""

from __future__ import annotations

from pathlib import Path

from tirgym.errors import TirgymError
from tirgym.trainer import distributed as D
from tirgym.trainer.checkpoint import latest_checkpoint
from tirgym.trainer.config import TrainConfig, dump_config
from tirgym.trainer.model import resolve_model_path


def prepare_run_dir(cfg: TrainConfig, dist: D.DistInfo, *, resume: bool) -> Path | None:
    """Create the run dir and return the checkpoint to resume from (None: a fresh start).

    Writes config.yaml, builds the tiny model once, and trims the episode log to the steps
    the run keeps; every rank calls this."""
    run_dir = cfg.run_dir()
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    D.barrier(dist)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise TirgymError(f"--resume: no checkpoint under {run_dir}/checkpoints to resume from.")
    if dist.main:
        dump_config(cfg, run_dir / "config.yaml")
        resolve_model_path(cfg, run_dir)
        trim_episode_log(run_dir / "episodes.jsonl", checkpoint_step(ckpt) if ckpt else 0)
    D.barrier(dist)
    return ckpt


def checkpoint_step(ckpt: Path) -> int:
    return int(ckpt.name.rsplit("_", 1)[-1])


def trim_episode_log(path: Path, keep_through_step: int) -> None:
    """Keep only episodes of steps <= keep_through_step: a fresh run starts an empty log,
    and a resumed one drops the steps it is about to redo, so none appears twice."""
    if not path.exists():
        return
    if keep_through_step <= 0:
        path.unlink()
        return
    from tirgym.episode import iter_jsonl, save_jsonl

    kept = [e for e in iter_jsonl(path) if e.info.get("train_step", 0) <= keep_through_step]
    save_jsonl(path, kept)
