"""The `python` tool envs expose to the model: schema, argument checks, result formatting."""

from __future__ import annotations

from typing import Any

from tirgym.sandbox.result import ExecResult

PYTHON_TOOL: dict[str, Any] = {
    "name": "python",
    "description": (
        "Run Python code in a stateful sandbox (like a notebook: variables, imports and files "
        "persist between calls). numpy, sympy and math are available; there is no network. "
        "Print what you want to see; the value of a final bare expression is shown too."
    ),
    "parameters": {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source code to run."}},
        "required": ["code"],
        "additionalProperties": False,
    },
}

MAX_CODE_CHARS = 100_000
_STATUS_NOTE = {
    "timeout": "[execution timed out; the cell was stopped, earlier state is kept]",
    "memory": "[out of memory; the cell was stopped]",
    "output_limit": "[output limit exceeded; the cell was stopped]",
    "crashed": "[the process crashed]",
    "killed_by_signal": "[the process was killed by a signal]",
}


def truncate(text: str, max_chars: int) -> str:
    """Keep the head and the tail of text, with a marker saying how much was cut."""
    if len(text) <= max_chars:
        return text
    marker = f"\n... [{len(text) - max_chars} characters truncated] ...\n"
    keep = max(max_chars - len(marker), 0)
    head = keep // 2
    tail = keep - head
    return text[:head] + marker + (text[len(text) - tail :] if tail else "")


def _traceback_tail(stderr: str, max_chars: int) -> str:
    """On error, the end of the traceback matters (the exception line); keep it whole."""
    if len(stderr) <= max_chars:
        return stderr
    marker = f"[... {len(stderr) - max_chars} characters of traceback cut ...]\n"
    return marker + stderr[len(stderr) - max(max_chars - len(marker), 0) :]


def format_result(result: ExecResult, max_chars: int = 1024) -> str:
    """Text the model sees for one tool call, at most about max_chars long."""
    parts: list[str] = []
    stdout = result.stdout
    stderr = result.stderr
    if result.status == "error":
        out_budget = max_chars // 2 if stdout else 0
        if stdout:
            parts.append(truncate(stdout, out_budget).rstrip("\n"))
        parts.append(_traceback_tail(stderr, max_chars - out_budget).rstrip("\n"))
    else:
        text = stdout
        if stderr:
            text = (
                (text + ("\n" if text and not text.endswith("\n") else "") + stderr)
                if text
                else stderr
            )
        if text:
            parts.append(truncate(text, max_chars).rstrip("\n"))
        note = _STATUS_NOTE.get(result.status)
        if note:
            parts.append(note)
    body = "\n".join(p for p in parts if p)
    return body if body else "[no output]"


def validate_arguments(arguments: Any) -> tuple[str | None, str | None]:
    """Return (code, None) for good arguments, or (None, message for the model)."""
    if isinstance(arguments, str):
        import json

        try:
            arguments = json.loads(arguments)
        except ValueError:
            return (
                None,
                'Error: python tool arguments must be a JSON object like {"code": "print(1)"}.',
            )
    if not isinstance(arguments, dict):
        return None, 'Error: python tool arguments must be an object like {"code": "print(1)"}.'
    unknown = sorted(set(arguments) - {"code"})
    if "code" not in arguments:
        return None, 'Error: the python tool needs a "code" argument (a string of Python source).'
    code = arguments["code"]
    if not isinstance(code, str):
        return None, f'Error: "code" must be a string, got {type(code).__name__}.'
    if not code.strip():
        return None, 'Error: "code" is empty; send the Python source to run.'
    if len(code) > MAX_CODE_CHARS:
        return None, f'Error: "code" is {len(code)} characters; the limit is {MAX_CODE_CHARS}.'
    if unknown:
        return (
            None,
            f'Error: unknown argument(s) {", ".join(unknown)}; the python tool takes only "code".',
        )
    return code, None


def run_python_tool(
    session: Any,
    arguments: Any,
    timeout_s: float = 5.0,
    max_chars: int = 1024,
    memory_mb: int | None = None,
) -> tuple[str, ExecResult | None]:
    """Validate the call, run it in session (a Session or Sandbox), format the observation."""
    code, error = validate_arguments(arguments)
    if error is not None:
        return error, None
    kwargs: dict[str, Any] = {"timeout_s": timeout_s}
    if memory_mb is not None:
        kwargs["memory_mb"] = memory_mb
    result = session.run(code, **kwargs)
    return format_result(result, max_chars=max_chars), result
