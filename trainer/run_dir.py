"""The run directory: what a run starts from (fresh or a checkpoint) and what it keeps.

run_dir/
  config.yaml        the config the run started with (a resume keeps it)
  checkpoints/       step_NNNNNN/ (see checkpoint.py)
  metrics.jsonl      one line per logged step (and the evals)
  episodes.jsonl     every step's episodes, tagged with info["train_step"]
  summary.json       before/after held-out success, wall time, SFT metrics
  sft_model/, final_model/, tiny_model/, tensorboard/, learning_curves.png, ...
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tirgym.errors import TirgymError
from tirgym.trainer import distributed as D
from tirgym.trainer.checkpoint import latest_checkpoint
from tirgym.trainer.config import TrainConfig, build_config, dump_config
from tirgym.trainer.model import resolve_model_path

RUN_MARKERS = ("config.yaml", "metrics.jsonl", "episodes.jsonl", "summary.json", "checkpoints")
"""Files a run writes early: a dir holding any of them holds a run."""
ARTIFACTS = (
    *RUN_MARKERS,
    "final_model",
    "sft_model",
    "sft_data.jsonl",
    "tiny_model",
    "tensorboard",
    "learning_curves.png",
    "strategic_grams.json",
)
"""Everything a run writes: --overwrite removes these (and nothing else) first."""


@dataclass
class Start:
    """Where a run starts: fresh (ckpt None) or from a checkpoint."""

    ckpt: Path | None = None
    finished: bool = False
    """--resume on a run that completed every step: there is nothing to do."""
    changes: dict[str, list[Any]] = field(default_factory=dict)
    """Config values that differ from the resumed run's config.yaml: key -> [old, new]."""


def prepare_run_dir(cfg: TrainConfig, dist: D.DistInfo, *, resume: bool, overwrite: bool) -> Start:
    """Check and set up the run dir; every rank calls this.

    A fresh run refuses a dir that holds a previous run unless `overwrite` (which removes
    that run's files first); it writes config.yaml and builds the tiny model. A resumed run
    keeps config.yaml as it was, reports what the new config changes, and trims the
    episode log to the checkpoint's step."""
    run_dir = cfg.run_dir()
    if resume and overwrite:
        raise TirgymError(
            "--resume continues the run in the run dir, --overwrite replaces it: give one."
        )
    found = [n for n in RUN_MARKERS if (run_dir / n).exists()]
    if found and not (resume or overwrite):
        raise TirgymError(
            f"{run_dir} holds a previous run ({', '.join(found)}): pass --resume to continue it, "
            "--overwrite to replace it, or set name=/output_dir= to train elsewhere."
        )
    if dist.main:
        if overwrite:
            for name in ARTIFACTS:
                _remove(run_dir / name)
        run_dir.mkdir(parents=True, exist_ok=True)
    D.barrier(dist)
    start = Start(ckpt=latest_checkpoint(run_dir) if resume else None)
    if resume and start.ckpt is None:
        raise TirgymError(f"--resume: no checkpoint under {run_dir}/checkpoints to resume from.")
    if start.ckpt is not None:
        start.finished = _finished(run_dir, checkpoint_step(start.ckpt), cfg.steps)
        start.changes = config_changes(run_dir / "config.yaml", cfg)
    if dist.main and not start.finished:
        if start.ckpt is None:
            dump_config(cfg, run_dir / "config.yaml")
        resolve_model_path(cfg, run_dir)
        trim_episode_log(
            run_dir / "episodes.jsonl", checkpoint_step(start.ckpt) if start.ckpt else 0
        )
    D.barrier(dist)
    return start


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _finished(run_dir: Path, ckpt_step: int, steps: int) -> bool:
    """The run wrote its final summary, and the checkpoint holds every step asked for."""
    f = run_dir / "summary.json"
    if ckpt_step < steps or not f.exists():
        return False
    try:
        return bool(json.loads(f.read_text()).get("finished"))
    except json.JSONDecodeError:
        return False


def config_changes(saved: Path, cfg: TrainConfig) -> dict[str, list[Any]]:
    """Dotted keys whose value in `cfg` differs from the config saved at `saved`."""
    if not saved.exists():
        return {}
    old = yaml.safe_load(saved.read_text()) or {}
    with contextlib.suppress(TirgymError):  # through the schema: fields added since the
        old = build_config(old).model_dump(mode="json")  # run started are no change
    new = yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json")))
    a, b = _flat(old), _flat(new)
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def record_changes(
    state: dict[str, Any], step: int, changes: dict[str, list[Any]], say: Callable[[str], None]
) -> None:
    """Warn about a resume's changed settings and keep them in the trainer state, which the
    next checkpoints and summary.json carry."""
    shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
    say(f"WARNING: resuming with a changed config: {shown}")
    state.setdefault("config_changes", []).append({"step": step, "changes": changes})


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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
