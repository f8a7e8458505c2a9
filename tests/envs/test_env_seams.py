"""The seams an env author builds on: the turn limit on the class, the `on_invalid` hook,
the `PythonToolEnv` base and the one difficulty check."""

from __future__ import annotations

import importlib

import pytest

import tirgym
from tirgym.envs.base import Outcome, TextEnv
from tirgym.envs.code.env import CodeTaskEnv
from tirgym.envs.games import GAMES
from tirgym.envs.games.countdown import CountdownEnv, solve_pool
from tirgym.envs.math.envs import MathAnswerEnv, MathTIREnv
from tirgym.envs.python_tool import PythonToolEnv
from tirgym.errors import TirgymError
from tirgym.protocol import ParsedTurn


def _game_class(target: str) -> type:
    module, name = target.split(":")
    return getattr(importlib.import_module(f"tirgym.envs.games.{module}"), name)


@pytest.mark.parametrize("name,target", [(n, t) for n, t, _ in GAMES])
def test_a_game_built_directly_has_the_registry_turn_limit(name, target):
    direct = _game_class(target)()
    assert direct.max_turns == tirgym.make(f"tirgym/{name}-v0").unwrapped.max_turns > 1
    assert _game_class(target)(max_turns=3).max_turns == 3


class Bare(TextEnv):
    """Takes a bare number as the answer when the turn has no tags."""

    def generate_task(self, rng, options):
        return "Say 7."

    def on_answer(self, answer):
        ok = answer == "7"
        return Outcome(reply="yes" if ok else "no", terminated=True, success=ok)

    def on_invalid(self, parsed: ParsedTurn, text: str) -> Outcome:
        self.seen = (list(parsed.errors), text)
        if text.strip().isdigit():
            self.invalid_streak = 0
            return self.on_answer(text.strip())
        return super().on_invalid(parsed, text)


def test_on_invalid_sees_the_raw_turn_and_can_accept_it():
    env = Bare(max_turns=3, format_penalty=0.5)
    env.reset(seed=0)
    reply, reward, term, _, info = env.step(" 7 ")
    assert (reply, reward, term, info["success"]) == ("yes", 1.0, True, True)
    assert env.seen[1] == " 7 " and env.seen[0][0].startswith("No action found")
    env.reset(seed=0)
    reply, reward, term, _, info = env.step("seven")  # the default policy still applies
    assert reply.startswith("Invalid turn") and reward == -0.5 and not term


def test_math_answer_reads_a_boxed_answer_through_the_hook():
    env = tirgym.make("tirgym/MathAnswer-v0", family="arithmetic").unwrapped
    env.reset(seed=1)
    gold = env.task.answer
    *_, term, _, info = env.step(f"<think>work</think>So it is \\boxed{{{gold}}}.")
    assert term and info["success"] and info["parse"]["answer"] == gold
    env.reset(seed=1)
    *_, term, trunc, info = env.step(f"<answer>\\boxed{{{gold}}}")  # unclosed tag: not taken
    assert term and not trunc and not info["success"]
    assert info["stop_reason"] == "invalid_format"


def test_tool_envs_share_the_python_tool_base():
    assert issubclass(MathTIREnv, PythonToolEnv) and issubclass(CodeTaskEnv, PythonToolEnv)
    env = MathTIREnv(max_tool_calls=2)
    assert env.max_turns == 4 and env.tool.max_calls == 2  # every call, the answer, a spare
    assert MathTIREnv(max_tool_calls=2, max_turns=9).max_turns == 9


class Echo(PythonToolEnv):
    description = "Print the secret with python, then answer it."

    def generate_task(self, rng, options):
        self.secret = int(rng.integers(100))
        return "What is the secret?"

    def on_answer(self, answer):
        return Outcome(reply="done", terminated=True, success=answer == str(self.secret))


def test_a_new_tool_env_gets_the_tool_wiring(sandbox_kwargs):
    env = Echo(max_tool_calls=1, **sandbox_kwargs)
    env.reset(seed=0)
    reply, *_ = env.step(
        '<tool_call>{"name": "python", "arguments": {"code": "x = 41\\nprint(x + 1)"}}</tool_call>'
    )
    assert "42" in reply and env.tool.calls == 1
    reply, *_ = env.step('<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>')
    assert "limit" in reply
    env.reset(seed=0)
    assert env.tool.calls == 0
    env.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda: MathAnswerEnv(difficulty="extreme"),
        lambda: CodeTaskEnv(difficulty="extreme"),
        lambda: CountdownEnv(difficulty="extreme"),
    ],
    ids=["math", "code", "game"],
)
def test_one_difficulty_check_for_every_family(make):
    with pytest.raises(
        TirgymError, match="difficulty must be one of easy, medium, hard; got 'extreme'"
    ):
        make()


@pytest.mark.parametrize("kwargs", [{"difficulty": "easy"}, {"difficulty": "hard"}])
def test_countdown_tasks_built_from_the_numbers_are_solvable(kwargs):
    env = CountdownEnv(**kwargs)
    for seed in range(15):
        env.reset(seed=seed)
        assert solve_pool(env.start, env.target, env.use_all) is not None
