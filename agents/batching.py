"""Continuous batching over a transformers causal LM: rows join and leave between decode steps.

Why: in a multi-turn rollout an episode's next turn can start only after its env step, and
turns end at different lengths. Generating round by round idles the model during env
steps and on stragglers. Here a finished row leaves at once (the engine starts its env
step while the others decode) and a row whose env step is done joins at a later step with
only its NEW tokens prefilled: the KV cache of what it already had (prompt, earlier turns,
its own sampled tokens) is kept while it waits (`keep_cache`).

Layout: per layer one K and one V tensor [rows, heads, columns, head_dim], rows aligned on
the right, and a 0/1 mask [rows, columns] that is 0 on left padding and on the gap a
joiner's prefill leaves between its kept cache and its new tokens. Positions count real
tokens only, so each row computes what a plain forward of its own sequence computes (up to
the float noise of batching). Sampling is per row from (row seed, token index) streams
(`tirgym.agents.seeding`), so a row samples the same tokens whatever joins or leaves.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tirgym.agents.seeding import uniforms
from tirgym.agents.types import Completion, SamplingParams
from tirgym.errors import TirgymError


@dataclass
class GenStats:
    """Cumulative counters of a policy's generation (what the model did, and how long)."""

    forward_s: float = 0.0
    """Seconds inside model forwards and sampling (the rest of a rollout is engine time)."""
    decode_steps: int = 0
    prefill_calls: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    """Prompt tokens not prefilled because their KV cache was kept from the previous turn."""
    shared_tokens: int = 0
    """Prompt tokens not prefilled because they are the batch's shared prefix (computed once)."""
    sampled_tokens: int = 0
    joins: int = 0
    """Rows that joined a batch that was already decoding (continuous batching at work)."""


@dataclass
class _Row:
    key: Hashable
    seed: int
    ids: list[int]
    """Tokens whose K/V are (or, while pending, will be) in the cache: prompt + fed samples."""
    out_ids: list[int] = field(default_factory=list)
    out_lp: list[float] = field(default_factory=list)
    live: bool = True
    waited: int = 0


GROW_COLUMNS = 64
"""Spare cache columns a re-packed batch gets: decode steps until the next copy."""


