"""Eval outputs: results.json (versioned schema), report.md (tables), PNG charts.

Charts use matplotlib's Agg backend, so they render on a headless CI machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tirgym.eval.results import (
    EPISODES_FILE,
    PASSK_CHART,
    REPORT_FILE,
    SUCCESS_CHART,
    EvalResult,
    write_atomic,
    write_results,
)


def write_outputs(result: EvalResult, out: str | Path, *, charts: bool = True) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results": write_results(result, out),
        "report": out / REPORT_FILE,
        "episodes": out / EPISODES_FILE,
    }
    write_atomic(files["report"], render_markdown(result.results))
    if charts:
        files["success_chart"] = plot_success(result.results, out / SUCCESS_CHART)
        files["pass_at_k_chart"] = plot_pass_at_k(result.results, out / PASSK_CHART)
    return files


# ---- markdown --------------------------------------------------------------------------


def _pct(m: dict[str, Any] | None) -> str:
    if not m or m.get("mean") is None:
        return "-"
    s = f"{100 * m['mean']:.1f}%"
    if m.get("ci"):
        s += f" [{100 * m['ci'][0]:.1f}, {100 * m['ci'][1]:.1f}]"
    return s


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _seed_text(seeds: dict[str, Any] | None) -> str:
    if seeds is None:
        return "per entry (see tasks)"
    if "start" in seeds:
        return f"{seeds['count']} from {seeds['start']}"
    return f"{seeds['count']} listed"


METHODS_LINE = (
    "- Every number is a mean over tasks (task = entry and seed, or dataset row); success@1 "
    "is pass@1. Intervals (95%): Wilson score at the effective sample size of the "
    "task-clustered variance for rates and pass@k (samples of one task are not independent); "
    "percentile bootstrap over tasks for reward."
)


def render_markdown(res: dict[str, Any]) -> str:
    k = res["samples"]
    lines = [
        "# tirgym eval report",
        "",
        f"- policy: `{res['policy']}`",
        f"- suite: `{res['suite'] or '-'}`; {len(res['envs'])} entries; "
        f"seeds: {_seed_text(res['seeds'])}; samples per task: {k}",
        f"- sampling: temperature {res['sampling']['temperature']}, top_p {res['sampling']['top_p']}, "
        f"max new tokens {res['sampling']['max_new_tokens']}; max turns {res['limits']['max_turns'] or 'env default'}",
        METHODS_LINE,
    ]
    if res.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in res["warnings"]]
    passk_head = f" pass@{k} |" if k > 1 else ""
    lines += [
        "",
        "## Summary",
        "",
        f"| env | tasks | episodes | success@1 |{passk_head} reward | turns | tool calls | tool err | "
        "format err | resp. tokens | truncated | wall s/ep |",
        "|---|---:|---:|---|" + ("---|" if k > 1 else "") + "---|---:|---:|---|---|---:|---|---:|",
    ]
    rows = [*res["envs"].items(), ("**overall**", res["overall"])]
    for label, m in rows:
        reward = m["reward"]
        rtxt = (
            "-"
            if reward["mean"] is None
            else (f"{reward['mean']:.3f} [{reward['ci'][0]:.3f}, {reward['ci'][1]:.3f}]")
        )
        passk = f" {_pct(m['pass_at_k'].get(str(k)))} |" if k > 1 else ""
        lines.append(
            f"| {label} | {m['tasks']} | {m['episodes']} | {_pct(m['success'])} |{passk} "
            f"{rtxt} | {_num(m['turns'])} | "
            f"{_num(m['tool_calls'])} | {_pct(m['tool_error_rate'])} | {_pct(m['format_error_rate'])} | "
            f"{_num(m['response_tokens'], '.1f')} | {_pct(m['truncation_rate'])} | "
            f"{_num(m['wall_s_mean'], '.3f')} |"
        )
    if res["overall"].get("macro_success") is not None:
        lines += [
            "",
            f"Macro success@1 (mean over entries): {100 * res['overall']['macro_success']:.1f}%",
        ]
    if k > 1:
        lines += [
            "",
            "## pass@k",
            "",
            "| env | " + " | ".join(f"pass@{i}" for i in range(1, k + 1)) + " |",
            "|---|" + "---|" * k,
        ]
        for label, m in rows:
            lines.append(
                f"| {label} | "
                + " | ".join(_pct(m["pass_at_k"].get(str(i))) for i in range(1, k + 1))
                + " |"
            )
    lines += ["", "## Stop reasons", "", "| env | stop reasons |", "|---|---|"]
    for label, m in rows:
        lines.append(
            f"| {label} | " + ", ".join(f"{r}: {n}" for r, n in m["stop_reasons"].items()) + " |"
        )
    lines += [
        "",
        f"Charts: `{SUCCESS_CHART}` (success@1 with its 95% interval), `{PASSK_CHART}` (pass@k curves).",
        "",
    ]
    return "\n".join(lines)


# ---- charts ----------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _short(label: str, width: int = 40) -> str:
    """Chart labels: long ones (a dataset path in the kwargs) would crowd out the plot."""
    return label if len(label) <= width else label[: width - 1] + "…"


def plot_success(res: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    labels = [_short(x) for x in res["envs"]] + ["overall"]
    stats = [*res["envs"].values(), res["overall"]]
    means = [m["success"]["mean"] or 0.0 for m in stats]
    lo = [
        max(0.0, mu - (m["success"]["ci"] or [mu, mu])[0])
        for mu, m in zip(means, stats, strict=True)
    ]
    hi = [
        max(0.0, (m["success"]["ci"] or [mu, mu])[1] - mu)
        for mu, m in zip(means, stats, strict=True)
    ]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(labels) + 2), 4))
    colors = ["tab:blue"] * (len(labels) - 1) + ["tab:gray"]
    ax.bar(range(len(labels)), means, yerr=[lo, hi], capsize=4, color=colors)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success@1 (95% interval over tasks)")
    ax.set_title(f"{res['policy']} on {res['suite'] or 'envs'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_pass_at_k(res: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    k = res["samples"]
    ks = list(range(1, k + 1))
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = [*res["envs"].items(), ("overall", res["overall"])]
    for label, m in rows:
        ys = [m["pass_at_k"][str(i)]["mean"] for i in ks]
        if any(y is None for y in ys):
            continue
        style = {"color": "black", "linewidth": 2.5} if label == "overall" else {"linewidth": 1.2}
        ax.plot(ks, ys, marker="o", label=_short(label), **style)
        if label == "overall":
            cis = [m["pass_at_k"][str(i)]["ci"] for i in ks]
            ax.fill_between(ks, [c[0] for c in cis], [c[1] for c in cis], color="gray", alpha=0.25)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(ks)
    if len(rows) <= 16:
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"pass@k, {res['policy']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
