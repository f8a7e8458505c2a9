"""Coding tasks from MBPP- or HumanEval-style JSONL files.

MBPP rows: text, code, test_list (asserts), optional test_setup_code, challenge_test_list,
task_id. HumanEval rows: prompt, canonical_solution, test (defines `check(candidate)`),
entry_point, task_id. Asserts of the form `assert <expr> == <literal>` become `expr`
tests (compared outside the sandbox); other asserts run as statements.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tirgym.envs.code.tasks import CodeProblem, TestCase
from tirgym.errors import TirgymError

_SUBMIT = "Submit the complete code (imports included) inside <answer>...</answer>."


def assert_to_test(src: str) -> TestCase:
    """`assert f(x) == 3` -> expr test f(x) expecting 3; anything else -> stmt test."""
    try:
        tree = ast.parse(src.strip())
    except SyntaxError:
        return TestCase("stmt", src)
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert):
        test = tree.body[0].test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            try:
                expected = ast.literal_eval(test.comparators[0])
            except (ValueError, SyntaxError, TypeError, RecursionError):
                return TestCase("stmt", src)
            return TestCase("expr", ast.unparse(test.left), expected)
    return TestCase("stmt", src)


def _entry_point(code: str, first_test: str) -> str:
    """The reference's function that the first test calls."""
    try:
        names = [n.name for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        names = []
    for name in names:
        if re.search(rf"\b{re.escape(name)}\s*\(", first_test):
            return name
    return names[0] if names else ""


def _mbpp(row: dict, index: int) -> CodeProblem:
    asserts = [str(t) for t in row["test_list"]] + [
        str(t) for t in row.get("challenge_test_list") or []
    ]
    if not asserts:
        raise TirgymError(f"MBPP row {index} has an empty test_list")
    entry = _entry_point(str(row["code"]), asserts[0])
    prompt = f"{row['text'].strip()}\nYour code should pass tests like this one:\n    {asserts[0].strip()}\n{_SUBMIT}"
    return CodeProblem(
        task_id=str(row.get("task_id", index)),
        prompt=prompt,
        entry_point=entry,
        reference=str(row["code"]),
        tests=tuple(assert_to_test(t) for t in asserts),
        setup=str(row.get("test_setup_code") or ""),
        family="mbpp",
    )


def _humaneval(row: dict, index: int) -> CodeProblem:
    entry, test_src, prompt_code = row["entry_point"], str(row["test"]), str(row["prompt"])
    module = ast.parse(test_src)
    check = next(
        (n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is None:
        raise TirgymError(f"HumanEval row {index}: its test defines no check(candidate)")
    body = [
        n for n in check.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
    ]
    arg = check.args.args[0].arg if check.args.args else "candidate"
    others = [n for n in module.body if n is not check]
    if body and all(isinstance(n, ast.Assert) for n in body):
        setup = ast.unparse(ast.Module(body=others, type_ignores=[])) + f"\n{arg} = {entry}\n"
        tests = tuple(assert_to_test(ast.unparse(n)) for n in body)
    else:  # loops or helpers inside check: one all-or-nothing test
        setup, tests = test_src, (TestCase("stmt", f"check({entry})"),)
    prompt = f"Complete this Python function:\n```python\n{prompt_code.rstrip()}\n```\n{_SUBMIT}"
    return CodeProblem(
        task_id=str(row.get("task_id", index)),
        prompt=prompt,
        entry_point=entry,
        reference=prompt_code + str(row["canonical_solution"]),
        tests=tests,
        setup=setup,
        family="humaneval",
    )


def load_code_dataset(path: str | Path) -> list[CodeProblem]:
    """Every row of an MBPP- or HumanEval-style JSONL file as a CodeProblem."""
    path = Path(path)
    if not path.is_file():
        raise TirgymError(
            f"code dataset {str(path)!r} is not a file (expected MBPP/HumanEval JSONL)"
        )
    problems = []
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise TirgymError(f"{path}:{index + 1} is not JSON: {e}") from None
            if "test_list" in row and "code" in row:
                problems.append(_mbpp(row, index))
            elif "entry_point" in row and "test" in row:
                problems.append(_humaneval(row, index))
            else:
                raise TirgymError(
                    f"{path}:{index + 1} has fields {sorted(row)}; expected MBPP (text, code, "
                    "test_list) or HumanEval (prompt, canonical_solution, test, entry_point)"
                )
    if not problems:
        raise TirgymError(f"code dataset {str(path)!r} has no rows")
    return problems
