"""The trainer on the vllm backend: a real engine, weights pushed after every update.

The engine test runs 2 GRPO steps of the tiny model on GuessNumber with one engine.
A callback gives each episode a reward that varies inside its group (share of even
token ids), so step 1 really moves the weights (lr 1e-2); step 2 then samples from
the engine after the push, and the proof that the push reached the engine is that
step 2's sampler logprobs equal the step-1 weights' logprobs (the trainer's own
recompute, logged as logprob_gap_*, and an independent hf recompute from the step-1
checkpoint) while they are far from the start weights' logprobs.

Tolerance GAP_TOL = 1e-3 on the max |sampler - trainer| logprob over all sampled
tokens: both sides are fp32 with the same weights and differ only in kernels and
summation order (measured max ~1e-6 here, as in tests/agents/test_vllm.py), so 1e-3
cannot flake, while a stale engine (one missed push) is off by far more: the test
measures and asserts that the start weights give a gap above 100 x GAP_TOL on the
same tokens.

The fast tests (options validation, LoRA merge) need neither vllm nor an engine.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from train_helpers import guess_config

from tirgym.errors import TirgymError
from tirgym.trainer.config import build_config
from tirgym.trainer.loop import Callback

GAP_TOL = 1e-3
HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def _config(out, **extra):
    return (
        guess_config(
            "tiny",
            out,
            seed=1,
            steps=2,
            group_size=4,
            max_new_tokens=16,
            backend={"name": "vllm", "options": {"kv_cache_gb": 0.25, "enforce_eager": True}},
            optim={"lr": 1e-2},
            eval={"before": False, "after": True, "num_seeds": 2, "max_new_tokens": 8},
            checkpoint={"every": 1, "keep_last": 2},
            log={"progress": False, "tensorboard": False},
        )
        | extra
    )


# ---- fast: config and weight export ------------------------------------------------------


def test_vllm_options_are_validated_with_the_field_named(tmp_path):
    ok = build_config(_config(tmp_path))
    assert ok.backend.name == "vllm" and ok.backend.options["kv_cache_gb"] == 0.25
    bad = _config(tmp_path, backend={"name": "vllm", "options": {"kv_cache_gib": 1}})
    with pytest.raises(TirgymError, match="unknown vllm option 'kv_cache_gib'.*kv_cache_gb"):
        build_config(bad)
    bad = _config(tmp_path, backend={"name": "vllm", "options": {"max_model_len": "long"}})
    with pytest.raises(TirgymError, match="max_model_len"):
        build_config(bad)
    # hf options are the hf policy's business, not VLLMConfig's
    build_config(_config(tmp_path, backend={"name": "hf", "options": {"kv_cache_gib": 1}}))


def test_inference_weights_merge_lora_under_hf_names(tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from tirgym.agents.models import build_tiny_model
    from tirgym.trainer.config import LoraConfig
    from tirgym.trainer.model import apply_lora, inference_weights

    path = build_tiny_model(tmp_path / "m", hidden_size=64, num_heads=1, num_layers=1)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    plain = dict(base.named_parameters())
    assert inference_weights(plain, base) == list(plain.items())  # no LoRA: as is

    model = apply_lora(
        AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        LoraConfig(r=4, alpha=8),
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # lora_B starts at zero: give the adapters a real delta
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    got = dict(inference_weights(dict(model.named_parameters()), model))
    assert set(got) == set(plain)  # exactly the HF names, no adapter tensors
    # the trainer's module is untouched (no in-place merge/unmerge drift)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    merged = model.merge_and_unload()
    ref = dict(merged.named_parameters())
    for n, t in got.items():
        assert torch.allclose(t, ref[n], atol=1e-6), n
    changed = [n for n in got if not torch.equal(got[n], plain[n])]
    assert changed and all("proj" in n for n in changed)


# ---- the engine ------------------------------------------------------------------------


def _engine_pid(policy) -> int | None:
    """The engine-core process id where this vLLM version exposes it (V1 multiprocess)."""
    try:
        return policy.llm.llm_engine.engine_core.resources.engine_manager.processes[0].pid
    except (AttributeError, IndexError, TypeError):
        return None


def _recompute(model, ep: dict) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([ep["token_ids"]])
    with torch.no_grad():
        logp = model(ids).logits[0].float().log_softmax(-1)
    re = logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
    mask = torch.tensor(ep["loss_mask"][1:]).bool()
    return re[mask], torch.tensor(ep["logprobs"][1:])[mask]


def _gap(model, episodes: list[dict]) -> float:
    """Max |sampler - model| logprob over the sampled tokens of the episodes."""
    gaps = [(re - lp).abs().max().item() for re, lp in (_recompute(model, e) for e in episodes)]
    return max(gaps)


class EvenTokens(Callback):
    """A reward that varies inside a group (the share of even token ids), so every update
    really moves the weights; keeps what each step's episodes sampled."""

    def __init__(self):
        self.episodes: dict[int, list[dict]] = {}

    def on_episodes(self, trainer, step, episodes):
        for ep in episodes:
            toks = [t for t, m in zip(ep.token_ids, ep.loss_mask, strict=True) if m]
            ep.outcome_reward = sum(t % 2 == 0 for t in toks) / max(len(toks), 1)
        self.episodes.setdefault(step, []).extend(_sampled(e) for e in episodes)


