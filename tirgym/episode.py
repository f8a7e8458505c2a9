"""Episode: the unit the trainer consumes and eval reports on.

One flat token sequence (prompt, sampled turns, env replies) with a loss mask that is 1
exactly on tokens the policy sampled, the sampled logprobs aligned with it, the span of
every message, and per-turn records (reward components, anchor state, parse summary).
It round-trips through JSONL without loss; `append_jsonl` fsyncs so a crash loses no
finished episode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class Span:
    """Tokens [start, end) of one message; role in system/user/assistant/tool."""

    start: int
    end: int
    role: str


@dataclass
class Turn:
    """One sampled assistant turn and what the env made of it."""

    start: int
    end: int
    """Token span [start, end) of the sampled tokens of this turn in Episode.token_ids."""
    text: str = ""
    reward: float = 0.0
    """Turn (shaping) reward: the sum of `reward_components`, outcome excluded."""
    reward_components: dict[str, float] = field(default_factory=dict)
    state_key: str = ""
    """Anchor state the turn acted from (GiGPO groups turns by it)."""
    action: str = "none"
    """tool_call | answer | none (a void turn)."""
    format_errors: list[str] = field(default_factory=list)
    tool_calls: int = 0
    tool_errors: int = 0
    finish_reason: str = ""
    reply_role: str = ""
    """Role of the env reply after this turn (tool/user), '' for the last turn."""
    policy_version: int | None = None
    """Training steps done by the weights that sampled this turn; set with partial
    rollouts (`async.partial_rollouts`), where an episode's turns may differ."""


@dataclass
class Episode:
    env_id: str
    seed: int
    group_id: str = ""
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    """Sampler logprob of each token; 0.0 where loss_mask is 0."""
    spans: list[Span] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    outcome_reward: float = 0.0
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    stop_reason: str = ""
    """answer | env_done | max_turns | max_tokens | timeout | invalid_format | error."""
    trainable: bool = True
    """False when the sampler gave no token ids/logprobs (e.g. some API servers)."""
    messages: list[dict[str, str]] = field(default_factory=list)
    """The conversation as chat messages, for display and SFT."""
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    policy_version: int | None = None
    """Training steps done by the weights that sampled it (async training; with partial
    rollouts the oldest of its turns'); None: not recorded (the synchronous loop samples
    with the current weights)."""

    @property
    def task_key(self) -> str:
        return f"{self.env_id}#{self.seed}"

    @property
    def num_sampled_tokens(self) -> int:
        return sum(self.loss_mask)

    @property
    def turn_rewards(self) -> list[float]:
        return [t.reward for t in self.turns]

    @property
    def total_reward(self) -> float:
        return self.outcome_reward + sum(self.turn_rewards)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Episode:
        d = dict(d)
        d.pop("schema", None)
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["spans"] = [Span(**s) for s in d.get("spans", [])]
        d["turns"] = [Turn(**t) for t in d.get("turns", [])]
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=True)

    @classmethod
    def from_json(cls, line: str) -> Episode:
        return cls.from_dict(json.loads(line))


def append_jsonl(path: str | Path, episodes: Iterable[Episode], fsync: bool = True) -> None:
    """Append episodes, one line each, and fsync: a crash afterwards loses none of them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for ep in episodes:
            f.write(ep.to_json() + "\n")
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def save_jsonl(path: str | Path, episodes: Iterable[Episode]) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    if tmp.exists():
        tmp.unlink()
    append_jsonl(tmp, episodes)
    os.replace(tmp, path)


def iter_jsonl(path: str | Path) -> Iterator[Episode]:
    """Read episodes; a torn last line (crash mid-write) is skipped, not fatal."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            if line.strip():
                yield Episode.from_json(line)


def load_jsonl(path: str | Path) -> list[Episode]:
    return list(iter_jsonl(path))
