"""Cooperative time and size limits that work in any thread (no SIGALRM)."""

from __future__ import annotations

import time

MAX_ANSWER_CHARS = 3000  # longer answers are only compared as normalised strings
MAX_EXACT_BITS = 400_000  # exact integers/rationals larger than this are not built
MAX_EXACT_FACTORIAL = 6000
MAX_NUMERIC_LOG2 = 10**12  # beyond 2**(10**12) a value is only compared structurally
MAX_FACTORIAL_NUMERIC = 10**9


class VerifyError(Exception):
    """Base of the verifier's internal control-flow exceptions (never escapes math_equal)."""


class ParseError(VerifyError):
    pass


class TimeLimit(VerifyError):
    pass


class Huge(VerifyError):
    """A value too large to evaluate even approximately (``9^{9^{9^9}}``)."""


class Undefined(VerifyError):
    """Division by zero, log of zero and the like."""


class Deadline:
    """A wall-clock budget checked at loop heads; cheap enough to call often."""

    __slots__ = ("end",)

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.perf_counter() + seconds

    def check(self) -> None:
        if self.end is not None and time.perf_counter() > self.end:
            raise TimeLimit("time limit exceeded")

    def expired(self) -> bool:
        return self.end is not None and time.perf_counter() > self.end
