"""The transformers backend: our own batched sampling loop over `model.forward` with a KV cache.

Why not `model.generate`: it gives no exact logprobs of the sampled tokens under the raw
distribution, its per-sequence stop strings are slow, and it keeps finished rows in the
batch. This loop left-pads the prompts, prefills once, then decodes one token per step
for the rows still running, drops finished rows from the batch (and the cache) as they
accumulate, and checks stop strings only on steps whose token could end one.

Logprobs: log_softmax of the raw logits (temperature 1, before top-p) of each sampled
token, whatever the sampling temperature: the quantity the trainer recomputes.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tirgym.agents.seeding import row_seeds, uniforms
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


def end_token_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """Ids that end a turn: the tokenizer's eos, <|im_end|>/<|endoftext|>, the model's eos."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
        if t in vocab:
            ids.add(int(vocab[t]))
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    if eos is not None:
        ids.update(int(e) for e in (eos if isinstance(eos, list | tuple) else [eos]))
    return ids


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
        # transformers 5.x renamed the forward argument `past_key_values` to `cache`.
        fwd = inspect.signature(type(model).forward).parameters
        self._cache_kw = "cache" if "cache" in fwd else "past_key_values"

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "cpu", dtype: str | torch.dtype = "float32", **kw: Any
    ) -> HFPolicy:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
        except OSError as e:
            raise TirgymError(f"Cannot load a model from {str(path)!r}: {e}") from None
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
            target = params.get(name) or params.get(name.removeprefix("module."))
            if target is None:
                unknown.append(name)
                continue
            target.copy_(tensor.to(device=target.device, dtype=target.dtype))
        if unknown:
            raise TirgymError(
                f"update_weights: {len(unknown)} unknown tensor name(s), e.g. {unknown[:3]}."
            )

    @torch.no_grad()
    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[Completion]:
        rows = [list(p) for p in prompt_token_ids for _ in range(params.n)]
        if not rows:
            return []
        if any(not r for r in rows):
            raise TirgymError("generate: every prompt needs at least one token.")
        out_ids: list[list[int]] = [[] for _ in rows]
        out_lp: list[list[float]] = [[] for _ in rows]
        finish = ["length"] * len(rows)
        stop_hit: list[str | None] = [None] * len(rows)
        if params.max_new_tokens > 0:
            self._sample(rows, params, out_ids, out_lp, finish, stop_hit)
        texts = self.tokenizer.batch_decode(out_ids, skip_special_tokens=False)
        return [
            Completion(ids, lps, text, fin, s)
            for ids, lps, text, fin, s in zip(out_ids, out_lp, texts, finish, stop_hit, strict=True)
        ]

    def _sample(self, rows, params, out_ids, out_lp, finish, stop_hit) -> None:
        dev = self.device
        B, L = len(rows), max(len(r) for r in rows)
        input_ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        attn = torch.zeros((B, L), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, L - len(r) :] = torch.tensor(r, dtype=torch.long)
            attn[i, L - len(r) :] = 1
        input_ids, attn = input_ids.to(dev), attn.to(dev)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        seeds = np.array(row_seeds(params, B // max(1, params.n)), dtype=np.uint64)
        checker = self._checker(params.stop)
        end_ids = self.end_ids

        out = self.model(
            input_ids=input_ids,
            attention_mask=attn,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = _cache_of(out)
        logits = out.logits[:, -1, :].float()
        next_pos = pos[:, -1:] + 1
        bmap = list(range(B))  # batch row -> original row
        active = [True] * B
        for step in range(params.max_new_tokens):
            u = None
            if params.temperature > 0:
                u = torch.from_numpy(uniforms(seeds[bmap], step)).to(dev, non_blocking=True)
            tok, lp = _sample_step(logits, params.temperature, params.top_p, u)
            tok_l, lp_l = tok.tolist(), lp.tolist()
            if min(tok_l) < 0:
                _raise_non_finite(step, [bmap[b] for b, t in enumerate(tok_l) if t < 0], len(rows))
            for b, i in enumerate(bmap):
                if not active[b]:
                    continue
                ids = out_ids[i]
                ids.append(tok_l[b])
                out_lp[i].append(lp_l[b])
                if tok_l[b] in end_ids:
                    finish[i], active[b] = "stop", False
                    continue
                s = checker.check(ids)
                if s is not None:
                    finish[i], stop_hit[i], active[b] = "stop", s, False
            n_active = sum(active)
            if n_active == 0 or step == params.max_new_tokens - 1:
                break
            attn = torch.cat([attn, torch.ones((len(bmap), 1), dtype=attn.dtype, device=dev)], 1)
            feed = tok[:, None]
            if len(bmap) - n_active >= self.compact_ratio * len(bmap):
                # Drop finished rows from the batch and the KV cache.
                keep = [b for b in range(len(bmap)) if active[b]]
                idx = torch.tensor(keep, device=dev)
                cache.batch_select_indices(idx)
                attn, feed, next_pos = attn[idx], feed[idx], next_pos[idx]
                bmap, active = [bmap[b] for b in keep], [True] * len(keep)
            out = self.model(
                input_ids=feed,
                attention_mask=attn,
                position_ids=next_pos,
                use_cache=True,
                **{self._cache_kw: cache},
            )
            cache = _cache_of(out)
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _sample_step(
    logits: torch.Tensor, temperature: float, top_p: float, u: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; return (tokens, raw T=1 logprob of each).

    `u` holds one uniform per row (from that row's own stream): the token is the inverse
    CDF at u, so a row's sample never depends on the other rows. A row whose logits are
    not finite (NaN, +inf, or all -inf) gets token -1: the caller raises, instead of a
    device-side assert in multinomial.
    """
    lse = torch.logsumexp(logits, dim=-1)
    bad = ~torch.isfinite(lse)
    if temperature <= 0 or u is None:
        tok = logits.argmax(-1)
    else:
        scaled = logits / temperature if temperature != 1.0 else logits
        probs = torch.softmax(scaled, dim=-1)
        if top_p < 1.0:
            sp, si = probs.sort(dim=-1, descending=True)
            cum = sp.cumsum(-1)
            sp = sp.masked_fill(cum - sp > top_p, 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, si, sp)
        cdf = probs.cumsum(-1)
        x = (u.to(cdf.dtype)[:, None] * cdf[:, -1:]).contiguous()
        tok = torch.searchsorted(cdf, x, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)
        # float rounding at the top end may land on a zero-probability token: take the mode
        zero = probs.gather(-1, tok[:, None]).squeeze(-1) <= 0
        tok = torch.where(zero, probs.argmax(-1), tok)
    lp = logits.gather(-1, tok[:, None]).squeeze(-1) - lse
    tok = torch.where(bad, torch.full_like(tok, -1), tok)
    return tok, lp


def _raise_non_finite(step: int, rows: list[int], batch: int) -> None:
    raise TirgymError(
        f"The policy's weights produced NaN/inf logits at generation step {step} "
        f"(rows {rows[:8]} of a batch of {batch}): the model diverged, likely a learning rate "
        "too high or a bf16 overflow; lower the lr, use fp32, or resume from an earlier "
        "checkpoint."
    )
