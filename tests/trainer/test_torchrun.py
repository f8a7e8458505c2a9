"""2-process data parallelism on CPU (gloo): ranks roll out different episodes, gradients are
all-reduced, and every rank ends with the same weights."""

import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from tirgym.trainer.loop import Callback, train

    class Dump(Callback):
        def on_episodes(self, trainer, step, episodes):
            for e in episodes:  # a random model never wins: a reward that varies within groups
                e.outcome_reward = float(sum(e.token_ids) % 2)
            return episodes
        def on_step_end(self, trainer, step, metrics):
            trainer.state.setdefault("eps", []).append(metrics["episodes"])
        def on_train_end(self, trainer):
            sd = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            torch.save({"sd": sd, "rank": trainer.dist.rank, "world": trainer.dist.world},
                       f"{sys.argv[2]}/rank{trainer.dist.rank}.pt")

    cfg = {
        "model": sys.argv[1], "seed": 5, "steps": 2, "output_dir": sys.argv[2] + "/run",
        "backend": {"device": "cpu"},
        "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 4, "max_turns": 2}}],
        "rollout": {"group_size": 2, "tasks_per_step": 4, "max_new_tokens": 6, "max_total_tokens": 512},
        "optim": {"lr": 1e-2},
        "update": {"minibatches": 2},
        "advantage": {"estimator": "rloo"},
        "eval": {"num_seeds": 4, "max_new_tokens": 6},
        "checkpoint": {"every": 1},
        "log": {"progress": False},
    }
    train(cfg, callbacks=[Dump()], quiet=True)
    """
)


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_identical(tiny_path, tmp_path):
    script = tmp_path / "dp.py"
    script.write_text(SCRIPT)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        str(script),
        tiny_path,
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == 2 and r1["rank"] == 1
    from safetensors.torch import load_file

    start = load_file(f"{tiny_path}/model.safetensors")
    moved = max((r0["sd"][k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-4
    for k in r0["sd"]:
        assert torch.equal(r0["sd"][k], r1["sd"][k]), k
    # rank 0 logged the episodes of both ranks: 4 tasks x 2 = 8 per step
    import json

    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["episodes"] for r in rows if "episodes" in r and "reward_mean" in r] == [8.0, 8.0]
    assert (
        tmp_path / "run" / "checkpoints" / "step_000002" / "model" / "model.safetensors"
    ).exists()
