"""The policy interface and the value types the rollout engine and backends share.

A token-level `Policy` (hf, vllm, openai completions) gets prompts as token ids and returns
the sampled ids with their logprobs: the engine never re-tokenizes what was sampled. A
`TextPolicy` (scripted solvers, chat-only APIs) acts on the conversation and returns text;
its episodes are tokenized afterwards when it has a tokenizer (SFT demos), and are never
trainable for RL because no sampler logprobs exist.

Logprob convention: `Completion.logprobs[i]` is log p(token_i) under the model's raw
distribution (log_softmax of the logits at temperature 1, before top-p), whatever the
sampling temperature. That is what the trainer recomputes, so the sampler-vs-trainer gap
measures numerical mismatch only; vLLM's default logprobs follow the same convention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tirgym.env_spec import EnvSpec
from tirgym.protocol import STOP_STRINGS

if TYPE_CHECKING:
    import torch


@dataclass
class SamplingParams:
    temperature: float = 1.0
    """0 means greedy."""
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] | list[str] = STOP_STRINGS
    """Generation stops once the decoded completion contains one of these; the stop
    string's tokens stay in the output (they were sampled and are trained on)."""
    seed: int | None = None
    n: int = 1
    seeds: list[int] | None = None
    """Per-prompt seeds (len = number of prompts), overriding `seed`: each prompt's sample is
    then a pure function of its seed and its prompt, whatever else is in the batch (the
    rollout engine derives them from (seed, task, sample index, turn)). With n > 1 the
    copies of a prompt get streams derived from its seed and the copy index."""

    def replace(self, **changes: Any) -> SamplingParams:
        from dataclasses import replace

        return replace(self, **changes)


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]
    """Raw-distribution (T=1) logprob of each sampled token; [] when the backend has none."""
    text: str
    """Exactly the decoding of `token_ids` (special tokens included) when ids are present."""
    finish_reason: str = "length"
    """stop (stop string or end-of-turn token) | length."""
    stop_str: str | None = None


@runtime_checkable
class Policy(Protocol):
    """Token-level policy: prompts in as ids, sampled ids and logprobs out."""

    tokenizer: Any
    trainable: bool

    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[Completion]:
        """len(result) == len(prompts) * params.n, prompt-major."""
        ...

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...


@runtime_checkable
class DecodeStream(Protocol):
    """A continuous batch (`policy.open_stream(params)`, when `policy.can_stream`): the
    rollout engine adds each episode's next turn as soon as it is ready and collects turns
    as they finish, so no episode waits for another's turn or env step."""

    @property
    def busy(self) -> bool:
        """Rows are decoding or waiting to be admitted."""
        ...

    def add(self, key: Any, prompt_ids: list[int], seed: int) -> None:
        """Queue a row; it samples from its own stream `seed` (one row, no copies)."""
        ...

    def step(self) -> list[tuple[Any, Completion]]:
        """Advance the batch; return the rows that finished, with their keys."""
        ...

    def release(self, key: Any) -> None:
        """The episode of `key` is over: drop what was kept for its next turn."""
        ...

    def close(self) -> None: ...


@dataclass
class TurnRequest:
    """What a text-level policy sees for one live episode's next turn."""

    messages: list[dict[str, str]]
    env: Any
    """The unwrapped env (solvers read its state; nothing may step it)."""
    turn: int
    episode_index: int
    rng: Any = None
    """A numpy Generator private to this episode (random policies)."""


@runtime_checkable
class TextPolicy(Protocol):
    """Text-level policy: acts on the conversation (scripted policies, chat APIs)."""

    tokenizer: Any
    """A HF tokenizer to tokenize episodes with, or None (episodes keep messages only)."""
    trainable: bool

    def act(self, requests: list[TurnRequest], params: SamplingParams) -> list[Completion]: ...


class Task(EnvSpec):
    """One env spec at one seed: what the rollout engine runs `group_size` times."""

    seed: int
    sample_index: int = 0
    """Index of this task's first sample: rollout j of its group is sample `sample_index + j`.
    An episode's sampling stream is a pure function of (params.seed, label, seed, sample), so
    a resumed eval that reruns only the missing samples reproduces an uninterrupted run."""

    def __init__(
        self,
        id: str,
        seed: int,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        sample_index: int = 0,
    ) -> None:
        super().__init__(
            id=id, seed=seed, kwargs=kwargs or {}, name=name, sample_index=sample_index
        )


@dataclass
class RolloutLimits:
    max_turns: int | None = None
    """None: the env's own turn limit."""
    max_new_tokens: int = 256
    """Per turn."""
    max_total_tokens: int = 4096
    """Prompt + all turns + all replies; an episode reaching it is truncated (max_tokens)."""
    episode_timeout_s: float = 600.0


def engine_args(
    *,
    seed: int | None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    max_turns: int | None = None,
    max_total_tokens: int = 4096,
    episode_timeout_s: float = 600.0,
) -> tuple[SamplingParams, RolloutLimits]:
    """The sampling params and limits `rollout` takes, from the numbers a training config
    or an eval call holds: `max_new_tokens` caps each turn in both, and `seed` roots the
    episodes' sampling streams."""
    params = SamplingParams(
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
    )
    limits = RolloutLimits(
        max_turns=max_turns,
        max_new_tokens=max_new_tokens,
        max_total_tokens=max_total_tokens,
        episode_timeout_s=episode_timeout_s,
    )
    return params, limits


EpisodeCallback = Callable[[Any], None]
