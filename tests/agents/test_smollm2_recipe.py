"""The SmolLM2 recipe's config, and the tool-use metrics it is judged by (no download)."""

import re
from pathlib import Path

from tirgym.episode import Episode, Turn
from tirgym.trainer import load_config
from tirgym.trainer.metrics import CURVES, episode_metrics

RECIPE = Path(__file__).parents[2] / "configs" / "smollm2_tir.yaml"


def test_recipe_config_loads_and_adapts_only_the_top_layers():
    cfg = load_config(RECIPE)
    assert cfg.model == "smollm2" and cfg.envs[0].id == "tirgym/MathTIR-v0"
    # the bar: >= 200 held-out episodes, sampled (T=1) and greedy, after an SFT warm start
    assert cfg.eval.num_seeds * cfg.eval.samples >= 200 and cfg.eval.num_seeds >= 200
    assert cfg.eval.temperatures() == [1.0, 0.0]
    assert cfg.sft is not None and cfg.sft.demos is not None
    pattern = cfg.lora.target_modules
    names = [
        f"model.layers.{i}.{m}"
        for i in range(30)
        for m in ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj")
    ]
    adapted = {int(n.split(".")[2]) for n in names if re.fullmatch(pattern, n)}
    assert adapted == set(range(22, 30))
    assert not re.fullmatch(pattern, "lm_head") and not re.fullmatch(pattern, "model.embed_tokens")


def _episode(tool_calls: int, success: bool) -> Episode:
    ep = Episode(env_id="tirgym/MathTIR-v0", seed=0)
    ep.turns = [Turn(start=0, end=1, text="x", tool_calls=tool_calls)]
    ep.success = success
    return ep


def test_tool_use_rate_and_success_when_the_tool_was_used_are_logged_and_plotted():
    eps = [_episode(1, True), _episode(1, False), _episode(0, True), _episode(0, False)]
    m = episode_metrics(eps)
    assert m["tool_use_rate"] == 0.5 and m["success_when_tool_used"] == 0.5
    assert "success_when_tool_used" not in episode_metrics([_episode(0, True)])
    plotted = {k for _, keys in CURVES for k in keys}
    assert {"tool_use_rate", "success_when_tool_used"} <= plotted
