"""Held-out success for the trainer's before/periodic/after evals, behind one function.

Runs `tirgym.eval.evaluate` in memory (no files), so training evals and `tirgym eval`
sample and score episodes the same way. Seeds come from eval.seed_start upward (at or
above HELDOUT_SEED_BASE by default), disjoint from every training seed; under torchrun
each rank evaluates a slice of the seeds and the per-task counts are summed.

Each temperature in eval.temperature gets its own pass (sampled and greedy success can
move differently under RL). Intervals are task-clustered 95% Wilson intervals
(`tirgym.eval.stats.clustered_rate`): the seed, not the repeated sample, is the unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tirgym.eval.stats import clustered_rate
from tirgym.trainer import distributed as D


def _eval_seeds(eval_cfg, rank: int, world: int) -> list[int]:
    seeds = list(range(eval_cfg.seed_start, eval_cfg.seed_start + eval_cfg.num_seeds))
    return seeds[rank::world]


def _run_entry(
    policy, entry, seeds: list[int], eval_cfg, rollout_cfg, seed: int, temperature: float
) -> list[Any]:
    """The episodes of one env on `seeds` (in memory: no files, no report)."""
    if not seeds:
        return []
    from tirgym.eval import evaluate
    from tirgym.eval.metrics import EvalEntry

    res = evaluate(
        policy,
        envs=[EvalEntry(id=entry.id, kwargs=dict(entry.kwargs), name=entry.label)],
        samples=eval_cfg.samples if temperature > 0 else 1,
        seeds=seeds,
        out_dir=None,
        temperature=temperature,
        max_new_tokens=eval_cfg.max_new_tokens or rollout_cfg.max_new_tokens,
        max_turns=rollout_cfg.max_turns,
        max_total_tokens=rollout_cfg.max_total_tokens,
        episode_timeout_s=rollout_cfg.episode_timeout_s,
        sampling_seed=seed,
        write_report=False,
    )
    return res.episodes


def temperature_key(t: float) -> str:
    """The metric-name tag of a sampling temperature: T1, T0.7; greedy for 0."""
    return "greedy" if t <= 0 else f"T{t:g}"


# per seed: episodes, successes, episodes that called a tool, successes among those
_COLS = 4


def _per_seed(eps: list[Any], seeds: list[int], all_seeds: list[int]) -> np.ndarray:
    """[len(all_seeds), _COLS] counts; rows of seeds this rank did not run stay 0."""
    row = {s: i for i, s in enumerate(all_seeds)}
    out = np.zeros((len(all_seeds), _COLS))
    for e in eps:
        used = any(t.tool_calls for t in e.turns)
        out[row[int(e.seed)]] += (1.0, bool(e.success), used, used and bool(e.success))
    return out


def _rates(counts: np.ndarray, prefix: str) -> dict[str, float]:
    """Success with its task-clustered interval, and the tool-use rates, under `prefix`."""
    n, succ, used, used_succ = counts.T
    out: dict[str, float] = {}
    r = clustered_rate(succ, n)
    if r is not None:
        out[f"{prefix}success"] = r.mean
        out[f"{prefix}success_lo"], out[f"{prefix}success_hi"] = r.ci
    total, n_used = float(n.sum()), float(used.sum())
    out[f"{prefix}episodes"] = total
    if total:
        out[f"{prefix}tool_use_rate"] = n_used / total
    if n_used:
        out[f"{prefix}success_when_tool_used"] = float(used_succ.sum()) / n_used
    return out


def held_out_success(
    policy,
    entries,
    eval_cfg,
    rollout_cfg,
    *,
    seed: int = 0,
    dist: D.DistInfo | None = None,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Held-out metrics. The first temperature gives "eval/success" (overall), its
    interval "eval/success_lo"/"_hi", "eval/<label>/success", "eval/reward" and
    "eval/episodes"; every temperature t gives "eval/<T>/success" (+ _lo/_hi),
    "eval/<T>/tool_use_rate" and "eval/<T>/success_when_tool_used" (T: temperature_key)."""
    info = dist or D.DistInfo()
    all_seeds = _eval_seeds(eval_cfg, 0, 1)
    seeds = _eval_seeds(eval_cfg, info.rank, info.world)
    dev = device or torch.device("cpu")
    temps = eval_cfg.temperatures()
    out: dict[str, float] = {}
    for i, temp in enumerate(temps):
        tag = f"eval/{temperature_key(temp)}/"
        pooled = []
        reward = 0.0
        for entry in entries:
            eps = _run_entry(policy, entry, seeds, eval_cfg, rollout_cfg, seed, temp)
            local = _per_seed(eps, seeds, all_seeds)
            flat = D.all_reduce_sum(
                [*local.ravel().tolist(), sum(e.outcome_reward for e in eps)], info, dev
            )
            counts = np.asarray(flat[:-1]).reshape(local.shape)
            reward += flat[-1]
            pooled.append(counts)
            if i == 0:
                n, succ = counts[:, 0].sum(), counts[:, 1].sum()
                out[f"eval/{entry.label}/success"] = float(succ / max(n, 1.0))
        counts = np.concatenate(pooled) if pooled else np.zeros((0, _COLS))
        out.update(_rates(counts, tag))
        if i == 0:
            n = float(counts[:, 0].sum())
            out.update(_rates(counts, "eval/"))
            out.setdefault("eval/success", 0.0)
            out["eval/reward"] = reward / max(n, 1.0)
    return out
