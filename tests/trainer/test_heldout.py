"""Held-out evals at several temperatures: per-temperature success with task-clustered 95%
intervals and tool-use rates, and the before/after comparison summary.json reports."""

import json

import pytest
from train_helpers import guess_config

from tirgym.trainer.config import TrainConfig
from tirgym.trainer.loop import train
from tirgym.trainer.run_log import heldout_gains


def test_sampled_and_greedy_evals_report_intervals_and_the_gain(tiny_path, tmp_path):
    cfg = guess_config(
        tiny_path,
        tmp_path / "run",
        seed=0,
        steps=1,
        eval={"num_seeds": 3, "samples": 2, "temperature": [1.0, 0], "max_new_tokens": 6},
        log={"progress": False},
    )
    run = train(cfg, quiet=True)
    s = json.loads((run / "summary.json").read_text())
    before, after = s["eval_before"], s["eval_after"]
    for res in (before, after):
        # sampled: 3 seeds x 2 samples; greedy: one sample a seed (the others would repeat it)
        assert res["eval/T1/episodes"] == 6 and res["eval/greedy/episodes"] == 3
        assert res["eval/success"] == res["eval/T1/success"]  # the first temperature leads
        for tag in ("T1", "greedy"):
            lo, p, hi = (res[f"eval/{tag}/success{k}"] for k in ("_lo", "", "_hi"))
            assert 0.0 <= lo <= p <= hi <= 1.0 and hi - lo > 0.1  # 3 tasks: a wide interval
            assert res[f"eval/{tag}/tool_use_rate"] == 0.0  # GuessNumber has no tools
    assert set(s["heldout"]) == {"T1", "greedy"}
    g = s["heldout"]["greedy"]
    assert g["gain_points"] == pytest.approx(
        (after["eval/greedy/success"] - before["eval/greedy/success"]) * 100
    )
    assert g["episodes"] == {"before": 3, "after": 3}


def test_gain_reports_whether_the_intervals_overlap():
    before = {"eval/T1/success": 0.2, "eval/T1/success_lo": 0.15, "eval/T1/success_hi": 0.26}
    apart = {"eval/T1/success": 0.5, "eval/T1/success_lo": 0.43, "eval/T1/success_hi": 0.57}
    close = {"eval/T1/success": 0.3, "eval/T1/success_lo": 0.24, "eval/T1/success_hi": 0.37}
    g = heldout_gains(before, apart)["T1"]
    assert g["gain_points"] == pytest.approx(30.0) and g["intervals_overlap"] is False
    assert heldout_gains(before, close)["T1"]["intervals_overlap"] is True
    # per-env keys ("eval/<label>/success") have no interval: not a temperature
    assert heldout_gains({"eval/env/success": 0.1}, {"eval/env/success": 0.2}) == {}


@pytest.mark.parametrize("bad", [[], [1.0, 1.0], -0.5, [0.5, -1]])
def test_bad_eval_temperatures_are_one_clear_error(bad):
    env = {"id": "tirgym/GuessNumber-v0"}
    with pytest.raises(ValueError, match="eval.temperature"):
        TrainConfig.model_validate({"envs": [env], "eval": {"temperature": bad}})
