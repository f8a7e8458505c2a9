"""The turn protocol on real chat templates: SmolLM2's ChatML (no tools, no tool role), a
Qwen2.5-style Hermes template (tools=, tool results in a user turn) and a Qwen3-style
template that strips past <think> blocks. Episodes must stay token-exact on each."""

from pathlib import Path

import agents_helpers as helpers
import pytest
from agents_helpers import assert_token_exact
from transformers import AutoTokenizer

from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.chat import ChatRenderer, supports_tool_role, supports_tools
from tirgym.agents.hf_backend import HFPolicy

TEMPLATES = Path(__file__).parents[1] / "data" / "chat_templates"
NAMES = ["smollm2_chatml", "qwen25_hermes", "qwen3_think"]
TOOL_TURNS = [
    '<tool_call>{"name": "echo", "arguments": {"x": 1}}</tool_call>',
    "<answer>done</answer>",
]
LISTING = "Available tools (JSON schemas):"


def tokenizer_with(tiny_path, name):
    tok = AutoTokenizer.from_pretrained(tiny_path)
    tok.chat_template = (TEMPLATES / f"{name}.jinja").read_text()
    return tok


def test_template_capabilities_are_detected(tiny_path):
    caps = {}
    for name in NAMES:
        tok = tokenizer_with(tiny_path, name)
        caps[name] = (supports_tools(tok), supports_tool_role(tok))
    assert caps == {
        "smollm2_chatml": (False, False),
        "qwen25_hermes": (True, True),
        "qwen3_think": (True, True),
    }


@pytest.mark.parametrize("name", NAMES)
def test_tool_episode_renders_through_the_template_and_is_token_exact(tiny_path, name):
    tok = tokenizer_with(tiny_path, name)
    pol = helpers.TokenScriptPolicy(tok, TOOL_TURNS)
    ep = rollout(pol, [Task("test/Tool-v0", 0)])[0]
    assert ep.success and [t.action for t in ep.turns] == ["tool_call", "answer"]
    assert_token_exact(ep, tok)
    for (prompt,) in pol.calls:  # every prompt the policy saw is a prefix of the trained sequence
        assert ep.token_ids[: len(prompt)] == prompt
    text = tok.decode(ep.token_ids)
    # The env's tool reply: a user turn holding a <tool_response> block on all three.
    reply = "<|im_start|>user\n<tool_response>\necho: {'x': 1}\n</tool_response><|im_end|>"
    assert reply in text and "<|im_start|>tool" not in text
    if name == "smollm2_chatml":  # no tools=: the env's listing stays in the system prompt
        assert LISTING in text and '"name": "echo"' in text
    else:  # tools= rendered once, by the template; the env's own listing left out
        system = text.split("<|im_end|>")[0]
        assert "# Tools" in system and LISTING not in system
        assert system.count('"name": "echo"') == 1
        assert "To call a tool, write <tool_call>" in text  # the protocol paragraph stays
    assert ep.messages[3]["role"] == "tool"  # the episode keeps the env's roles
    if name != "qwen3_think":  # prefix-stable: the sequence is the template's full rendering
        r = ChatRenderer(
            tok, [{"name": "echo", "description": "Echo text.", "parameters": {"type": "object"}}]
        )
        assert r.prefix_stable and ep.info["template_prefix_stable"]
        full = r.render(ep.messages[:-1], gen=False)
        assert text == full.removesuffix("<|im_end|>\n")


def test_qwen3_style_keeps_the_sampled_thinking_of_earlier_turns(tiny_path):
    tok = tokenizer_with(tiny_path, "qwen3_think")
    texts = [f"<think>reason {i}</think><answer>{g}</answer>" for i, g in enumerate((50, 25, 12))]
    ep = rollout(
        helpers.TokenScriptPolicy(tok, texts),
        [Task("tirgym/GuessNumber-v0", 7)],
        limits=RolloutLimits(max_turns=3),
    )[0]
    assert_token_exact(ep, tok)
    assert ep.info["template_prefix_stable"] is False
    text = tok.decode(ep.token_ids)
    assert all(f"<think>reason {i}</think>" in text for i in range(3))
    assert "<think>reason 0</think>" not in tok.apply_chat_template(
        ep.messages[:-1], tokenize=False
    )


@pytest.mark.parametrize("name", NAMES)
def test_sampled_rollouts_match_the_recompute_on_each_template(tiny_path, hf_policy, name):
    tok = tokenizer_with(tiny_path, name)
    pol = HFPolicy(hf_policy.model, tok)
    tasks = [Task("test/Tool-v0", 1, {"max_turns": 3}), Task("tirgym/GuessNumber-v0", 2)]
    eps = rollout(
        pol,
        tasks,
        group_size=2,
        params=SamplingParams(seed=4),
        limits=RolloutLimits(max_turns=3, max_new_tokens=16),
    )
    for ep in eps:
        assert ep.trainable and ep.turns
        assert_token_exact(ep, tok, hf_policy.model)
