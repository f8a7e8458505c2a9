"""TextEnv: a gymnasium.Env whose observations and actions are strings.

The shared behaviour of every tirgym env lives here once: seeding (same seed, same task),
parsing the model's turn with the turn protocol, the invalid-format policy (penalty, and
termination after N consecutive invalid turns), the turn limit, reward bookkeeping and
text rendering. A subclass implements only:

- `generate_task(rng, options) -> str`: build the task from `rng`, return the prompt;
- `on_answer(answer) -> Outcome` and/or `on_tool_call(call) -> Outcome`;
- optionally `instructions()` (env-specific system prompt), `tools`, `state_key()`,
  `on_invalid(parsed, text)` (a turn the protocol rejects), `default_max_turns`,
  `solve()` (a solver/oracle policy), `close()`.

Rewards: `step` returns the sum of the turn's reward components. The component named
"outcome" is the episode's final score and only appears on the last turn; every other
component (format penalty, step cost, progress) is a turn reward that the trainer can
credit separately. `info["outcome_reward"]` and `info["success"]` come with the end.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Text
from gymnasium.utils import seeding

from tirgym.envs.seeding import task_rng
from tirgym.protocol import (
    ParsedTurn,
    ToolCall,
    ToolSchema,
    TurnFormat,
    answer_record,
    parse_turn,
    plain_answer,
    render_format_instructions,
)

MAX_TEXT_CHARS = 262_144


def _text_charset() -> str:
    """Every printable character of the BMP plus whitespace and the emoji blocks."""
    chars = [chr(c) for c in range(0x10000) if chr(c).isprintable() and not 0xD800 <= c < 0xE000]
    chars += ["\n", "\t", "\r"]
    chars += [chr(c) for c in range(0x1F300, 0x1FB00) if chr(c).isprintable()]
    return "".join(chars)


class TextSpace(Text):
    """gymnasium's `Text` with a readable repr: the stock one prints all ~60,000 characters
    of the charset."""

    def __repr__(self) -> str:
        return (
            f"Text({self.min_length}, {self.max_length}, charset=<{len(self.character_set):,} "
            "printable characters: the BMP, whitespace and emoji>)"
        )


_TEXT_SPACE: TextSpace | None = None


def text_space() -> TextSpace:
    """One shared `Text` space (building the charset costs ~50 ms, so build it once)."""
    global _TEXT_SPACE
    if _TEXT_SPACE is None:
        _TEXT_SPACE = TextSpace(max_length=MAX_TEXT_CHARS, min_length=0, charset=_text_charset())
    return _TEXT_SPACE


_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def sanitize(text: str) -> str:
    """Replace characters outside the text space (control bytes from tool output, ...)."""
    if text.isascii() and len(text) <= MAX_TEXT_CHARS and not _ASCII_CONTROL.search(text):
        return text  # the common case, at C speed
    charset = text_space().character_set
    if all(c in charset for c in text):
        return text[:MAX_TEXT_CHARS]
    return "".join(c if c in charset else "\ufffd" for c in text)[:MAX_TEXT_CHARS]


@dataclass(slots=True)
class Outcome:
    """What the env makes of one action."""

    reply: str
    rewards: dict[str, float] = field(default_factory=dict)
    """Turn reward components, e.g. {"progress": 0.1, "step_cost": -0.01}."""
    terminated: bool = False
    success: bool = False
    """Meaningful when terminated: did the agent solve the task?"""
    outcome_reward: float | None = None
    """Final score when terminated; defaults to 1.0 on success and 0.0 otherwise."""
    tool_error: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class TextEnv(gym.Env[str, str]):
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 1}

    tools: ClassVar[list[ToolSchema]] = []
    """Tool schemas offered to the model (JSON schema per tool)."""
    allow_answer: ClassVar[bool] = True
    allow_python_block: ClassVar[bool] = False
    description: ClassVar[str] = ""
    default_max_turns: ClassVar[int] = 1
    """The turn limit when `max_turns` is not given (the same built directly or by id)."""

    def __init__(
        self,
        *,
        max_turns: int | None = None,
        format_penalty: float = 0.0,
        max_invalid_turns: int = 3,
        multiple_actions: Literal["first", "error"] = "first",
        text_after_action: Literal["ignore", "error"] = "ignore",
        render_mode: str | None = None,
    ):
        if max_turns is None:
            max_turns = self.default_max_turns
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.max_turns = max_turns
        self.format_penalty = format_penalty
        self.max_invalid_turns = max_invalid_turns
        self.render_mode = render_mode
        self.turn_format = TurnFormat(
            tools=tuple(t["name"] for t in self.tools),
            allow_answer=self.allow_answer,
            allow_python_block=self.allow_python_block,
            multiple_actions=multiple_actions,
            text_after_action=text_after_action,
        )
        self.observation_space = text_space()
        self.action_space = text_space()
        self.task_seed: int | None = None
        self.turn = 0
        self.invalid_streak = 0
        self.done = False
        self.last_observation = ""
        self.transcript: list[tuple[str, str]] = []

    # ---- subclass hooks -------------------------------------------------------------
    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        raise NotImplementedError

    def instructions(self) -> str:
        """Env-specific part of the system prompt (rules, move vocabulary)."""
        return self.description

    def on_answer(self, answer: str) -> Outcome:
        raise NotImplementedError(f"{type(self).__name__} takes no answers")

    def on_tool_call(self, call: ToolCall) -> Outcome:
        return Outcome(reply=f"Unknown tool {call.name!r}.", tool_error=True)

    def on_invalid(self, parsed: ParsedTurn, text: str) -> Outcome:
        """A turn the protocol rejects (`parsed.errors` says why; `text` is the raw turn).

        The default is the invalid-format policy: `format_penalty`, and the episode ends
        after `max_invalid_turns` invalid turns in a row. Override to accept another form
        of answer (then reset `invalid_streak`), or to end the episode another way."""
        return self._invalid(parsed)

    @property
    def num_tasks(self) -> int | None:
        """Distinct tasks the env draws from (a dataset's rows; seed s gives row s % num_tasks),
        None when tasks are generated without bound. Eval runs each row once by default."""
        return None

    def state_key(self) -> str:
        """A key of the current state for anchor-state grouping (GiGPO).

        Defaults to a hash of the last observation; games override it with their state.
        """
        return hashlib.sha1(self.last_observation.encode("utf-8", "replace")).hexdigest()[:16]

    # ---- gymnasium API ----------------------------------------------------------------
    def system_prompt(self) -> str:
        fmt = render_format_instructions(
            self.tools, allow_answer=self.allow_answer, allow_python_block=self.allow_python_block
        )
        head = self.instructions().strip()
        return f"{head}\n\n{fmt}" if head else fmt

    def task_id(self) -> str:
        name = self.spec.id if self.spec is not None else type(self).__name__
        return f"{name}#{self.task_seed}"

    # gymnasium's `reset(seed=s)` builds `self._np_random` from s at once (~10 us, as much as
    # a whole reset of a small game), though only an unseeded reset or a wrapper reads it:
    # here it is built from the same seed on first read, so it is the same generator.
    _rng_seed: int | None = None

    @property
    def _np_random(self) -> np.random.Generator | None:  # type: ignore[override]
        rng = self.__dict__.get("_rng")
        if rng is None and self._rng_seed is not None:
            rng, self._np_random_seed = seeding.np_random(self._rng_seed)
            self.__dict__["_rng"], self._rng_seed = rng, None
        return rng

    @_np_random.setter
    def _np_random(self, value: np.random.Generator | None) -> None:
        self.__dict__["_rng"], self._rng_seed = value, None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        else:
            self._np_random = None
            self._rng_seed = self._np_random_seed = int(seed)
        self.task_seed = int(seed)
        self.turn = 0
        self.invalid_streak = 0
        self.done = False
        prompt = sanitize(self.generate_task(task_rng(self.task_seed), options or {}))
        self.last_observation = prompt
        self.transcript = [("user", prompt)]
        info = {
            "system_prompt": self.system_prompt(),
            "tools": list(self.tools),
            "task_id": self.task_id(),
            "seed": self.task_seed,
            "max_turns": self.max_turns,
            "state_key": self.state_key(),
        }
        return prompt, info

    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if type(action) is str:
            self.transcript.append(("assistant", action))
            plain = plain_answer(action, self.turn_format)
            if plain is not None:  # the common turn: no ParsedTurn, its record built directly
                self.turn += 1
                self.invalid_streak = 0
                outcome = self.on_answer(plain[1])
                return self._finish_step("user", answer_record(*plain), outcome)
        else:
            self.transcript.append(
                ("assistant", action if isinstance(action, str) else repr(action))
            )
        parsed = parse_turn(action, self.turn_format)
        self.turn += 1
        if parsed.errors:
            outcome = self.on_invalid(parsed, action)
        else:
            self.invalid_streak = 0
            if parsed.tool_calls:
                outcome = self.on_tool_call(parsed.tool_calls[0])
            else:
                outcome = self.on_answer(parsed.answer or "")
        return self._finish_step("tool" if parsed.tool_calls else "user", parsed.to_dict(), outcome)

    def _invalid(self, parsed: ParsedTurn) -> Outcome:
        self.invalid_streak += 1
        rewards = {"format": -self.format_penalty} if self.format_penalty else {}
        reply = f"Invalid turn: {parsed.error_message()}"
        if self.max_invalid_turns and self.invalid_streak >= self.max_invalid_turns:
            return Outcome(
                reply=reply + f" Episode over after {self.invalid_streak} invalid turns in a row.",
                rewards=rewards,
                terminated=True,
                info={"stop_reason": "invalid_format"},
            )
        return Outcome(reply=reply, rewards=rewards)

    def _finish_step(self, role: str, parse: dict[str, Any], outcome: Outcome):
        rewards = outcome.rewards
        components = {k: float(v) for k, v in rewards.items() if v} if rewards else {}
        reply = outcome.reply
        if not (reply.isascii() and reply.isprintable() and len(reply) <= MAX_TEXT_CHARS):
            reply = sanitize(reply)
        terminated = outcome.terminated
        truncated = not terminated and self.turn >= self.max_turns
        if terminated or truncated:
            return self._finish_episode(role, parse, outcome, components, reply, truncated)
        self.last_observation = reply
        self.transcript.append((role, reply))
        info = {
            "role": role,
            "parse": parse,
            "turn": self.turn,
            "tool_error": outcome.tool_error,
            **outcome.info,
            "reward_components": components,
            "state_key": self.state_key(),
        }
        return reply, float(sum(components.values())) if components else 0.0, False, False, info

    def _finish_episode(
        self,
        role: str,
        parse: dict[str, Any],
        outcome: Outcome,
        components: dict[str, float],
        reply: str,
        truncated: bool,
    ):
        """The last step: the outcome component, success and why the episode stopped."""
        self.done = True
        terminated = not truncated
        score = outcome.outcome_reward
        if score is None:
            score = 1.0 if (terminated and outcome.success) else 0.0
        components["outcome"] = float(score)
        info: dict[str, Any] = {
            "role": role,
            "parse": parse,
            "turn": self.turn,
            "tool_error": outcome.tool_error,
            **outcome.info,
        }
        info["success"] = bool(terminated and outcome.success)
        info["outcome_reward"] = float(score)
        info.setdefault("stop_reason", "env_done" if terminated else "max_turns")
        if truncated:
            reply = (reply + "\n" if reply else "") + f"Turn limit ({self.max_turns}) reached."
        info["reward_components"] = components
        self.last_observation = reply
        info["state_key"] = self.state_key()
        self.transcript.append((role, reply))
        return reply, float(sum(components.values())), terminated, truncated, info

    def render(self) -> str | None:
        text = "\n\n".join(f"[{role}]\n{content}" for role, content in self.transcript)
        if self.render_mode == "human":
            print(text)
            return None
        return text
