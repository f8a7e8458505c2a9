"""Per-env and overall metrics from finished episodes.

Pure functions over Episodes: the runner, `tirgym compare` and tests all call them. The
unit of resampling is the task (env entry, seed): the K samples of one task are
correlated, so bootstrap CIs resample tasks, never single episodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tirgym.episode import Episode
from tirgym.eval.stats import bootstrap_ci, pass_at_k, wilson_interval

TRUNCATING_STOPS = frozenset({"max_turns", "max_tokens", "timeout"})


@dataclass(frozen=True)
class EvalEntry:
    """One row of an eval: an env id at fixed kwargs, under a display label."""

    label: str
    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


Key = tuple[str, int, int]
"""(entry label, seed, sample index): identifies an episode of an eval; resume skips finished keys."""


def episode_key(ep: Episode) -> Key:
    meta = ep.info.get("eval", {})
    return (meta["entry"], int(ep.seed), int(meta["sample"]))


def _rate(num: int, den: int) -> dict[str, Any]:
    if den == 0:
        return {"mean": None, "ci": None, "num": 0, "den": 0}
    lo, hi = wilson_interval(num, den)
    return {"mean": num / den, "ci": [lo, hi], "num": num, "den": den}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _mean_ci(per_task: list[float], seed: int) -> dict[str, Any]:
    if not per_task:
        return {"mean": None, "ci": None}
    lo, hi = bootstrap_ci(per_task, seed=seed)
    return {"mean": float(np.mean(per_task)), "ci": [lo, hi]}


def episode_wall_s(ep: Episode) -> float:
    """Seconds from the episode's rollout call start to its end, as recorded by the runner."""
    return float(ep.info.get("eval", {}).get("wall_s", 0.0))


def summarize(groups: Mapping[Any, list[Episode]], k_max: int, *, seed: int = 0) -> dict[str, Any]:
    """Metrics over tasks; `groups` maps a task to its episodes (its K samples).

    success@1 is the mean over all episodes (Wilson CI over episodes, as for every rate);
    pass@k for k = 1..k_max is the mean over tasks of the unbiased estimator with each
    task's own sample count (tasks with fewer than k samples are left out of pass@k), CI
    by bootstrap over tasks. Turn-level rates (format errors, length cuts) pool turns.
    """
    tasks = [groups[t] for t in sorted(groups)]
    eps = [e for g in tasks for e in g]
    n_ep = len(eps)
    succ = sum(bool(e.success) for e in eps)
    turns = [t for e in eps for t in e.turns]
    tool_calls = sum(t.tool_calls for t in turns)
    tool_errors = sum(t.tool_errors for t in turns)
    fmt_err_turns = sum(1 for t in turns if t.format_errors)
    length_cuts = sum(1 for t in turns if t.finish_reason == "length")
    truncated = sum(1 for e in eps if e.truncated or e.stop_reason in TRUNCATING_STOPS)

    pass_k: dict[str, Any] = {}
    for k in range(1, k_max + 1):
        vals = [pass_at_k(len(g), sum(bool(e.success) for e in g), k) for g in tasks if len(g) >= k]
        pass_k[str(k)] = {**_mean_ci(vals, seed), "tasks": len(vals)}

    stop_reasons: dict[str, int] = {}
    for e in eps:
        stop_reasons[e.stop_reason or "unknown"] = (
            stop_reasons.get(e.stop_reason or "unknown", 0) + 1
        )

    return {
        "tasks": len(tasks),
        "episodes": n_ep,
        "success": _rate(succ, n_ep),
        "pass_at_k": pass_k,
        "reward": _mean_ci([float(np.mean([e.total_reward for e in g])) for g in tasks if g], seed),
        "outcome_reward": _mean([e.outcome_reward for e in eps]),
        "turns": _mean([len(e.turns) for e in eps]),
        "tool_calls": _mean([sum(t.tool_calls for t in e.turns) for e in eps]),
        "tool_error_rate": _rate(tool_errors, tool_calls),
        "format_error_rate": _rate(fmt_err_turns, len(turns)),
        "response_tokens": _mean([_response_tokens(e) for e in eps]),
        "truncation_rate": _rate(truncated, n_ep),
        "length_cut_rate": _rate(length_cuts, len(turns)),
        "stop_reasons": dict(sorted(stop_reasons.items())),
        "wall_s_mean": _mean([episode_wall_s(e) for e in eps]),
    }


def _response_tokens(ep: Episode) -> int:
    """Tokens the policy sampled; from turn spans, so non-trainable (API) episodes count too."""
    if ep.loss_mask:
        return int(sum(ep.loss_mask))
    return int(sum(max(0, t.end - t.start) for t in ep.turns))


def group_by_task(episodes: Iterable[Episode]) -> dict[str, dict[int, list[Episode]]]:
    """entry label -> seed -> episodes ordered by sample index."""
    out: dict[str, dict[int, list[tuple[int, Episode]]]] = {}
    for ep in episodes:
        label, seed, sample = episode_key(ep)
        out.setdefault(label, {}).setdefault(seed, []).append((sample, ep))
    return {
        label: {s: [e for _, e in sorted(v, key=lambda x: x[0])] for s, v in seeds.items()}
        for label, seeds in out.items()
    }


def compute_metrics(
    entries: list[EvalEntry], episodes: Iterable[Episode], k_max: int, *, seed: int = 0
) -> dict[str, Any]:
    """{"envs": {label: {...}}, "overall": {...}} over the given entries, in entry order."""
    by_task = group_by_task(episodes)
    envs: dict[str, Any] = {}
    pooled: dict[tuple[str, int], list[Episode]] = {}
    for entry in entries:
        seeds = by_task.get(entry.label, {})
        envs[entry.label] = {
            "env_id": entry.env_id,
            "kwargs": entry.kwargs,
            **summarize(seeds, k_max, seed=seed),
        }
        for s, g in seeds.items():
            pooled[(entry.label, s)] = g
    overall = summarize(pooled, k_max, seed=seed)
    succ = [v["success"]["mean"] for v in envs.values() if v["success"]["mean"] is not None]
    overall["macro_success"] = float(np.mean(succ)) if succ else None
    return {"envs": envs, "overall": overall}


def clean_json(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, tuples -> lists: strict JSON."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
