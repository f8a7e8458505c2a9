"""A real (tiny, random) transformers model through `evaluate` and `tirgym eval --backend hf`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tirgym.eval import evaluate

from .test_evaluate import assert_outputs, no_duplicates, run_cli, strip_wall

pytest.importorskip("tirgym.agents.models")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tirgym.agents.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


LIMITS = dict(seeds="1", samples=2, max_new_tokens=12, max_turns=2, batch_size=8)


@pytest.mark.slow
def test_hf_tiny_model_eval_api(tiny_model: Path, tmp_path: Path) -> None:
    from tirgym.agents.hf_backend import HFPolicy

    policy = HFPolicy.from_pretrained(tiny_model)
    out = tmp_path / "hf"
    res = evaluate(policy, suite="smoke", out_dir=out, policy_label=f"hf:{tiny_model}", **LIMITS)
    saved = assert_outputs(out)
    o = saved["overall"]
    assert o["episodes"] == len(no_duplicates(out)) == len(saved["entries"]) * 1 * 2
    assert o["response_tokens"] > 0 and 1 <= o["turns"] <= 2
    assert all(e.trainable and sum(e.loss_mask) > 0 for e in res.episodes)
    ran: list = []
    again = evaluate(
        policy,
        suite="smoke",
        out_dir=out,
        policy_label=f"hf:{tiny_model}",
        on_episode=ran.append,
        **LIMITS,
    )
    assert ran == [] and strip_wall(again.results) == strip_wall(saved)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("tirgym.agents.backends") is None,
    reason="tirgym.agents.backends (load_policy) has not landed yet",
)
def test_hf_tiny_model_eval_cli(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    rc = run_cli(
        [
            "eval",
            "--model",
            str(tiny_model),
            "--backend",
            "hf",
            "--suite",
            "smoke",
            "--seeds",
            "1",
            "--samples",
            "2",
            "--max-new-tokens",
            "12",
            "--max-turns",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    res = assert_outputs(out)
    assert res["overall"]["episodes"] == len(res["entries"]) * 1 * 2
