"""benchmarks/ablate_credit.py runs end to end at its smallest setting."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ablate_credit.py"


def load_script():
    spec = importlib.util.spec_from_file_location("ablate_credit", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mean_std_and_unknown_method(tmp_path):
    mod = load_script()
    assert mod.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))
    assert mod.mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(SystemExit):
        mod.main(["--smallest", "--methods", "grpo,ppo", "--out", str(tmp_path / "x"), "--quiet"])


@pytest.mark.slow
def test_smallest_setting_runs_end_to_end(tmp_path, capsys):
    mod = load_script()
    out = tmp_path / "abl"
    results = mod.main(["--smallest", "--out", str(out), "--quiet"])
    methods = ["grpo", "grpo+hicra", "turn_return", "mtgrpo", "gigpo", "psr", "nsr"]

    data = json.loads((out / "ablation.json").read_text())
    assert data["settings"]["steps"] == 2 and data["settings"]["seeds"] == 1
    assert set(data["summary"]) == {*methods, "start"}
    seed0 = data["seeds"]["0"]["methods"]
    for m in methods:
        run = seed0[m]
        assert 0.0 <= run["heldout_success"] <= 1.0
        assert len(run["train_reward"]) == 2  # equal budgets: every method trained 2 steps
        assert data["summary"][m]["heldout_success_mean"] == run["heldout_success"]
        cfg = (Path(run["run_dir"]) / "config.yaml").read_text()
        assert "steps: 2" in cfg
    # each method really used its estimator
    assert "estimator: gigpo" in (Path(seed0["gigpo"]["run_dir"]) / "config.yaml").read_text()
    assert "hicra: true" in (Path(seed0["grpo+hicra"]["run_dir"]) / "config.yaml").read_text()
    assert results["summary"] == data["summary"]

    assert set(data["paired_vs_grpo"]) == set(methods) - {"grpo"}
    png = out / "ablation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    for m in methods:
        assert m in printed
    assert "held-out success" in printed


@pytest.mark.slow
def test_an_ablation_resumes_where_it_stopped(tmp_path, monkeypatch):
    """A second sitting keeps the finished runs and trains only the missing ones."""
    mod = load_script()
    out, res = str(tmp_path / "abl"), str(tmp_path / "kept" / "ablation.json")
    first = mod.main(
        ["--smallest", "--methods", "grpo,psr", "--out", out, "--results", res, "--quiet"]
    )
    calls = []
    real = mod.run_method
    monkeypatch.setattr(
        mod,
        "run_method",
        lambda a, s, seed, m, *rest: calls.append(m) or real(a, s, seed, m, *rest),
    )
    args = ["--smallest", "--methods", "grpo,psr,nsr", "--out", out, "--results", res]
    second = mod.main([*args, "--quiet", "--resume"])
    assert calls == ["nsr"]
    assert second["seeds"]["0"]["methods"]["grpo"] == first["seeds"]["0"]["methods"]["grpo"]
    assert set(second["paired_vs_grpo"]) == {"psr", "nsr"}
    with pytest.raises(SystemExit):  # a results file of another task is not mixed in
        mod.main([*args, "--task", "maze", "--quiet", "--resume"])
