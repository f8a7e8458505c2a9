"""analyze_run: PNG plots and a markdown summary from metrics.jsonl."""

from __future__ import annotations

import json

import pytest

from tirgym.errors import TirgymError
from tirgym.trainer.analyze import analyze_run


def test_analyze_run_writes_plots_and_summary(tmp_path):
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for s in range(9):
            row = {"step": s, "success_rate": s / 10, "response_len_mean": 100 + s,
                   "response_len_p95": 150 + s, "token_entropy": 1.0 - 0.05 * s,
                   "semantic_entropy": 0.5 + 0.1 * s, "planning_token_ratio": 0.01 * s}  # fmt: skip
            f.write(json.dumps(row) + "\n")
        f.write('{"step": 9, "success_')  # torn last line
    summary = analyze_run(tmp_path)
    text = summary.read_text()
    assert "Steps logged: 9" in text
    assert "| success_rate | 0 | 0.8 |" in text
    assert "Token entropy fell (0.95 -> 0.65) while semantic entropy rose (0.6 -> 1.2)" in text
    for name in ("success", "response_length", "entropy", "planning"):
        png = tmp_path / "analysis" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name}.png)" in text


def test_analyze_run_errors(tmp_path):
    with pytest.raises(TirgymError, match="metrics.jsonl"):
        analyze_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(TirgymError):
        analyze_run(tmp_path)
