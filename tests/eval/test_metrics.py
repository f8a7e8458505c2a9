"""Metrics from hand-built episodes: every number checked against a count done by hand."""

from __future__ import annotations

import pytest

from tirgym.episode import Episode, Turn
from tirgym.eval.metrics import EvalEntry, compute_metrics
from tirgym.eval.stats import pass_at_k, wilson_interval


def ep(label: str, seed: int, sample: int, success: bool, turns: list[Turn], **kw) -> Episode:
    e = Episode(env_id="tirgym/GuessNumber-v0", seed=seed, success=success, turns=turns, **kw)
    e.info["eval"] = {"entry": label, "sample": sample, "wall_s": 0.5}
    return e


def t(tokens: int = 4, calls: int = 0, errs: int = 0, fmt: bool = False, cut: bool = False) -> Turn:
    return Turn(
        start=0,
        end=tokens,
        tool_calls=calls,
        tool_errors=errs,
        format_errors=["bad"] if fmt else [],
        finish_reason="length" if cut else "stop",
    )


def test_compute_metrics_counts_by_hand() -> None:
    entries = [
        EvalEntry(id="tirgym/GuessNumber-v0", name="A"),
        EvalEntry(id="tirgym/GuessNumber-v0", kwargs={"high": 9}, name="B"),
    ]
    eps = [
        # A: task 1 solved 2/3, task 2 solved 0/3
        ep("A", 1, 0, True, [t(calls=2, errs=1), t()], outcome_reward=1.0, stop_reason="answer"),
        ep("A", 1, 1, False, [t(fmt=True)], stop_reason="max_turns", truncated=True),
        ep("A", 1, 2, True, [t()], outcome_reward=1.0, stop_reason="answer"),
        ep("A", 2, 0, False, [t(cut=True)], stop_reason="max_tokens", truncated=True),
        ep("A", 2, 2, False, [t()], stop_reason="answer"),
        ep("A", 2, 1, False, [t(calls=1)], stop_reason="answer"),
        # B: one task, 3/3
        *[
            ep("B", 7, i, True, [t(tokens=10)], outcome_reward=1.0, stop_reason="answer")
            for i in range(3)
        ],
    ]
    m = compute_metrics(entries, reversed(eps), k_max=3)  # input order must not matter
    a, b, o = m["envs"]["A"], m["envs"]["B"], m["overall"]
    assert (a["tasks"], a["episodes"], b["tasks"], o["tasks"], o["episodes"]) == (2, 6, 1, 3, 9)
    assert a["success"]["mean"] == pytest.approx(2 / 6)
    # tasks solved 2/3 and 0/3: R = 1/3, V = ((1/3)^2 + (1/3)^2) / 2^2 = 1/18,
    # n_eff = R (1 - R) / V = (2/9) / (1/18) = 4 (2 tasks of 3 samples: between 2 and 6)
    assert a["success"]["n_eff"] == pytest.approx(4.0)
    assert a["success"]["ci"] == pytest.approx(list(wilson_interval(4 / 3, 4)))
    # success@1 is pass@1: one estimate, one interval
    assert a["pass_at_k"]["1"]["mean"] == a["success"]["mean"]
    assert a["pass_at_k"]["1"]["ci"] == a["success"]["ci"]
    for k in (1, 2, 3):
        assert a["pass_at_k"][str(k)]["mean"] == pytest.approx((pass_at_k(3, 2, k) + 0.0) / 2)
        assert o["pass_at_k"][str(k)]["mean"] == pytest.approx((pass_at_k(3, 2, k) + 0 + 1) / 3)
    assert a["pass_at_k"]["3"]["mean"] == pytest.approx(0.5)
    assert a["reward"]["mean"] == pytest.approx((2 / 3 + 0) / 2)
    assert a["turns"] == pytest.approx(7 / 6)
    assert a["tool_calls"] == pytest.approx(3 / 6)
    assert a["tool_error_rate"]["mean"] == pytest.approx(1 / 3)
    assert a["format_error_rate"]["mean"] == pytest.approx(1 / 7)
    assert a["truncation_rate"]["mean"] == pytest.approx(2 / 6)
    assert a["length_cut_rate"]["mean"] == pytest.approx(1 / 7)
    assert a["response_tokens"] == pytest.approx(28 / 6)
    assert a["stop_reasons"] == {"answer": 4, "max_tokens": 1, "max_turns": 1}
    assert b["success"]["mean"] == 1.0 and b["tool_error_rate"]["mean"] is None
    assert b["kwargs"] == {"high": 9}
    assert o["success"]["mean"] == pytest.approx(5 / 9)
    assert o["macro_success"] == pytest.approx((2 / 6 + 1) / 2)
    lo, hi = a["pass_at_k"]["2"]["ci"]
    assert lo <= a["pass_at_k"]["2"]["mean"] <= hi


def test_missing_entry_and_uneven_samples() -> None:
    entries = [EvalEntry(id="x", name="A"), EvalEntry(id="x", name="Z")]
    eps = [ep("A", 1, 0, True, [t()]), ep("A", 1, 1, False, [t()]), ep("A", 2, 0, True, [t()])]
    m = compute_metrics(entries, eps, k_max=2)
    assert m["envs"]["Z"]["episodes"] == 0 and m["envs"]["Z"]["success"]["mean"] is None
    # pass@2 only over the task with two samples
    # one task: the interval is Wilson's over one task, not a zero-width bootstrap
    assert m["envs"]["A"]["pass_at_k"]["2"] == {
        "mean": 1.0,
        "ci": pytest.approx(list(wilson_interval(1, 1))),
        "tasks": 1,
    }
    assert m["envs"]["A"]["pass_at_k"]["1"]["mean"] == pytest.approx((0.5 + 1.0) / 2)

    assert m["envs"]["A"]["success"]["mean"] == pytest.approx((0.5 + 1.0) / 2)  # tasks weigh 1


def test_identical_samples_give_intervals_over_tasks() -> None:
    """24 tasks x 4 identical samples (temperature 0), 6 tasks solved: the interval is
    Wilson's over 24 tasks; the 96 episodes are not 96 independent draws."""
    eps = [ep("A", s, i, s < 6, [t()]) for s in range(24) for i in range(4)]
    m = compute_metrics([EvalEntry(id="x", name="A")], eps, k_max=4)["envs"]["A"]
    assert (m["tasks"], m["episodes"], m["success"]["mean"]) == (24, 96, 0.25)
    assert m["success"]["ci"] == pytest.approx(list(wilson_interval(6, 24)))
    assert m["pass_at_k"]["1"]["ci"] == m["success"]["ci"]
    assert m["pass_at_k"]["4"]["mean"] == 0.25  # identical samples: pass@4 == success@1
    assert m["pass_at_k"]["4"]["ci"] == pytest.approx(list(wilson_interval(6, 24)))
    assert m["truncation_rate"]["ci"] == pytest.approx(list(wilson_interval(0, 24)))


def test_dataset_rows_that_repeat_are_one_task() -> None:
    """A 3-row dataset run on seeds 0..5: seeds s and s + 3 are the same row, so 3 tasks."""
    eps = [ep("D", s, 0, s % 3 == 0, [t()]) for s in range(6)]
    m = compute_metrics([EvalEntry(id="x", name="D", num_tasks=3)], eps, k_max=1)["envs"]["D"]
    assert (m["tasks"], m["episodes"]) == (3, 6)
    assert m["success"]["ci"] == pytest.approx(list(wilson_interval(1, 3)))
    generated = compute_metrics([EvalEntry(id="x", name="D")], eps, k_max=1)["envs"]["D"]
    assert generated["tasks"] == 6
