"""Estimators and confidence intervals for eval metrics.

Pure functions, each checked against hand-worked cases in tests/eval/test_stats.py. The
unit of every interval is the task: the K samples of one task are correlated (identical at
temperature 0), so treating episodes as independent would make intervals too narrow.
docs/ALGORITHMS.md ("Eval statistics") gives the formulas.
Every interval here is deterministic for a fixed `seed`, so results.json is reproducible:
the resume test compares two runs byte for byte (wall-time fields aside).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): P(at least one of k draws without replacement
    from n samples, c of them correct, is correct) = 1 - C(n-c, k) / C(n, k).

    Computed as a running product so large n never overflows.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate; stays inside [0, 1] and is sane at 0/n and n/n.

    n may be an effective (fractional) sample size, with successes = rate * n. n == 0 gives
    the uninformative (0, 1).
    """
    if n == 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    return _wilson(successes / n, n, confidence)


def _wilson(p: float, n: float, confidence: float) -> tuple[float, float]:
    z = _z(confidence)
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z2n)
    lo, hi = centre - half, centre + half
    # exact at the edges (floating error would otherwise leave 1e-17 above 0 at p=0)
    if p <= 0.0:
        lo = 0.0
    if p >= 1.0:
        hi = 1.0
    return (max(0.0, lo), min(1.0, hi))


@dataclass(frozen=True)
class TaskRate:
    """A rate over tasks: its estimate, 95% interval and the effective sample size behind it."""

    mean: float
    ci: tuple[float, float]
    n_eff: float
    tasks: int


def clustered_rate(
    num: Sequence[float] | np.ndarray,
    den: Sequence[float] | np.ndarray | None = None,
    *,
    max_n: float | None = None,
    confidence: float = 0.95,
) -> TaskRate | None:
    """A rate whose observations come in clusters (tasks), with an interval that treats the
    cluster, not the observation, as the independent unit.

    Task i contributes `num[i]` events out of `den[i]` observations (`den` None: one each,
    so the estimate is the mean of per-task values in [0, 1]). The estimate is the ratio
    R = sum(num) / sum(den); its variance is the cluster-robust (CR0 sandwich) one,
    V = sum_i (num_i - R den_i)^2 / sum(den)^2. The interval is Wilson's at rate R and the
    effective sample size n_eff = R (1 - R) / V (Kish's design-effect correction), so:

    - one observation per task, or K identical samples per task (temperature 0), gives
      n_eff = tasks: the plain Wilson interval over tasks;
    - independent samples within tasks give n_eff near the number of observations.

    n_eff is capped at `max_n` (default sum(den): no more information than observations).
    When R is 0 or 1, V is 0 and says nothing about how alike a task's samples are, so
    n_eff is the number of tasks (the cautious end); when 0 < R < 1 and V is 0, n_eff is
    the cap. Tasks with den 0 are left out; none left gives None.
    """
    a = np.asarray(num, dtype=np.float64)
    b = np.ones_like(a) if den is None else np.asarray(den, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"num and den need equal length, got {a.size} and {b.size}")
    if np.any(b < 0) or np.any(a < 0) or np.any(a > b + 1e-12):
        raise ValueError("need 0 <= num <= den for every task")
    keep = b > 0
    a, b = a[keep], b[keep]
    tasks = int(a.size)
    if tasks == 0:
        return None
    total = float(b.sum())
    cap = total if max_n is None else float(max_n)
    r = min(1.0, max(0.0, float(a.sum()) / total))
    var = float(np.sum((a - r * b) ** 2)) / total**2
    if r in (0.0, 1.0):
        n_eff = float(tasks)
    elif var <= 0.0:
        n_eff = cap
    else:
        n_eff = r * (1.0 - r) / var
    n_eff = max(1.0, min(cap, n_eff))
    return TaskRate(mean=r, ci=_wilson(r, n_eff, confidence), n_eff=n_eff, tasks=tasks)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic` over units (tasks), resampled with replacement.

    One value per task: samples of the same task are correlated, so tasks are the unit.
    A single task (or identical values) gives a zero-width interval at the value.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    if x.size == 1 or np.all(x == x[0]):
        v = float(statistic(x))
        return (v, v)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    if statistic is np.mean:
        stats = x[idx].mean(axis=1)
    else:
        stats = np.array([statistic(x[row]) for row in idx])
    alpha = 1 - confidence
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


@dataclass
class PairedTest:
    """Paired comparison of two systems over the same tasks (B minus A)."""

    n_tasks: int
    mean_a: float
    mean_b: float
    diff: float
    ci: tuple[float, float]
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        return self.n_tasks > 0 and self.p_value < alpha


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_perm: int = 10000,
    seed: int = 0,
) -> PairedTest:
    """Two-sided paired sign-flip permutation test on per-task differences, plus a
    bootstrap CI of the mean difference.

    Exact (all 2^m sign patterns over the m non-zero differences) when m <= 16, Monte
    Carlo with `n_perm` draws otherwise. Needs no normality assumption, which matters for
    0/1 success values on a few dozen tasks.
    """
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise ValueError(f"paired samples need equal length, got {xa.size} and {xb.size}")
    n = xa.size
    if n == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, (math.nan, math.nan), 1.0)
    d = xb - xa
    observed = abs(d.mean())
    nz = d[d != 0]
    m = nz.size
    if m == 0:
        p = 1.0
    elif m <= 16:
        signs = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1) * 2 - 1
        sums = np.abs((signs * nz).sum(axis=1)) / n
        p = float(np.mean(sums >= observed - 1e-12))
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, m))
        sums = np.abs((signs * nz).sum(axis=1)) / n
        # +1 smoothing: the observed pattern is one of the permutations
        p = float((np.sum(sums >= observed - 1e-12) + 1) / (n_perm + 1))
    ci = bootstrap_ci(d, confidence=confidence, seed=seed)
    return PairedTest(n, float(xa.mean()), float(xb.mean()), float(d.mean()), ci, min(1.0, p))
