"""Per-step metrics: rollout statistics, the JSONL/TensorBoard/W&B logger, learning curves."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from tirgym.episode import Episode
from tirgym.errors import TirgymError
from tirgym.trainer.planning import planning_mask
from tirgym.trainer.reasoning_metrics import (
    batch_semantic_entropy,
    planning_execution_entropy,
    planning_token_ratio,
    reflections_per_response,
    response_length_stats,
    tool_stats,
    void_turn_ratio,
)

log = logging.getLogger(__name__)


def episode_metrics(
    episodes: list[Episode], tokenizer=None, grams=None, scope: str = "think"
) -> dict[str, float]:
    """Every per-step statistic of a step's episodes: reward, success, length, turns, tools,
    format errors, and the reasoning metrics (reflections, semantic entropy, planning-token
    ratio: the last needs the tokenizer)."""
    if not episodes:
        return {"episodes": 0.0}
    rewards = np.array([e.total_reward for e in episodes], dtype=np.float64)
    turns = [t for e in episodes for t in e.turns]
    mean_len, p95_len = response_length_stats(episodes)
    calls, err_rate = tool_stats(episodes)
    out = {
        "episodes": float(len(episodes)),
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "outcome_mean": float(np.mean([e.outcome_reward for e in episodes])),
        "success_rate": float(np.mean([e.success for e in episodes])),
        "response_tokens_mean": mean_len,
        "response_tokens_p95": p95_len,
        "turns_mean": float(np.mean([len(e.turns) for e in episodes])),
        "tool_calls_per_episode": calls,
        "tool_error_rate": err_rate,
        **_tool_use(episodes),
        "format_error_rate": _ratio(sum(bool(t.format_errors) for t in turns), len(turns)),
        "void_turn_ratio": void_turn_ratio(episodes),
        "truncated_rate": float(np.mean([e.truncated for e in episodes])),
        "reflections_per_response": float(reflections_per_response(episodes)),
        "semantic_entropy": float(batch_semantic_entropy(episodes, grams)),
    }
    if tokenizer is not None:
        masks = [planning_mask(e, tokenizer, grams, scope) for e in episodes]
        out["planning_token_ratio"] = float(planning_token_ratio(masks, episodes))
        out.update(planning_execution_entropy(masks, episodes))
    return out


def _tool_use(episodes: list[Episode]) -> dict[str, float]:
    """How often episodes call a tool, and how often those that do succeed (absent when
    none did): whether a model learns to use the tool, and whether using it pays."""
    used = [e for e in episodes if any(t.tool_calls for t in e.turns)]
    out = {"tool_use_rate": _ratio(len(used), len(episodes))}
    if used:
        out["success_when_tool_used"] = float(np.mean([e.success for e in used]))
    return out


def _ratio(a: float, b: float) -> float:
    return float(a) / b if b else 0.0


def check_loggers(log_cfg) -> list[str]:
    """Before any work: fail when a logger the config asks for is missing, and return a
    note for each one that will stay silent (TensorBoard by default when not installed)."""
    if log_cfg.wandb is not None:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise TirgymError(
                "log.wandb is configured but wandb is not installed: pip install wandb "
                "(or remove log.wandb)."
            ) from None
    if log_cfg.tensorboard is not False and _tensorboard_writer() is None:
        if log_cfg.tensorboard:
            raise TirgymError(
                "log.tensorboard=true but tensorboard is not installed: pip install tensorboard "
                "(or set log.tensorboard=false)."
            )
        return [
            "TensorBoard is not installed, so no events are written (every metric is in "
            "metrics.jsonl; pip install tensorboard, or log.tensorboard=false to silence this)"
        ]
    return []


def _tensorboard_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


class MetricsLogger:
    """metrics.jsonl always; TensorBoard when installed (unless off); W&B when configured.
    Call `check_loggers` first: it reports missing loggers before the run does any work."""

    def __init__(
        self,
        run_dir: Path,
        log_cfg,
        config: dict[str, Any],
        enabled: bool = True,
        resume_step: int = 0,
    ):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = None
        self.wandb = None
        if not enabled:
            return
        if resume_step and self.path.exists():  # drop lines past the checkpoint we resume from
            keep = [
                ln
                for ln in self.path.read_text().splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        elif self.path.exists():
            self.path.unlink()
        writer = _tensorboard_writer() if log_cfg.tensorboard is not False else None
        if writer is not None:
            self.tb = writer(str(Path(run_dir) / "tensorboard"))
        if log_cfg.wandb is not None:
            import wandb

            w = log_cfg.wandb
            self.wandb = wandb.init(
                project=w.project,
                entity=w.entity,
                name=w.name,
                mode=w.mode,
                config=config,
                dir=str(run_dir),
                resume="allow",
            )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: _num(v) for k, v in metrics.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **clean}) + "\n")
        if self.tb is not None:
            for k, v in clean.items():
                if isinstance(v, float) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(clean, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _num(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bool | int):
        return float(v)
    return v


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not Path(path).exists():
        return []
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


CURVES = [
    ("reward", ["reward_mean"]),
    (
        "success / tool use",
        ["success_rate", "eval/success", "tool_use_rate", "success_when_tool_used"],
    ),
    ("loss", ["loss", "pg_loss"]),
    ("entropy", ["token_entropy"]),
    ("response tokens", ["response_tokens_mean", "response_tokens_p95"]),
    ("clip / KL", ["clip_frac", "approx_kl", "logprob_gap_mean"]),
]


def plot_learning_curves(metrics_path: Path, out_png: Path) -> Path | None:
    """A grid of the main curves (metrics.jsonl -> PNG); None when there is nothing to plot."""
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (title, keys) in zip(axes.flat, CURVES, strict=True):
        for k in keys:
            pts = [
                (r["step"], r[k])
                for r in rows
                if isinstance(r.get(k), int | float) and math.isfinite(r[k])
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o" if k.startswith("eval/") else None, ms=4, label=k)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
