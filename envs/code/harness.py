"""Running hidden tests against a submission in one stateless sandbox process.

The harness program runs the submission in its own namespace, then each test, and writes
one JSON record per test to the stdout it saved before the submission ran, prefixed by a
random marker. For `expr` tests it reports only `repr(value)`: the expected values never
enter the sandbox and the comparison happens here on `ast.literal_eval`'d builtins, so
printing fake records or returning objects with a doctored `__eq__` gains nothing.
`stmt` tests (dataset asserts that are not `f(...) == literal`) are judged inside the
sandbox and are only as tamper-proof as the process: a record seen twice counts as failed.
"""

from __future__ import annotations

import ast
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from tirgym.envs.code.tasks import TestCase

MAX_REPR_CHARS = 100_000
_PLACEHOLDER = re.compile(r"\b(MARK|TESTS|SUBMISSION|SETUP|LIMIT)\b")

_HARNESS = r"""
def _tirgym_main():
    import sys, json
    write, flush, dumps, mark = sys.stdout.write, sys.stdout.flush, json.dumps, MARK
    run_exec, run_eval, run_compile, text, kind_of = exec, eval, compile, repr, type

    def emit(record):
        write(mark + dumps(record) + "\n")
        flush()

    def describe(e):
        return (kind_of(e).__name__ + ": " + str(e))[:300]

    tests = json.loads(TESTS)
    ns = {"__name__": "__submission__"}
    try:
        run_exec(run_compile(SUBMISSION, "<submission>", "exec"), ns)
        if SETUP:
            run_exec(run_compile(SETUP, "<test setup>", "exec"), ns)
    except BaseException as e:
        emit({"i": -1, "error": describe(e)})
        return
    for i, (kind, src) in enumerate(tests):
        try:
            if kind == "expr":
                value = run_eval(run_compile(src, "<test>", "eval"), ns)
                emit({"i": i, "ok": True, "repr": text(value)[:LIMIT]})
            else:
                run_exec(run_compile(src, "<test>", "exec"), ns)
                emit({"i": i, "ok": True})
        except BaseException as e:
            emit({"i": i, "ok": False, "error": describe(e)})


_tirgym_main()
"""


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


def harness_program(
    submission: str, tests: tuple[TestCase, ...], setup: str = ""
) -> tuple[str, str]:
    """(program, marker) for one evaluation; the marker is fresh each time."""
    mark = f"@@tirgym-{secrets.token_hex(8)}@@"
    payload = json.dumps([[t.kind, t.src] for t in tests])
    values = {
        "MARK": repr(mark),
        "TESTS": repr(payload),
        "SUBMISSION": repr(submission),
        "SETUP": repr(setup),
        "LIMIT": str(MAX_REPR_CHARS),
    }
    # one pass, so a placeholder word inside the submission or a test is never replaced
    program = _PLACEHOLDER.sub(lambda m: values[m.group(0)], _HARNESS)
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


def _literal(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def grade(stdout: str, mark: str, tests: tuple[TestCase, ...], status: str = "ok") -> TestReport:
    """Read the harness records from stdout and score each test."""
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
                parsed, value = _literal(str(got[0].get("repr", "")))
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
) -> TestReport:
    """Run every test in one fresh sandbox process; a test not reported (crash, timeout) fails."""
    program, mark = harness_program(submission, tests, setup)
    max_bytes = 2 * MAX_REPR_CHARS * max(1, len(tests)) + 65536
    result = sandbox.run(program, timeout_s=timeout_s, max_output_bytes=max_bytes)
    report = grade(result.stdout, mark, tests, result.status)
    if report.first_error is None and result.status == "error" and not all(report.results):
        report.first_error = (
            result.stderr.strip().splitlines()[-1:][0] if result.stderr.strip() else None
        )
    return report
