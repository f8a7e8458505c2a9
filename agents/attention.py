"""Grouped-query attention without copying K/V to every query head.

Why: transformers' `sdpa` attention repeats each K/V head for its query heads (`repeat_kv`)
whenever a mask is passed and the device is not XPU/MPS, i.e. on every padded batch on CPU
or CUDA. On CPU that copy dominated decoding: SmolLM2 (9 query / 3 K/V heads), 32 rows of
550 tokens, one layer's attention took 31 ms with the copy and 1.7 ms with
`enable_gqa=True`, which torch's SDPA supports together with a mask. `use_gqa_sdpa(model)`
switches a model to the same computation under the name "sdpa_gqa" (same mask function as
"sdpa"), so rollouts and the trainer's forward both skip the copy.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "sdpa_gqa"


def sdpa_gqa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: [B, heads, q, d] in, [B, q, heads, d] out."""
    q_len = query.shape[2]
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    is_causal = bool(q_len > 1 and attention_mask is None and is_causal)
    if attention_mask is not None:
        attention_mask = attention_mask[:, :, :, : key.shape[-2]]
    out = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=is_causal,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, sdpa_gqa_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_gqa_sdpa(model: Any) -> bool:
    """Switch a model that runs `sdpa` with grouped K/V heads to "sdpa_gqa"; True if switched.

    Models on other attention implementations (eager, flash) or without grouped heads, and
    transformers versions without the attention interface, are left as they are."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "_attn_implementation", None) != "sdpa":
        return False
    heads = getattr(cfg, "num_attention_heads", None)
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    if not heads or kv == heads:
        return False
    try:
        _register()
        model.set_attn_implementation(NAME)
    except (ImportError, AttributeError, ValueError):
        return False
    return cfg._attn_implementation == NAME
