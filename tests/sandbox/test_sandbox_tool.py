"""The python tool: schema, argument validation, truncation with head+tail, traceback tail."""

from __future__ import annotations

import json

from tirgym.sandbox import ExecResult
from tirgym.sandbox.tool import PYTHON_TOOL, format_result, run_python_tool, truncate


def _r(stdout="", stderr="", status="ok", exit_code=0) -> ExecResult:
    return ExecResult(
        stdout=stdout, stderr=stderr, exit_code=exit_code, status=status, duration_s=0.01
    )


def test_schema_shape():
    assert PYTHON_TOOL["name"] == "python"
    params = PYTHON_TOOL["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["code"]
    assert params["properties"]["code"]["type"] == "string"
    json.dumps(PYTHON_TOOL)  # serialisable for chat templates


def test_truncate_keeps_head_and_tail_with_marker():
    text = "HEAD" + "x" * 5000 + "TAIL"
    out = truncate(text, 200)
    assert len(out) <= 200
    assert out.startswith("HEAD") and out.endswith("TAIL")
    assert "characters truncated" in out
    assert truncate("short", 200) == "short"


def test_format_ok_and_empty():
    assert format_result(_r("42\n")) == "42"
    assert format_result(_r("")) == "[no output]"
    assert format_result(_r("a\n", "warn\n")) == "a\nwarn"


def test_format_error_keeps_traceback_tail():
    tb = (
        "Traceback (most recent call last):\n"
        + '  File "<cell>", line 1\n' * 500
        + "ZeroDivisionError: division by zero\n"
    )
    out = format_result(_r("partial\n", tb, status="error", exit_code=1), max_chars=300)
    assert len(out) <= 320
    assert out.startswith("partial")
    assert out.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "cut" in out


def test_format_limits_are_explained():
    assert "timed out" in format_result(_r("x\n", status="timeout", exit_code=None))
    assert "output limit" in format_result(
        _r("y" * 5000, status="output_limit", exit_code=None), max_chars=100
    )
    assert "crashed" in format_result(_r(status="crashed", exit_code=-11))
    assert "out of memory" in format_result(_r(status="memory", exit_code=1))


class _FakeSession:
    def __init__(self):
        self.calls = []

    def run(self, code, **kw):
        self.calls.append((code, kw))
        return _r("ran\n")


def test_run_python_tool_validates_arguments():
    s = _FakeSession()
    for bad in (
        {},
        {"code": 3},
        {"code": "   "},
        {"code": "1", "extra": 1},
        "not json",
        ["code"],
        None,
    ):
        msg, result = run_python_tool(s, bad)
        assert result is None and msg.startswith("Error:"), (bad, msg)
    assert not s.calls
    msg, result = run_python_tool(s, '{"code": "print(1)"}', timeout_s=2.0)
    assert msg == "ran" and result is not None and result.ok
    assert s.calls == [("print(1)", {"timeout_s": 2.0})]


def test_run_python_tool_in_real_session(local_sb):
    with local_sb.session() as s:
        msg, r = run_python_tool(s, {"code": "x = 6"})
        assert r is not None and r.ok and msg == "[no output]"
        msg, r = run_python_tool(s, {"code": "x * 7"})
        assert msg == "42"
        msg, r = run_python_tool(s, {"code": "1/0"})
        assert r.status == "error" and msg.endswith("ZeroDivisionError: division by zero")
        msg, r = run_python_tool(s, {"code": "while True: pass"}, timeout_s=0.3)
        assert r.status == "timeout" and "timed out" in msg
