"""Checkpoints: contents, from_pretrained-loadable model, and exact --resume."""

import json

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import guess_config

from tirgym.episode import append_jsonl, load_jsonl
from tirgym.trainer.checkpoint import latest_checkpoint
from tirgym.trainer.loop import Callback, train


class HashReward(Callback):
    """A random model never wins: give rewards that vary within groups so gradients flow."""

    def on_episodes(self, trainer, step, episodes):
        for e in episodes:
            e.outcome_reward = float(sum(e.token_ids) % 3)
        return episodes


def config(tiny_path, out, **extra):
    return guess_config(
        tiny_path,
        out,
        seed=3,
        steps=3,
        optim={"lr": 1e-2, "warmup_steps": 2, "schedule": "cosine", "weight_decay": 0.0},
        update={"ppo_epochs": 2, "minibatches": 2, "micro_batch_tokens": 400},
        eval={"before": False, "after": False},
        checkpoint={"every": 1, "keep_last": 5},
        log={"progress": False, "plot": False},
        advantage={"estimator": "rloo"},
    ) | extra


def weights(run_dir, step):
    return load_file(
        str(run_dir / "checkpoints" / f"step_{step:06d}" / "model" / "model.safetensors")
    )


@pytest.mark.slow
def test_resume_reaches_the_same_weights(tiny_path, tmp_path):
    cb = [HashReward()]
    full = train(config(tiny_path, tmp_path / "full"), callbacks=cb, quiet=True)
    part = train(config(tiny_path, tmp_path / "part"), callbacks=cb, stop_after=2, quiet=True)
    assert latest_checkpoint(part).name == "step_000002"
    assert not (part / "checkpoints" / "step_000003").exists()
    # As if step 3 logged its episodes and then crashed before its checkpoint:
    stale = [e for e in load_jsonl(part / "episodes.jsonl") if e.info["train_step"] == 2]
    for e in stale:
        e.info["train_step"] = 3
    append_jsonl(part / "episodes.jsonl", stale)
    resumed = train(config(tiny_path, tmp_path / "part"), callbacks=cb, resume=True, quiet=True)
    a, b = weights(full, 3), weights(resumed, 3)
    start = load_file(f"{tiny_path}/model.safetensors")
    moved = max((a[k] - start[k]).abs().max().item() for k in a)
    assert moved > 1e-3  # training changed the weights, so equality below means something
    mid = weights(part, 2)
    assert max((a[k] - mid[k]).abs().max().item() for k in a) > 1e-4  # step 3 itself moved them
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    # the step-3 metrics (same rollouts, same update) agree too
    la = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lb] == [1, 2, 3]
    assert la[-1]["reward_mean"] == lb[-1]["reward_mean"]
    assert la[-1]["loss"] == pytest.approx(lb[-1]["loss"], abs=1e-6)
    # the episode log holds each step once, and step 3's episodes are the redone ones
    ea, eb = load_jsonl(full / "episodes.jsonl"), load_jsonl(resumed / "episodes.jsonl")
    assert [e.info["train_step"] for e in ea] == [e.info["train_step"] for e in eb]
    assert [e.token_ids for e in ea] == [e.token_ids for e in eb]


def test_checkpoint_contents_and_from_pretrained(tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM

    run = train(
        config(tiny_path, tmp_path / "r", steps=1, update={"micro_batch_tokens": 4096}), quiet=True
    )
    ck = latest_checkpoint(run)
    for name in [
        "optimizer.pt",
        "scheduler.pt",
        "rng.pt",
        "trainer_state.json",
        "model/model.safetensors",
        "model/config.json",
        "model/tokenizer.json",
    ]:
        assert (ck / name).exists(), name
    state = json.loads((ck / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["sampler"]["draws"] == 1
    model = AutoModelForCausalLM.from_pretrained(ck / "model")
    sd = weights(run, 1)
    name = next(iter(sd))
    assert torch.equal(model.state_dict()[name], sd[name])


def test_resume_without_checkpoint_fails_clearly(tiny_path, tmp_path):
    from tirgym.errors import TirgymError

    with pytest.raises(TirgymError, match="no checkpoint"):
        train(config(tiny_path, tmp_path / "none"), resume=True, quiet=True)
