"""An eval's results: the `EvalResult` type, the results.json schema, the out-dir file names,
and building, writing and loading results.json.

Every other eval module depends on this one and it on none of them except the metrics it
computes, so the runner, the report and `compare` share one definition of the format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tirgym.episode import Episode
from tirgym.errors import TirgymError
from tirgym.eval.metrics import EvalEntry, clean_json, compute_metrics

RESULTS_SCHEMA = "tirgym.eval.results"
RESULTS_SCHEMA_VERSION = 2
"""v2: rates and pass@k are means over tasks with task-clustered intervals (`interval`);
per-entry seeds and task counts in `entries`; `warnings`."""

RESULTS_FILE = "results.json"
EPISODES_FILE = "episodes.jsonl"
RUN_FILE = "run.json"
REPORT_FILE = "report.md"
SUCCESS_CHART = "success.png"
PASSK_CHART = "pass_at_k.png"

INTERVALS = {
    "rates": "95% Wilson score interval at the effective sample size of the task-clustered "
    "variance (tasks are the units; samples of one task are not independent)",
    "reward": "95% percentile bootstrap over tasks",
}
"""How each kind of number in results.json is estimated and its interval computed."""


@dataclass
class EvalResult:
    """What `evaluate` returns: the results.json content and the episodes behind it."""

    results: dict[str, Any]
    episodes: list[Episode]
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return list(self.results.get("warnings", []))

    def scalars(self, prefix: str = "eval") -> dict[str, float]:
        """Flat metrics for a logger: `{prefix}/{env}/success`, `{prefix}/overall/pass@k`, ..."""
        out: dict[str, float] = {}
        rows = {**self.results["envs"], "overall": self.results["overall"]}
        for label, m in rows.items():
            base = f"{prefix}/{label}"
            if m["success"]["mean"] is not None:
                out[f"{base}/success"] = m["success"]["mean"]
            for k, v in m["pass_at_k"].items():
                if v["mean"] is not None:
                    out[f"{base}/pass@{k}"] = v["mean"]
            if m["reward"]["mean"] is not None:
                out[f"{base}/reward"] = m["reward"]["mean"]
            for name in ("turns", "response_tokens"):
                if m[name] is not None:
                    out[f"{base}/{name}"] = m[name]
        return out


def seed_summary(seeds: list[int]) -> dict[str, Any]:
    """`{"start", "count"}` for a contiguous run of seeds, else `{"list", "count"}`."""
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    if contiguous:
        return {"start": seeds[0], "count": len(seeds)}
    return {"list": seeds, "count": len(seeds)}


def summary_seeds(summary: dict[str, Any]) -> list[int]:
    """The seeds a `seed_summary` stands for."""
    if "list" in summary:
        return list(summary["list"])
    return list(range(summary["start"], summary["start"] + summary["count"]))


def build_results(
    entries: list[EvalEntry],
    episodes: Iterable[Episode],
    k: int,
    seeds: dict[str, list[int]],
    run: dict[str, Any],
    suite_name: str | None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The results.json content; `seeds` maps each entry label to the seeds it ran."""
    import tirgym

    metrics = compute_metrics(entries, episodes, k)
    distinct = {tuple(s) for s in seeds.values()}
    return clean_json(
        {
            "schema": RESULTS_SCHEMA,
            "schema_version": RESULTS_SCHEMA_VERSION,
            "tirgym_version": tirgym.__version__,
            "suite": suite_name,
            "policy": run["policy"],
            "samples": k,
            # one summary when every entry ran the same seeds (the usual case), else None
            "seeds": seed_summary(list(distinct.pop())) if len(distinct) == 1 else None,
            "sampling": run["sampling"],
            "limits": run["limits"],
            "intervals": INTERVALS,
            "warnings": list(warnings or []),
            "entries": [
                {
                    "name": e.label,
                    "env_id": e.id,
                    "kwargs": e.kwargs,
                    "num_tasks": e.num_tasks,
                    "seeds": seed_summary(seeds[e.label]),
                }
                for e in entries
            ],
            **metrics,
        }
    )


def entry_seeds(results: dict[str, Any]) -> dict[str, list[int]]:
    """Entry label -> the seeds it ran, for results of any schema version."""
    out: dict[str, list[int]] = {}
    for e in results["entries"]:
        summary = e.get("seeds") or results["seeds"]  # v1 files keep one top-level summary
        out[e["name"]] = summary_seeds(summary)
    return out


def write_results(result: EvalResult, out: str | Path) -> Path:
    """results.json in `out`, written atomically (a crash leaves the old file or the new one)."""
    path = Path(out) / RESULTS_FILE
    write_atomic(path, json.dumps(result.results, indent=2, allow_nan=False) + "\n")
    return path


def load_results(out: str | Path) -> dict[str, Any]:
    """results.json from an eval dir (or its path), checked for schema and version."""
    path = Path(out) / RESULTS_FILE if Path(out).is_dir() else Path(out)
    if not path.exists():
        raise TirgymError(f"no {RESULTS_FILE} in {out}: run `tirgym eval --out {out}` first.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA:
        raise TirgymError(f"{path} is not a tirgym eval results file.")
    if data.get("schema_version", 0) > RESULTS_SCHEMA_VERSION:
        raise TirgymError(
            f"{path} has results schema v{data['schema_version']}; this tirgym reads up to "
            f"v{RESULTS_SCHEMA_VERSION}. Upgrade tirgym."
        )
    return data


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
