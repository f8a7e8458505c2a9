"""Length control as reward transforms over Episodes: DAPO overlong shaping, LAPO in-band.

Both read an episode's response length L = number of sampled tokens (all turns; prompt
and tool output excluded), add their term to `outcome_reward` and record it under
`info["length_reward"]` (a dict of term -> value) so logs can separate it from the task
reward. `success` is never touched. Transforms return new Episode objects (shallow
copies with their own `info`), leaving the input untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tirgym.episode import Episode


class OverlongConfig(BaseModel):
    """DAPO soft overlong punishment: 0 up to max_len - buffer, linear to -factor at
    max_len, -factor beyond."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    max_len: int = Field(4096, gt=0)
    """Response length (sampled tokens) at which the penalty reaches -factor."""
    buffer: int = Field(1024, gt=0)
    factor: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> OverlongConfig:
        if self.buffer > self.max_len:
            raise ValueError(
                f"length.overlong.buffer ({self.buffer}) must be at most max_len ({self.max_len})."
            )
        return self


class InBandConfig(BaseModel):
    """LAPO stage-1 style: correct responses whose length lies in the group's
    [low_pct, high_pct] percentile band of correct lengths earn `weight`; outside the band
    the bonus decays linearly with the distance to the band, reaching 0 one band width
    (at least `min_width` tokens) away."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    weight: float = 0.7
    low_pct: float = Field(30.0, ge=0.0, le=100.0)
    high_pct: float = Field(70.0, ge=0.0, le=100.0)
    min_width: float = Field(16.0, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> InBandConfig:
        if self.low_pct > self.high_pct:
            raise ValueError(
                f"length.in_band.low_pct ({self.low_pct}) must be <= high_pct ({self.high_pct})."
            )
        return self


class LengthRewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlong: OverlongConfig = Field(default_factory=OverlongConfig)
    in_band: InBandConfig = Field(default_factory=InBandConfig)


def response_length(ep: Episode) -> int:
    return int(sum(ep.loss_mask))


def overlong_penalty(length: float, max_len: int, buffer: int, factor: float = 1.0) -> float:
    """DAPO: min(-(L - (L_max - L_buf)) / L_buf, 0), floored at -1, times factor."""
    r = min(-(length - (max_len - buffer)) / buffer, 0.0)
    return factor * max(r, -1.0)


def in_band_bonus(length: float, low: float, high: float, weight: float, min_width: float) -> float:
    """weight inside [low, high], decaying linearly to 0 one band width outside it."""
    if low <= length <= high:
        return weight
    width = max(high - low, min_width)
    dist = low - length if length < low else length - high
    return weight * max(0.0, 1.0 - dist / width)


def in_band_bonuses(
    lengths: Sequence[float], correct: Sequence[bool], cfg: InBandConfig
) -> np.ndarray:
    """Bonus for each member of one group; incorrect ones and groups with no correct one get 0."""
    lengths = np.asarray(lengths, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    out = np.zeros(lengths.size)
    if not correct.any():
        return out
    ok = lengths[correct]
    low, high = np.percentile(ok, [cfg.low_pct, cfg.high_pct])
    for i in np.flatnonzero(correct):
        out[i] = in_band_bonus(lengths[i], low, high, cfg.weight, cfg.min_width)
    return out


def _with_bonus(ep: Episode, name: str, value: float) -> Episode:
    info = dict(ep.info)
    terms = dict(info.get("length_reward", {}))
    terms[name] = terms.get(name, 0.0) + value
    info["length_reward"] = terms
    return dataclasses.replace(ep, outcome_reward=ep.outcome_reward + value, info=info)


def apply_overlong(episodes: Sequence[Episode], cfg: OverlongConfig) -> list[Episode]:
    return [
        _with_bonus(
            ep,
            "overlong",
            overlong_penalty(response_length(ep), cfg.max_len, cfg.buffer, cfg.factor),
        )
        for ep in episodes
    ]


def apply_in_band(episodes: Sequence[Episode], cfg: InBandConfig) -> list[Episode]:
    groups: dict[str, list[int]] = {}
    for i, ep in enumerate(episodes):
        groups.setdefault(ep.group_id or ep.task_key, []).append(i)
    out = list(episodes)
    for members in groups.values():
        eps = [episodes[i] for i in members]
        bonus = in_band_bonuses([response_length(e) for e in eps], [e.success for e in eps], cfg)
        for i, b in zip(members, bonus, strict=True):
            out[i] = _with_bonus(episodes[i], "in_band", float(b))
    return out


def apply_length_rewards(episodes: Sequence[Episode], cfg: LengthRewardConfig) -> list[Episode]:
    """Apply the enabled transforms (overlong, then in-band); a no-op when none is enabled."""
    out = list(episodes)
    if cfg.overlong.enabled:
        out = apply_overlong(out, cfg.overlong)
    if cfg.in_band.enabled:
        out = apply_in_band(out, cfg.in_band)
    return out
