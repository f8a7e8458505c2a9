"""The transformers backend: our own batched sampling loop over `model.forward` with a KV cache.

Why not `model.generate`: it gives no exact logprobs of the sampled tokens under the raw
distribution, its per-sequence stop strings are slow, and it keeps finished rows in the
batch. Our loop (`tirgym.agents.batching.DecodeBatch`) left-pads the prompts, prefills
once, decodes one token per step for the rows still running, drops finished rows from the
batch (and the cache) as they accumulate, and checks stop strings only on steps whose
token could end one. The rollout engine uses the same loop as a continuous batch
(`open_stream`): episodes leave it for their env step and rejoin with their KV cache kept.

Logprobs: log_softmax of the raw logits (temperature 1, before top-p) of each sampled
token, whatever the sampling temperature: the quantity the trainer recomputes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from tirgym.agents.attention import use_gqa_sdpa
from tirgym.agents.batching import (
    DecodeBatch,
    GenStats,
    cache_kwarg,
    supports_continuous_batching,
)
from tirgym.agents.chat import end_token_ids
from tirgym.agents.seeding import row_seeds
from tirgym.agents.types import Completion, SamplingParams
from tirgym.errors import TirgymError

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise TirgymError(f"Unknown dtype {dtype!r}; use one of {', '.join(sorted(_DTYPES))}.")
    return _DTYPES[dtype]


class StopChecker:
    """Per-sequence stop-string detection that decodes only a short tail, and only when needed.

    A stop string can only complete on a token whose text contains the stop string's last
    character (or an incomplete UTF-8 byte); for other tokens the check is skipped.
    """

    def __init__(self, tokenizer: Any, stop: Iterable[str]):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.window = max((len(s) for s in self.stop), default=0) + 2
        self._candidate: list[bool] | None = None

    def _table(self) -> list[bool]:
        if self._candidate is None:
            last = {s[-1] for s in self.stop}
            n = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
            self._candidate = [("\ufffd" in t) or any(c in t for c in last) for t in texts]
        return self._candidate

    def check(self, ids: list[int]) -> str | None:
        """The stop string the completion `ids` just completed, or None."""
        if not self.stop:
            return None
        table = self._table()
        tok = ids[-1]
        if tok < len(table) and not table[tok]:
            return None
        tail = self.tokenizer.decode(ids[-self.window :], skip_special_tokens=False)
        for s in self.stop:
            if s in tail:
                return s
        return None


class HFPolicy:
    """A transformers causal LM as a `Policy` (CPU or GPU, fp32/bf16)."""

    trainable = True

    def __init__(self, model: Any, tokenizer: Any, *, compact_ratio: float = 0.5):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.compact_ratio = compact_ratio
        self.end_ids = end_token_ids(tokenizer, model)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.end_ids))
        self._stop_checkers: dict[tuple[str, ...], StopChecker] = {}
        self._cache_kw = cache_kwarg(model)
        self.stats = GenStats()
        self._can_stream: bool | None = None

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "cpu", dtype: str | torch.dtype = "float32", **kw: Any
    ) -> HFPolicy:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from tirgym.agents.backends import resolve_model

        path = resolve_model(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
        except OSError as e:
            raise TirgymError(f"Cannot load a model from {str(path)!r}: {e}") from None
        use_gqa_sdpa(model)
        return cls(model.to(device), tokenizer, **kw)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _checker(self, stop: Iterable[str]) -> StopChecker:
        key = tuple(stop)
        if key not in self._stop_checkers:
            self._stop_checkers[key] = StopChecker(self.tokenizer, key)
        return self._stop_checkers[key]

    @torch.no_grad()
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy tensors into the model in place (names as in `model.named_parameters()`)."""
        params = dict(self.model.named_parameters())
        params.update(dict(self.model.named_buffers()))
        unknown = []
        for name, tensor in named_tensors:
            target = params.get(name)
            if target is None:
                target = params.get(name.removeprefix("module."))
            if target is None:
                unknown.append(name)
                continue
            target.copy_(tensor.to(device=target.device, dtype=target.dtype))
        if unknown:
            raise TirgymError(
                f"update_weights: {len(unknown)} unknown tensor name(s), e.g. {unknown[:3]}."
            )

    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[Completion]:
        """Sample every prompt (x params.n) in one batch; finished rows leave it as they end."""
        if not prompt_token_ids:
            return []
        seeds = row_seeds(params, len(prompt_token_ids))
        batch = self.open_stream(params, keep_cache=False, compact_frac=self.compact_ratio)
        rows = [p for p in prompt_token_ids for _ in range(max(1, params.n))]
        for i, (ids, seed) in enumerate(zip(rows, seeds, strict=True)):
            batch.add(i, ids, seed)
        out: list[Completion | None] = [None] * len(rows)
        while batch.busy:
            for i, comp in batch.step():
                out[i] = comp
        return out  # type: ignore[return-value]

    def open_stream(self, params: SamplingParams, **kw: Any) -> DecodeBatch:
        """A continuous batch for the rollout engine: rows join and leave between steps."""
        return DecodeBatch(self, params, **kw)

    @property
    def can_stream(self) -> bool:
        """Whether `open_stream` works for this model (plain full-attention KV cache)."""
        if self._can_stream is None:
            self._can_stream = supports_continuous_batching(self.model)
        return self._can_stream
