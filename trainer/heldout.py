"""Held-out success for the trainer's before/periodic/after evals, behind one function.

Runs `tirgym.eval.evaluate` in memory (no files), so training evals and `tirgym eval`
sample and score episodes the same way. Seeds come from eval.seed_start upward (at or
above HELDOUT_SEED_BASE by default), disjoint from every training seed; under torchrun
each rank evaluates a slice of the seeds and the counts are summed.
"""

from __future__ import annotations

from typing import Any

import torch

from tirgym.trainer import distributed as D


def _eval_seeds(eval_cfg, rank: int, world: int) -> list[int]:
    seeds = list(range(eval_cfg.seed_start, eval_cfg.seed_start + eval_cfg.num_seeds))
    return seeds[rank::world]


def _run_entry(policy, entry, seeds: list[int], eval_cfg, rollout_cfg, seed: int) -> list[Any]:
    """The episodes of one env on `seeds` (in memory: no files, no report)."""
    if not seeds:
        return []
    from tirgym.eval import evaluate
    from tirgym.eval.metrics import EvalEntry

    res = evaluate(
        policy,
        envs=[EvalEntry(entry.label, entry.env_id, dict(entry.kwargs))],
        samples=eval_cfg.samples,
        seeds=seeds,
        out_dir=None,
        temperature=eval_cfg.temperature,
        max_new_tokens=eval_cfg.max_new_tokens or rollout_cfg.max_new_tokens,
        max_turns=rollout_cfg.max_turns,
        max_total_tokens=rollout_cfg.max_total_tokens,
        episode_timeout_s=rollout_cfg.episode_timeout_s,
        sampling_seed=seed,
        write_report=False,
    )
    return res.episodes


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
    """{"eval/success": overall, "eval/<label>/success": per env, "eval/reward": ...}."""
    info = dist or D.DistInfo()
    seeds = _eval_seeds(eval_cfg, info.rank, info.world)
    out: dict[str, float] = {}
    totals = [0.0, 0.0, 0.0]
    for entry in entries:
        eps = _run_entry(policy, entry, seeds, eval_cfg, rollout_cfg, seed)
        succ = float(sum(bool(e.success) for e in eps))
        rew = float(sum(e.outcome_reward for e in eps))
        n, succ, rew = D.all_reduce_sum(
            [float(len(eps)), succ, rew], info, device or torch.device("cpu")
        )
        out[f"eval/{entry.label}/success"] = succ / max(n, 1.0)
        totals = [totals[0] + n, totals[1] + succ, totals[2] + rew]
    out["eval/success"] = totals[1] / max(totals[0], 1.0)
    out["eval/reward"] = totals[2] / max(totals[0], 1.0)
    out["eval/episodes"] = totals[0]
    return out
