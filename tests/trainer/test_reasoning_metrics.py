"""Emergent-reasoning metrics: entropy, reflections, lengths, tools, void turns, pass@k."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from tirgym.episode import Episode, Turn
from tirgym.trainer.metrics import episode_metrics
from tirgym.trainer.reasoning_metrics import (
    entropy_from_logits,
    pass_at_k,
    planning_execution_entropy,
    planning_token_ratio,
    reflection_counts,
    response_length_stats,
    token_entropy,
    tool_stats,
    void_turn_ratio,
)


def test_token_entropy_from_logits_and_given_entropies():
    logits = np.array([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0], [5.0, 5.0, -1e9, -1e9]])
    ent = entropy_from_logits(logits)
    assert ent == pytest.approx([math.log(4), 0.0, math.log(2)], abs=1e-6)
    mask = np.array([1, 0, 1])
    assert token_entropy(logits, mask) == pytest.approx((math.log(4) + math.log(2)) / 2)
    t = torch.tensor(logits, dtype=torch.float32)
    assert token_entropy(t, torch.tensor(mask)) == pytest.approx(
        (math.log(4) + math.log(2)) / 2, abs=1e-5
    )
    assert token_entropy(entropies=[1.0, 9.0, 3.0], mask=mask) == pytest.approx(2.0)
    assert token_entropy(entropies=[1.0], mask=[0]) == 0.0
    with pytest.raises(ValueError):
        token_entropy()


def test_reflection_counts():
    c = reflection_counts("Wait, let me recheck. Try  again? wait... re-evaluate; awaited")
    assert c["wait"] == 2 and c["recheck"] == 1 and c["try again"] == 1
    assert c["re-evaluate"] == 1 and c["rethink"] == 0


def _ep(n_tokens, turns):
    return Episode("e", 0, token_ids=[1] * n_tokens, loss_mask=[1] * n_tokens, turns=turns)


def test_episode_stats():
    a = _ep(10, [Turn(0, 5, action="tool_call", tool_calls=1, tool_errors=1),
                 Turn(5, 10, action="answer")])  # fmt: skip
    b = _ep(30, [Turn(0, 30, action="none")])
    c = _ep(20, [Turn(0, 20, action="tool_call", tool_calls=2)])
    mean, p95 = response_length_stats([a, b, c])
    assert mean == pytest.approx(20.0) and p95 == pytest.approx(29.0)
    assert void_turn_ratio([a, b, c]) == pytest.approx(1 / 4)
    calls, err = tool_stats([a, b, c])
    assert calls == pytest.approx(1.0) and err == pytest.approx(1 / 3)
    assert tool_stats([]) == (0.0, 0.0)


def test_pass_at_k_matches_brute_force():
    for n, c, k in [(5, 2, 1), (5, 2, 2), (6, 0, 3), (6, 6, 3), (7, 3, 4)]:
        subsets = list(itertools.combinations(range(n), k))
        brute = sum(any(i < c for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_planning_ratio_and_all_metrics():
    text = "<think>notice that. Wait, let me check</think><answer>1</answer>"
    vocab = {ch: i for i, ch in enumerate(sorted(set(text + "~")))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="~"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    ids = tok.encode("~~").ids + tok.encode(text).ids
    e = Episode("e", 0, token_ids=ids, loss_mask=[0, 0] + [1] * len(text),
                turns=[Turn(2, len(ids), text=text, action="answer")])  # fmt: skip
    m = episode_metrics([e], tokenizer=tok)
    n_plan = len("notice that") + len("let me check")
    assert m["planning_token_ratio"] == pytest.approx(n_plan / len(text))
    assert m["semantic_entropy"] == pytest.approx(math.log(2))  # deduce + verify clusters
    assert m["reflections_per_response"] == 1.0
    assert m["void_turn_ratio"] == 0.0
    assert planning_token_ratio([np.ones(len(ids), bool)], [e]) == 1.0  # prompt never counts
    assert "planning_token_ratio" not in episode_metrics([e])


def test_planning_and_execution_entropy_are_mean_surprisals_of_their_tokens():
    """Hand-worked: 5 sampled tokens, 2 of them planning; the prompt never counts."""
    e = Episode(
        "e",
        0,
        token_ids=[7, 7, 1, 2, 3, 4, 5],
        loss_mask=[0, 0, 1, 1, 1, 1, 1],
        logprobs=[0.0, -9.0, -1.0, -3.0, -0.5, -0.5, -2.0],
    )
    plan = np.array([1, 1, 1, 1, 0, 0, 0], bool)  # the prompt's mark is ignored
    got = planning_execution_entropy([plan], [e])
    assert got["planning_token_entropy"] == pytest.approx((1.0 + 3.0) / 2)
    assert got["execution_token_entropy"] == pytest.approx((0.5 + 0.5 + 2.0) / 3)
    none = planning_execution_entropy([np.zeros(7, bool)], [e])
    assert "planning_token_entropy" not in none and none["execution_token_entropy"] == 1.4
    # the estimate is unbiased: sampled at T=1, mean surprisal -> entropy
    rng = np.random.default_rng(0)
    p = np.array([0.7, 0.2, 0.1])
    draws = rng.choice(3, size=200_000, p=p)
    big = Episode("b", 0, token_ids=list(draws), loss_mask=[1] * draws.size,
                  logprobs=list(np.log(p)[draws]))  # fmt: skip
    est = planning_execution_entropy([np.zeros(draws.size, bool)], [big])
    assert est["execution_token_entropy"] == pytest.approx(-(p * np.log(p)).sum(), abs=0.01)
