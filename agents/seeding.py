"""Sampling seeds that do not depend on batch position.

An episode's sampling stream must be a pure function of what identifies it (run seed,
task label, task seed, sample index, turn), never of which other episodes share its
batch: otherwise a resumed eval, a different batch size or a refilled training batch gives
different samples for the same task. The engine derives one seed per (episode, turn) with
`derive_seed` and passes them as `SamplingParams.seeds`; backends turn them into per-row
streams with `row_seeds`. The hf backend draws its per-step uniforms with `uniforms`, a
counter-based hash of (row seed, step): stateless, vectorized over the batch, and the
same numbers on CPU and GPU.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np

from tirgym.agents.types import SamplingParams
from tirgym.errors import TirgymError

_MASK63 = (1 << 63) - 1


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of `parts` (ints, strings)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & _MASK63


def row_seeds(params: SamplingParams, n_prompts: int) -> list[int]:
    """One seed per generated row (prompt-major, `params.n` rows per prompt).

    `params.seeds` (one per prompt) wins; else `params.seed` is spread over row positions
    (reproducible for the same batch only); else fresh random seeds.
    """
    n = max(1, params.n)
    if params.seeds is not None:
        if len(params.seeds) != n_prompts:
            raise TirgymError(
                f"generate: got {len(params.seeds)} seeds for {n_prompts} prompts; "
                "SamplingParams.seeds needs exactly one seed per prompt."
            )
        if n == 1:
            return [int(s) & _MASK63 for s in params.seeds]
        return [derive_seed(int(s), "copy", j) for s in params.seeds for j in range(n)]
    rows = n_prompts * n
    if params.seed is not None:
        return [derive_seed(int(params.seed), "row", r) for r in range(rows)]
    return [random.getrandbits(63) for _ in range(rows)]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def uniforms(seeds: np.ndarray, step: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), one per row: splitmix64 of (row seed, step); `step` is one
    int for all rows or one per row (rows of a continuous batch are at different steps)."""
    with np.errstate(over="ignore"):
        z = seeds.astype(np.uint64) + (np.asarray(step, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
