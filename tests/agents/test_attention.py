"""Grouped-query attention without the K/V copy, and the in-place growing KV cache: a model
with grouped heads computes what transformers' sdpa computes, and every token a continuous
batch samples has the logprob a plain, uncached forward of its sequence gives it."""

import copy

import pytest
import torch
from model_helpers import random_qwen

from tirgym.agents.attention import use_gqa_sdpa
from tirgym.agents.batching import GROW_COLUMNS
from tirgym.agents.hf_backend import HFPolicy
from tirgym.agents.types import SamplingParams


def qwen(vocab: int, heads: int, kv_heads: int):
    return random_qwen(
        vocab, hidden=128, intermediate=256, layers=2, heads=heads, kv_heads=kv_heads, head_dim=32
    )


@pytest.fixture(scope="module")
def gqa_policy(hf_policy):
    model = qwen(len(hf_policy.tokenizer), heads=4, kv_heads=2)
    assert use_gqa_sdpa(model)
    return HFPolicy(model, hf_policy.tokenizer)


def padded_batch():
    torch.manual_seed(1)
    ids = torch.randint(0, 200, (3, 17))
    mask = torch.ones_like(ids)
    mask[0, :6] = 0
    mask[1, :1] = 0
    return ids, mask


def test_gqa_sdpa_matches_sdpa_on_padded_batches_with_gradients():
    ref = qwen(200, heads=4, kv_heads=2)
    ours = copy.deepcopy(ref)
    assert use_gqa_sdpa(ours) and ours.config._attn_implementation == "sdpa_gqa"
    ids, mask = padded_batch()
    out = []
    for m in (ref, ours):
        logits = m(input_ids=ids, attention_mask=mask).logits
        (logits[mask.bool()].logsumexp(-1).sum()).backward()
        grads = [p.grad.clone() for p in m.parameters()]
        out.append((logits.detach(), grads))
    keep = mask.bool()
    assert torch.allclose(out[0][0][keep], out[1][0][keep], atol=1e-5)
    for a, b in zip(out[0][1], out[1][1], strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_models_without_grouped_heads_are_left_on_sdpa():
    model = qwen(200, heads=4, kv_heads=4)
    assert not use_gqa_sdpa(model)
    assert model.config._attn_implementation == "sdpa"


def recomputed_logprobs(model, prompt: list[int], completion: list[int]) -> list[float]:
    """The completion's logprobs from one uncached forward of prompt + completion alone."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        lp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    pos = range(len(prompt) - 1, len(prompt) + len(completion) - 1)
    return [float(lp[p, t]) for p, t in zip(pos, completion, strict=True)]


def assert_matches_recompute(policy, prompt, comp):
    want = recomputed_logprobs(policy.model, prompt, comp.token_ids)
    assert max(abs(a - b) for a, b in zip(comp.logprobs, want, strict=True)) < 1e-4


def test_long_decodes_outgrow_the_cache_buffers_and_stay_exact(gqa_policy):
    n = 2 * GROW_COLUMNS + 20  # at least two buffer re-allocations per row
    params = SamplingParams(temperature=1.0, max_new_tokens=n, stop=(), seed=3)
    prompts = [list(range(5, 5 + k)) for k in (4, 11, 23)]
    comps = gqa_policy.generate(prompts, params)
    for p, c in zip(prompts, comps, strict=True):
        assert_matches_recompute(gqa_policy, p, c)
    assert max(len(c.token_ids) for c in comps) > GROW_COLUMNS


def test_rows_joining_leaving_and_returning_with_kept_caches_stay_exact(gqa_policy):
    """Joins mid-decode (re-pack of two caches), early finishers (compaction), and second
    turns prefilled on top of their kept caches: every sampled token stays exact."""
    params = SamplingParams(temperature=1.0, max_new_tokens=40, stop=(), seed=5)
    batch = gqa_policy.open_stream(params, admit_frac=0.0)
    prompts = {i: list(range(10 + i, 30 + 3 * i)) for i in range(6)}
    done: dict = {}
    for i in (0, 1, 2):
        batch.add(i, prompts[i], seed=i)
    for _ in range(7):
        done.update(batch.step())
    for i in (3, 4, 5):
        batch.add(i, prompts[i], seed=i)
    while batch.busy:
        done.update(batch.step())
    for i, comp in done.items():
        assert_matches_recompute(gqa_policy, prompts[i], comp)
    # second turns: history + a reply, prefilled on the kept caches, some of them together
    turn2 = {i: prompts[i] + done[i].token_ids + [7, 8, 9 + i] for i in done}
    again: dict = {}
    for i in turn2:
        batch.add(i, turn2[i], seed=100 + i)
    while batch.busy:
        again.update(batch.step())
    assert gqa_policy.stats.reused_tokens > 0
    for i, comp in again.items():
        assert_matches_recompute(gqa_policy, turn2[i], comp)
