"""Length-control reward transforms: DAPO overlong shaping and LAPO-style in-band reward."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tirgym.episode import Episode
from tirgym.rewards.length import (
    InBandConfig,
    LengthRewardConfig,
    OverlongConfig,
    apply_in_band,
    apply_length_rewards,
    apply_overlong,
    in_band_bonus,
    in_band_bonuses,
    overlong_penalty,
)


def ep(n: int, success: bool = True, group: str = "g", outcome: float = 1.0) -> Episode:
    return Episode("env", 0, group_id=group, token_ids=[1] * (n + 3), loss_mask=[0] * 3 + [1] * n,
                   outcome_reward=outcome, success=success)  # fmt: skip


def test_overlong_penalty_hand_worked():
    # L_max 100, buffer 20: free up to 80, linear to -1 at 100, -1 beyond
    assert overlong_penalty(50, 100, 20) == 0.0
    assert overlong_penalty(80, 100, 20) == 0.0
    assert overlong_penalty(90, 100, 20) == pytest.approx(-0.5)
    assert overlong_penalty(100, 100, 20) == pytest.approx(-1.0)
    assert overlong_penalty(150, 100, 20) == pytest.approx(-1.0)
    assert overlong_penalty(90, 100, 20, factor=0.5) == pytest.approx(-0.25)


def test_in_band_hand_worked():
    # correct lengths 10..50: P30 = 22, P70 = 38 (linear interpolation); width 16
    cfg = InBandConfig(weight=0.7)
    b = in_band_bonuses([10, 20, 30, 40, 50, 30], [True] * 5 + [False], cfg)
    assert b == pytest.approx([0.175, 0.6125, 0.7, 0.6125, 0.175, 0.0])
    assert in_band_bonus(100, 22, 38, 0.7, 16) == 0.0
    # narrow band: decay over min_width instead of a zero width
    assert in_band_bonus(14, 10, 10, 1.0, 8) == pytest.approx(0.5)
    assert in_band_bonuses([5, 6], [False, False], cfg) == pytest.approx([0, 0])


def test_transforms_add_to_outcome_record_terms_and_copy():
    eps = [ep(90), ep(50, success=False, outcome=0.0)]
    out = apply_overlong(eps, OverlongConfig(enabled=True, max_len=100, buffer=20))
    assert [e.outcome_reward for e in out] == pytest.approx([0.5, 0.0])
    assert out[0].info["length_reward"] == {"overlong": pytest.approx(-0.5)}
    assert eps[0].outcome_reward == 1.0 and "length_reward" not in eps[0].info
    assert out[0].success is True


def test_in_band_is_per_group():
    eps = [ep(10, group="a"), ep(30, group="a"), ep(1000, group="b")]
    out = apply_in_band(eps, InBandConfig(weight=1.0, low_pct=0, high_pct=100))
    assert [e.outcome_reward - 1.0 for e in out] == pytest.approx([1.0, 1.0, 1.0])


def test_apply_length_rewards_config():
    eps = [ep(95), ep(10)]
    assert apply_length_rewards(eps, LengthRewardConfig()) == eps  # all off: no change
    cfg = LengthRewardConfig(
        overlong={"enabled": True, "max_len": 100, "buffer": 10},
        in_band={"enabled": True, "weight": 0.5, "low_pct": 0, "high_pct": 0},
    )
    out = apply_length_rewards(eps, cfg)
    assert out[0].info["length_reward"]["overlong"] == pytest.approx(-0.5)
    assert out[1].info["length_reward"]["in_band"] == pytest.approx(0.5)
    with pytest.raises(ValidationError):
        OverlongConfig(max_len=10, buffer=20)
    with pytest.raises(ValidationError):
        LengthRewardConfig(overlong={"maxlen": 3})


def test_the_length_section_shapes_training_rewards(tiny_path, tmp_path):
    from tirgym.episode import load_jsonl
    from tirgym.trainer.loop import train

    run = train(
        {
            "model": tiny_path,
            "steps": 1,
            "output_dir": str(tmp_path / "run"),
            "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 4}}],
            "rollout": {"group_size": 2, "tasks_per_step": 1, "max_new_tokens": 8},
            "length": {"overlong": {"enabled": True, "max_len": 4, "buffer": 2}},
            "eval": {"before": False, "after": False},
            "log": {"progress": False, "plot": False},
        },
        quiet=True,
    )
    eps = load_jsonl(run / "episodes.jsonl")
    assert eps
    for e in eps:
        expect = overlong_penalty(sum(e.loss_mask), max_len=4, buffer=2)
        assert e.info["length_reward"] == {"overlong": pytest.approx(expect)}
    assert any(e.info["length_reward"]["overlong"] < 0 for e in eps)


def test_the_length_section_is_validated():
    from tirgym.errors import TirgymError
    from tirgym.trainer.config import build_config

    env = {"envs": ["tirgym/GuessNumber-v0"]}
    assert not build_config(env).length.overlong.enabled
    with pytest.raises(TirgymError, match=r"length\.overlong\.buffer"):
        build_config({**env, "length": {"overlong": {"max_len": 4, "buffer": 8}}})
