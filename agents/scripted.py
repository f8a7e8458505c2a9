"""Scripted policies: an env's solver, a random policy and a replay policy.

They act on text (`TextPolicy`), go through the same `rollout` as model policies and
give episodes in the same format: with a tokenizer, their turns are tokenized with mask
1 on the assistant tokens (expert demonstrations for SFT); they are never trainable for
RL since no sampler logprobs exist.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from tirgym.agents.types import Completion, SamplingParams, TurnRequest
from tirgym.errors import TirgymError


def _completion(text: str) -> Completion:
    return Completion(token_ids=[], logprobs=[], text=text, finish_reason="stop")


class SolverPolicy:
    """Plays each env's own `solve()` oracle."""

    trainable = False

    def __init__(self, tokenizer: Any = None):
        self.tokenizer = tokenizer

    def act(self, requests: list[TurnRequest], params: SamplingParams) -> list[Completion]:
        out = []
        for r in requests:
            solve = getattr(r.env, "solve", None)
            if solve is None:
                raise TirgymError(
                    f"{type(r.env).__name__} has no solve(); the solver policy needs an env with an oracle."
                )
            out.append(_completion(solve()))
        return out


class RandomPolicy:
    """The random baseline: an env's own `random_turn(rng)` where it has one (every game:
    random legal-looking moves in the env's answer format), else a mix of integer answers
    (in the env's `low..high` where it has them), tool calls with empty arguments and
    malformed text."""

    trainable = False

    def __init__(self, tokenizer: Any = None, low: int = 0, high: int = 100):
        self.tokenizer = tokenizer
        self.low, self.high = low, high

    def act(self, requests: list[TurnRequest], params: SamplingParams) -> list[Completion]:
        return [_completion(self._one(r)) for r in requests]

    def _one(self, r: TurnRequest) -> str:
        rng = r.rng if r.rng is not None else np.random.default_rng()
        own = getattr(r.env, "random_turn", None)
        if own is not None:  # games draw from a random.Random, seeded from the episode's stream
            return own(random.Random(int(rng.integers(2**63))))
        tools = [t["name"] for t in getattr(r.env, "tools", [])]
        u = float(rng.random())
        if tools and u < 0.3:
            name = tools[int(rng.integers(len(tools)))]
            return f"<tool_call>{json.dumps({'name': name, 'arguments': {}})}</tool_call>"
        if u < 0.9:
            low, high = self._range(r.env)
            return f"<answer>{int(rng.integers(low, high + 1))}</answer>"
        return "I am not sure."


    def _range(self, env: Any) -> tuple[int, int]:
        low, high = getattr(env, "low", None), getattr(env, "high", None)
        if isinstance(low, int) and isinstance(high, int) and low <= high:
            return low, high
        return self.low, self.high


class ReplayPolicy:
    """Plays fixed turn texts: one list for every episode, or one list per episode index."""

    trainable = False

    def __init__(
        self,
        turns: Sequence[str] | dict[int, Sequence[str]],
        tokenizer: Any = None,
        default: str = "",
    ):
        self.turns = turns
        self.tokenizer = tokenizer
        self.default = default

    def act(self, requests: list[TurnRequest], params: SamplingParams) -> list[Completion]:
        out = []
        for r in requests:
            seq = (
                self.turns.get(r.episode_index, ()) if isinstance(self.turns, dict) else self.turns
            )
            out.append(_completion(seq[r.turn] if r.turn < len(seq) else self.default))
        return out
