"""The RL loop end to end on a tiny model: metrics, artifacts, switches, callbacks, exactness."""

import copy
import json

import pytest
import torch
from train_helpers import guess_config

from tirgym.trainer.loop import Callback, Trainer, train

REQUIRED = [
    "reward_mean",
    "reward_std",
    "success_rate",
    "response_tokens_mean",
    "response_tokens_p95",
    "turns_mean",
    "tool_calls_per_episode",
    "tool_error_rate",
    "format_error_rate",
    "clip_frac",
    "approx_kl",
    "grad_norm",
    "lr",
    "logprob_gap_mean",
    "logprob_gap_max",
    "rollout_tokens_per_s",
    "update_tokens_per_s",
    "token_entropy",
    "loss",
]


def config(tiny_path, out, **extra):
    return (
        guess_config(
            tiny_path,
            out,
            seed=1,
            steps=2,
            group_size=3,
            optim={"lr": 1e-3},
            eval={"num_seeds": 2, "max_new_tokens": 6},
            log={"progress": False},
        )
        | extra
    )


def test_train_writes_metrics_curves_summary_and_model(tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM

    run = train(config(tiny_path, tmp_path / "run"), quiet=True)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward_mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in REQUIRED:
        assert key in steps[-1], key
    assert steps[-1]["episodes"] == 6
    # fp32 CPU: the trainer recomputes exactly what the sampler saw
    assert steps[0]["logprob_gap_mean"] < 1e-4
    # 2-turn episodes: the second turn's history came from kept KV caches, not a new prefill
    assert 0.2 < steps[-1]["rollout_kv_reuse"] < 1.0
    assert 0.0 < steps[-1]["rollout_forward_share"] <= 1.0
    assert any("eval/success" in r for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["heldout_success_before"] is not None
        and summary["heldout_success_after"] is not None
    )
    assert (run / "learning_curves.png").stat().st_size > 1000
    assert (run / "episodes.jsonl").exists() and (run / "config.yaml").exists()
    AutoModelForCausalLM.from_pretrained(run / "final_model")


def _update_once(tiny_path, out, budget, agg):
    tr = Trainer(
        config(
            tiny_path,
            out,
            loss={"agg": agg},
            update={"micro_batch_tokens": budget, "minibatches": 1},
            optim={"lr": 1e-2, "grad_clip": None},
        ),
        quiet=True,
    )
    tr.setup()
    return tr


def _episodes_for_sgd(tr):
    """One step's episodes with synthetic advantages (a random model rarely wins), and the
    trainer switched to SGD with lr 1: the weight change is exactly -gradient (Adam would
    amplify float noise in near-zero gradients into +-lr steps)."""
    import numpy as np

    _, kept = tr.collect(1)
    rng = np.random.default_rng(0)
    advs = [
        (rng.standard_normal(len(e.token_ids)) * np.asarray(e.loss_mask)).astype(np.float32)
        for e in kept
    ]
    tr.optimizer = torch.optim.SGD([p for p in tr.model.parameters() if p.requires_grad], lr=1.0)
    tr.scheduler = torch.optim.lr_scheduler.LambdaLR(tr.optimizer, lambda i: 1.0)
    return kept, advs


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batch_budget_does_not_change_the_update(tiny_path, tmp_path, agg):

    from tirgym.trainer.batch import make_rows

    tr = _update_once(tiny_path, tmp_path / "a", 100_000, agg)
    kept, advs = _episodes_for_sgd(tr)
    start = copy.deepcopy(tr.model.state_dict())
    tr.update(make_rows(kept, advs), 1)
    big = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.model.load_state_dict(start)
    tr.cfg.update.micro_batch_tokens = 40  # about one row per micro-batch
    tr.update(make_rows(kept, advs), 1)
    moved = max((big[k] - start[k]).abs().max().item() for k in big)
    assert moved > 1e-5
    for k in big:
        assert torch.allclose(big[k], tr.model.state_dict()[k], atol=1e-6), k


def test_sampler_old_logprobs_give_the_recomputed_update(tiny_path, tmp_path):
    """Two minibatches need old logprobs; on the hf backend in fp32 the sampler's are the
    trainer's, so `old_logprobs: sampler` (no extra forward) makes the same update."""

    from tirgym.trainer.batch import make_rows

    tr = _update_once(tiny_path, tmp_path / "a", 100_000, "token-mean")
    tr.cfg.update.minibatches = 2
    kept, advs = _episodes_for_sgd(tr)
    start = copy.deepcopy(tr.model.state_dict())
    after = {}
    for mode in ("recompute", "sampler"):
        tr.model.load_state_dict(start)
        tr.cfg.update.old_logprobs = mode
        rows = make_rows(kept, advs)
        tr.update(rows, 1)
        after[mode] = {k: v.clone() for k, v in tr.model.state_dict().items()}
        assert all(r.old_lp is not None for r in rows)
    moved = max((after["sampler"][k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-5
    for k in start:
        assert torch.allclose(after["recompute"][k], after["sampler"][k], atol=1e-5), k


class RewardAll(Callback):
    def __init__(self):
        self.steps = []

    def on_episodes(self, trainer, step, episodes):
        for e in episodes:  # a custom reward: 1 for any guess in the first turn that is even
            e.outcome_reward = (
                1.0 if e.turns and e.turns[0].text.strip().endswith("2</answer>") else 0.0
            )
        return episodes

    def on_step_end(self, trainer, step, metrics):
        self.steps.append((step, metrics["outcome_mean"]))


def test_callbacks_see_steps_and_can_set_rewards(tiny_path, tmp_path):
    cb = RewardAll()
    train(
        config(tiny_path, tmp_path / "cb", eval={"before": False, "after": False}),
        callbacks=[cb],
        quiet=True,
    )
    assert [s for s, _ in cb.steps] == [1, 2]
    assert all(0.0 <= v <= 1.0 for _, v in cb.steps)


@pytest.mark.parametrize(
    "extra",
    [
        {
            "loss": {"kl_beta": 0.1, "dual_clip": 3.0, "entropy_coef": 0.01},
            "update": {"ppo_epochs": 2},
        },
        {"lora": {"r": 4, "alpha": 8}, "loss": {"kl_beta": 0.05}},
        {
            "filters": {"dynamic_sampling": True, "void_turns": True, "max_resample_rounds": 1},
            "advantage": {"estimator": "drgrpo"},
            "loss": {"agg": "seq-mean-token-sum-norm"},
        },
        {
            "loss": {"ratio": "sequence", "agg": "seq-mean-token-mean"},
            "update": {"minibatches": 2},
            "optim": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": 1},
        },
    ],
    ids=["kl-dualclip-entropy", "lora-kl", "dynamic-void-drgrpo", "gspo"],
)
def test_algorithm_switches_run(tiny_path, tmp_path, extra):
    run = train(
        config(
            tiny_path, tmp_path / "sw", steps=1, eval={"before": False, "after": False}, **extra
        ),
        quiet=True,
    )
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert all(v == v for v in last.values() if isinstance(v, float)), last  # no NaN
    if "kl_beta" in extra.get("loss", {}):
        assert "kl_ref" in last


class DropAll(Callback):
    def on_episodes(self, trainer, step, episodes):
        return []


def test_a_callback_can_drop_every_episode(tiny_path, tmp_path):
    run = train(
        config(tiny_path, tmp_path / "drop", steps=1, eval={"before": False, "after": False}),
        callbacks=[DropAll()],
        quiet=True,
    )
    last = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["episodes"] == 0 and last["optimizer_steps"] == 0
    log = run / "episodes.jsonl"
    assert not log.exists() or log.read_text() == ""


def test_a_sharded_run_writes_the_gathered_final_model(tiny_path, tmp_path):
    """FSDP2 runs gather the full weights for final_model (a one-process gloo group stands
    in for the GPUs: the same code path, with a model that is not really sharded)."""
    import torch.distributed as tdist
    from transformers import AutoModelForCausalLM

    from tirgym.trainer import distributed as D

    class Sharded(D.DistInfo):
        @property
        def enabled(self) -> bool:
            return True

    tdist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        tr = Trainer(
            config(tiny_path, tmp_path / "run", steps=1, eval={"before": False, "after": False}),
            quiet=True,
        )
        tr.setup()
        tr.dist = Sharded()
        tr.cfg.distributed.strategy = "fsdp2"
        run = tr.run()
    finally:
        tdist.destroy_process_group()
    saved = AutoModelForCausalLM.from_pretrained(run / "final_model").state_dict()
    for k, v in tr.model.state_dict().items():
        assert torch.equal(saved[k], v), k
