"""Policies over any OpenAI-compatible server (vLLM's `vllm serve`, others), for evaluation.

`OpenAICompletionsPolicy` is token-level: it sends the engine's token ids as the prompt of
/v1/completions and asks for the sampled tokens as ids with their logprobs (vLLM's
`return_tokens_as_token_ids`). When a server returns no ids, the completion carries only
text: the rollout tokenizes it and marks the episode non-trainable.
`OpenAIChatPolicy` is text-level: it sends the conversation to /v1/chat/completions; its
episodes are never trainable. `openai_policy` picks the first when a tokenizer is known.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tirgym.agents.types import Completion, SamplingParams, TurnRequest
from tirgym.errors import TirgymError


def _client(base_url: str, api_key: str, timeout: float):
    try:
        import openai
    except ImportError:
        raise TirgymError(
            "The openai backend needs the `openai` package: pip install 'tirgym[openai]'."
        ) from None
    url = base_url.rstrip("/")
    if not url.endswith("/v1"):
        url += "/v1"
    return openai.OpenAI(base_url=url, api_key=api_key, timeout=timeout, max_retries=2)


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


class _Base:
    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: Any = None,
        *,
        api_key: str = "EMPTY",
        timeout: float = 600.0,
        max_concurrency: int = 32,
    ):
        self.base_url, self.model = base_url, model
        self.tokenizer = tokenizer
        self.client = _client(base_url, api_key, timeout)
        self.max_concurrency = max_concurrency

    def _map(self, fn, items: list) -> list:
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _call(self, fn, **kw):
        import openai

        try:
            return fn(**kw)
        except openai.APIConnectionError as e:
            raise TirgymError(
                f"Cannot reach the OpenAI-compatible server at {self.base_url}: {e}"
            ) from None

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        raise TirgymError(
            "The openai backend serves fixed weights; train with the hf or vllm backend."
        )


class OpenAICompletionsPolicy(_Base):
    """Token ids in, token ids and raw logprobs out (where the server supports it)."""

    trainable = True

    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[Completion]:
        seeds = params.seeds if params.seeds is not None else [params.seed] * len(prompt_token_ids)

        def one(item: tuple[list[int], int | None]) -> list[Completion]:
            prompt, seed = item
            extra: dict[str, Any] = {
                "return_tokens_as_token_ids": True,
                "skip_special_tokens": False,
                "include_stop_str_in_output": True,
            }
            resp = self._call(
                self.client.completions.create,
                model=self.model,
                prompt=prompt,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop) or None,
                seed=seed,
                n=params.n,
                logprobs=1,
                extra_body=extra,
            )
            return [self._completion(c) for c in sorted(resp.choices, key=lambda c: c.index)]

        items = list(zip(prompt_token_ids, seeds, strict=True))
        return [c for group in self._map(one, items) for c in group]

    def _completion(self, choice: Any) -> Completion:
        text = choice.text or ""
        stop = getattr(choice, "stop_reason", None)
        stop = stop if isinstance(stop, str) else None
        lp = choice.logprobs
        tokens = list(getattr(lp, "tokens", None) or [])
        ids: list[int] = []
        if tokens and all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
            ids = [int(t.split(":", 1)[1]) for t in tokens]
        logprobs = [float(x) for x in (getattr(lp, "token_logprobs", None) or [])]
        if not ids or len(logprobs) != len(ids):
            return Completion([], [], text, _finish(choice.finish_reason), stop)
        if self.tokenizer is not None:
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
        return Completion(ids, logprobs, text, _finish(choice.finish_reason), stop)


class OpenAIChatPolicy(_Base):
    """Conversation in, text out; episodes are evaluation-only."""

    trainable = False

    def act(self, requests: list[TurnRequest], params: SamplingParams) -> list[Completion]:
        seeds = params.seeds if params.seeds is not None else [params.seed] * len(requests)

        def one(item: tuple[TurnRequest, int | None]) -> Completion:
            r, seed = item
            resp = self._call(
                self.client.chat.completions.create,
                model=self.model,
                messages=r.messages,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop) or None,
                seed=seed,
                extra_body={"include_stop_str_in_output": True},
            )
            c = resp.choices[0]
            return Completion([], [], c.message.content or "", _finish(c.finish_reason), None)

        return self._map(one, list(zip(requests, seeds, strict=True)))


def openai_policy(base_url: str, model: str, tokenizer: Any = None, **kw: Any):
    """Token-level when a tokenizer is known (trainable episodes if the server returns ids)."""
    if tokenizer is None:
        return OpenAIChatPolicy(base_url, model, None, **kw)
    return OpenAICompletionsPolicy(base_url, model, tokenizer, **kw)
