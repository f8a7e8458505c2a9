"""`tirgym compare`: side-by-side results of eval dirs, with paired significance per env.

The first dir is the baseline; each other dir is compared with it on the tasks (entry,
seed) both evaluated, pairing per-task mean success (or reward) over the samples. Pairing
removes task difficulty from the noise, so a real difference shows with fewer tasks than
two independent CIs would need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tirgym.episode import iter_jsonl
from tirgym.errors import TirgymError
from tirgym.eval.metrics import group_by_task
from tirgym.eval.report import load_results
from tirgym.eval.runner import EPISODES_FILE
from tirgym.eval.stats import PairedTest, paired_test

METRICS = ("success", "reward")


@dataclass
class CompareRow:
    env: str
    values: list[float | None]
    """Per-dir mean of the metric over that dir's own tasks (None where the dir lacks the env)."""
    tests: list[PairedTest | None]
    """Per non-baseline dir: paired test vs the baseline over the common tasks."""


@dataclass
class Comparison:
    dirs: list[str]
    policies: list[str]
    metric: str
    rows: list[CompareRow]
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        return {
            "dirs": self.dirs,
            "policies": self.policies,
            "metric": self.metric,
            "alpha": self.alpha,
            "rows": [
                {
                    "env": r.env,
                    "values": r.values,
                    "vs_baseline": [
                        None
                        if t is None
                        else {
                            "tasks": t.n_tasks,
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


def _task_values(out: Path, results: dict[str, Any], metric: str) -> dict[str, dict[int, float]]:
    path = out / EPISODES_FILE
    if not path.exists():
        raise TirgymError(f"no {EPISODES_FILE} in {out}: paired tests need the episodes.")
    labels = set(results["envs"])
    seeds = results["seeds"]
    wanted = (
        set(seeds["list"])
        if "list" in seeds
        else set(range(seeds["start"], seeds["start"] + seeds["count"]))
    )
    eps = [e for e in iter_jsonl(path) if "eval" in e.info]
    by_task = group_by_task(
        e for e in eps if e.info["eval"]["entry"] in labels and e.seed in wanted
    )
    k = results["samples"]
    out_vals: dict[str, dict[int, float]] = {}
    for label, tasks in by_task.items():
        for seed, g in tasks.items():
            g = g[:k]
            vals = [float(e.success) if metric == "success" else e.total_reward for e in g]
            out_vals.setdefault(label, {})[seed] = float(np.mean(vals))
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
    return Comparison([str(p) for p in paths], [r["policy"] for r in results], metric, rows, alpha)


def render_table(cmp: Comparison) -> str:
    """A markdown table: one column per dir, then per other dir the paired difference."""
    names = [f"{Path(d).name} ({p})" for d, p in zip(cmp.dirs, cmp.policies, strict=True)]
    head = ["env", *names] + [f"Δ {Path(d).name}" for d in cmp.dirs[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pct = cmp.metric == "success"
    for r in cmp.rows:
        cells = [f"**{r.env}**" if r.env == "overall" else r.env]
        cells += [
            "-" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.3f}") for v in r.values
        ]
        for t in r.tests:
            if t is None:
                cells.append("-")
                continue
            scale = 100 if pct else 1
            unit = "pp" if pct else ""
            mark = " *" if t.significant(cmp.alpha) else ""
            cells.append(
                f"{scale * t.diff:+.1f}{unit} [{scale * t.ci[0]:+.1f}, {scale * t.ci[1]:+.1f}] "
                f"p={t.p_value:.3g}{mark} (n={t.n_tasks})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Δ: {cmp.metric} of the dir minus the baseline ({Path(cmp.dirs[0]).name}), paired over "
        f"common tasks; [95% bootstrap CI]; p from a paired sign-flip permutation test; "
        f"* = significant at {cmp.alpha}."
    )
    return "\n".join(lines) + "\n"
