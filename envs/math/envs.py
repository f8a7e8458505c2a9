"""MathAnswer (single turn) and MathTIR (tool-integrated reasoning with a python sandbox).

Tasks come from the procedural generators (a family or "mixed", at a difficulty; no
download) or from a GSM8K/MATH-format dataset file (task = rows[seed % len(rows)]).
Answers are checked by tirgym's verifier; Countdown answers are expressions, checked by
evaluating them. The generators (and sympy behind the verifier) are imported on the first
reset, so constructing these envs costs nothing.
"""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.base import Outcome, TextEnv
from tirgym.envs.choices import Difficulty, check_difficulty
from tirgym.envs.python_tool import PythonToolEnv
from tirgym.errors import TirgymError
from tirgym.protocol import ParsedTurn, scan_turn


@functools.lru_cache(maxsize=8)
def _dataset(path: str, split: str | None) -> tuple:
    from tirgym.envs.math.generators import load_math_dataset

    tasks = tuple(load_math_dataset(path, split))
    if not tasks:
        raise TirgymError(f"math dataset {path!r} has no usable rows")
    return tasks


_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)(/\d+)?")
_FRAC = re.compile(r"[-+]?\\[dt]?frac\{(\d+)\}\{(\d+)\}")
_DECOR = re.compile(r"\$|\\[,!; ]|\{,\}|\\text\{[^}]*\}|\s|(?<=\d),(?=\d{3})")


def is_number(text: str) -> bool:
    """Whether text is a number written out (an integer, a decimal, a fraction a/b or
    \\frac{a}{b}), after $ signs, spacing, thousands commas and \\text{} units go."""
    bare = _DECOR.sub("", text)
    return bool(_NUMBER.fullmatch(bare) or _FRAC.fullmatch(bare))


def _prediction(answer: str) -> str:
    """The answer inside `\\boxed{}` when there is one, else the answer text itself."""
    if "\\boxed" in answer or "\\fbox" in answer:
        from tirgym.rewards.math import extract_answer

        return extract_answer(answer) or answer.strip()
    return answer.strip()


