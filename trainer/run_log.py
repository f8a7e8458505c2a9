"""What a training run shows: its lines, the progress bar, the per-step line, the summary.

Only rank 0 speaks, and nothing is printed when the run is quiet. On a terminal (and
with log.progress) a rich bar shows the step, its phase and the main metrics; lines are
printed above it. The per-step line is printed either way, so a log file or CI output
records every step.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tirgym.trainer.metrics import plot_learning_curves

# (shown name, metric key) of the per-step line, in order
STEP_LINE = (
    ("reward", "reward_mean"),
    ("succ", "success_rate"),
    ("len", "response_tokens_mean"),
    ("ent", "token_entropy"),
    ("clip", "clip_frac"),
    ("gap", "logprob_gap_mean"),
    ("gnorm", "grad_norm"),
)


class RunLog:
    def __init__(self, *, speak: bool, bar: bool, total_steps: int):
        self.speak = speak
        self.want_bar = bar
        self.total_steps = total_steps
        self._bar: Any = None
        self._task: Any = None

    def say(self, text: str) -> None:
        if not self.speak:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def phase(self, step: int, name: str) -> None:
        """Show what `step` is doing now (rollout, update, eval, checkpoint) on the bar."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"step {step}: {name}")

    @contextlib.contextmanager
    def progress(self, completed: int) -> Iterator[None]:
        """The bar, while the steps run, on a terminal; transformers' and the hub's own
        tqdm bars are off meanwhile (they would tear tirgym's bar apart)."""
        if not (self.speak and self.want_bar and sys.stdout.isatty()):
            yield
            return
        from transformers.utils import logging as hf_logging

        from tirgym.progress import progress_bar

        hf_bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            with progress_bar("{task.description:<22}", "{task.fields[stats]}") as bar:
                self._task = bar.add_task(
                    "RL", total=self.total_steps, completed=completed, stats=""
                )
                self._bar = bar
                try:
                    yield
                finally:
                    self._bar = None
        finally:
            if hf_bars:
                hf_logging.enable_progress_bar()

    def step_done(self, step: int, m: dict[str, float]) -> None:
        parts = [f"{name} {m[k]:.3f}" for name, k in STEP_LINE if k in m]
        if "eval/success" in m:
            parts.append(f"EVAL {m['eval/success']:.3f}")
        if self._bar is not None:
            stats = "  ".join(parts[:2] + parts[-1:] if "eval/success" in m else parts[:2])
            self._bar.update(self._task, advance=1, stats=stats, description=f"step {step}: done")
        self.say(
            f"step {step:>4}/{self.total_steps}  "
            + "  ".join(parts)
            + f"  roll {m['rollout_s']:.1f}s upd {m['update_s']:.1f}s"
        )

    def summary(
        self,
        run_dir: Path,
        state: dict[str, Any],
        steps: int,
        finished: bool,
        wall: float,
        plot: bool,
    ) -> None:
        """Write run_dir/summary.json (and the learning curves) and print the outcome."""
        before = state.get("eval_before", {}).get("eval/success")
        after = state.get("eval_after", {}).get("eval/success")
        summary = {
            "run_dir": str(run_dir),
            "steps": steps,
            "finished": finished,
            "wall_s_rl": wall,
            "heldout_success_before": before,
            "heldout_success_after": after,
            "eval_before": state.get("eval_before"),
            "eval_after": state.get("eval_after"),
            "sft": state.get("sft"),
        }
        gains = heldout_gains(state.get("eval_before") or {}, state.get("eval_after") or {})
        if gains:
            summary["heldout"] = gains
        if state.get("config_changes"):
            summary["config_changes"] = state["config_changes"]
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if plot:
            png = plot_learning_curves(run_dir / "metrics.jsonl", run_dir / "learning_curves.png")
            if png:
                self.say(f"learning curves: {png}")
        for tag, g in gains.items():
            b, a = g["before"], g["after"]
            self.say(
                f"held-out success ({tag}): before RL {b['success']:.1%} "
                f"[{b['ci'][0]:.1%}, {b['ci'][1]:.1%}] -> after RL {a['success']:.1%} "
                f"[{a['ci'][0]:.1%}, {a['ci'][1]:.1%}] ({g['gain_points']:+.1f} points; "
                f"95% intervals {'overlap' if g['intervals_overlap'] else 'do not overlap'})"
            )
        if not gains and before is not None and after is not None:
            self.say(
                f"held-out success: before RL {before:.1%} -> after RL {after:.1%} "
                f"({(after - before) * 100:+.1f} points)"
            )
        self.say(f"summary: {run_dir / 'summary.json'}")


def heldout_gains(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Per eval temperature (the "eval/<T>/success" keys both evals have): success with its
    95% interval before and after, the gain in points and whether the intervals overlap."""
    out: dict[str, Any] = {}
    for key in before:
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != "success" or key not in after:
            continue
        lo, hi = f"{key}_lo", f"{key}_hi"
        if not all(k in d for d in (before, after) for k in (lo, hi)):
            continue
        b = {"success": before[key], "ci": [before[lo], before[hi]]}
        a = {"success": after[key], "ci": [after[lo], after[hi]]}
        out[parts[1]] = {
            "before": b,
            "after": a,
            "gain_points": (a["success"] - b["success"]) * 100,
            "intervals_overlap": a["ci"][0] <= b["ci"][1] and b["ci"][0] <= a["ci"][1],
            "episodes": {
                "before": before.get(f"eval/{parts[1]}/episodes"),
                "after": after.get(f"eval/{parts[1]}/episodes"),
            },
        }
    return out


def pct(res: dict[str, float]) -> str:
    v = res.get("eval/success")
    return "n/a" if v is None else f"{v:.1%}"
