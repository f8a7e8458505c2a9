"""Advantage estimators on hand-worked examples, and compute_advantages end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from tirgym.episode import Episode, Turn
from tirgym.errors import TirgymError
from tirgym.trainer.advantages import (
    AdvantageConfig,
    compute_advantages,
    discounted_returns,
    drgrpo,
    dynamic_sampling_keep,
    filter_void_turns,
    gigpo_step_advantages,
    grpo,
    hicra,
    mtgrpo_advantages,
    nsr,
    psr,
    rloo,
    turn_return_advantages,
    wreinforce,
)

S = 1 / math.sqrt(2)  # GRPO advantage of a two-member group with rewards (1, 0), ddof=1


def ep(
    group="g",
    outcome=0.0,
    success=None,
    turns=((3, 0.0, ""),),
    prompt=2,
    obs=1,
    prompt_ids=None,
    action="answer",
):
    """Episode: `prompt` prompt tokens, then per turn (n_tokens, reward, state_key) with
    `obs` env tokens between turns. Loss mask is 1 exactly on turn tokens."""
    ids = list(prompt_ids) if prompt_ids is not None else [7] * prompt
    mask = [0] * len(ids)
    ts = []
    for k, (n, r, key) in enumerate(turns):
        if k:
            ids += [8] * obs
            mask += [0] * obs
        ts.append(Turn(len(ids), len(ids) + n, reward=r, state_key=key, action=action))
        ids += [1] * n
        mask += [1] * n
    succ = outcome > 0 if success is None else success
    return Episode("env", 0, group_id=group, token_ids=ids, loss_mask=mask, turns=ts,
                   outcome_reward=outcome, success=succ)  # fmt: skip


def turn_values(e: Episode, adv: np.ndarray) -> list[float]:
    vals = []
    for t in e.turns:
        seg = adv[t.start : t.end]
        assert np.allclose(seg, seg[0]), "a turn's tokens share one advantage"
        vals.append(float(seg[0]))
    return vals


# ----------------------------------------------------------------------------- pure


def test_grpo_hand_worked():
    # rewards 1,0,0,1: mean .5, unbiased std sqrt(1/3) -> +-0.5*sqrt(3)
    a = grpo([1, 0, 0, 1])
    assert a == pytest.approx([0.8660254, -0.8660254, -0.8660254, 0.8660254], abs=1e-5)
    assert grpo([1.0]) == pytest.approx([0.0])
    assert grpo([2, 2, 2]) == pytest.approx([0, 0, 0])


def test_drgrpo_and_rloo_hand_worked():
    assert drgrpo([1, 0, 0]) == pytest.approx([2 / 3, -1 / 3, -1 / 3])
    assert rloo([1, 0, 0]) == pytest.approx([1.0, -0.5, -0.5])
    assert rloo([3, 1]) == pytest.approx([2.0, -2.0])
    assert rloo([5.0]) == pytest.approx([0.0])


def test_negative_sample_reinforcement_family():
    assert wreinforce([True, False], lam=0.1) == pytest.approx([0.1, -1.0])
    assert psr([True, False]) == pytest.approx([1.0, 0.0])
    assert nsr([True, False]) == pytest.approx([0.0, -1.0])
    # W-REINFORCE is lambda * PSR + NSR
    c = [True, False, False, True]
    assert wreinforce(c, 0.3) == pytest.approx(0.3 * psr(c) + nsr(c))


def test_discounted_returns():
    assert discounted_returns([1, 0, 2], 0.5) == pytest.approx([1.5, 1.0, 2.0])


def test_turn_returns_per_index_and_pooled():
    # A: turn rewards [1, 0] + outcome 1 on the last -> [1, 1] -> returns [1.5, 1] (gamma .5)
    # B: [0, 0], outcome 0 -> returns [0, 0]
    idx = turn_return_advantages([[1, 0], [0, 0]], [1, 0], 0.5, "index")
    assert idx[0] == pytest.approx([S, S], abs=1e-5)
    assert idx[1] == pytest.approx([-S, -S], abs=1e-5)
    # pooled [1.5, 1, 0, 0]: mean .625, unbiased std .75
    pooled = turn_return_advantages([[1, 0], [0, 0]], [1, 0], 0.5, "all")
    assert np.concatenate(pooled) == pytest.approx([7 / 6, 0.5, -5 / 6, -5 / 6], abs=1e-5)
    # a turn index only one episode reaches has no baseline -> 0
    ragged = turn_return_advantages([[0], [0, 0, 1]], [1, 0], 1.0, "index")
    assert ragged[1][1:] == pytest.approx([0, 0])


def test_mtgrpo_hand_worked():
    # outcomes (1, 0) -> A_out = (+S, -S); turn 0 rewards (1, 0) -> (+S, -S); turn 1 (0, 0) -> 0
    a = mtgrpo_advantages([[1, 0], [0, 0]], [1, 0], turn_weight=0.5)
    assert a[0] == pytest.approx([S + 0.5 * S, S], abs=1e-5)
    assert a[1] == pytest.approx([-S - 0.5 * S, -S], abs=1e-5)


def test_gigpo_step_groups_and_singletons():
    keys = [["s0", "a"], ["s0", "b"], ["s0", "a"]]
    rets = [[1.0, 2.0], [0.0, 5.0], [2.0, 0.0]]
    mean_only = gigpo_step_advantages(keys, rets, std=False)
    # s0: (1, 0, 2), mean 1; a: (2, 0), mean 1; b: singleton -> 0
    assert mean_only[0] == pytest.approx([0.0, 1.0])
    assert mean_only[1] == pytest.approx([-1.0, 0.0])
    assert mean_only[2] == pytest.approx([1.0, -1.0])
    with_std = gigpo_step_advantages(keys, rets, std=True)
    assert with_std[0][1] == pytest.approx(S, abs=1e-5)  # (2, 0): std sqrt(2)
    assert with_std[1][1] == 0.0
    # a state repeated inside one episode forms a group with itself
    loop = gigpo_step_advantages([["x", "x"]], [[3.0, 1.0]], std=False)
    assert loop[0] == pytest.approx([1.0, -1.0])


def test_hicra_sign_behaviour():
    adv = np.array([1.0, 1.0, -1.0, -1.0])
    plan = np.array([True, False, True, False])
    out = hicra(adv, plan, alpha=0.2)
    assert out == pytest.approx([1.2, 1.0, -0.8, -1.0])
    assert out[0] > adv[0], "more credit for planning tokens in a success"
    assert abs(out[2]) < abs(adv[2]) and out[2] < 0, "less blame, same sign, in a failure"


# ----------------------------------------------------------------------------- episodes


def test_compute_grpo_broadcasts_and_masks():
    eps = [ep("g1", 1.0), ep("g1", 0.0), ep("g2", 1.0), ep("g2", 1.0), ep("solo", 1.0)]
    advs = compute_advantages(eps, AdvantageConfig(estimator="grpo"))
    for e, a in zip(eps, advs, strict=True):
        assert a.dtype == np.float32 and a.shape == (len(e.token_ids),)
        assert (a[np.asarray(e.loss_mask) == 0] == 0).all()
    assert advs[0][2:] == pytest.approx([S] * 3, abs=1e-5)
    assert advs[1][2:] == pytest.approx([-S] * 3, abs=1e-5)
    assert (advs[2] == 0).all() and (advs[3] == 0).all()  # equal rewards
    assert (advs[4] == 0).all()  # singleton group


def test_reward_source_total_adds_turn_rewards():
    a = ep("g", 0.0, turns=((2, 1.0, ""),))
    b = ep("g", 0.0, turns=((2, 0.0, ""),))
    out_only = compute_advantages([a, b], AdvantageConfig(estimator="drgrpo"))
    assert (out_only[0] == 0).all()
    total = compute_advantages([a, b], AdvantageConfig(estimator="drgrpo", reward_source="total"))
    assert total[0][2:] == pytest.approx([0.5, 0.5])
    assert total[1][2:] == pytest.approx([-0.5, -0.5])


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        ("rloo", (1.0, -0.5, -0.5)),
        ("wreinforce", (0.1, -1, -1)),
        ("psr", (1, 0, 0)),
        ("nsr", (0, -1, -1)),
    ],
)
def test_outcome_estimators_through_compute(estimator, expected):
    eps = [ep("g", 1.0), ep("g", 0.0), ep("g", 0.0)]
    advs = compute_advantages(eps, AdvantageConfig(estimator=estimator))
    assert [float(a[-1]) for a in advs] == pytest.approx(list(expected))


def test_wreinforce_uses_success_not_reward_scale():
    eps = [ep("g", 0.3, success=True), ep("g", 0.3, success=False)]
    advs = compute_advantages(eps, AdvantageConfig(estimator="wreinforce", wreinforce_lambda=0.5))
    assert [float(a[-1]) for a in advs] == pytest.approx([0.5, -1.0])


def test_turn_return_each_turn_gets_its_own_advantage():
    a = ep("g", 1.0, turns=((2, 1.0, ""), (3, 0.0, "")))
    b = ep("g", 0.0, turns=((2, 0.0, ""), (3, 0.0, "")))
    advs = compute_advantages([a, b], AdvantageConfig(estimator="turn_return", gamma=0.5))
    assert turn_values(a, advs[0]) == pytest.approx([S, S], abs=1e-5)
    assert turn_values(b, advs[1]) == pytest.approx([-S, -S], abs=1e-5)
    assert (advs[0][np.asarray(a.loss_mask) == 0] == 0).all()  # env tokens between turns
    pooled = compute_advantages(
        [a, b], AdvantageConfig(estimator="turn_return", gamma=0.5, turn_norm="all")
    )
    assert turn_values(a, pooled[0]) == pytest.approx([7 / 6, 0.5], abs=1e-5)


def test_mtgrpo_through_compute():
    a = ep("g", 1.0, turns=((2, 1.0, ""), (3, 0.0, "")))
    b = ep("g", 0.0, turns=((2, 0.0, ""), (3, 0.0, "")))
    advs = compute_advantages([a, b], AdvantageConfig(estimator="mtgrpo", turn_weight=1.0))
    assert turn_values(a, advs[0]) == pytest.approx([2 * S, S], abs=1e-5)
    assert turn_values(b, advs[1]) == pytest.approx([-2 * S, -S], abs=1e-5)


def test_gigpo_hand_worked_with_singleton_anchor():
    # Three rollouts of one task, gamma 1, mean_norm (no std) to keep numbers exact.
    # e0: s0 -> a, outcome 1;  e1: s0 -> b, outcome 0;  e2: s0 -> a, outcome 0.
    e0 = ep("g", 1.0, turns=((2, 0.0, "s0"), (2, 0.0, "a")))
    e1 = ep("g", 0.0, turns=((2, 0.0, "s0"), (2, 0.0, "b")))
    e2 = ep("g", 0.0, turns=((2, 0.0, "s0"), (2, 0.0, "a")))
    cfg = AdvantageConfig(estimator="gigpo", gamma=1.0, gigpo_norm="mean_norm", gigpo_omega=0.5)
    advs = compute_advantages([e0, e1, e2], cfg)
    # A_ep = R - 1/3; step returns = (1, 1), (0, 0), (0, 0)
    # s0 group (1, 0, 0): 2/3, -1/3, -1/3; a group (1, 0): 1/2, -1/2; b singleton: 0
    assert turn_values(e0, advs[0]) == pytest.approx([2 / 3 + 0.5 * 2 / 3, 2 / 3 + 0.5 * 0.5])
    assert turn_values(e1, advs[1]) == pytest.approx([-1 / 3 - 0.5 / 3, -1 / 3 + 0.0])
    assert turn_values(e2, advs[2]) == pytest.approx([-1 / 3 - 0.5 / 3, -1 / 3 - 0.5 * 0.5])


def test_gigpo_falls_back_to_observation_hash():
    # No state keys: turn 0 shares the prompt; turn 1 anchors on the env reply tokens.
    def mk(outcome, reply):
        e = ep("g", outcome, turns=((2, 0.0, ""), (2, 0.0, "")), obs=2)
        s = e.turns[1].start
        e.token_ids[s - 2 : s] = reply
        return e

    e0, e1, e2 = mk(1.0, [5, 5]), mk(0.0, [5, 5]), mk(0.0, [6, 6])
    cfg = AdvantageConfig(estimator="gigpo", gamma=1.0, gigpo_norm="mean_norm", gigpo_omega=1.0)
    advs = compute_advantages([e0, e1, e2], cfg)
    a_ep = [2 / 3, -1 / 3, -1 / 3]
    assert turn_values(e0, advs[0]) == pytest.approx([a_ep[0] + 2 / 3, a_ep[0] + 0.5])
    assert turn_values(e1, advs[1]) == pytest.approx([a_ep[1] - 1 / 3, a_ep[1] - 0.5])
    assert turn_values(e2, advs[2]) == pytest.approx([a_ep[2] - 1 / 3, a_ep[2]])  # singleton


def test_hicra_through_compute_with_masks():
    eps = [ep("g", 1.0, turns=((4, 0.0, ""),)), ep("g", 0.0, turns=((4, 0.0, ""),))]
    masks = [np.array([0, 0, 1, 1, 0, 0], bool)] * 2
    base = compute_advantages(eps, AdvantageConfig())
    out = compute_advantages(
        eps, AdvantageConfig(hicra=True, hicra_alpha=0.2), planning_masks=masks
    )
    assert out[0][2:] == pytest.approx([1.2 * S, 1.2 * S, S, S], abs=1e-5)
    assert out[1][2:] == pytest.approx([-0.8 * S, -0.8 * S, -S, -S], abs=1e-5)
    assert (out[0][:2] == 0).all() and (base[0][:2] == 0).all()


def _char_tok(alphabet: str) -> Tokenizer:
    vocab = {c: i for i, c in enumerate(sorted(set(alphabet)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=next(iter(vocab))))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok


def _text_episode(tok, group, outcome, text, prompt="~~"):
    ids = tok.encode(prompt).ids + tok.encode(text).ids
    mask = [0] * len(prompt) + [1] * len(text)
    turn = Turn(len(prompt), len(ids), text=text, action="answer")
    return Episode("env", 0, group_id=group, token_ids=ids, loss_mask=mask, turns=[turn],
                   outcome_reward=outcome, success=outcome > 0)  # fmt: skip


def test_hicra_and_span_weights_with_a_tokenizer():
    text = "<think>ok, notice that</think><answer>1</answer>"
    tok = _char_tok(text + "~")
    eps = [_text_episode(tok, "g", 1.0, text), _text_episode(tok, "g", 0.0, text)]
    with pytest.raises(TirgymError, match="tokenizer"):
        compute_advantages(eps, AdvantageConfig(hicra=True))
    out = compute_advantages(eps, AdvantageConfig(hicra=True), tokenizer=tok)
    i = 2 + text.index("notice that")
    assert out[0][i] == pytest.approx(1.2 * S, abs=1e-5)
    assert out[0][i - 1] == pytest.approx(S, abs=1e-5)  # the space before the gram
    assert out[1][i] == pytest.approx(-0.8 * S, abs=1e-5)
    w = AdvantageConfig(span_weights={"think": 0.5, "answer": 2.0})
    sw = compute_advantages(eps, w, tokenizer=tok)
    a0 = 2 + text.index("<answer>")
    assert sw[0][2] == pytest.approx(0.5 * S, abs=1e-5)
    assert sw[0][a0:] == pytest.approx([2 * S] * (len(text) - a0 + 2), abs=1e-5)


def test_config_rejects_unknown_fields_and_estimators():
    with pytest.raises(ValidationError):
        AdvantageConfig(estimator="ppo")
    with pytest.raises(ValidationError):
        AdvantageConfig(gama=0.9)


def test_filters():
    void = ep("g", 1.0, action="none")
    ok = ep("g", 0.0)
    assert filter_void_turns([void, ok]) == [ok]
    flat = [ep("a", 1.0), ep("a", 0.0), ep("b", 1.0), ep("b", 1.0), ep("c", 0.0)]
    kept = dynamic_sampling_keep(flat)
    assert kept == flat[:2]
    groups = [flat[:2], flat[2:4], flat[4:]]
    assert dynamic_sampling_keep(groups) == [flat[:2]]
    shaped = [ep("d", 0.0, turns=((2, 0.5, ""),)), ep("d", 0.0)]
    assert dynamic_sampling_keep(shaped) == []
    assert dynamic_sampling_keep(shaped, reward_source="total") == shaped
