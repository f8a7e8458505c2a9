"""Small random transformers models built in memory, for tests that need a model's shape
(grouped heads, head sizes, layers) rather than a trained tokenizer."""

import torch


def random_qwen(
    vocab: int = 50,
    *,
    hidden: int = 64,
    layers: int = 1,
    heads: int = 1,
    kv_heads: int = 1,
    head_dim: int = 64,
    intermediate: int = 64,
):
    """A seeded Qwen2ForCausalLM on transformers' sdpa attention, in eval mode."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        attn_implementation="sdpa",
    )
    return Qwen2ForCausalLM(cfg).eval()
