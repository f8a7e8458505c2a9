"""Loss functions against hand-computed values, and the mask invariance bar."""

import math

import pytest
import torch
from model_helpers import random_qwen

from tirgym.trainer.losses import (
    LossParams,
    aggregate,
    kl_penalty,
    logprobs_from_hidden,
    policy_loss,
    ppo_clip_per_token,
    sequence_log_ratio,
    sft_loss,
)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_ppo_clip_hand_values():
    # r = 1.5, A = 1: clip-higher bound 1.28 wins -> loss -1.28, clipped.
    # r = 0.5, A = -1: lower bound 0.8 wins -> loss 0.8, clipped.
    # r = 1.1, A = 2: inside the range -> loss -2.2, not clipped.
    log_ratio = t([[math.log(1.5), math.log(0.5), math.log(1.1)]])
    adv = t([[1.0, -1.0, 2.0]])
    loss, clipped = ppo_clip_per_token(log_ratio, adv, 0.2, 0.28)
    assert torch.allclose(loss, t([[-1.28, 0.8, -2.2]]))
    assert clipped.tolist() == [[True, True, False]]


def test_dual_clip_caps_negative_advantage():
    # r = 5, A = -1: plain PPO gives max(5, 1.28) = 5; dual clip c=3 caps it at 3.
    log_ratio, adv = t([[math.log(5.0), math.log(5.0)]]), t([[-1.0, 1.0]])
    plain, _ = ppo_clip_per_token(log_ratio, adv, 0.2, 0.28)
    dual, clipped = ppo_clip_per_token(log_ratio, adv, 0.2, 0.28, dual_clip=3.0)
    assert torch.allclose(plain, t([[5.0, -1.28]]))
    assert torch.allclose(dual, t([[3.0, -1.28]]))  # positive advantage untouched
    assert clipped.tolist() == [[True, True]]


