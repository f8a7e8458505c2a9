import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tirgym.protocol import TurnFormat, parse_turn, render_format_instructions, scan_turn

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


TAGS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<tool_call>",
    "</tool_call>",
    "```python\n",
    "```",
    "{",
    "}",
    '"name"',
    ":",
    '"arguments"',
    '"python"',
    "\n",
]
fragments = st.one_of(st.sampled_from(TAGS), st.text(max_size=30))


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fragments, max_size=40), st.sampled_from([TurnFormat(), PY, TurnFormat(tools=())]))
def test_fuzz_never_raises_and_is_bounded(parts, fmt):
    text = "".join(parts)
    start = time.thread_time()  # CPU time of this thread: other load cannot fail it
    t = parse_turn(text, fmt)
    assert time.thread_time() - start < 0.5
    assert t.ok or all(isinstance(e, str) and e for e in t.errors)
    assert (t.answer is not None) + bool(t.tool_calls) <= 1


def test_huge_adversarial_input_is_linear():
    text = "<answer>" * 100_000 + "<think>" * 100_000 + "```python" * 50_000
    start = time.thread_time()
    parse_turn(text, PY)
    assert time.thread_time() - start < 1.0


@pytest.mark.parametrize(
    "text",
    [
        "```python" * 111_112,
        "<answer>x</answer>" * 55_556,
        "```python\n1\n```" * 62_500 + "<answer>",
        "<tool_call>{}</tool_call>" * 40_000,
    ],
    ids=["python-opens", "answers", "python-blocks", "tool-calls"],
)
def test_one_megabyte_of_repeated_actions_is_linear(text):
    start = time.thread_time()
    t = parse_turn(text, PY)
    assert time.thread_time() - start < 2.0  # about 0.2 s here; quadratic took minutes
    assert t.extra_actions > 10_000


def test_scan_turn_regions():
    text = "<think>plan <answer>no</answer></think>text ```python\nx\n``` <answer>4</answer>"
    regions = scan_turn(text, PY)
    assert [r.kind for r in regions] == ["think", "python", "answer"]
    think, py, ans = regions
    assert (think.start, text[think.body_start : think.body_end]) == (0, "plan <answer>no</answer>")
    assert (
        text[py.start : py.end] == "```python\nx\n```"
        and text[ans.body_start : ans.body_end] == "4"
    )
    assert [r.kind for r in scan_turn(text)] == ["think", "answer"]  # blocks only where enabled
    opened = scan_turn("<answer>1</answer><think>unclosed")
    assert [(r.kind, r.closed) for r in opened] == [("think", False), ("answer", True)]
    assert scan_turn("reasoning</think>")[0].body_start == 0  # the template opened <think>


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fragments, max_size=30), st.sampled_from([TurnFormat(), PY]))
def test_parse_turn_reads_the_first_scanned_action(parts, fmt):
    text = "".join(parts)
    t = parse_turn(text, fmt)
    actions = [r for r in scan_turn(text, fmt) if r.kind != "think"]
    assert t.extra_actions == max(0, len(actions) - 1)
    if t.answer is not None:
        assert actions[0].kind == "answer"
    if t.tool_calls:
        assert actions[0].kind in ("tool_call", "python")
