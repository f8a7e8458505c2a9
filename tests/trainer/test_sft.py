"""SFT: data from demos and JSONL, loss on mask-1 tokens only, retokenization, the CLI entry."""

import numpy as np
import pytest
import torch

from tirgym.episode import save_jsonl
from tirgym.errors import TirgymError
from tirgym.trainer.config import build_config
from tirgym.trainer.losses import model_logprobs
from tirgym.trainer.sft import retokenize, sft_episodes, sft_main, sft_train

ENV = {
    "id": "tirgym/GuessNumber-v0",
    "kwargs": {"low": 1, "high": 4, "max_turns": 3},
    "seeds": [0, 1000],
}


@pytest.fixture(scope="module")
def tok(tiny_path):
    from tirgym.trainer.model import load_tokenizer

    return load_tokenizer(tiny_path)


def cfg(tiny_path, tmp_path, **sft):
    return build_config(
        {
            "model": tiny_path,
            "envs": [ENV],
            "output_dir": str(tmp_path / "run"),
            "sft": {"lr": 3e-3, "batch_size": 4, **sft},
        }
    )


def nll(model, eps):
    from tirgym.trainer.batch import collate, make_rows

    rows = make_rows(eps, [np.zeros(len(e.token_ids), np.float32) for e in eps])
    b = collate(rows, 0, torch.device("cpu"))
    with torch.no_grad():
        lp, _ = model_logprobs(model, b["input_ids"], b["attention_mask"])
    return float(-(lp * b["mask"]).sum() / b["mask"].sum())


def test_solver_demos_are_tokenized_with_assistant_mask(tiny_path, tmp_path, tok):
    eps = sft_episodes(cfg(tiny_path, tmp_path, demos={"episodes": 6}), tok, seed=0)
    assert len(eps) == 6 and all(e.success for e in eps)
    for e in eps:
        sampled = tok.decode([t for t, m in zip(e.token_ids, e.loss_mask, strict=True) if m])
        assert (
            "<answer>" in sampled and "Guess" not in sampled
        )  # prompt/env text never in the target
        assert all(0 <= t < len(tok) for t in e.token_ids)


def test_retokenize_matches_the_rollout_tokens(tiny_path, tmp_path, tok):
    eps = sft_episodes(cfg(tiny_path, tmp_path, demos={"episodes": 3}), tok, seed=1)
    for e in eps:
        again = retokenize(e, tok)
        assert again.token_ids == e.token_ids
        assert again.loss_mask == e.loss_mask


def test_sft_lowers_target_nll_and_ignores_mask0_tokens(tiny_path, tmp_path, tok):
    from tirgym.trainer.model import load_model

    c = cfg(tiny_path, tmp_path, demos={"episodes": 8}, epochs=6)
    eps = sft_episodes(c, tok, seed=0)
    torch.manual_seed(0)
    model = load_model(tiny_path, torch.device("cpu"))
    before = nll(model, eps)
    m = sft_train(model, tok, eps, c.sft, torch.device("cpu"), seed=0, say=lambda _: None)
    after = nll(model, eps)
    assert m["sft_loss_last"] < m["sft_loss_first"] and after < before - 0.5


def test_sft_gradient_ignores_trailing_mask0_tokens(tiny_path, tmp_path, tok):
    """Tokens with mask 0 after the last target (an env reply) add no loss and no gradient."""
    from tirgym.trainer.batch import collate, make_rows
    from tirgym.trainer.losses import sft_loss
    from tirgym.trainer.model import load_model

    eps = sft_episodes(cfg(tiny_path, tmp_path, demos={"episodes": 3}), tok, seed=0)
    longer = [type(e).from_dict(e.to_dict()) for e in eps]
    rng = np.random.default_rng(0)
    for e in longer:
        extra = rng.integers(0, len(tok), 7).tolist()
        e.token_ids, e.loss_mask = e.token_ids + extra, e.loss_mask + [0] * 7
    model = load_model(tiny_path, torch.device("cpu"))

    def grads(batch_eps):
        model.zero_grad()
        rows = make_rows(batch_eps, [np.zeros(len(e.token_ids), np.float32) for e in batch_eps])
        b = collate(rows, 0, torch.device("cpu"))
        lp, _ = model_logprobs(model, b["input_ids"], b["attention_mask"])
        loss = sft_loss(lp, b["mask"])
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    l1, g1 = grads(eps)
    l2, g2 = grads(longer)
    assert l1 == pytest.approx(l2, abs=1e-6)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_data_files_and_vocab_check(tiny_path, tmp_path, tok):
    eps = sft_episodes(cfg(tiny_path, tmp_path, demos={"episodes": 2}), tok, seed=0)
    path = tmp_path / "demos.jsonl"
    save_jsonl(path, eps)
    got = sft_episodes(cfg(tiny_path, tmp_path, data=[str(path)]), tok, seed=0)
    assert [e.token_ids for e in got] == [e.token_ids for e in eps]
    bad = [type(e).from_dict(e.to_dict()) for e in eps]
    bad[0].token_ids[3] = len(tok) + 10
    save_jsonl(tmp_path / "bad.jsonl", bad)
    with pytest.raises(TirgymError, match="retokenize"):
        sft_episodes(cfg(tiny_path, tmp_path, data=[str(tmp_path / "bad.jsonl")]), tok, seed=0)
    fixed = sft_episodes(
        cfg(tiny_path, tmp_path, data=[str(tmp_path / "bad.jsonl")], retokenize=True), tok, seed=0
    )
    assert fixed[0].token_ids == eps[0].token_ids
    with pytest.raises(TirgymError, match="not found"):
        sft_episodes(cfg(tiny_path, tmp_path, data=[str(tmp_path / "nope.jsonl")]), tok, seed=0)


def test_sft_main_writes_a_loadable_model(tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM

    c = cfg(tiny_path, tmp_path, demos={"episodes": 4}, max_steps=2)
    out = sft_main(c)
    assert out == tmp_path / "run" / "sft_model"
    AutoModelForCausalLM.from_pretrained(out)
    assert (tmp_path / "run" / "sft_data.jsonl").exists()