@functools.cache
def _growing_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A full-attention cache layer whose K/V are views `[:, :, :n]` of buffers with spare
        columns, so a decode step writes its column in place. DynamicLayer concatenates the
        whole cache every step: a copy of all K/V per token per layer, and an allocation the
        size of the cache that glibc maps and unmaps each time."""

        def adopt(self, k: torch.Tensor, v: torch.Tensor, n: int) -> None:
            """Use buffers k, v (rows, heads, columns, head_dim) whose first n columns are set."""
            self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
            self._buf = (k, v)
            self.keys, self.values = k[:, :, :n], v[:, :, :n]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            n, add = self.get_seq_length(), key_states.shape[-2]
            buf = getattr(self, "_buf", None)
            if not (
                buf is not None
                and n + add <= buf[0].shape[-2]
                and buf[0].shape[:2] == key_states.shape[:2]
                and _is_head_of(self.keys, buf[0])
                and _is_head_of(self.values, buf[1])
            ):  # first use, or the tensors were replaced: one copy into new buffers
                shape = (*key_states.shape[:2], n + add + GROW_COLUMNS, key_states.shape[-1])
                k, v = key_states.new_empty(shape), value_states.new_empty(shape)
                if n:
                    k[:, :, :n], v[:, :, :n] = self.keys, self.values
                self.adopt(k, v, n)
                buf = self._buf
            buf[0][:, :, n : n + add] = key_states
            buf[1][:, :, n : n + add] = value_states
            self.keys, self.values = buf[0][:, :, : n + add], buf[1][:, :, : n + add]
            return self.keys, self.values

    return GrowingLayer


def _is_head_of(x: torch.Tensor, buf: torch.Tensor) -> bool:
    """Whether x is buf[:, :, :n] (not a tensor a re-pack or `batch_select_indices` put there)."""
    return (
        x.data_ptr() == buf.data_ptr() and x.stride() == buf.stride() and x.shape[0] == buf.shape[0]
    )


def growing_cache(
    buffers: list[tuple[torch.Tensor, torch.Tensor]] | None = None, length: int = 0
) -> Any:
    """A DynamicCache of `GrowingLayer`s; given per-layer K/V buffers, their first `length`
    columns are the cache and the rest is room to grow."""
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache()
    cache.layer_class_to_replicate = _growing_layer_class()
    for k, v in buffers or []:
        layer = cache.layer_class_to_replicate()
        layer.adopt(k, v, length)
        cache.layers.append(layer)
    return cache


def supports_continuous_batching(model: Any) -> bool:
    """True when the model's cache is plain full-attention `DynamicLayer`s (Llama, Qwen2/3,
    Mistral without sliding window, ...): those are the tensors this module re-packs."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer

        layers = DynamicCache(config=model.config).layers
    except Exception:
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class DecodeBatch:
    """A batch that rows join (`add`) and leave (finished completions from `step`).

    admit_frac / max_wait_steps: a pending row is prefilled once pending rows number at
    least admit_frac of the decoding rows, or one has waited max_wait_steps steps, or
    nothing is decoding (one prefill forward serves many joiners).
    compact_frac: finished rows stay in the tensors (masked, ignored) until they are at
    least this fraction of the batch, then are dropped (one copy of the cache).
    share_prefix: rows that start with the same min_shared or more tokens (an env's system
    prompt and tool schemas: most of a first turn's prompt) get that prefix's K/V from one
    forward of it, computed once per batch, instead of each prefilling it again.
    """

    def __init__(
        self,
        policy: Any,
        params: SamplingParams,
        *,
        keep_cache: bool = True,
        admit_frac: float = 0.25,
        max_wait_steps: int = 8,
        compact_frac: float = 0.25,
        share_prefix: bool = True,
        min_shared: int = 32,
    ):
        self.model = policy.model
        self.tokenizer = policy.tokenizer
        self.params = params
        self.checker = policy._checker(params.stop)
        self.end_ids = policy.end_ids
        self.pad_id = policy.pad_id
        self.cache_kw = policy._cache_kw
        self.stats: GenStats = policy.stats
        self.keep_cache = keep_cache
        self.admit_frac = admit_frac
        self.max_wait_steps = max_wait_steps
        self.compact_frac = compact_frac
        self.min_shared = min_shared
        self.prefix: tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        """The shared prefix's tokens and per-layer K/V ([heads, tokens, head_dim])."""
        self.device = policy.device
        self.repack = policy.can_stream
        """False: the cache is not plain tensors we may re-pack (sliding windows, ...); only
        a one-shot batch (`HFPolicy.generate`) works, shrinking via the cache's own API."""
        self.share_prefix = share_prefix and self.repack
        self.rows: list[_Row] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None
        self.next_tok: torch.Tensor | None = None
        self.pending: list[_Row] = []
        self.kept: dict[Hashable, tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]]]] = {}

    # ---- public --------------------------------------------------------------------------
    def add(self, key: Hashable, prompt_ids: list[int], seed: int) -> None:
        """Queue a row; its completion comes back from a later `step` under `key`."""
        if self.rows and not self.repack:
            raise TirgymError(
                f"{type(self.model).__name__}'s KV cache cannot be re-packed (sliding-window or "
                "hybrid attention): rows cannot join a running batch."
            )
        if not prompt_ids:
            raise TirgymError("generate: every prompt needs at least one token.")
        self.pending.append(_Row(key, int(seed), list(prompt_ids)))

    @property
    def busy(self) -> bool:
        return bool(self.pending) or any(r.live for r in self.rows)

    @property
    def decoding(self) -> int:
        return sum(r.live for r in self.rows)

    def release(self, key: Hashable) -> None:
        """Forget the kept cache of `key` (its episode is over)."""
        self.kept.pop(key, None)

    def close(self) -> None:
        """Free every tensor (the rollout is over, or failed)."""
        self.rows, self.pending, self.kept = [], [], {}
        self.cache = self.mask = self.next_tok = None

    def step(self) -> list[tuple[Hashable, Completion]]:
        """One token for every decoding row (joiners get their first); returns finished rows."""
        if self.params.max_new_tokens <= 0:
            done = [(r.key, Completion([], [], "", "length")) for r in self.pending]
            self.pending = []
            return done
        t0 = time.perf_counter()
        done: list[tuple[Hashable, Completion]] = []
        joiners: list[_Row] = []
        n_dec = self.decoding
        if self.pending and (
            n_dec == 0
            or len(self.pending) >= self.admit_frac * n_dec
            or max(r.waited for r in self.pending) >= self.max_wait_steps
        ):
            joiners, self.pending = self.pending, []
            if n_dec:
                self.stats.joins += len(joiners)
        for r in self.pending:
            r.waited += 1
        with torch.no_grad():
            if n_dec:
                done += self._decode()
            if joiners:
                cache, mask, tok, done_j = self._prefill(joiners)
                done += done_j
                self._merge(joiners, cache, mask, tok)
            elif self.rows and (len(self.rows) - self.decoding) > self.compact_frac * len(
                self.rows
            ):
                self._compact()
        self.stats.forward_s += time.perf_counter() - t0
        return done

    # ---- model calls ---------------------------------------------------------------------
    def _decode(self) -> list[tuple[Hashable, Completion]]:
        B = len(self.rows)
        ones = torch.ones((B, 1), dtype=self.mask.dtype, device=self.device)
        pos = torch.tensor([[len(r.ids)] for r in self.rows], device=self.device)
        self.mask = torch.cat([self.mask, ones], 1)
        out = self.model(
            input_ids=self.next_tok[:, None],
            attention_mask=self.mask,
            position_ids=pos,
            use_cache=True,
            **{self.cache_kw: self.cache},
        )
        self.cache = cache_of(out)
        for r in self.rows:
            if r.live:
                r.ids.append(r.out_ids[-1])
        self.stats.decode_steps += 1
        tok, done = self._sample(self.rows, out.logits[:, -1, :].float(), self.cache, self.mask)
        self.next_tok = tok
        return done

    def _prefill(self, rows: list[_Row]):
        """Prefill the joiners' new tokens on top of their kept caches; sample their first token."""
        dev, J = self.device, len(rows)
        priors: list[tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]] = []
        for r in rows:
            kept = self.kept.pop(r.key, None)
            p = 0
            if kept is not None:
                kids, kv = kept
                p = min(len(kids), len(r.ids) - 1)
                if r.ids[:p] != kids[:p]:
                    p = 0
            priors.append((p, kept[1] if p else None))
        shared = None
        if self.share_prefix:
            priors = self._shared_priors(rows, priors)
            shared = self.prefix[1] if self.prefix else None
        P = max(p for p, _ in priors)
        S = max(len(r.ids) - p for r, (p, _) in zip(rows, priors, strict=True))
        input_ids = torch.full((J, S), self.pad_id, dtype=torch.long)
        mask = torch.zeros((J, P + S), dtype=torch.long)
        pos = torch.zeros((J, S), dtype=torch.long)
        for j, (r, (p, _)) in enumerate(zip(rows, priors, strict=True)):
            new = r.ids[p:]
            input_ids[j, S - len(new) :] = torch.tensor(new, dtype=torch.long)
            pos[j, S - len(new) :] = torch.arange(p, len(r.ids))
            mask[j, P + S - len(new) :] = 1
            mask[j, P - p : P] = 1
        past = None
        if P:
            from transformers.cache_utils import DynamicCache

            layers = []
            ref = next(kv for p, kv in priors if p)  # any kept cache: the per-layer shapes
            cols = P + S + GROW_COLUMNS if self.repack else P
            for li, (k0, v0) in enumerate(ref):
                K = k0.new_zeros((J, k0.shape[0], cols, k0.shape[-1]))
                V = v0.new_zeros((J, v0.shape[0], cols, v0.shape[-1]))
                for j, (p, kv) in enumerate(priors):
                    if p:
                        K[j, :, P - p : P] = kv[li][0][:, :p]
                        V[j, :, P - p : P] = kv[li][1][:, :p]
                layers.append((K, V))
            past = growing_cache(layers, P) if self.repack else DynamicCache(ddp_cache_data=layers)
        elif self.repack:
            past = growing_cache()
        mask = mask.to(dev)
        kw = {self.cache_kw: past} if past is not None else {}
        out = self.model(
            input_ids=input_ids.to(dev),
            attention_mask=mask,
            position_ids=pos.to(dev),
            use_cache=True,
            logits_to_keep=1,
            **kw,
        )
        self.stats.prefill_calls += 1
        self.stats.prefill_tokens += sum(
            len(r.ids) - p for r, (p, _) in zip(rows, priors, strict=True)
        )
        self.stats.reused_tokens += sum(p for p, kv in priors if kv is not shared)
        self.stats.shared_tokens += sum(p for p, kv in priors if kv is shared)
        cache = cache_of(out)
        tok, done = self._sample(rows, out.logits[:, -1, :].float(), cache, mask)
        return cache, mask, tok, done

    def _shared_priors(self, rows: list[_Row], priors: list) -> list:
        """Give rows with no kept cache the shared prefix as their prior (computing it once:
        the longest prefix common to those rows, when it is min_shared tokens or more)."""
        fresh = [j for j, (p, _) in enumerate(priors) if p == 0]
        if not fresh:
            return priors
        if self.prefix is None and len(fresh) > 1:
            ids = [rows[j].ids for j in fresh]
            n = min(len(x) for x in ids) - 1  # every row keeps a token to prefill
            first = ids[0]
            common = next((i for i in range(n) if any(x[i] != first[i] for x in ids[1:])), n)
            if common >= self.min_shared:
                self.prefix = (first[:common], self._forward_prefix(first[:common]))
        if self.prefix is None:
            return priors
        pids, kv = self.prefix
        n = len(pids)
        out = list(priors)
        for j in fresh:
            r = rows[j]
            if len(r.ids) > n and r.ids[:n] == pids:
                out[j] = (n, kv)
        return out

    def _forward_prefix(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.model(
            input_ids=torch.tensor([ids], device=self.device),
            use_cache=True,
            logits_to_keep=1,
        )
        self.stats.prefill_calls += 1
        self.stats.prefill_tokens += len(ids)
        return [(k[0], v[0]) for k, v in _layers(cache_of(out))]

    def _sample(self, rows: list[_Row], logits: torch.Tensor, cache: Any, mask: torch.Tensor):
        """Sample one token per row, record it, finish rows (keeping their cache)."""
        p = self.params
        u = None
        if p.temperature > 0:
            seeds = np.array([r.seed for r in rows], dtype=np.uint64)
            steps = np.array([len(r.out_ids) for r in rows], dtype=np.uint64)
            u = torch.from_numpy(uniforms(seeds, steps)).to(self.device, non_blocking=True)
        tok, lp = sample_tokens(logits, p.temperature, p.top_p, u)
        tok_l, lp_l = tok.tolist(), lp.tolist()
        done = []
        for b, r in enumerate(rows):
            if not r.live:
                continue
            if tok_l[b] < 0:
                raise_non_finite(len(r.out_ids), [b], len(rows))
            r.out_ids.append(tok_l[b])
            r.out_lp.append(lp_l[b])
            stop: str | None = None
            if tok_l[b] in self.end_ids or (stop := self.checker.check(r.out_ids)) is not None:
                reason = "stop"
            elif len(r.out_ids) >= p.max_new_tokens:
                reason = "length"
            else:
                continue
            r.live = False
            if self.keep_cache:
                keep = mask[b].nonzero().squeeze(-1)
                kv = [(k[b][:, keep], v[b][:, keep]) for k, v in _layers(cache)]
                self.kept[r.key] = (r.ids, kv)
            text = self.tokenizer.decode(r.out_ids, skip_special_tokens=False)
            done.append((r.key, Completion(r.out_ids, r.out_lp, text, reason, stop)))
            self.stats.sampled_tokens += len(r.out_ids)
        return tok, done

    # ---- re-packing ----------------------------------------------------------------------
    def _merge(self, joiners: list[_Row], cache: Any, mask: torch.Tensor, tok: torch.Tensor):
        """Append the joiners (their cache right-aligned with the batch's), dropping finished rows."""
        if not self.rows:
            self.rows, self.cache, self.mask, self.next_tok = joiners, cache, mask, tok
            self._compact()
            return
        self._repack(
            [(self.rows, self.cache, self.mask, self.next_tok), (joiners, cache, mask, tok)]
        )

    def _compact(self) -> None:
        """Drop finished rows and the all-padding columns on the left."""
        if self.repack:
            if all(r.live for r in self.rows) and bool(self.mask[:, 0].any()):
                return  # nothing to drop: no copy
            self._repack([(self.rows, self.cache, self.mask, self.next_tok)])
            return
        keep = [b for b, r in enumerate(self.rows) if r.live]
        if not keep:
            self.rows, self.cache, self.mask, self.next_tok = [], None, None, None
        elif len(keep) < len(self.rows):  # the cache's own API (sliding windows, ...)
            idx = torch.tensor(keep, device=self.device)
            self.cache.batch_select_indices(idx)
            self.mask, self.next_tok = self.mask[idx], self.next_tok[idx]
            self.rows = [self.rows[b] for b in keep]

    def _repack(self, parts: list[tuple[list[_Row], Any, torch.Tensor, torch.Tensor]]) -> None:
        """One batch from the live rows of `parts` (rows, cache, mask, next token), right-aligned
        on the fewest columns that hold them, written once into buffers with room to grow."""
        picked = []
        for rows, cache, mask, tok in parts:
            keep = [b for b, r in enumerate(rows) if r.live]
            if not keep:
                continue
            idx = torch.tensor(keep, device=self.device)
            m = mask[idx]
            used = m.any(0).nonzero()
            width = m.shape[1] - int(used[0]) if len(used) else 1
            picked.append(([rows[b] for b in keep], _layers(cache), m[:, -width:], tok[idx], idx))
        if not picked:
            self.rows, self.cache, self.mask, self.next_tok = [], None, None, None
            return
        T = max(m.shape[1] for _, _, m, _, _ in picked)
        B = sum(len(r) for r, *_ in picked)
        layers = []
        for li, (k0, v0) in enumerate(picked[0][1]):
            K = k0.new_zeros((B, k0.shape[1], T + GROW_COLUMNS, k0.shape[-1]))
            V = v0.new_zeros((B, v0.shape[1], T + GROW_COLUMNS, v0.shape[-1]))
            b = 0
            for rows, kv, m, _, idx in picked:
                w, n = m.shape[1], len(rows)
                k, v = kv[li]
                K[b : b + n, :, T - w : T] = k[idx, :, k.shape[2] - w :]
                V[b : b + n, :, T - w : T] = v[idx, :, v.shape[2] - w :]
                b += n
            layers.append((K, V))
        self.cache = growing_cache(layers, length=T)
        self.mask = torch.cat([_pad_left(m, T) for _, _, m, _, _ in picked])
        self.next_tok = torch.cat([t for *_, t, _ in picked])
        self.rows = [r for rows, *_ in picked for r in rows]


def _layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _pad_left(x: torch.Tensor, T: int) -> torch.Tensor:
    """Zero-pad the column axis (-2 for K/V [B, H, T, D], -1 for a [B, T] mask) on the left to T."""
    axis = -1 if x.dim() == 2 else -2
    n = T - x.shape[axis]
    if n == 0:
        return x
    shape = list(x.shape)
    shape[axis] = n
    return torch.cat([x.new_zeros(shape), x], dim=axis)


def cache_of(out: Any) -> Any:
    """The KV cache a forward returned (transformers 5.x renamed `past_key_values` to `cache`)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def cache_kwarg(model: Any) -> str:
    """The name under which `model.forward` takes a KV cache: `cache` or `past_key_values`."""
    import inspect

    fwd = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in fwd else "past_key_values"


def sample_tokens(
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


def raise_non_finite(step: int, rows: list[int], batch: int) -> None:
    raise TirgymError(
        f"The policy's weights produced NaN/inf logits at generation step {step} "
        f"(rows {rows[:8]} of a batch of {batch}): the model diverged, likely a learning rate "
        "too high or a bf16 overflow; lower the lr, use fp32, or resume from an earlier "
        "checkpoint."
    )
