"""`tirgym compare`: side-by-side results of eval dirs, with paired significance per env.

The first dir is the baseline; each other dir is compared with it on the tasks (entry and
seed, or dataset row) both evaluated, pairing per-task mean success (or reward) over the
samples. Pairing removes task difficulty from the noise, so a real difference shows with
fewer tasks than two independent CIs would need. The table shows both dirs' means on those
common tasks, the numbers the difference is made of, and warns when the evals differ in a
setting that changes what the numbers mean (samples, temperature, token and turn limits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tirgym.episode import iter_jsonl
from tirgym.errors import TirgymError
from tirgym.eval.metrics import group_by_task, task_groups
from tirgym.eval.results import EPISODES_FILE, entry_seeds, load_results
from tirgym.eval.stats import PairedTest, paired_test

METRICS = ("success", "reward")

SETTINGS = (
    ("samples", ("samples",)),
    ("temperature", ("sampling", "temperature")),
    ("top_p", ("sampling", "top_p")),
    ("max new tokens", ("sampling", "max_new_tokens")),
    ("max total tokens", ("limits", "max_total_tokens")),
    ("max turns", ("limits", "max_turns")),
)
"""Eval settings that change what a number means; compare warns when two dirs differ in one."""


@dataclass
class CompareRow:
    env: str
    values: list[float | None]
    """Per-dir mean of the metric over that dir's own tasks (None where the dir lacks the env)."""
    tests: list[PairedTest | None]
    """Per non-baseline dir: paired test vs the baseline over the common tasks; its mean_a
    and mean_b are the two dirs' means on those tasks, the ones the difference is made of."""


@dataclass
class Comparison:
    dirs: list[str]
    policies: list[str]
    metric: str
    rows: list[CompareRow]
    alpha: float = 0.05
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dirs": self.dirs,
            "policies": self.policies,
            "metric": self.metric,
            "alpha": self.alpha,
            "warnings": self.warnings,
            "rows": [
                {
                    "env": r.env,
                    "values": r.values,
                    "vs_baseline": [
                        None
                        if t is None
                        else {
                            "tasks": t.n_tasks,
                            "baseline_mean": t.mean_a,
                            "mean": t.mean_b,
                            "diff": t.diff,
                            "ci": list(t.ci),
                            "p_value": t.p_value,
                            "significant": t.significant(self.alpha),
                        }
                        for t in r.tests
                    ],
                }
                for r in self.rows
            ],
        }


def _setting(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = results
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def setting_warnings(dirs: list[str], results: list[dict[str, Any]]) -> list[str]:
    """One line per setting in which a dir differs from the baseline (the first dir)."""
    out = []
    base = results[0]
    for d, r in zip(dirs[1:], results[1:], strict=True):
        diffs = [
            f"{name} {_setting(base, path)} vs {_setting(r, path)}"
            for name, path in SETTINGS
            if _setting(base, path) != _setting(r, path)
        ]
        if diffs:
            out.append(
                f"{Path(d).name} differs from the baseline {Path(dirs[0]).name} in "
                + ", ".join(diffs)
                + ": the difference mixes the policies with the settings."
            )
    return out


def _task_values(out: Path, results: dict[str, Any], metric: str) -> dict[str, dict[int, float]]:
    """Entry label -> task -> the metric's mean over that task's samples."""
    path = out / EPISODES_FILE
    if not path.exists():
        raise TirgymError(f"no {EPISODES_FILE} in {out}: paired tests need the episodes.")
    wanted = {label: set(seeds) for label, seeds in entry_seeds(results).items()}
    num_tasks = {e["name"]: e.get("num_tasks") for e in results["entries"]}
    eps = [e for e in iter_jsonl(path) if "eval" in e.info]
    by_seed = group_by_task(e for e in eps if e.seed in wanted.get(e.info["eval"]["entry"], ()))
    k = results["samples"]
    out_vals: dict[str, dict[int, float]] = {}
    for label, seeds in by_seed.items():
        kept = {s: g[:k] for s, g in seeds.items()}
        for task, g in task_groups(kept, num_tasks.get(label)).items():
            vals = [float(e.success) if metric == "success" else e.total_reward for e in g]
            out_vals.setdefault(label, {})[task] = float(np.mean(vals))
    return out_vals


def compare_dirs(
    dirs: list[str | Path], metric: str = "success", alpha: float = 0.05
) -> Comparison:
    if len(dirs) < 2:
        raise TirgymError("compare needs at least two eval dirs (the first is the baseline).")
    if metric not in METRICS:
        raise TirgymError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}.")
    paths = [Path(d) for d in dirs]
    results = [load_results(p) for p in paths]
    values = [_task_values(p, r, metric) for p, r in zip(paths, results, strict=True)]
    labels: list[str] = []
    for r in results:
        labels += [x for x in r["envs"] if x not in labels]

    def mean_of(v: dict[str, dict[int, float]], label: str | None) -> float | None:
        xs = [x for lab, t in v.items() if label in (None, lab) for x in t.values()]
        return float(np.mean(xs)) if xs else None

    rows = []
    for label in [*labels, None]:
        base = values[0]
        tests: list[PairedTest | None] = []
        for other in values[1:]:
            keys = sorted(
                (lab, s)
                for lab, t in base.items()
                if label in (None, lab)
                for s in t
                if s in other.get(lab, {})
            )
            if not keys:
                tests.append(None)
                continue
            a = [base[lab][s] for lab, s in keys]
            b = [other[lab][s] for lab, s in keys]
            tests.append(paired_test(a, b))
        rows.append(CompareRow(label or "overall", [mean_of(v, label) for v in values], tests))
    return Comparison(
        [str(p) for p in paths],
        [r["policy"] for r in results],
        metric,
        rows,
        alpha,
        setting_warnings([str(p) for p in paths], results),
    )


def render_table(cmp: Comparison) -> str:
    """A markdown table: each dir's mean over its own tasks, then per other dir the two means
    on the common tasks and their paired difference; warnings first."""
    pct = cmp.metric == "success"

    def fmt(v: float | None) -> str:
        return "-" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.3f}")

    base = Path(cmp.dirs[0]).name
    names = [f"{Path(d).name} ({p})" for d, p in zip(cmp.dirs, cmp.policies, strict=True)]
    head = ["env", *names] + [f"{Path(d).name} vs {base}, common tasks" for d in cmp.dirs[1:]]
    lines = [f"**warning**: {w}" for w in cmp.warnings]
    if lines:
        lines.append("")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    scale, unit = (100, "pp") if pct else (1, "")
    for r in cmp.rows:
        cells = [f"**{r.env}**" if r.env == "overall" else r.env]
        cells += [fmt(v) for v in r.values]
        for t in r.tests:
            if t is None:
                cells.append("-")
                continue
            mark = " *" if t.significant(cmp.alpha) else ""
            cells.append(
                f"{fmt(t.mean_a)} → {fmt(t.mean_b)}: {scale * t.diff:+.1f}{unit} "
                f"[{scale * t.ci[0]:+.1f}, {scale * t.ci[1]:+.1f}] p={t.p_value:.3g}{mark} "
                f"(n={t.n_tasks})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Dir columns: {cmp.metric} over each dir's own tasks. Common tasks: both dirs' "
        f"{cmp.metric} on the tasks both ran ({base} → dir), the paired difference "
        f"[95% bootstrap CI over tasks], p from a paired sign-flip permutation test; "
        f"* = significant at {cmp.alpha}."
    )
    return "\n".join(lines) + "\n"
