"""pass@k against brute-force enumeration; CIs against known values, hand-worked clustered
cases and simulated coverage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tirgym.eval.stats import (
    bootstrap_ci,
    clustered_rate,
    paired_test,
    pass_at_k,
    wilson_interval,
)


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


def test_clustered_rate_one_sample_per_task_is_wilson_over_tasks() -> None:
    # R = 1/2, V = 4 * (1/2)^2 / 4^2 = 1/16, n_eff = (1/4) / (1/16) = 4 tasks
    r = clustered_rate([1, 1, 0, 0])
    assert (r.mean, r.n_eff, r.tasks) == (0.5, pytest.approx(4.0), 4)
    assert r.ci == pytest.approx(wilson_interval(2, 4))


def test_clustered_rate_identical_samples_count_tasks_not_episodes() -> None:
    # temperature 0: 24 tasks x 4 identical samples, 6 tasks solved. Every per-task value is
    # 0 or 1, so n_eff = 24 tasks, not 96 episodes.
    fractions = [1.0] * 6 + [0.0] * 18
    r = clustered_rate(fractions, max_n=96)
    assert r.n_eff == pytest.approx(24.0)
    assert r.ci == pytest.approx(wilson_interval(6, 24))
    as_if_independent = wilson_interval(24, 96)
    assert r.ci[1] - r.ci[0] > 1.9 * (as_if_independent[1] - as_if_independent[0])


def test_clustered_rate_between_tasks_and_episodes() -> None:
    # 4 tasks x 2 samples with 2, 2, 1, 0 successes: R = 5/8,
    # V = (2 (3/8)^2 + (1/8)^2 + (5/8)^2) / 16 = (11/16) / 16, R(1-R) = 15/64,
    # n_eff = (15/64) / (11/256) = 60/11: more than 4 tasks, fewer than 8 episodes
    r = clustered_rate([1.0, 1.0, 0.5, 0.0], max_n=8)
    assert r.mean == pytest.approx(5 / 8) and r.n_eff == pytest.approx(60 / 11)
    assert r.ci == pytest.approx(wilson_interval(5 / 8 * 60 / 11, 60 / 11))
    # samples that split evenly inside every task carry no between-task variance: the cap
    even = clustered_rate([0.5, 0.5], max_n=4)
    assert even.n_eff == 4.0 and even.ci == pytest.approx(wilson_interval(2, 4))


def test_clustered_rate_ratio_with_unequal_denominators() -> None:
    # format errors: task 1 has 1 of 1 turns bad, task 2 has 0 of 3. R = 1/4,
    # V = ((1 - 1/4)^2 + (0 - 3/4)^2) / 4^2 = (9/8) / 16, n_eff = (3/16) / (9/128) = 8/3
    r = clustered_rate([1, 0], [1, 3])
    assert r.mean == pytest.approx(0.25) and r.n_eff == pytest.approx(8 / 3)
    assert r.ci == pytest.approx(wilson_interval(0.25 * 8 / 3, 8 / 3))


def test_clustered_rate_edges() -> None:
    # all failures: V = 0 says nothing about within-task correlation; count tasks
    none = clustered_rate([0, 0, 0], [2, 2, 2])
    assert none.mean == 0.0 and none.n_eff == 3.0
    assert none.ci == pytest.approx(wilson_interval(0, 3)) and none.ci[0] == 0.0
    assert clustered_rate([3, 3], [3, 3]).ci[1] == 1.0
    assert clustered_rate([]) is None
    assert clustered_rate([0], [0]) is None  # a task with no observations is left out
    assert clustered_rate([1, 0], [1, 0]).tasks == 1
    with pytest.raises(ValueError):
        clustered_rate([2], [1])


def test_clustered_rate_coverage_with_correlated_samples() -> None:
    """Tasks of varying difficulty, 4 samples each: the clustered interval keeps near-nominal
    coverage where a Wilson interval over episodes falls well short."""
    rng = np.random.default_rng(0)
    tasks, k, trials = 30, 4, 1500
    clustered = naive = 0
    for _ in range(trials):
        p_task = rng.beta(0.3, 0.3, size=tasks)  # most tasks near always- or never-solved
        c = rng.binomial(k, p_task)
        truth = 0.5  # the mean of Beta(0.3, 0.3)
        r = clustered_rate(c / k, max_n=tasks * k)
        clustered += r.ci[0] <= truth <= r.ci[1]
        lo, hi = wilson_interval(int(c.sum()), tasks * k)
        naive += lo <= truth <= hi
    assert 0.92 <= clustered / trials <= 0.98
    assert naive / trials < 0.85
