"""GuessNumber: the smallest multi-turn env, proving the whole path.

The model guesses a secret integer in [low, high]; the env answers "higher" or "lower".
Binary search wins within ceil(log2(high - low + 1)) guesses: `solve()` is that policy.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from tirgym.envs.base import Outcome, TextEnv

_INT = re.compile(r"^[+-]?\d+$")


class GuessNumberEnv(TextEnv):
    description = (
        "Guess the secret number. After each guess you are told whether it is higher or lower."
    )

    def __init__(
        self,
        low: int = 1,
        high: int = 100,
        progress_reward: float = 0.0,
        explain: bool = False,
        **kwargs: Any,
    ):
        """progress_reward: turn reward for the share of the remaining range a guess rules
        out (a halving guess earns about half of it); 0 keeps only the outcome.
        explain: the solver's think text states the range and its plan ("my plan is to
        halve the range"), so demos carry planning phrases for HICRA to credit."""
        kwargs.setdefault("max_turns", math.ceil(math.log2(high - low + 1)) + 3)
        super().__init__(**kwargs)
        if high <= low:
            raise ValueError(f"need low < high, got [{low}, {high}]")
        self.low, self.high = low, high
        self.progress_reward = progress_reward
        self.explain = explain
        self.secret = low
        self.lo_seen, self.hi_seen = low, high

    def instructions(self) -> str:
        return (
            f"{self.description} Each turn, give one integer guess as <answer>N</answer>. "
            f"You have {self.max_turns} turns."
        )

    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        self.secret = int(rng.integers(self.low, self.high + 1))
        self.lo_seen, self.hi_seen = self.low, self.high
        return f"I picked an integer between {self.low} and {self.high} inclusive. Guess it."

    def on_answer(self, answer: str) -> Outcome:
        text = answer.strip()
        if not _INT.match(text):
            return Outcome(
                reply=f"{text[:40]!r} is not an integer. Guess an integer between {self.low} and {self.high}."
            )
        guess = int(text)
        if guess == self.secret:
            return Outcome(
                reply=f"Correct! The number was {self.secret}.", terminated=True, success=True
            )
        before = self.hi_seen - self.lo_seen + 1
        if guess < self.secret:
            self.lo_seen = max(self.lo_seen, guess + 1)
            reply = f"{guess} is too low. The number is higher."
        else:
            self.hi_seen = min(self.hi_seen, guess - 1)
            reply = f"{guess} is too high. The number is lower."
        ruled_out = (before - (self.hi_seen - self.lo_seen + 1)) / before
        rewards = {"progress": self.progress_reward * ruled_out} if self.progress_reward else {}
        return Outcome(reply=reply, rewards=rewards)

    def state_key(self) -> str:
        return f"{self.lo_seen}-{self.hi_seen}"

    def solve(self) -> str:
        """The optimal next turn: guess the middle of what is still possible."""
        lo, hi = self.lo_seen, self.hi_seen
        think = "Binary search."
        if self.explain:
            think = f"It is between {lo} and {hi}. My plan is to halve the range, so I guess the middle."
        return f"<think>{think}</think><answer>{(lo + hi) // 2}</answer>"
