"""`tirgym analyze RUN_DIR`: plots and a markdown summary of a run's reasoning dynamics.

Reads RUN_DIR/metrics.jsonl (one JSON object per step; a torn last line is skipped) and
writes RUN_DIR/analysis/: one PNG per panel (success, response length, token vs semantic
entropy, planning-token ratio) and summary.md with first/last/best values and the trend
of each metric between the first and last third of the run. HICRA describes a two-phase
dynamic (token entropy settles while semantic entropy keeps rising as strategies
diversify); the summary states which way each moved, whatever it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tirgym.errors import TirgymError

PANELS: list[tuple[str, str, list[str]]] = [
    ("success", "Success rate", ["success_rate", "eval/success_rate", "eval_success_rate"]),
    (
        "response_length",
        "Response length (tokens)",
        [
            "response_len_mean",
            "response_len_p95",
            "response_tokens_mean",
            "response_tokens_p95",
        ],
    ),
    ("entropy", "Token vs semantic entropy (nats)", ["token_entropy", "semantic_entropy"]),
    ("planning", "Planning-token ratio", ["planning_token_ratio"]),
    (
        "planning_entropy",
        "Planning vs execution token entropy (nats)",
        ["planning_token_entropy", "execution_token_entropy"],
    ),
]
SUMMARY_KEYS = [
    "success_rate",
    "eval/success_rate",
    "reward_mean",
    "response_len_mean",
    "response_len_p95",
    "response_tokens_mean",
    "response_tokens_p95",
    "token_entropy",
    "semantic_entropy",
    "planning_token_ratio",
    "planning_token_entropy",
    "execution_token_entropy",
    "reflections_per_response",
    "void_turn_ratio",
    "tool_calls_per_episode",
    "tool_error_rate",
]


def word(trend: tuple[float, float]) -> str:
    """How a (first third, last third) trend moved, in a word."""
    first, last = trend
    return "rose" if last > first else "fell" if last < first else "stayed flat"


def moved(name: str, trend: tuple[float, float]) -> str:
    """'<name> fell (1.05 -> 0.48)': a trend in words and figures."""
    return f"{name} {word(trend)} ({trend[0]:.3g} -> {trend[1]:.3g})"


def read_metrics(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows holding a finite number under key."""
    xs, ys = [], []
    for i, r in enumerate(rows):
        v = r.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(float(r.get("step", i)))
            ys.append(float(v))
    return xs, ys


def _trend(ys: list[float]) -> tuple[float, float] | None:
    if len(ys) < 3:
        return None
    k = max(1, len(ys) // 3)
    return sum(ys[:k]) / k, sum(ys[-k:]) / k


def _plot(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, title, keys in PANELS:
        present = [k for k in keys if series(rows, k)[1]]
        if not present:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if name == "entropy" and len(present) == 2:
            xs, ys = series(rows, "token_entropy")
            ax.plot(xs, ys, color="tab:blue", label="token entropy")
            ax.set_ylabel("token entropy", color="tab:blue")
            ax2 = ax.twinx()
            xs, ys = series(rows, "semantic_entropy")
            ax2.plot(xs, ys, color="tab:orange", label="semantic entropy")
            ax2.set_ylabel("semantic entropy", color="tab:orange")
        else:
            for k in present:
                xs, ys = series(rows, k)
                ax.plot(xs, ys, label=k)
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel("step")
        ax.set_title(title)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def summarize(rows: list[dict]) -> str:
    lines = ["# Run analysis", "", f"Steps logged: {len(rows)}", ""]
    lines += ["| metric | first | last | min | max | first third -> last third |"]
    lines += ["|---|---|---|---|---|---|"]
    trends = {}
    for k in SUMMARY_KEYS:
        _, ys = series(rows, k)
        if not ys:
            continue
        t = _trend(ys)
        trends[k] = t
        tr = f"{t[0]:.4g} -> {t[1]:.4g}" if t else "n/a"
        lines.append(f"| {k} | {ys[0]:.4g} | {ys[-1]:.4g} | {min(ys):.4g} | {max(ys):.4g} | {tr} |")
    lines.append("")
    te, se = trends.get("token_entropy"), trends.get("semantic_entropy")
    if te and se:
        lines.append(
            f"{moved('Token entropy', te)} while {moved('semantic entropy', se)}. HICRA's "
            "two-phase picture has token entropy settling while semantic entropy grows as "
            "planning strategies diversify."
        )
    else:
        lines.append("Token and semantic entropy were not both logged; no two-phase reading.")
    pe, ee = trends.get("planning_token_entropy"), trends.get("execution_token_entropy")
    if pe and ee:
        lines.append(
            f"{moved('Execution-token entropy', ee)}, {moved('planning-token entropy', pe)}; "
            "in HICRA's picture execution entropy falls first, then strategic (planning, "
            "semantic) entropy rises."
        )
    lines.append("")
    return "\n".join(lines)


def analyze_run(run_dir: str | Path) -> Path:
    """Write RUN_DIR/analysis/{*.png, summary.md}; returns the summary path."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise TirgymError(f"No metrics.jsonl in {run_dir}: pass the directory of a training run.")
    rows = read_metrics(path)
    if not rows:
        raise TirgymError(f"{path} holds no complete metrics line yet.")
    out = run_dir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    pngs = _plot(rows, out)
    text = summarize(rows)
    text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    summary = out / "summary.md"
    summary.write_text(text, encoding="utf-8")
    return summary
