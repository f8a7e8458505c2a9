"""Eval outputs: results.json (versioned schema), report.md (tables), PNG charts.

Charts use matplotlib's Agg backend, so they render on a headless CI machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tirgym.eval.runner import EvalResult

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
SUCCESS_CHART = "success.png"
PASSK_CHART = "pass_at_k.png"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(result: EvalResult, out: str | Path, *, charts: bool = True) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results": out / RESULTS_FILE,
        "report": out / REPORT_FILE,
        "episodes": out / "episodes.jsonl",
    }
    _write_atomic(files["results"], json.dumps(result.results, indent=2, allow_nan=False) + "\n")
    _write_atomic(files["report"], render_markdown(result.results))
    if charts:
        files["success_chart"] = plot_success(result.results, out / SUCCESS_CHART)
        files["pass_at_k_chart"] = plot_pass_at_k(result.results, out / PASSK_CHART)
    return files


def load_results(out: str | Path) -> dict[str, Any]:
    from tirgym.errors import TirgymError
    from tirgym.eval.runner import RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION

    path = Path(out) / RESULTS_FILE if Path(out).is_dir() else Path(out)
    if not path.exists():
        raise TirgymError(f"no {RESULTS_FILE} in {out}: run `tirgym eval --out {out}` first.")
    data = json.loads(path.read_text())
    if data.get("schema") != RESULTS_SCHEMA:
        raise TirgymError(f"{path} is not a tirgym eval results file.")
    if data.get("schema_version", 0) > RESULTS_SCHEMA_VERSION:
        raise TirgymError(
            f"{path} has results schema v{data['schema_version']}; this tirgym reads up to "
            f"v{RESULTS_SCHEMA_VERSION}. Upgrade tirgym."
        )
    return data


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


def render_markdown(res: dict[str, Any]) -> str:
    k = res["samples"]
    seeds = res["seeds"]
    seed_txt = (
        f"{seeds['count']} from {seeds['start']}"
        if "start" in seeds
        else f"{seeds['count']} listed"
    )
    lines = [
        "# tirgym eval report",
        "",
        f"- policy: `{res['policy']}`",
        f"- suite: `{res['suite'] or '-'}`; {len(res['envs'])} entries; seeds: {seed_txt}; "
        f"samples per task: {k}",
        f"- sampling: temperature {res['sampling']['temperature']}, top_p {res['sampling']['top_p']}, "
        f"max new tokens {res['sampling']['max_new_tokens']}; max turns {res['limits']['max_turns'] or 'env default'}",
        "- 95% CIs: Wilson for rates, bootstrap over tasks for pass@k and reward.",
        "",
        "## Summary",
        "",
        f"| env | tasks | episodes | success@1 | pass@{k} | reward | turns | tool calls | tool err | "
        "format err | resp. tokens | truncated | wall s/ep |",
        "|---|---:|---:|---|---|---|---:|---:|---|---|---:|---|---:|",
    ]
    rows = [*res["envs"].items(), ("**overall**", res["overall"])]
    for label, m in rows:
        reward = m["reward"]
        rtxt = (
            "-"
            if reward["mean"] is None
            else (f"{reward['mean']:.3f} [{reward['ci'][0]:.3f}, {reward['ci'][1]:.3f}]")
        )
        lines.append(
            f"| {label} | {m['tasks']} | {m['episodes']} | {_pct(m['success'])} | "
            f"{_pct(m['pass_at_k'].get(str(k)))} | {rtxt} | {_num(m['turns'])} | "
            f"{_num(m['tool_calls'])} | {_pct(m['tool_error_rate'])} | {_pct(m['format_error_rate'])} | "
            f"{_num(m['response_tokens'], '.1f')} | {_pct(m['truncation_rate'])} | "
            f"{_num(m['wall_s_mean'], '.3f')} |"
        )
    if res["overall"].get("macro_success") is not None:
        lines += [
            "",
            f"Macro success@1 (mean over entries): {100 * res['overall']['macro_success']:.1f}%",
        ]
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
        f"Charts: `{SUCCESS_CHART}` (success@1 with 95% CI), `{PASSK_CHART}` (pass@k curves).",
        "",
    ]
    return "\n".join(lines)


# ---- charts ----------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_success(res: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    labels = list(res["envs"]) + ["overall"]
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
    ax.set_ylabel("success@1 (95% Wilson CI)")
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
        ax.plot(ks, ys, marker="o", label=label, **style)
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