def test_aggregation_modes():
    per = t([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
    mask = t([[1, 1, 1], [1, 0, 0]])
    assert aggregate(per, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(per, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(per, mask, "seq-mean-token-sum-norm", max_len=5).item() == pytest.approx(
        10 / (2 * 5)
    )
    with pytest.raises(ValueError, match="allowed"):
        aggregate(per, mask, "bogus")


def test_microbatches_sum_to_full_batch():
    torch.manual_seed(0)
    per, mask = torch.randn(6, 7, dtype=torch.float64), (torch.rand(6, 7) > 0.3).double()
    mask[:, 0] = 1
    for mode in ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]:
        full = aggregate(per, mask, mode, max_len=9)
        n_tok, n_seq = mask.sum(), 6
        parts = sum(
            aggregate(
                per[i : i + 2], mask[i : i + 2], mode, num_tokens=n_tok, num_seqs=n_seq, max_len=9
            )
            for i in range(0, 6, 2)
        )
        assert parts.item() == pytest.approx(full.item(), abs=1e-12)


def test_k3_kl_hand_value():
    lp, ref = t([[math.log(0.5)]]), t([[math.log(0.25)]])
    # k3 = exp(ref-lp) - (ref-lp) - 1 = 0.5 + ln 2 - 1
    assert kl_penalty(lp, ref, "k3").item() == pytest.approx(0.5 + math.log(2) - 1)
    assert kl_penalty(lp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_penalty(lp, lp, "k3").item() == 0.0


def test_gspo_sequence_ratio_value_and_gradient():
    lp = t([[-1.0, -2.0, -3.0]]).requires_grad_(True)
    old = t([[-1.5, -2.0, -2.0]])
    mask = t([[1, 1, 0]])
    lr = sequence_log_ratio(lp, old, mask)
    # value: mean over mask-1 tokens of (lp - old) = (0.5 + 0) / 2 = 0.25 at every position
    assert torch.allclose(lr[0, :2], t([0.25, 0.25]))
    (lr[0, :2].exp() * t([1.0, 1.0])).sum().backward()
    # each token's gradient is the sequence ratio exp(0.25), not the token ratio
    assert torch.allclose(lp.grad[0, :2], t([math.exp(0.25)] * 2))


def test_policy_loss_on_policy_gradient_is_minus_advantage():
    # ratio == 1 (on-policy): d loss / d logp_t = -A_t / num_tokens for token-mean.
    lp = t([[-0.5, -1.0, -2.0]]).requires_grad_(True)
    adv = t([[1.0, -2.0, 5.0]])
    mask = t([[1, 1, 0]])
    loss, m = policy_loss(lp, lp.detach(), adv, mask, LossParams())
    loss.backward()
    assert loss.item() == pytest.approx(-(1.0 - 2.0) / 2)
    assert torch.allclose(lp.grad, t([[-0.5, 1.0, 0.0]]))
    assert m["tokens"].item() == 2 and m["clip_frac_sum"].item() == 0


def test_kl_and_entropy_terms_enter_loss():
    lp = t([[math.log(0.5)]])
    ref = t([[math.log(0.25)]])
    ent = t([[2.0]])
    p = LossParams(kl_beta=0.1, entropy_coef=0.01)
    loss, m = policy_loss(lp, lp, t([[0.0]]), t([[1]]), p, ref_logprobs=ref, entropy=ent)
    assert loss.item() == pytest.approx(0.1 * (0.5 + math.log(2) - 1) - 0.01 * 2.0)
    assert m["entropy_sum"].item() == 2.0


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("ratio", ["token", "sequence"])
def test_perturbing_mask0_logits_changes_nothing(agg, ratio):
    torch.manual_seed(1)
    B, T, V = 3, 6, 11
    base = torch.randn(B, T, V, dtype=torch.float64)
    targets = torch.randint(0, V, (B, T))
    mask = torch.tensor(
        [[0, 1, 1, 0, 1, 0], [0, 0, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0]], dtype=torch.float64
    )
    adv = torch.randn(B, T, dtype=torch.float64)
    old = torch.log_softmax(base + 0.1, -1).gather(-1, targets[..., None]).squeeze(-1)
    ref = torch.log_softmax(base - 0.2, -1).gather(-1, targets[..., None]).squeeze(-1)
    params = LossParams(
        agg=agg, ratio=ratio, dual_clip=3.0, kl_beta=0.05, entropy_coef=0.01, max_response_len=8
    )

    def run(logits):
        logits = logits.clone().requires_grad_(True)
        logp_all = torch.log_softmax(logits, -1)
        lp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
        ent = -(logp_all.exp() * logp_all).sum(-1)
        loss, _ = policy_loss(lp, old, adv, mask, params, ref_logprobs=ref, entropy=ent)
        loss.backward()
        return loss.detach(), logits.grad

    loss0, grad0 = run(base)
    noisy = base.clone()
    noisy[mask == 0] += 50 * torch.randn_like(noisy[mask == 0])
    loss1, grad1 = run(noisy)
    assert loss0.item() != 0
    assert torch.equal(loss0, loss1)
    keep = mask.bool()
    assert torch.equal(grad0[keep], grad1[keep])
    assert torch.all(grad1[~keep] == 0)
    # an inf logit at a mask-0 position still leaves the loss unchanged
    inf = base.clone()
    inf[0, 0, 3] = float("inf")
    loss2, _ = run(inf)
    assert torch.equal(loss0, loss2)


def test_sft_loss_only_counts_mask1():
    lp = t([[-1.0, -3.0, -100.0]])
    assert sft_loss(lp, t([[1, 1, 0]])).item() == pytest.approx(2.0)


@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_chunked_logprobs_match_full_log_softmax(chunk):
    torch.manual_seed(2)
    head = torch.nn.Linear(8, 13, bias=False).double()
    hidden = torch.randn(2, 7, 8, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 13, (2, 7))
    lp, ent = logprobs_from_hidden(hidden, head, targets, chunk=chunk, with_entropy=True)
    full = torch.log_softmax(head(hidden), -1)
    ref_lp = full.gather(-1, targets[..., None]).squeeze(-1)
    ref_ent = -(full.exp() * full).sum(-1)
    assert torch.allclose(lp, ref_lp) and torch.allclose(ent, ref_ent)
    g1 = torch.autograd.grad(lp.sum() + ent.sum(), [hidden, head.weight])
    g2 = torch.autograd.grad(ref_lp.sum() + ref_ent.sum(), [hidden, head.weight])
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b)


def tiny_qwen(layers: int, heads: int, head_dim: int):
    """A float64 Qwen2 of vocab 50 and width 64 (one KV head), seeded."""
    return random_qwen(layers=layers, heads=heads, head_dim=head_dim).double()


def test_model_logprobs_only_mask_positions_match_full():
    from tirgym.trainer.losses import model_logprobs

    model = tiny_qwen(layers=1, heads=1, head_dim=64)
    ids = torch.randint(0, 50, (2, 9))
    attn = torch.ones_like(ids)
    attn[1, 7:] = 0  # right padding
    mask = torch.zeros(2, 9)
    mask[0, 3:6] = 1
    mask[1, 4:7] = 1
    full, ent_full = model_logprobs(model, ids, attn, chunk=4, with_entropy=True)
    part, ent_part = model_logprobs(model, ids, attn, chunk=4, with_entropy=True, only=mask)
    ref = torch.log_softmax(model(ids, attention_mask=attn).logits, -1)[:, :-1].gather(
        -1, ids[:, 1:, None]
    )[..., 0]
    assert torch.allclose(full[:, 1:], ref)
    m = mask.bool()
    assert torch.allclose(part[m], full[m]) and torch.allclose(ent_part[m], ent_full[m])
    assert torch.all(part[~m] == 0)


@pytest.mark.parametrize("lora", [False, True])
def test_shared_prefix_forward_gives_the_same_logprobs_and_gradients(lora):
    """Rows opening with one system prompt run it once; logprobs and every gradient equal
    the plain forward's (the prefix's K/V carry the gradients of all rows)."""
    from tirgym.trainer.losses import common_prefix, model_logprobs

    model = tiny_qwen(layers=2, heads=2, head_dim=32)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)
    prefix = torch.randint(0, 50, (12,))
    ids = torch.cat([prefix.expand(3, -1), torch.randint(0, 50, (3, 7))], 1)
    attn = torch.ones_like(ids)
    attn[1, 16:] = 0  # right padding
    attn[2, 14:] = 0
    ids[1, 16:] = 0
    ids[2, 14:] = 0
    mask = torch.zeros_like(ids, dtype=torch.float64)
    mask[:, 12:14] = 1
    mask[0, 15:] = 1
    assert common_prefix(ids, attn) == 12
    results = []
    for min_shared in (0, 8):
        model.zero_grad()
        lp, ent = model_logprobs(
            model, ids, attn, with_entropy=True, only=mask, min_shared=min_shared
        )
        (lp * torch.arange(1.0, 20.0)).sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((lp.detach(), ent.detach(), grads))
    (lp0, ent0, g0), (lp1, ent1, g1) = results
    # HF computes rotary angles in fp32, so even a plain forward of a prefix differs from
    # the full sequence's by ~1e-7: equal up to that, far below any missing-gradient error
    assert torch.allclose(lp0, lp1, rtol=1e-5, atol=1e-6)
    assert torch.allclose(ent0, ent1, rtol=1e-5, atol=1e-6)
    assert len(g0) == len(g1)
    for a, b in zip(g0, g1, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, float(a.abs().max())))
    assert all(a.abs().sum() > 0 for a in g0)
