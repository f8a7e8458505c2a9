"""What one execution of model-written code produced."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "crashed", "killed_by_signal"]
STATUSES: tuple[str, ...] = (
    "ok",
    "error",
    "timeout",
    "memory",
    "output_limit",
    "crashed",
    "killed_by_signal",
)


@dataclass
class ExecResult:
    """Outcome of one cell.

    exit_code is the process exit code, -N when killed by signal N, 0/1 for a session cell
    (1 = it raised), and None when the sandbox stopped it (timeout, output limit, lost worker).
    """

    stdout: str
    stderr: str
    exit_code: int | None
    status: Status
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExecResult:
        status = d.get("status", "crashed")
        if status not in STATUSES:
            status = "crashed"
        return cls(
            stdout=str(d.get("stdout", "")),
            stderr=str(d.get("stderr", "")),
            exit_code=d.get("exit_code"),
            status=status,
            duration_s=float(d.get("duration_s", 0.0)),
        )