class _MathEnv(TextEnv):
    """Task source and answer checking shared by both math envs."""

    task_word: ClassVar[str] = "Solve the problem."

    def __init__(
        self,
        family: str = "mixed",
        difficulty: Difficulty = "easy",
        dataset: str | None = None,
        split: str | None = None,
        verifier_policy: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.family, self.difficulty = family, check_difficulty(difficulty)
        self.dataset, self.split = (str(dataset) if dataset else None), split
        self.verifier_policy = dict(verifier_policy or {})
        self.task: Any = None

    def load_task(self, seed: int):
        from tirgym.envs.math import generators as g

        if self.dataset:
            tasks = _dataset(self.dataset, self.split)
            return tasks[seed % len(tasks)]
        if self.family == "mixed":
            return g.generate_mixed(seed, self.difficulty)
        return g.generate(self.family, seed, self.difficulty)

    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        self.task = self.load_task(int(self.task_seed or 0))
        return self.task.question

    def is_correct(self, prediction: str) -> bool:
        """Countdown: the expression uses the numbers and hits the target. Otherwise the
        verifier's equality, but a number gold wants a number: an expression that equals
        it ("1065 \\times 4987" for "Compute 1065 * 4987") restates the task, it does not
        answer it (a model learns that hack within a few RL steps)."""
        task = self.task
        if task.family == "countdown" and "numbers" in task.meta:
            from tirgym.envs.math.generators import check_countdown

            return check_countdown(prediction, task.meta["numbers"], task.meta["target"])
        if is_number(task.answer) and not is_number(prediction):
            return False
        from tirgym.rewards.math import math_equal

        return math_equal(prediction=prediction, gold=task.answer, **self.verifier_policy)

    def on_answer(self, answer: str) -> Outcome:
        prediction = _prediction(answer)
        ok = self.is_correct(prediction)
        reply = "Correct." if ok else "Incorrect."
        restated = is_number(self.task.answer) and not is_number(prediction)
        if not ok and restated and self.task.family != "countdown":
            reply = "Incorrect: the answer must be the value as a number, not an expression."
        return Outcome(
            reply=reply,
            terminated=True,
            success=ok,
            info={"prediction": prediction, "gold": self.task.answer, "family": self.task.family},
        )

    def task_id(self) -> str:
        base = super().task_id()
        return f"{base}:{self.difficulty}" if not self.dataset else base

    @property
    def num_tasks(self) -> int | None:
        return len(_dataset(self.dataset, self.split)) if self.dataset else None


class MathAnswerEnv(_MathEnv):
    """One turn: the model reasons and gives its final answer in \\boxed{} or <answer>.

    A turn with a `\\boxed{}` but no `<answer>` tags is accepted as the answer; any other
    turn without an answer is a format error (penalised by `format_penalty`, default 0) that
    ends the episode with outcome 0 on the last allowed turn.
    """

    description = "Solve the math problem."

    def instructions(self) -> str:
        return (
            "Solve the math problem. Give only the final result as your answer, either as "
            "<answer>...</answer> or in \\boxed{...}; exact forms (integers, fractions in lowest "
            "terms) are preferred."
        )

    def on_invalid(self, parsed: ParsedTurn, text: str) -> Outcome:
        boxed = self._boxed_only(text)
        if boxed is not None:
            parsed.errors.clear()  # accepted: the answer was given in \boxed{}
            parsed.answer = boxed
            self.invalid_streak = 0
            return self.on_answer(boxed)
        outcome = super().on_invalid(parsed, text)
        if self.turn >= self.max_turns and not outcome.terminated:
            # the one turn is over: the task ends (terminated, not truncated: no time limit hit)
            outcome.terminated = True
            outcome.info.setdefault("stop_reason", "invalid_format")
        return outcome

    def _boxed_only(self, text: str) -> str | None:
        """The \\boxed{} answer of a turn with no action tag at all (and a closed or no
        think), read after the think; None for any other turn."""
        if not isinstance(text, str):
            return None
        regions = scan_turn(text, self.turn_format)
        if any(r.kind != "think" or not r.closed for r in regions):
            return None
        body = text[regions[0].end :] if regions else text
        if "\\boxed" not in body and "\\fbox" not in body:
            return None
        from tirgym.rewards.math import extract_answer

        return extract_answer(body)

    def solve(self) -> str:
        return f"<think>Known answer.</think><answer>{self.task.answer}</answer>"


class MathTIREnv(PythonToolEnv, _MathEnv):
    """Tool-integrated reasoning: up to `max_tool_calls` python calls, then an answer.

    Each episode gets its own sandbox session (variables persist between its calls), opened
    on the first call and closed on reset/close. Tool errors (exceptions, timeouts, bad
    arguments) are flagged in info["tool_error"] and cost `tool_error_penalty` (default 0)
    as a separate turn reward component "tool_error"; the outcome is 1/0 correctness.
    The tool kwargs (max_tool_calls, sandbox, sandbox_options, tool_timeout_s, ...) are
    those of `PythonToolOptions`, shared with CodeTask.
    """

    description = "Solve the math problem, using the python tool to compute."

    # What the solver's think text says with `explain`: a plan before the call, a check
    # before the answer, each holding a built-in strategic gram (trainer/planning.py: "i will
    # use the" plans, "let me check" verifies), so HICRA has planning tokens to credit.
    TOOL_PLAN: ClassVar[str] = "I will use the python tool."
    ANSWER_PLAN: ClassVar[str] = "Let me check the printed result."

    def __init__(self, python_blocks: bool = True, explain: bool = False, **kwargs: Any):
        """explain: the solver's think text states its plan (TOOL_PLAN, ANSWER_PLAN), so
        demonstrations carry planning phrases."""
        self.allow_python_block = bool(python_blocks)
        self.explain = bool(explain)
        super().__init__(**kwargs)

    def instructions(self) -> str:
        n = self.tool.max_calls
        return (
            f"Solve the math problem. You may run Python with the python tool up to {n} times "
            "(state persists between calls; print what you want to see), then give only the "
            "final result as <answer>...</answer>."
        )

    def solve(self) -> str:
        """Oracle: run the task's reference program once, then answer with the gold."""
        import json

        if self.tool.calls == 0 and self.tool.max_calls > 0 and self.turn < self.max_turns - 1:
            body = json.dumps({"name": "python", "arguments": {"code": self.task.solution_code}})
            think = self.TOOL_PLAN if self.explain else "Compute it with Python."
            return f"<think>{think}</think><tool_call>{body}</tool_call>"
        think = self.ANSWER_PLAN if self.explain else "The program printed the result."
        return f"<think>{think}</think><answer>{self.task.answer}</answer>"
