import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tirgym.protocol import TurnFormat, parse_turn, render_format_instructions

PY = TurnFormat(tools=("python",), allow_python_block=True)


def test_think_then_answer():
    t = parse_turn("<think>2+2 is 4</think>\n<answer> 4 </answer>")
    assert t.ok and t.think == "2+2 is 4" and t.answer == "4" and t.action == "answer"


def test_think_opened_by_template():
    t = parse_turn("reasoning here</think><answer>x</answer>")
    assert t.think == "reasoning here" and t.answer == "x"


def test_tool_call_json():
    body = json.dumps({"name": "python", "arguments": {"code": "print(1)"}})
    t = parse_turn(f"<think>run it</think><tool_call>{body}</tool_call>", PY)
    assert t.ok and t.action == "tool_call"
    assert t.tool_calls[0].name == "python" and t.tool_calls[0].arguments == {"code": "print(1)"}


def test_double_encoded_arguments_accepted():
    body = json.dumps({"name": "python", "arguments": json.dumps({"code": "1"})})
    t = parse_turn(f"<tool_call>{body}</tool_call>", PY)
    assert t.ok and t.tool_calls[0].arguments == {"code": "1"}


def test_python_block_only_where_enabled():
    text = "Let me compute.\n```python\nprint(2**10)\n```"
    assert parse_turn(text, PY).tool_calls[0].arguments["code"] == "print(2**10)"
    t = parse_turn(text, TurnFormat())
    assert not t.ok and "No action found" in t.errors[0]


def test_invalid_json_message():
    t = parse_turn("<tool_call>{name: python}</tool_call>", PY)
    assert not t.ok and "Invalid JSON" in t.errors[0] and "double-quoted" in t.errors[0]


def test_unknown_tool_lists_available():
    t = parse_turn('<tool_call>{"name": "bash", "arguments": {}}</tool_call>', PY)
    assert t.errors == ["Unknown tool 'bash'. Available tools: python."]


def test_no_tools_env_rejects_calls():
    t = parse_turn('<tool_call>{"name": "x", "arguments": {}}</tool_call>', TurnFormat(tools=()))
    assert "none in this environment" in t.errors[0]


def test_unclosed_tags():
    assert "Unclosed answer" in parse_turn("<answer>5").errors[0]
    assert "Unclosed tool_call" in parse_turn('<tool_call>{"name"', PY).errors[0]
    t = parse_turn("<think>still thinking")
    assert "Unclosed <think>" in t.errors[0]


def test_empty_answer():
    assert "Empty <answer>" in parse_turn("<answer>  </answer>").errors[0]


def test_multiple_actions_policies():
    text = "<answer>1</answer><answer>2</answer>"
    first = parse_turn(text)
    assert first.ok and first.answer == "1" and first.extra_actions == 1
    strict = parse_turn(text, TurnFormat(multiple_actions="error"))
    assert not strict.ok and "exactly one action" in strict.errors[0]


def test_text_after_action_policy():
    text = "<answer>1</answer> and some chatter"
    assert parse_turn(text).ok
    t = parse_turn(text, TurnFormat(text_after_action="error"))
    assert "Text after the action" in t.errors[0]


def test_actions_inside_think_are_ignored():
    t = parse_turn("<think>maybe <answer>3</answer>?</think><answer>4</answer>")
    assert t.answer == "4"


def test_void_turn():
    t = parse_turn("I am just chatting.")
    assert t.is_void and not t.ok


def test_format_instructions_list_tools():
    schema = {"name": "python", "description": "run code", "parameters": {"type": "object"}}
    text = render_format_instructions([schema])
    assert "<tool_call>" in text and '"name": "python"' in text and "<answer>" in text


def test_deeply_nested_json_does_not_raise():
    t = parse_turn("<tool_call>" + "[" * 200_000 + "</tool_call>", PY)
    assert not t.ok


TAGS = ["<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>",
        "```python\n", "```", "{", "}", '"name"', ":", '"arguments"', '"python"', "\n"]
fragments = st.one_of(st.sampled_from(TAGS), st.text(max_size=30))


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fragments, max_size=40), st.sampled_from([TurnFormat(), PY, TurnFormat(tools=())]))
def test_fuzz_never_raises_and_is_bounded(parts, fmt):
    text = "".join(parts)
    start = time.perf_counter()
    t = parse_turn(text, fmt)
    assert time.perf_counter() - start < 0.5
    assert t.ok or all(isinstance(e, str) and e for e in t.errors)
    assert (t.answer is not None) + bool(t.tool_calls) <= 1


def test_huge_adversarial_input_is_linear():
    text = "<answer>" * 100_000 + "<think>" * 100_000 + "```python" * 50_000
    start = time.perf_counter()
    parse_turn(text, PY)
    assert time.perf_counter() - start < 1.0
