"""Sandboxed Python execution for tool calls: stateless runs and notebook-like sessions.

from tirgym.sandbox import get_sandbox
sb = get_sandbox(backend="auto")          # jail (bubblewrap) or docker; never unsandboxed
r = sb.run("print(1)", timeout_s=5)
with sb.session() as s:
    s.run("x = 41"); print(s.run("x + 1").stdout)   # 42
"""

from tirgym.sandbox.core import BACKENDS, Sandbox, Session, get_sandbox, make_backend
from tirgym.sandbox.result import STATUSES, ExecResult, Status

__all__ = [
    "BACKENDS",
    "STATUSES",
    "ExecResult",
    "Sandbox",
    "Session",
    "Status",
    "get_sandbox",
    "make_backend",
]
