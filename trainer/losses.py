"""Policy-gradient losses as small pure functions over [batch, time] tensors.

Every function takes a `mask` (1 on tokens the policy sampled, 0 on prompt, tool output,
env replies and padding) and never lets a mask-0 position touch the result: values
there are replaced (not multiplied by 0) before any arithmetic, so whatever the logits
are at a mask-0 position (even inf), the loss and the gradient reaching every other
position are unchanged.

Aggregation takes optional global denominators (token count, sequence count over the
whole minibatch, across ranks) so that the sum of micro-batch losses equals the loss
of the full batch: gradient accumulation and data parallelism stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


@dataclass
class LossParams:
    agg: str = "token-mean"
    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = None
    ratio: str = "token"  # token | sequence (GSPO)
    kl_beta: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0
    max_response_len: int | None = None

    @classmethod
    def from_config(cls, cfg, max_total_tokens: int) -> LossParams:
        """From a LossConfig: GSPO uses its own (much tighter) clip range."""
        seq = cfg.ratio == "sequence"
        return cls(
            agg=cfg.agg,
            clip_low=cfg.gspo_clip_low if seq else cfg.clip_low,
            clip_high=cfg.gspo_clip_high if seq else cfg.clip_high,
            dual_clip=cfg.dual_clip,
            ratio=cfg.ratio,
            kl_beta=cfg.kl_beta,
            kl_estimator=cfg.kl_estimator,
            entropy_coef=cfg.entropy_coef,
            max_response_len=cfg.max_response_len or max_total_tokens,
        )


def _masked(x: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """x where mask else `fill`; `where` (not x*mask) so NaN/inf at mask-0 cannot leak."""
    return torch.where(mask.bool(), x, torch.full_like(x, fill))


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    max_len: int | None = None,
) -> torch.Tensor:
    """Reduce a [B, T] per-token loss to a scalar.

    token-mean: sum(l*m)/sum(m) (DAPO). seq-mean-token-mean: mean over sequences of each
    sequence's token mean (GRPO). seq-mean-token-sum-norm: sum(l*m)/(num_seqs*max_len)
    (Dr. GRPO). num_tokens/num_seqs default to this batch's; pass the whole minibatch's
    so micro-batch losses add up to it.
    """
    m = mask.to(per_token.dtype)
    lm = _masked(per_token, mask)
    if mode == "token-mean":
        denom = num_tokens if num_tokens is not None else m.sum().clamp_min(1.0)
        return lm.sum() / denom
    if mode == "seq-mean-token-mean":
        seq_len = m.sum(-1)
        has = seq_len > 0
        seq_mean = lm.sum(-1) / seq_len.clamp_min(1.0)
        denom = num_seqs if num_seqs is not None else has.sum().clamp_min(1)
        return (seq_mean * has).sum() / denom
    if mode == "seq-mean-token-sum-norm":
        if max_len is None:
            raise ValueError("seq-mean-token-sum-norm needs max_len (L_max)")
        denom = num_seqs if num_seqs is not None else (m.sum(-1) > 0).sum().clamp_min(1)
        return lm.sum() / (denom * max_len)
    raise ValueError(f"unknown aggregation {mode!r}; allowed: {', '.join(AGG_MODES)}")


def kl_penalty(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3"
) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate from sampled tokens (Schulman's k1/k2/k3)."""
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(log_ratio) - log_ratio - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}; allowed: k1, k2, k3")


