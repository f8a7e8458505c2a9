"""Per-env and overall metrics from finished episodes.

Pure functions over Episodes: the runner, `tirgym compare` and tests all call them. A
task is (entry, seed), or (entry, row) for a dataset-backed entry whose seeds wrap around
its rows. Every number is an estimate over tasks with one interval method
(`tirgym.eval.results.INTERVALS`): the K samples of one task are correlated, so intervals
count tasks, never single episodes, as the independent units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from pydantic import ConfigDict

from tirgym.env_spec import EnvSpec
from tirgym.episode import Episode
from tirgym.eval.stats import bootstrap_ci, clustered_rate, pass_at_k

TRUNCATING_STOPS = frozenset({"max_turns", "max_tokens", "timeout"})


class EvalEntry(EnvSpec):
    """One row of an eval: an env spec, and how many distinct tasks it has.

    `num_tasks` is the number of distinct tasks of a dataset-backed env (seed s gives row
    s % num_tasks), None for generated tasks.
    """

    model_config = ConfigDict(frozen=True)

    num_tasks: int | None = None


Key = tuple[str, int, int]
"""(entry label, seed, sample index): identifies an episode of an eval; resume skips finished keys."""


def episode_key(ep: Episode) -> Key:
    meta = ep.info.get("eval", {})
    return (meta["entry"], int(ep.seed), int(meta["sample"]))


def _rate(num: list[float], den: list[float] | None = None, max_n: float | None = None) -> dict:
    r = clustered_rate(num, den, max_n=max_n)
    if r is None:
        return {"mean": None, "ci": None, "num": 0, "den": 0}
    total_den = len(num) if den is None else sum(den)
    return {
        "mean": r.mean,
        "ci": [r.ci[0], r.ci[1]],
        "num": sum(num),
        "den": total_den,
        "tasks": r.tasks,
        "n_eff": r.n_eff,
    }


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


def pass_at_k_rate(tasks: list[list[Episode]], k: int) -> dict[str, Any]:
    """Mean over tasks (those with >= k samples) of the unbiased pass@k estimator, with the
    clustered Wilson interval; a task's n samples hold n // k independent k-draws at most."""
    groups = [g for g in tasks if len(g) >= k]
    vals = [pass_at_k(len(g), sum(bool(e.success) for e in g), k) for g in groups]
    rate = _rate(vals, max_n=sum(len(g) // k for g in groups))
    return {"mean": rate["mean"], "ci": rate["ci"], "tasks": len(groups)}


def summarize(groups: Mapping[Any, list[Episode]], k_max: int, *, seed: int = 0) -> dict[str, Any]:
    """Metrics over tasks; `groups` maps a task to its episodes (its K samples).

    success@1 is pass@1: the mean over tasks of each task's success fraction (the episode
    mean when every task has K samples). pass@k for k = 1..k_max uses each task's own
    sample count (tasks with fewer than k samples are left out). Turn-level rates (format
    errors, length cuts, tool errors) pool a task's turns and weigh tasks by their turns.
    Every rate has the clustered Wilson interval of `stats.clustered_rate`; reward, a
    bootstrap over tasks.
    """
    tasks = [groups[t] for t in sorted(groups)]
    tasks = [g for g in tasks if g]
    eps = [e for g in tasks for e in g]

    def per_task(count) -> list[float]:
        return [float(sum(count(e) for e in g)) for g in tasks]

    turns_per_task = per_task(lambda e: len(e.turns))
    calls_per_task = per_task(lambda e: sum(t.tool_calls for t in e.turns))
    pass_k = {str(k): pass_at_k_rate(tasks, k) for k in range(1, k_max + 1)}
    success = _rate(
        [sum(bool(e.success) for e in g) / len(g) for g in tasks],
        max_n=len(eps),
    )
    truncated = per_task(lambda e: e.truncated or e.stop_reason in TRUNCATING_STOPS)

    stop_reasons: dict[str, int] = {}
    for e in eps:
        stop_reasons[e.stop_reason or "unknown"] = (
            stop_reasons.get(e.stop_reason or "unknown", 0) + 1
        )

    return {
        "tasks": len(tasks),
        "episodes": len(eps),
        "success": {**success, "num": sum(bool(e.success) for e in eps), "den": len(eps)},
        "pass_at_k": pass_k,
        "reward": _mean_ci([float(np.mean([e.total_reward for e in g])) for g in tasks], seed),
        "outcome_reward": _mean([e.outcome_reward for e in eps]),
        "turns": _mean([len(e.turns) for e in eps]),
        "tool_calls": _mean([sum(t.tool_calls for t in e.turns) for e in eps]),
        "tool_error_rate": _rate(
            per_task(lambda e: sum(t.tool_errors for t in e.turns)), calls_per_task
        ),
        "format_error_rate": _rate(
            per_task(lambda e: sum(1 for t in e.turns if t.format_errors)), turns_per_task
        ),
        "response_tokens": _mean([_response_tokens(e) for e in eps]),
        "truncation_rate": _rate(truncated, [float(len(g)) for g in tasks]),
        "length_cut_rate": _rate(
            per_task(lambda e: sum(1 for t in e.turns if t.finish_reason == "length")),
            turns_per_task,
        ),
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


def task_groups(
    by_seed: Mapping[int, list[Episode]], num_tasks: int | None
) -> dict[int, list[Episode]]:
    """Seed -> episodes regrouped by task: for a dataset-backed entry (`num_tasks` rows, seed
    s on row s % num_tasks) the seeds that wrap onto one row are one task."""
    if not num_tasks:
        return dict(by_seed)
    out: dict[int, list[Episode]] = {}
    for s in sorted(by_seed):
        out.setdefault(s % num_tasks, []).extend(by_seed[s])
    return out


def compute_metrics(
    entries: list[EvalEntry], episodes: Iterable[Episode], k_max: int, *, seed: int = 0
) -> dict[str, Any]:
    """{"envs": {label: {...}}, "overall": {...}} over the given entries, in entry order."""
    by_task = group_by_task(episodes)
    envs: dict[str, Any] = {}
    pooled: dict[tuple[str, int], list[Episode]] = {}
    for entry in entries:
        groups = task_groups(by_task.get(entry.label, {}), entry.num_tasks)
        envs[entry.label] = {
            "env_id": entry.id,
            "kwargs": entry.kwargs,
            **summarize(groups, k_max, seed=seed),
        }
        for t, g in groups.items():
            pooled[(entry.label, t)] = g
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
