"""Emergent-reasoning metrics: small functions over episodes (and, for token entropy,
logits or given entropies). `tirgym.trainer.metrics.episode_metrics` logs them every step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from tirgym.episode import Episode
from tirgym.eval.stats import pass_at_k
from tirgym.trainer.planning import (
    StrategicGrams,
    semantic_entropy,
    strategic_gram_counts,
    think_texts,
)

__all__ = ["pass_at_k"]  # unbiased pass@k lives with the eval statistics

REFLECTION_WORDS = (
    "recheck",
    "rethink",
    "try again",
    "wait",
    "re-evaluate",
    "re-examine",
    "check again",
)
_REFLECTION = re.compile(
    r"\b(" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in REFLECTION_WORDS) + r")\b",
    re.IGNORECASE,
)


def entropy_from_logits(logits):
    """Per-position entropy -sum p log p (nats) over the last axis; torch or numpy in, same out."""
    try:
        import torch

        if isinstance(logits, torch.Tensor):
            logp = torch.log_softmax(logits.float(), dim=-1)
            return -(logp.exp() * logp).sum(-1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    logz = np.log(np.exp(x).sum(axis=-1, keepdims=True))
    logp = x - logz
    return -(np.exp(logp) * logp).sum(-1)


def token_entropy(logits=None, mask=None, entropies=None) -> float:
    """Mean entropy over sampled positions (mask == 1), from logits [..., T, V] or from
    per-token entropies [..., T] already computed (e.g. in the loss forward pass)."""
    if (logits is None) == (entropies is None):
        raise ValueError("pass exactly one of logits or entropies")
    ent = entropy_from_logits(logits) if logits is not None else entropies
    ent = ent.detach().cpu().numpy() if hasattr(ent, "detach") else np.asarray(ent, float)
    if mask is None:
        return float(ent.mean()) if ent.size else 0.0
    m = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    m = m.astype(bool)
    return float(ent[m].mean()) if m.any() else 0.0


def reflection_counts(text: str) -> dict[str, int]:
    """Occurrences of each reflection word ("aha" markers) in one response."""
    counts = dict.fromkeys(REFLECTION_WORDS, 0)
    for m in _REFLECTION.finditer(text):
        key = re.sub(r"\s+", " ", m.group(1).lower())
        counts[key] += 1
    return counts


def response_text(ep: Episode) -> str:
    return "\n".join(t.text for t in ep.turns)


def reflections_per_response(episodes: Sequence[Episode]) -> float:
    if not episodes:
        return 0.0
    return float(np.mean([sum(reflection_counts(response_text(e)).values()) for e in episodes]))


def response_length_stats(episodes: Sequence[Episode]) -> tuple[float, float]:
    """(mean, p95) of sampled tokens per episode."""
    lens = [sum(e.loss_mask) for e in episodes]
    if not lens:
        return 0.0, 0.0
    return float(np.mean(lens)), float(np.percentile(lens, 95))


def void_turn_ratio(episodes: Sequence[Episode]) -> float:
    """Void turns (no tool call, no answer) over all turns."""
    turns = [t for e in episodes for t in e.turns]
    return sum(t.action == "none" for t in turns) / len(turns) if turns else 0.0


def tool_stats(episodes: Sequence[Episode]) -> tuple[float, float]:
    """(tool calls per episode, tool errors / tool calls)."""
    if not episodes:
        return 0.0, 0.0
    calls = sum(t.tool_calls for e in episodes for t in e.turns)
    errs = sum(t.tool_errors for e in episodes for t in e.turns)
    return calls / len(episodes), (errs / calls if calls else 0.0)


def planning_token_ratio(masks: Sequence[np.ndarray], episodes: Sequence[Episode]) -> float:
    """Planning tokens over sampled tokens, across the batch."""
    sampled = sum(sum(e.loss_mask) for e in episodes)
    if not sampled:
        return 0.0
    plan = sum(
        int(np.sum(np.asarray(m, bool) & np.asarray(e.loss_mask, bool)))
        for m, e in zip(masks, episodes, strict=True)
    )
    return plan / sampled


def planning_execution_entropy(
    masks: Sequence[np.ndarray], episodes: Sequence[Episode]
) -> dict[str, float]:
    """Mean surprisal -log p of the sampled planning tokens and of the other sampled tokens
    (execution): what HICRA's two-phase dynamic is read from. Sampled at temperature 1, the
    mean surprisal of a set of positions is an unbiased estimate of their mean entropy, so
    it needs no logits. A side with no tokens is left out."""
    plan, execution = [], []
    for m, e in zip(masks, episodes, strict=True):
        sampled = np.asarray(e.loss_mask, bool)
        if not sampled.any() or len(e.logprobs) != sampled.size:
            continue  # nothing sampled, or no sampler logprobs (scripted policies)
        surprisal = -np.asarray(e.logprobs, np.float64)
        is_plan = np.asarray(m, bool) & sampled
        plan.append(surprisal[is_plan])
        execution.append(surprisal[sampled & ~is_plan])
    out = {}
    for key, parts in (("planning_token_entropy", plan), ("execution_token_entropy", execution)):
        vals = np.concatenate(parts) if parts else np.zeros(0)
        if vals.size:
            out[key] = float(vals.mean())
    return out


def batch_semantic_entropy(
    episodes: Sequence[Episode], grams: StrategicGrams | None = None, by: str = "cluster"
) -> float:
    """Semantic entropy of strategic-gram (cluster) frequencies in the batch's think text."""
    return semantic_entropy(strategic_gram_counts((think_texts(e) for e in episodes), grams, by))