def _sampled(e) -> dict:
    return {"token_ids": e.token_ids, "loss_mask": e.loss_mask, "logprobs": e.logprobs}


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (pip install tirgym[cpu-vllm])")
def test_grpo_on_vllm_pushes_weights_into_one_engine(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from tirgym.agents.vllm_backend import VLLMPolicy
    from tirgym.trainer.loop import train

    calls = {"start": 0, "push": 0}
    real_start, real_push = VLLMPolicy.from_pretrained.__func__, VLLMPolicy.update_weights

    def start(cls, *a, **kw):
        calls["start"] += 1
        return real_start(cls, *a, **kw)

    def push(self, named):
        calls["push"] += 1
        return real_push(self, named)

    monkeypatch.setattr(VLLMPolicy, "from_pretrained", classmethod(start))
    monkeypatch.setattr(VLLMPolicy, "update_weights", push)

    class Probe(EvenTokens):
        def __init__(self):
            super().__init__()
            self.engine: list[tuple] = []

        def on_step_end(self, trainer, step, metrics):
            p = trainer.policy
            self.engine.append((type(p).__name__, id(p), id(p.llm), _engine_pid(p)))

    probe = Probe()
    run = train(_config(tmp_path / "run"), callbacks=[probe], quiet=True)

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward_mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for m in steps:
        assert m["response_tokens_mean"] > 0 and m["rollout_tokens_per_s"] > 0
        assert m["trained_tokens"] > 0 and m["logprob_gap_max"] < GAP_TOL, m
    assert steps[0]["grad_norm"] > 0 and steps[0]["reward_std"] > 0
    assert any("eval/success" in r for r in rows)  # held-out eval ran on the engine too

    # one engine for the whole run, fed one push per step
    assert probe.engine[0][0] == "VLLMPolicy" and probe.engine[0] == probe.engine[1]
    assert calls == {"start": 1, "push": 2}

    # Independent check on step 2's samples: they came from the step-1 weights...
    from tirgym.trainer.checkpoint import step_dir

    after1 = AutoModelForCausalLM.from_pretrained(step_dir(run, 1) / "model", dtype=torch.float32)
    start_model = AutoModelForCausalLM.from_pretrained(run / "tiny_model", dtype=torch.float32)
    fresh = stale = 0.0
    for ep in probe.episodes[2]:
        re, lp = _recompute(after1, ep)
        fresh = max(fresh, (re - lp).abs().max().item())
        re0, _ = _recompute(start_model, ep)
        stale = max(stale, (re0 - lp).abs().max().item())
    assert fresh < GAP_TOL, fresh
    # ...and not from the start weights: an engine that missed the push is caught
    assert stale > 100 * GAP_TOL, stale


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (pip install tirgym[cpu-vllm])")
def test_async_k1_on_vllm_samples_each_batch_with_its_pinned_weights(tmp_path):
    """async.max_staleness=1 on the engine: the generator thread owns it and loads the
    weights after step s-2 before the batch of step s (between batches, never during one);
    once training ends the engine gets the final weights (the eval after RL uses them)."""
    from train_helpers import GUESS_1_TO_4
    from transformers import AutoModelForCausalLM

    from tirgym.agents import RolloutLimits, Task, rollout
    from tirgym.agents.types import SamplingParams
    from tirgym.episode import load_jsonl
    from tirgym.trainer.checkpoint import step_dir
    from tirgym.trainer.loop import Trainer

    def load(path):
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)

    probe = EvenTokens()
    tr = Trainer(
        _config(
            tmp_path / "run",
            steps=3,
            checkpoint={"every": 1, "keep_last": 3},
            **{"async": {"max_staleness": 1}},
        ),
        callbacks=[probe],
        quiet=True,
    )
    try:
        run = tr.run()
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["async_staleness"] for r in rows if "reward_mean" in r] == [0, 1, 1]
        eps = load_jsonl(run / "episodes.jsonl")
        assert {e.info["train_step"]: e.policy_version for e in eps} == {1: 0, 2: 0, 3: 1}
        start, after1 = load(run / "tiny_model"), load(step_dir(run, 1) / "model")
        after2 = load(step_dir(run, 2) / "model")
        # step 2 sampled with the start weights, step 3 with those after step 1, not step 2
        assert _gap(start, probe.episodes[2]) < GAP_TOL
        assert _gap(after1, probe.episodes[3]) < GAP_TOL
        assert _gap(after2, probe.episodes[3]) > 100 * GAP_TOL
        # training over, the engine is the trainer's again, with the final weights
        task = Task(GUESS_1_TO_4["id"], 0, GUESS_1_TO_4["kwargs"])
        params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=0)
        fresh = [_sampled(e) for e in rollout(tr.policy, [task], 2, params, RolloutLimits())]
        assert _gap(load(run / "final_model"), fresh) < GAP_TOL
        assert _gap(after2, fresh) > 100 * GAP_TOL
    finally:
        tr.close()
