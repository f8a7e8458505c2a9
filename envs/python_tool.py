"""The per-episode `python` tool of MathTIR and CodeTask: a lazily opened sandbox session.

Nothing heavy happens at construction: the shared sandbox pool (tirgym.sandbox.get_sandbox)
and the episode's session are created on the first tool call, so making an env, resetting
it and stepping it with format errors never starts a worker. `end_episode()` closes the
session (state never leaks from one episode into the next); the pool itself is shared by
the process and closed at exit by the sandbox module.

`PythonToolOptions` holds the env kwargs that configure the tool, so every tool env takes
the same names and defaults and checks them in one place; `PythonToolEnv` is the TextEnv
base that wires it in (MathTIR and CodeTask subclass it, and so can a new tool env).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from tirgym.envs.base import Outcome, TextEnv
from tirgym.errors import TirgymError
from tirgym.protocol import ToolCall, ToolSchema
from tirgym.sandbox.tool import PYTHON_TOOL


@dataclass
class PythonToolOptions:
    """The python-tool kwargs of MathTIR and CodeTask (same names as the envs take)."""

    max_tool_calls: int = 4
    sandbox: str = "auto"
    sandbox_options: dict[str, Any] | None = None
    tool_timeout_s: float = 5.0
    tool_memory_mb: int | None = None
    max_output_chars: int = 1024
    tool_error_penalty: float = 0.0

    def __post_init__(self) -> None:
        calls = self.max_tool_calls
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            raise TirgymError(f"max_tool_calls must be an int >= 0, got {calls!r}")
        self.sandbox_options = dict(self.sandbox_options or {})

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> PythonToolOptions:
        """Take the tool options out of an env's kwargs; the rest go on to TextEnv."""
        return cls(**{f.name: kwargs.pop(f.name) for f in fields(cls) if f.name in kwargs})

    @property
    def default_max_turns(self) -> int:
        """Room for every allowed call, the answer and one spare turn."""
        return self.max_tool_calls + 2

    def make_tool(self) -> PythonTool:
        return PythonTool(
            backend=self.sandbox,
            sandbox_options=dict(self.sandbox_options or {}),
            timeout_s=self.tool_timeout_s,
            max_output_chars=self.max_output_chars,
            memory_mb=self.tool_memory_mb,
            max_calls=self.max_tool_calls,
            error_penalty=self.tool_error_penalty,
        )


@dataclass
class PythonTool:
    """Runs `python` tool calls of one env in a persistent session, counting the calls."""

    backend: str = "auto"
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 5.0
    max_output_chars: int = 1024
    memory_mb: int | None = None
    max_calls: int = 4
    error_penalty: float = 0.0
    calls: int = 0
    _session: Any = None

    def sandbox(self):
        from tirgym.sandbox import get_sandbox

        return get_sandbox(self.backend, **self.sandbox_options)

    def session(self):
        if self._session is None or self._session.closed:
            self._session = self.sandbox().session()
        return self._session

    def call(self, call: ToolCall) -> Outcome:
        """One tool call as an Outcome: the formatted result, the error flag and penalty."""
        from tirgym.sandbox.tool import run_python_tool

        if self.calls >= self.max_calls:
            return Outcome(
                reply=f"Tool call limit reached ({self.max_calls} python calls); give your final answer now.",
                info={"tool_limit_reached": True, "tool_calls_used": self.calls},
            )
        self.calls += 1
        text, result = run_python_tool(
            self.session(),
            call.arguments,
            timeout_s=self.timeout_s,
            max_chars=self.max_output_chars,
            memory_mb=self.memory_mb,
        )
        error = result is None or result.status != "ok"
        info: dict[str, Any] = {
            "tool_calls_used": self.calls,
            "tool_status": "bad_arguments" if result is None else result.status,
        }
        if result is not None:
            info["tool_duration_s"] = result.duration_s
        left = self.max_calls - self.calls
        # The reminder of how to finish: small models otherwise keep writing code after it.
        note = f"\n[{left} python call{'s' if left != 1 else ''} left; finish with <answer>...</answer>]"
        rewards = {"tool_error": -self.error_penalty} if error and self.error_penalty else {}
        return Outcome(reply=text + note, rewards=rewards, tool_error=error, info=info)

    def run_stateless(self, code: str, timeout_s: float, max_output_bytes: int | None = None):
        """A fresh process sharing nothing with the session (hidden tests)."""
        return self.sandbox().run(code, timeout_s=timeout_s, max_output_bytes=max_output_bytes)

    def end_episode(self) -> None:
        session, self._session = self._session, None
        self.calls = 0
        if session is not None:
            session.close()


class PythonToolEnv(TextEnv):
    """A TextEnv with the `python` tool: takes the `PythonToolOptions` kwargs, gives each
    episode its own session (closed on reset and close), and by default allows as many turns
    as the calls need plus the answer. Subclasses implement the task and `on_answer`."""

    tools: ClassVar[list[ToolSchema]] = [PYTHON_TOOL]
    option_kwargs: ClassVar[tuple[type, ...]] = (PythonToolOptions,)
    """Kwargs the constructor takes out of **kwargs (read by the registry's kwarg check)."""

    def __init__(self, **kwargs: Any):
        options = PythonToolOptions.pop_from(kwargs)
        kwargs.setdefault("max_turns", options.default_max_turns)
        super().__init__(**kwargs)
        self.tool = options.make_tool()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.tool.end_episode()
        return super().reset(seed=seed, options=options)

    def on_tool_call(self, call: ToolCall) -> Outcome:
        if call.name != "python":
            return super().on_tool_call(call)
        return self.tool.call(call)

    def close(self) -> None:
        self.tool.end_episode()
        super().close()
