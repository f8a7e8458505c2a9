"""CodeTask: write a function, optionally test it with the python tool, submit it.

The model gets a statement with a function signature and examples, may run code in its
own sandbox session (up to `max_tool_calls` calls), and submits its code in
<answer>...</answer> (a fenced block inside the answer is taken as the code). The hidden
tests then run in a fresh stateless sandbox process; the outcome reward is the fraction of
tests passed (`reward_mode="fraction"`) or 1/0 (`"all"`), and success means all passed.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Literal

import numpy as np

from tirgym.envs.base import Outcome
from tirgym.envs.choices import Difficulty, check_choice, check_difficulty
from tirgym.envs.python_tool import PythonToolEnv

REWARD_MODES = ("fraction", "all")
RewardMode = Literal["fraction", "all"]
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


@functools.lru_cache(maxsize=8)
def _dataset(path: str) -> tuple:
    from tirgym.envs.code.loader import load_code_dataset

    return tuple(load_code_dataset(path))


def extract_code(answer: str) -> str:
    """The code of a submission: the first fenced block if there is one, else the text."""
    match = _FENCE.search(answer)
    return (match.group(1) if match else answer).strip("\n")


class CodeTaskEnv(PythonToolEnv):
    """The tool kwargs (max_tool_calls, sandbox, sandbox_options, tool_timeout_s, ...) are
    those of `PythonToolOptions`, shared with MathTIR; hidden tests run with `test_timeout_s`.
    """

    description = "Write a Python function that passes hidden tests."

    def __init__(
        self,
        difficulty: Difficulty = "easy",
        dataset: str | None = None,
        reward_mode: RewardMode = "fraction",
        test_timeout_s: float = 10.0,
        **kwargs: Any,
    ):
        check_difficulty(difficulty)
        check_choice("reward_mode", reward_mode, REWARD_MODES)
        super().__init__(**kwargs)
        self.difficulty, self.dataset, self.reward_mode = difficulty, dataset, reward_mode
        self.test_timeout_s = test_timeout_s
        self.problem: Any = None

    def instructions(self) -> str:
        return (
            "Write the requested Python function. You may run Python with the python tool up to "
            f"{self.tool.max_calls} times to test your code (state persists between calls). "
            "Submit the complete code inside <answer>...</answer>, e.g. "
            "<answer>```python\ndef f(x):\n    return x\n```</answer>. "
            "Hidden tests call your function; the episode ends with the submission."
        )

    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        seed = int(self.task_seed or 0)
        if self.dataset:
            problems = _dataset(str(self.dataset))
            self.problem = problems[seed % len(problems)]
        else:
            from tirgym.envs.code.tasks import generate_code_task

            self.problem = generate_code_task(seed, self.difficulty)
        return self.problem.prompt

    def task_id(self) -> str:
        base = super().task_id()
        return base if self.dataset else f"{base}:{self.difficulty}"

    @property
    def num_tasks(self) -> int | None:
        return len(_dataset(str(self.dataset))) if self.dataset else None

    def on_answer(self, answer: str) -> Outcome:
        from tirgym.envs.code.harness import run_hidden_tests

        code = extract_code(answer)
        problem = self.problem
        report = run_hidden_tests(
            self.tool.sandbox(),
            code,
            problem.tests,
            problem.setup,
            timeout_s=self.test_timeout_s,
            entry_point=problem.entry_point,
        )
        success = report.total > 0 and report.passed == report.total
        score = report.fraction if self.reward_mode == "fraction" else float(success)
        reply = f"Passed {report.passed}/{report.total} hidden tests."
        if report.first_error and not success:
            reply += f" First problem: {report.first_error}"
        return Outcome(
            reply=reply,
            terminated=True,
            success=success,
            outcome_reward=score,
            info={
                "tests_passed": report.passed,
                "tests_total": report.total,
                "test_status": report.status,
            },
        )

    def solve(self) -> str:
        """Oracle: submit the reference solution."""
        return f"<think>Reference solution.</think><answer>```python\n{self.problem.reference.rstrip()}\n```</answer>"

    def example_tool_call(self) -> str:
        """A turn that runs the reference on the first hidden test (for demos and tests)."""
        test = self.problem.tests[0]
        code = self.problem.reference + (
            f"\nprint(repr({test.src}))\n" if test.kind == "expr" else ""
        )
        return (
            f"<tool_call>{json.dumps({'name': 'python', 'arguments': {'code': code}})}</tool_call>"
        )
