"""Off-policy corrections: reweight or mask tokens by how far the sampler was from the trainer.

The sampler's probability pi_s of each sampled token is recorded at rollout; the trainer's
pi_old is its probability under the weights the update starts from. They differ because
of kernels and precision (an inference engine is not the training stack) and, in
asynchronous training, because the sampler's weights are some versions behind. Each
correction below is a pure function of the per-token log ratio log(pi_old / pi_s) and
returns a [B, T] weight that multiplies the per-token policy-gradient loss (under
stop-gradient: the weights depend on no trainable tensor):

    tis_weights       min(rho, C)                       truncated IS (Yao et al. 2025)
    mis_keep          1 if 1/C <= rho <= C else 0        masked IS / token rejection (verl)
    icepop_weights    rho if alpha <= rho <= beta else 0 IcePop (Ring-1T report)
    geometric_keep    1 if 1/C <= exp(mean_t log rho) <= C, per sequence (verl geo RS)

`correction_weights` composes the enabled ones (a product) and counts what they did.
A masked token keeps its place in the loss's token/sequence counts: it contributes zero,
it does not make the other tokens weigh more (as in the IcePop objective, whose 1/|y|
counts every token). Formulas and sources: docs/ALGORITHMS.md, "Off-policy corrections".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator


class CorrectionConfig(BaseModel):
    """Which corrections the loss applies (all off by default); they compose by product."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    tis_cap: float | None = Field(None, gt=1)
    """Truncated IS: weight each token by min(pi_old / pi_s, tis_cap) (2.0 is usual)."""
    mis_cap: float | None = Field(None, gt=1)
    """Masked IS: drop tokens whose pi_old / pi_s lies outside [1/mis_cap, mis_cap]."""
    icepop: tuple[float, float] | None = None
    """IcePop [alpha, beta] (e.g. [0.5, 5.0]): weight rho inside, drop the token outside."""
    geo_cap: float | None = Field(None, gt=1)
    """Drop whole sequences whose geometric-mean ratio lies outside [1/geo_cap, geo_cap]."""

    @model_validator(mode="after")
    def _check(self) -> CorrectionConfig:
        if self.icepop is not None:
            lo, hi = self.icepop
            if not 0 < lo < 1 < hi:
                raise ValueError(f"icepop [alpha, beta] needs 0 < alpha < 1 < beta, got {[lo, hi]}")
        if self.icepop is not None and self.tis_cap is not None:
            raise ValueError(
                "tis_cap and icepop both weight tokens by the ratio (it would count twice): "
                "choose one"
            )
        return self

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.tis_cap, self.mis_cap, self.icepop, self.geo_cap))


def rollout_log_ratio(
    old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """log(pi_old / pi_s) per token, 0 where mask is 0 (whatever the inputs are there)."""
    diff = old_logprobs.detach() - sampler_logprobs.detach()
    return torch.where(mask.bool(), diff, torch.zeros_like(diff))


def tis_weights(log_ratio: torch.Tensor, cap: float) -> torch.Tensor:
    """min(rho, cap): the token-level truncated importance weight."""
    return torch.exp(log_ratio).clamp(max=cap)


def mis_keep(log_ratio: torch.Tensor, cap: float) -> torch.Tensor:
    """True where 1/cap <= rho <= cap (compared in log space, symmetric)."""
    return log_ratio.abs() <= math.log(cap)


def icepop_weights(log_ratio: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """rho where low <= rho <= high, else 0 (both sides are masked, nothing is clipped)."""
    ok = (log_ratio >= math.log(low)) & (log_ratio <= math.log(high))
    return torch.where(ok, torch.exp(log_ratio), torch.zeros_like(log_ratio))


def geometric_keep(log_ratio: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """[B, T] bool: the row's geometric-mean ratio exp(mean_t log rho) over its sampled
    tokens lies in [1/cap, cap]. A row without sampled tokens is kept (it has no loss)."""
    m = mask.to(log_ratio.dtype)
    mean = (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
    return (mean.abs() <= math.log(cap)).expand_as(log_ratio)


@dataclass
class CorrectionStats:
    """Sums over the loss tokens of one micro-batch (divide by `tokens`)."""

    tokens: float
    ratio_sum: float
    """Sum of pi_old / pi_s."""
    ratio_max: float
    masked: float
    """Tokens whose weight is 0 (dropped by MIS, IcePop or the sequence mask)."""
    clipped: float
    """Kept tokens whose truncated-IS weight hit the cap."""


def correction_weights(
    old_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    cfg: CorrectionConfig | None,
) -> tuple[torch.Tensor | None, CorrectionStats]:
    """The product of the enabled corrections' weights ([B, T], detached; None when none is
    enabled) and what they did on the mask-1 tokens."""
    mask = mask.bool()
    lr = rollout_log_ratio(old_logprobs, sampler_logprobs, mask)
    weights: torch.Tensor | None = None
    clipped = torch.zeros_like(mask)
    if cfg is not None and cfg.enabled:
        weights = torch.ones_like(lr)
        if cfg.tis_cap is not None:
            weights = weights * tis_weights(lr, cfg.tis_cap)
            clipped = lr > math.log(cfg.tis_cap)
        if cfg.icepop is not None:
            weights = weights * icepop_weights(lr, *cfg.icepop)
        if cfg.mis_cap is not None:
            weights = weights * mis_keep(lr, cfg.mis_cap)
        if cfg.geo_cap is not None:
            weights = weights * geometric_keep(lr, mask, cfg.geo_cap)
        weights = torch.where(mask, weights, torch.zeros_like(weights))
    ratio = torch.exp(lr)
    masked = mask & (weights == 0) if weights is not None else torch.zeros_like(mask)
    stats = CorrectionStats(
        tokens=float(mask.sum()),
        ratio_sum=float(ratio[mask].sum()),
        ratio_max=float(ratio[mask].max()) if mask.any() else 0.0,
        masked=float(masked.sum()),
        clipped=float((clipped & mask & ~masked).sum()),
    )
    return weights, stats