def sequence_log_ratio(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """GSPO: per-token log ratio whose value is the sequence's mean log ratio and whose
    gradient is each token's own (GSPO-token form): sg[mean_t log r] + logp - sg[logp]."""
    m = mask.to(logprobs.dtype)
    diff = _masked(logprobs - old_logprobs, mask)
    seq = diff.sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
    return seq.detach() + logprobs - logprobs.detach()


def ppo_clip_per_token(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-min(r*A, clip(r, 1-lo, 1+hi)*A), with dual clip bounding it by c*|A| for A<0.

    Returns (per-token loss, bool tensor 'the clip was active')."""
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(pg1, pg2)
    clipped = pg2 > pg1
    if dual_clip is not None:
        pg3 = -advantages * dual_clip
        dual = (advantages < 0) & (loss > pg3)
        loss = torch.where(advantages < 0, torch.minimum(loss, pg3), loss)
        clipped = clipped | dual
    return loss, clipped


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    params: LossParams,
    ref_logprobs: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The full objective: PPO-clip (or GSPO) + beta*KL - entropy_coef*H, aggregated.

    All inputs are [B, T]; mask-0 positions never contribute. `weights` (detached, e.g.
    the off-policy corrections of trainer/corrections.py) multiply the per-token
    policy-gradient loss. Returns (loss, metrics) where metrics are detached sums over
    mask-1 tokens (divide by the token count).
    """
    mask = mask.bool()
    lp = _masked(logprobs, mask)
    old = _masked(old_logprobs, mask)
    adv = _masked(advantages, mask)
    if params.ratio == "sequence":
        log_ratio = sequence_log_ratio(lp, old, mask)
    elif params.ratio == "token":
        log_ratio = lp - old
    else:
        raise ValueError(f"unknown ratio level {params.ratio!r}; allowed: token, sequence")
    per_token, clipped = ppo_clip_per_token(
        log_ratio, adv, params.clip_low, params.clip_high, params.dual_clip
    )
    if weights is not None:
        per_token = per_token * _masked(weights.detach(), mask)
    agg = dict(
        mode=params.agg, num_tokens=num_tokens, num_seqs=num_seqs, max_len=params.max_response_len
    )
    pg_loss = aggregate(per_token, mask, **agg)
    loss = pg_loss
    m = mask.to(lp.dtype)
    with torch.no_grad():
        tok_diff = lp - old
        metrics = {
            "pg_loss": pg_loss.detach(),
            "clip_frac_sum": (clipped & mask).sum().to(lp.dtype),
            "approx_kl_sum": (_masked(0.5 * tok_diff**2, mask)).sum(),
            "ratio_sum": _masked(torch.exp(tok_diff), mask).sum(),
            "tokens": m.sum(),
        }
    if params.kl_beta and ref_logprobs is not None:
        kl = kl_penalty(lp, _masked(ref_logprobs, mask), params.kl_estimator)
        kl_loss = aggregate(kl, mask, **agg)
        loss = loss + params.kl_beta * kl_loss
        metrics["kl_ref_sum"] = _masked(kl, mask).sum().detach()
    if entropy is not None:
        ent = _masked(entropy, mask)
        if params.entropy_coef:
            loss = loss - params.entropy_coef * aggregate(ent, mask, **agg)
        metrics["entropy_sum"] = ent.sum().detach()
    return loss, metrics


def sft_loss(
    logprobs: torch.Tensor, mask: torch.Tensor, num_tokens: float | None = None
) -> torch.Tensor:
    """Negative log-likelihood averaged over mask-1 tokens (token-mean)."""
    return aggregate(-logprobs, mask, "token-mean", num_tokens=num_tokens)


# ---- logprobs -------------------------------------------------------------------------


def _chunk_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    want_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = F.linear(hidden, weight, bias)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # softmax statistics in fp32
    lse = torch.logsumexp(logits, dim=-1)
    lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
    if want_entropy:
        probs = torch.softmax(logits, dim=-1)
        ent = lse - (probs * logits).sum(-1)
    else:
        ent = torch.zeros_like(lp)
    return lp, ent


def logprobs_from_hidden(
    hidden: torch.Tensor,
    lm_head: torch.nn.Module,
    targets: torch.Tensor,
    chunk: int = 1024,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(target) (and the full-distribution entropy) from final hidden states.

    The lm head runs on `chunk` positions at a time; under autograd each chunk is
    checkpointed, so at most one chunk of [chunk, vocab] fp32 logits is alive at once
    instead of [B*T, vocab]. hidden: [B, T, H], targets: [B, T] -> [B, T].
    """
    B, T, H = hidden.shape
    flat_h = hidden.reshape(B * T, H)
    flat_t = targets.reshape(B * T)
    weight = lm_head.weight
    bias = getattr(lm_head, "bias", None)
    lps, ents = [], []
    grad = torch.is_grad_enabled() and (flat_h.requires_grad or weight.requires_grad)
    for s in range(0, B * T, chunk):
        h, t = flat_h[s : s + chunk], flat_t[s : s + chunk]
        if grad:
            lp, ent = checkpoint(
                _chunk_logprobs, h, weight, bias, t, with_entropy, use_reentrant=False
            )
        else:
            lp, ent = _chunk_logprobs(h, weight, bias, t, with_entropy)
        lps.append(lp)
        ents.append(ent)
    lp = torch.cat(lps).view(B, T)
    ent = torch.cat(ents).view(B, T) if with_entropy else None
    return lp, ent


def common_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """How many leading tokens every row shares (real tokens, not padding), leaving each row
    at least one token of its own."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)
    n = int(same.int().cumprod(0).sum())
    return min(n, input_ids.shape[1] - 1)


def _decoder_hidden(body, input_ids, attention_mask, min_shared: int) -> torch.Tensor:
    """Final hidden states [B, T, H]. When the rows share a prefix of min_shared tokens or
    more, it is run once and its K/V broadcast to every row for the rest: the same function
    of the weights (gradients from all rows flow into the one prefix pass), at a fraction of
    the compute when the prompt is most of each row. Off under gradient checkpointing (no
    cache) and for caches that are not plain per-layer K/V tensors."""
    from tirgym.agents.batching import cache_kwarg, cache_of, supports_continuous_batching

    shared = common_prefix(input_ids, attention_mask) if min_shared else 0
    if (
        shared < max(min_shared, 1)
        or getattr(body, "gradient_checkpointing", False)
        or not supports_continuous_batching(body)
    ):
        out = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    B, T = input_ids.shape
    pre = body(input_ids=input_ids[:1, :shared], use_cache=True)
    cache = cache_of(pre)
    for layer in cache.layers:
        layer.keys = layer.keys.expand(B, -1, -1, -1)
        layer.values = layer.values.expand(B, -1, -1, -1)
    pos = torch.arange(shared, T, device=input_ids.device).expand(B, -1)
    rest = body(
        input_ids=input_ids[:, shared:],
        attention_mask=attention_mask,
        position_ids=pos,
        use_cache=True,
        **{cache_kwarg(body): cache},
    )
    return torch.cat([pre.last_hidden_state.expand(B, -1, -1), rest.last_hidden_state], 1)


def model_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    chunk: int = 1024,
    with_entropy: bool = False,
    only: torch.Tensor | None = None,
    min_shared: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprob of each token given its prefix, aligned with input_ids ([B, T]; position 0 gets 0).

    Runs the decoder body once and the lm head chunk by chunk (see logprobs_from_hidden).
    `only` ([B, T] mask, e.g. the loss mask): the lm head runs just on those positions
    and the rest are 0; RL losses need nothing else, and sampled tokens are usually a
    small part of a multi-turn episode (prompt and env replies are not). Works for any
    HF causal LM (and peft wrappers) exposing get_decoder/get_output_embeddings.
    `min_shared`: rows that open with the same tokens (an env's system prompt) run that
    prefix once (see _decoder_hidden); 0 turns it off.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = base.get_decoder()
    head = base.get_output_embeddings()
    hidden = _decoder_hidden(body, input_ids, attention_mask, min_shared)
    B, T = input_ids.shape
    if only is None:
        lp, ent = logprobs_from_hidden(
            hidden[:, :-1], head, input_ids[:, 1:], chunk=chunk, with_entropy=with_entropy
        )
        pad = torch.zeros(B, 1, dtype=lp.dtype, device=lp.device)
        lp = torch.cat([pad, lp], dim=1)
        if ent is not None:
            ent = torch.cat([pad, ent], dim=1)
        return lp, ent
    sel = only.bool().clone()
    sel[:, 0] = False  # position 0 has no prefix
    b_idx, t_idx = sel.nonzero(as_tuple=True)
    h = hidden[b_idx, t_idx - 1].unsqueeze(0)  # the state *before* each selected token
    lp_sel, ent_sel = logprobs_from_hidden(
        h, head, input_ids[b_idx, t_idx].unsqueeze(0), chunk=chunk, with_entropy=with_entropy
    )
    dtype = lp_sel.dtype
    lp = torch.zeros(B, T, dtype=dtype, device=hidden.device).index_put((b_idx, t_idx), lp_sel[0])
    ent = None
    if ent_sel is not None:
        ent = torch.zeros(B, T, dtype=dtype, device=hidden.device).index_put(
            (b_idx, t_idx), ent_sel[0]
        )
    return lp, ent
