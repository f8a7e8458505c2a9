"""pass@k against brute-force enumeration; CIs against known values and simulated coverage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tirgym.eval.stats import bootstrap_ci, paired_test, pass_at_k, wilson_interval


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 10))
def test_pass_at_k_matches_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (
                n,
                c,
                k,
            )


def test_pass_at_k_edge_identities_and_large_n() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 1, 10) == 1.0
    # large n: the product form does not overflow and matches the exact ratio
    exact = 1 - math.comb(1000 - 7, 50) / math.comb(1000, 50)
    assert pass_at_k(1000, 7, 50) == pytest.approx(exact, rel=1e-10)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 2, 6)


def test_wilson_known_values() -> None:
    z2 = 1.959963984540054**2
    # 0/n and n/n have closed forms: [0, z^2/(n+z^2)] and [n/(n+z^2), 1]
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    # textbook / statsmodels proportion_confint(method="wilson") values
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(7, 20) == pytest.approx((0.1812, 0.5671), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo90, hi90 = wilson_interval(7, 20, confidence=0.90)
    assert lo90 > 0.1812 and hi90 < 0.5671  # a lower confidence gives a narrower interval


def test_wilson_coverage_near_nominal() -> None:
    rng = np.random.default_rng(0)
    p, n, trials = 0.3, 50, 4000
    hits = rng.binomial(n, p, size=trials)
    covered = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(int(h), n) for h in hits)])
    assert 0.93 <= covered <= 0.97


def test_bootstrap_ci_known_cases() -> None:
    assert bootstrap_ci([0.4] * 30) == pytest.approx((0.4, 0.4))
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    x = [0.0, 1.0] * 50  # mean 0.5, se 0.05 -> about 0.5 +- 0.098
    lo, hi = bootstrap_ci(x, seed=1)
    assert lo == pytest.approx(0.402, abs=0.02) and hi == pytest.approx(0.598, abs=0.02)
    assert bootstrap_ci(x, seed=1) == (lo, hi)  # deterministic for a seed
    lo_m, hi_m = bootstrap_ci(x, statistic=np.median, seed=1)
    assert 0.0 <= lo_m <= hi_m <= 1.0


def test_paired_test_exact_and_monte_carlo() -> None:
    same = paired_test([0.0, 1.0, 1.0], [0.0, 1.0, 1.0])
    assert same.p_value == 1.0 and same.diff == 0.0 and not same.significant()
    # 5 tasks, all improved: only the two all-same-sign patterns are as extreme -> p = 2/32
    five = paired_test([0.0] * 5, [1.0] * 5)
    assert five.p_value == pytest.approx(2 / 32) and not five.significant()
    six = paired_test([0.0] * 6, [1.0] * 6)
    assert six.p_value == pytest.approx(2 / 64) and six.significant()
    # large: 40 tasks, B wins 30 of them -> clearly significant, CI excludes 0
    a = np.zeros(40)
    b = np.r_[np.ones(30), np.zeros(10)]
    big = paired_test(a, b)
    assert big.p_value < 1e-3 and big.ci[0] > 0 and big.diff == pytest.approx(0.75)
    # balanced wins and losses -> not significant
    mixed = paired_test(np.r_[np.ones(10), np.zeros(10)], np.r_[np.zeros(10), np.ones(10)])
    assert mixed.p_value > 0.5
    with pytest.raises(ValueError):
        paired_test([1.0], [1.0, 0.0])
