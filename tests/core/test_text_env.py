import numpy as np
import pytest

import tirgym
from tirgym.envs.base import Outcome, TextEnv
from tirgym.protocol import ToolCall


class Adder(TextEnv):
    """Answer a+b; a `calc` tool adds for you."""

    tools = [{"name": "calc", "description": "add", "parameters": {"type": "object"}}]

    def generate_task(self, rng, options):
        self.a, self.b = (int(x) for x in rng.integers(0, 100, size=2))
        return f"What is {self.a}+{self.b}?"

    def on_tool_call(self, call: ToolCall) -> Outcome:
        return Outcome(reply=str(sum(call.arguments.get("xs", []))), rewards={"tool": -0.1})

    def on_answer(self, answer):
        ok = answer.strip() == str(self.a + self.b)
        return Outcome(reply="right" if ok else "wrong", terminated=True, success=ok)


def make(**kw):
    return Adder(max_turns=3, **kw)


def test_answer_ends_with_outcome_component():
    env = make()
    obs, info = env.reset(seed=0)
    assert "calc" in info["system_prompt"] and info["tools"][0]["name"] == "calc"
    reply, reward, term, trunc, info = env.step(f"<answer>{env.a + env.b}</answer>")
    assert (reply, reward, term, trunc) == ("right", 1.0, True, False)
    assert info["success"] and info["outcome_reward"] == 1.0
    assert info["reward_components"] == {"outcome": 1.0}


def test_tool_turn_rewards_are_separate_from_outcome():
    env = make()
    env.reset(seed=0)
    reply, reward, term, trunc, info = env.step(
        '<tool_call>{"name": "calc", "arguments": {"xs": [1, 2]}}</tool_call>')
    assert reply == "3" and info["role"] == "tool" and reward == pytest.approx(-0.1)
    assert "outcome" not in info["reward_components"]


def test_turn_limit_truncates():
    env = make()
    env.reset(seed=0)
    for _ in range(2):
        *_, term, trunc, info = env.step('<tool_call>{"name": "calc", "arguments": {}}</tool_call>')
        assert not (term or trunc)
    reply, reward, term, trunc, info = env.step('<tool_call>{"name": "calc", "arguments": {}}</tool_call>')
    assert trunc and not term and info["stop_reason"] == "max_turns" and not info["success"]
    assert "Turn limit (3) reached" in reply
    with pytest.raises(RuntimeError):
        env.step("<answer>1</answer>")


def test_invalid_format_penalty_and_termination():
    env = Adder(max_turns=10, format_penalty=0.5, max_invalid_turns=2)
    env.reset(seed=0)
    reply, reward, term, trunc, info = env.step("no tags at all")
    assert reply.startswith("Invalid turn: No action found") and reward == -0.5 and not term
    reply, reward, term, trunc, info = env.step("<answer></answer>")
    assert term and info["stop_reason"] == "invalid_format" and not info["success"]
    assert info["reward_components"] == {"format": -0.5, "outcome": 0.0}


def test_valid_turn_resets_invalid_streak():
    env = Adder(max_turns=10, max_invalid_turns=2)
    env.reset(seed=0)
    env.step("junk")
    env.step('<tool_call>{"name": "calc", "arguments": {}}</tool_call>')
    *_, term, trunc, info = env.step("junk")
    assert not term


def test_seed_determines_task_and_unseeded_reset_draws_one():
    env = make()
    assert env.reset(seed=5)[0] == env.reset(seed=5)[0]
    _, info = env.reset()
    assert isinstance(info["seed"], int)
    assert env.reset(seed=info["seed"])[0] == env.reset(seed=info["seed"])[0]


def test_render_is_the_transcript():
    env = Adder(max_turns=2, render_mode="ansi")
    env.reset(seed=1)
    env.step("<answer>0</answer>")
    text = env.render()
    assert "[user]" in text and "[assistant]\n<answer>0</answer>" in text


def test_control_characters_are_sanitized():
    class Noisy(Adder):
        def on_answer(self, answer):
            return Outcome(reply="bell\x07\x00", terminated=True)

    env = Noisy(max_turns=2)
    env.reset(seed=0)
    reply, *_ = env.step("<answer>1</answer>")
    assert reply == "bell\ufffd\ufffd" and env.observation_space.contains(reply)


def test_guess_number_solver_wins_quickly():
    env = tirgym.make("tirgym/GuessNumber-v0")
    for seed in range(20):
        env.reset(seed=seed)
        for _ in range(7):
            *_, term, trunc, info = env.step(env.unwrapped.solve())
            if term or trunc:
                break
        assert info["success"], seed
    assert np.isfinite(info["outcome_reward"])


def test_guess_number_progress_reward_is_a_turn_reward():
    env = tirgym.make("tirgym/GuessNumber-v0", low=1, high=8, progress_reward=1.0)
    env.reset(seed=0)
    secret = env.unwrapped.secret
    far = 8 if secret < 5 else 1  # a guess at the far end rules out little
    _, r_far, *_, info = env.step(f"<answer>{far}</answer>")
    assert set(info["reward_components"]) == {"progress"} and 0 < r_far <= 0.5
    _, r_again, *_ = env.step(f"<answer>{far}</answer>")
    assert r_again == 0.0  # repeating a guess rules nothing new out
