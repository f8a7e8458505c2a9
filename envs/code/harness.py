"""Running hidden tests against a submission: the judge in a fresh sandbox session.

`judge.py` is the program that runs there: the trusted test code in one process, the
submission in a forked process that only answers calls with plain data, so the submission can
neither reach the tests nor the channel the results travel on (see judge.py for why). The
judge writes one record per test to its stdout, prefixed by a fresh random marker. For `expr`
tests it reports only the value: the expected values never enter the sandbox and the
comparison happens here, on plain data.
"""

from __future__ import annotations

import functools
import json
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tirgym.envs.code import judge
from tirgym.envs.code.tasks import TestCase

MAX_VALUE_CHARS = 100_000
"""A reported value longer than this (as JSON) counts as a failed test."""
JUDGE_GRACE_S = 2.0
"""Extra sandbox time after the judge's own budget, so it can report what timed out."""


@functools.lru_cache(maxsize=1)
def _judge_source() -> str:
    return Path(judge.__file__).read_text(encoding="utf-8")


@dataclass
class TestReport:
    passed: int
    total: int
    results: list[bool] = field(default_factory=list)
    first_error: str | None = None
    status: str = "ok"

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


def judge_program(
    submission: str,
    tests: tuple[TestCase, ...],
    setup: str = "",
    entry_point: str = "",
    budget_s: float = 10.0,
) -> tuple[str, str]:
    """(program, marker) for one evaluation; the marker is fresh each time."""
    mark = f"@@tirgym-{secrets.token_hex(8)}@@"
    config = {
        "mark": mark,
        "tests": [[t.kind, t.src] for t in tests],
        "submission": submission,
        "setup": setup,
        "entry_point": entry_point,
        "budget_s": budget_s,
        "limit": MAX_VALUE_CHARS,
    }
    program = f"{_judge_source()}\n\nmain(__import__('json').loads({json.dumps(config)!r}))\n"
    return program, mark


def values_equal(got: Any, want: Any) -> bool:
    """Python equality on builtins, with a tolerance for floats (recursively)."""
    numbers = (int, float, bool)
    if isinstance(got, numbers) and isinstance(want, numbers):
        if isinstance(got, float) or isinstance(want, float):
            if math.isnan(got) and math.isnan(want):
                return True
            return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
        return got == want
    if isinstance(got, list | tuple) and isinstance(want, list | tuple):
        return (
            type(got) is type(want)
            and len(got) == len(want)
            and all(values_equal(a, b) for a, b in zip(got, want, strict=True))
        )
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(values_equal(got[k], want[k]) for k in got)
    try:
        return bool(got == want)
    except Exception:
        return False


def _value(record: dict) -> tuple[bool, Any]:
    try:
        return True, judge.plain(record.get("value"))
    except (ValueError, TypeError, KeyError, RecursionError, MemoryError):
        return False, None


def grade(stdout: str, mark: str, tests: tuple[TestCase, ...], status: str = "ok") -> TestReport:
    """Read the judge's records from stdout and score each test."""
    records: dict[int, list[dict]] = {}
    for line in stdout.splitlines():
        if not line.startswith(mark):
            continue
        try:
            record = json.loads(line[len(mark) :])
            records.setdefault(int(record["i"]), []).append(record)
        except (ValueError, KeyError, TypeError):
            continue
    first_error = None
    if -1 in records:
        first_error = str(records[-1][0].get("error", "submission failed"))
    results = []
    for i, test in enumerate(tests):
        got = records.get(i, [])
        ok = False
        if len(got) == 1 and got[0].get("ok") is True:
            if test.kind == "expr":
                parsed, value = _value(got[0])
                ok = parsed and values_equal(value, test.expected)
                if not ok and first_error is None:
                    first_error = f"wrong result on hidden test {i + 1}"
            else:
                ok = True
        elif len(got) == 1 and first_error is None:
            first_error = f"hidden test {i + 1} raised {got[0].get('error', '')}"
        results.append(bool(ok))
    if status != "ok" and first_error is None and not all(results):
        first_error = f"the test run ended with status {status!r}"
    return TestReport(sum(results), len(tests), results, first_error, status)


def run_hidden_tests(
    sandbox: Any,
    submission: str,
    tests: tuple[TestCase, ...],
    setup: str = "",
    timeout_s: float = 10.0,
    entry_point: str = "",
) -> TestReport:
    """Run every test in a fresh sandbox session; a test not reported (crash, timeout) fails.

    A session rather than a stateless run because the judge forks the submission's process.
    """
    program, mark = judge_program(submission, tests, setup, entry_point, budget_s=timeout_s)
    max_bytes = (MAX_VALUE_CHARS + 256) * max(1, len(tests)) + 65536
    with sandbox.session() as session:
        result = session.run(
            program, timeout_s=timeout_s + JUDGE_GRACE_S, max_output_bytes=max_bytes
        )
    report = grade(result.stdout, mark, tests, result.status)
    if report.first_error is None and result.status == "error" and not all(report.results):
        report.first_error = (
            result.stderr.strip().splitlines()[-1:][0] if result.stderr.strip() else None
        )
    return report
