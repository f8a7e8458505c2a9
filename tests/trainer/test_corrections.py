"""Off-policy corrections, checked against hand-worked ratios, and their effect on the loss."""

import math

import pytest
import torch

from tirgym.errors import TirgymError
from tirgym.trainer.config import build_config
from tirgym.trainer.corrections import (
    CorrectionConfig,
    correction_weights,
    geometric_keep,
    icepop_weights,
    mis_keep,
    rollout_log_ratio,
    tis_weights,
)
from tirgym.trainer.losses import LossParams, policy_loss

RHO = [0.4, 0.6, 1.0, 1.5, 3.0]  # pi_old / pi_s of five sampled tokens


def lr(values=RHO):
    return torch.tensor([[math.log(v) for v in values]], dtype=torch.float64)


def close(a, b):
    assert torch.allclose(a, torch.tensor([b], dtype=a.dtype), atol=1e-9), a


def test_log_ratio_ignores_mask_zero_positions():
    old = torch.tensor([[-1.0, float("inf"), -2.0]])
    samp = torch.tensor([[-1.5, float("nan"), -2.0]])
    got = rollout_log_ratio(old, samp, torch.tensor([[1, 0, 1]]))
    assert got.tolist() == [[0.5, 0.0, 0.0]]


def test_truncated_is_caps_the_weight_and_leaves_small_ratios():
    close(tis_weights(lr(), 2.0), [0.4, 0.6, 1.0, 1.5, 2.0])


def test_masked_is_drops_both_tails_symmetrically():
    # [1/2, 2]: 0.4 < 0.5 and 3.0 > 2 go, the rest stay (weight 1, not rho)
    assert mis_keep(lr(), 2.0).tolist() == [[False, True, True, True, False]]


def test_icepop_weights_inside_the_band_and_zeroes_outside():
    close(icepop_weights(lr(), 0.5, 2.5), [0.0, 0.6, 1.0, 1.5, 0.0])


def test_geometric_mask_judges_the_whole_sequence():
    # row 0: sqrt(1.5 * 3.0) = 2.12 > 2 -> dropped; row 1: sqrt(0.6 * 3.0) = 1.34 -> kept,
    # although its 3.0 token alone would fail a token-level mask with the same bound
    log_r = torch.log(torch.tensor([[1.5, 3.0, 9.0], [0.6, 3.0, 9.0]], dtype=torch.float64))
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])  # the 9.0s are not sampled tokens
    keep = geometric_keep(log_r, mask, 2.0)
    assert keep.tolist() == [[False] * 3, [True] * 3]


def test_composed_weights_and_counts():
    old, samp = lr() - 3.0, torch.full((1, 5), -3.0, dtype=torch.float64)
    mask = torch.ones(1, 5)
    w, s = correction_weights(old, samp, mask, CorrectionConfig(tis_cap=2.0, mis_cap=2.4))
    # TIS then MIS(2.4): 0.4 < 1/2.4 is dropped, 3.0 > 2.4 is dropped, 1.5 stays unclipped
    close(w, [0.0, 0.6, 1.0, 1.5, 0.0])
    assert (s.tokens, s.masked, s.clipped) == (5.0, 2.0, 0.0)
    assert s.ratio_sum == pytest.approx(sum(RHO))
    assert s.ratio_max == pytest.approx(3.0)
    w, s = correction_weights(old, samp, mask, CorrectionConfig(tis_cap=2.0))
    close(w, [0.4, 0.6, 1.0, 1.5, 2.0])
    assert (s.masked, s.clipped) == (0.0, 1.0)


def test_no_correction_gives_no_weights_but_still_measures_the_gap():
    w, s = correction_weights(lr(), torch.zeros(1, 5, dtype=torch.float64), torch.ones(1, 5), None)
    assert w is None
    assert s.masked == 0 and s.ratio_max == pytest.approx(3.0)


def test_masked_tokens_get_no_gradient_and_keep_the_denominator():
    lp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.ones(1, 3)
    weights = torch.tensor([[1.0, 0.0, 0.5]])
    p = LossParams()
    loss, _ = policy_loss(lp, lp.detach(), adv, mask, p, weights=weights)
    loss.backward()
    # ratio 1 at the first pass: per-token loss -A * w, token-mean over all 3 tokens
    assert float(loss.detach()) == pytest.approx(-(1.0 * 1.0 + 2.0 * 0.5) / 3)
    assert lp.grad[0].tolist() == pytest.approx([-1 / 3, 0.0, -1 / 3])


def test_config_section_validates():
    cfg = build_config({"envs": ["tirgym/GuessNumber-v0"], "correction": {"icepop": [0.5, 5]}})
    assert cfg.correction.icepop == (0.5, 5.0)
    for bad in ({"icepop": [2, 5]}, {"tis_cap": 2, "icepop": [0.5, 5]}, {"mis_cap": 0.5}):
        with pytest.raises(TirgymError, match="correction"):
            build_config({"envs": ["tirgym/GuessNumber-v0"], "correction": bad})
