"""Credit-assignment ablation: GRPO, GRPO+HICRA, turn returns, MT-GRPO, GiGPO on one multi-turn task.

Each seed builds one model (tiny random init, or a larger random init on GPU), warm-starts
it once with SFT on solver demonstrations (optional) and evaluates it on held-out seeds;
then every method trains from that same start with the same seed, steps, tasks, group size
and token limits (equal budgets, paired comparison), and is evaluated on the same held-out
seeds. Prints mean and std of held-out success per method, writes `ablation.json` and one
comparison plot `ablation.png` into the output dir.

    python benchmarks/ablate_credit.py --smallest            # ~2-3 min on 2 CPU cores
    python benchmarks/ablate_credit.py --seeds 3 --steps 20  # 3 seeds x 5 methods (CPU: ~20-30 min)
    python benchmarks/ablate_credit.py --task maze --gpu --steps 50  # larger model on CUDA

The default task, `guess`, is the quickstart's recipe (configs/quickstart.yaml: GuessNumber
on [1, 7] in 3 turns, SFT on solver demos, sampled held-out eval), the one setting known to
learn on a CPU, plus a progress turn reward whose state key (the remaining interval) gives
GiGPO real anchor states. Maze/Sokoban/MathTIR learned nothing at CPU budgets (0% for every
method), so they cannot tell the methods apart there. On `guess`, GRPO+HICRA equals GRPO
exactly: the demos' think text holds no strategic gram, so the planning mask is empty.
Results: benchmarks/ABLATION.md.

By default every method sees the same reward, outcome + shaped turn rewards
(`--reward-source total`): GRPO gets it as one episode return, MT-GRPO and GiGPO also use
the per-turn parts. `--reward-source outcome` gives GRPO the outcome only.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

METHODS: dict[str, dict[str, Any]] = {
    "grpo": {"estimator": "grpo"},
    "grpo+hicra": {"estimator": "grpo", "hicra": True},
    "turn_return": {"estimator": "turn_return"},
    "mtgrpo": {"estimator": "mtgrpo"},
    "gigpo": {"estimator": "gigpo"},
    "psr": {"estimator": "psr"},
    "nsr": {"estimator": "nsr"},
}

COLORS = dict(
    zip(
        METHODS,
        ["#4c72b0", "#dd8452", "#8172b3", "#55a868", "#c44e52", "#937860", "#da8bc3"],
        strict=True,
    )
)

# Knobs a task preset does not set (its "defaults" override them, the command line both).
DEFAULTS: dict[str, Any] = {
    "steps": 10,
    "group_size": 4,
    "tasks_per_step": 4,
    "max_new_tokens": 24,
    "eval_seeds": 16,
    "sft_episodes": 32,
    "sft_epochs": 10.0,
    "sft_lr": 3e-3,
    "lr": 3e-4,
}

GUESS_DEFAULTS: dict[str, Any] = {
    "steps": 25,
    "group_size": 8,
    "tasks_per_step": 16,
    "max_new_tokens": 24,
    "eval_seeds": 28,
    "sft_episodes": 48,
    "sft_epochs": 6.0,
    "sft_lr": 1e-3,
    "lr": 5e-4,
}
GUESS_CONFIG: dict[str, Any] = {
    "rollout": {"max_total_tokens": 1024},
    "loss": {"agg": "seq-mean-token-mean"},
    "update": {"ppo_epochs": 2, "minibatches": 2},
    # sampled, 8 per seed: the distribution RL optimises (greedy barely moves here)
    "eval": {"samples": 8, "temperature": 1.0},
}

# Multi-turn tasks with dense step rewards. "config" is merged into every run's config.
TASKS: dict[str, dict[str, Any]] = {
    # configs/quickstart.yaml's recipe (31.7% -> 62.9% sampled held-out success in 40 GRPO
    # steps), with a turn reward for the share of the remaining range each guess rules out.
    "guess": {
        "id": "tirgym/GuessNumber-v0",
        "kwargs": {"low": 1, "high": 7, "max_turns": 3, "progress_reward": 0.2},
        "defaults": GUESS_DEFAULTS,
        "config": GUESS_CONFIG,
    },
    # "guess" with demos whose think text plans ("My plan is to halve the range"): the
    # planning tokens HICRA credits exist from the SFT start (plain "guess" demos have none).
    "guess-plan": {
        "id": "tirgym/GuessNumber-v0",
        "kwargs": {"low": 1, "high": 7, "max_turns": 3, "progress_reward": 0.2, "explain": True},
        "defaults": {**GUESS_DEFAULTS, "max_new_tokens": 64},
        "config": GUESS_CONFIG,
    },
    "maze": {
        "id": "tirgym/Maze-v0",
        "kwargs": {
            "difficulty": "easy",
            "moves_per_turn": 5,
            "max_turns": 6,
            "progress_reward": 0.1,
            "step_cost": 0.01,
            "invalid_penalty": 0.1,
        },
    },
    "sokoban": {
        "id": "tirgym/Sokoban-v0",
        "kwargs": {
            "difficulty": "easy",
            "moves_per_turn": 1,
            "max_turns": 10,
            "progress_reward": 1.0,
            "step_cost": 0.02,
            "invalid_penalty": 0.1,
        },
    },
    "mathtir": {"id": "tirgym/MathTIR-v0", "kwargs": {"difficulty": "easy", "max_turns": 3}},
    # The real-model recipe (configs/smollm2_tir.yaml, `make demo`): SmolLM2-135M-Instruct,
    # SFT on 8 MathTIR demos, 12 GRPO steps of 4 x 8 with LoRA. Every method changes only
    # `advantage`; held-out success is measured by `tirgym.eval` on 200 seeds at T=1, the
    # same sampling seed for every method of a training seed (paired per task).
    "smollm2": {"recipe": "configs/smollm2_tir.yaml", "id": "tirgym/MathTIR-v0"},
}

ROOT = Path(__file__).resolve().parents[1]


def knob(args: argparse.Namespace, name: str) -> Any:
    """Command line, else the task preset's default, else the generic default."""
    value = getattr(args, name)
    if value is not None:
        return value
    return TASKS[args.task].get("defaults", {}).get(name, DEFAULTS[name])


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Nested dict update (a preset's config sections extend the base sections)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The knobs shared by every run of the ablation (equal budgets)."""
    if args.smallest:
        return {
            "seeds": 1,
            "steps": 2,
            "group_size": 2,
            "tasks_per_step": 2,
            "max_new_tokens": 12,
            "max_turns": 2,
            "eval_seeds": 2,
            "sft_episodes": 2,
            "sft_epochs": 1.0,
            "tiny": {"hidden_size": 64, "num_heads": 1, "num_layers": 1, "vocab_size": 512},
        }
    tiny = {"hidden_size": 128, "num_heads": 2, "num_layers": 2, "vocab_size": 2048}
    if args.gpu:
        tiny = {"hidden_size": 512, "num_heads": 8, "num_layers": 8, "vocab_size": 2048}
    return {
        "seeds": args.seeds,
        "steps": knob(args, "steps"),
        "group_size": knob(args, "group_size"),
        "tasks_per_step": knob(args, "tasks_per_step"),
        "max_new_tokens": knob(args, "max_new_tokens"),
        "max_turns": args.max_turns,
        "eval_seeds": knob(args, "eval_seeds"),
        "sft_episodes": knob(args, "sft_episodes"),
        "sft_epochs": knob(args, "sft_epochs"),
        "tiny": tiny,
    }


def base_config(
    args: argparse.Namespace, s: dict[str, Any], seed: int, out: Path
) -> dict[str, Any]:
    task = TASKS[args.task]
    kwargs = dict(task["kwargs"])
    if s["max_turns"]:
        kwargs["max_turns"] = s["max_turns"]
    cfg: dict[str, Any] = {
        "model": "tiny",
        "tiny": s["tiny"],
        "seed": seed,
        "output_dir": str(out),
        "envs": [{"id": task["id"], "kwargs": kwargs, "seeds": [0, 100_000]}],
        "rollout": {
            "group_size": s["group_size"],
            "tasks_per_step": s["tasks_per_step"],
            "max_new_tokens": s["max_new_tokens"],
            "max_total_tokens": 2048,
            "temperature": 1.0,
        },
        "loss": {"agg": "token-mean", "clip_low": 0.2, "clip_high": 0.28},
        "optim": {"lr": knob(args, "lr"), "warmup_steps": 0, "grad_clip": 1.0},
        "eval": {"every": 0, "num_seeds": s["eval_seeds"], "temperature": 0.0},
        "checkpoint": {"every": 0, "final": False},
        "log": {
            "progress": not args.quiet,
            "plot": False,
            "tensorboard": False,
            "save_episodes": False,
        },
    }
    cfg = merge(cfg, task.get("config", {}))
    if args.gpu:
        cfg = merge(cfg, {"backend": {"device": "cuda"}, "update": {"precision": "bf16"}})
    return cfg


def start_model(args, s, seed: int, root: Path) -> tuple[Path, float | None]:
    """Build (and SFT warm-start) the seed's starting model once; held-out success of it."""
    from tirgym.trainer import train

    cfg = base_config(args, s, seed, root / "start")
    cfg.update({"name": f"start-s{seed}", "steps": 0})
    cfg["eval"].update({"before": True, "after": False})
    if s["sft_episodes"]:
        cfg["sft"] = {
            "demos": {"policy": "solver", "episodes": s["sft_episodes"], "only_success": False},
            "epochs": s["sft_epochs"],
            "batch_size": 4,
            "lr": knob(args, "sft_lr"),
        }
    run_dir = Path(train(cfg, quiet=args.quiet, overwrite=True))  # a sitting's leftovers
    summary = json.loads((run_dir / "summary.json").read_text())
    model = run_dir / "sft_model" if s["sft_episodes"] else run_dir / "tiny_model"
    return model, summary.get("heldout_success_before")


def run_method(args, s, seed: int, method: str, model: Path, root: Path) -> dict[str, Any]:
    from tirgym.trainer import train

    cfg = base_config(args, s, seed, root / method)
    cfg.update({"name": f"{method}-s{seed}", "model": str(model), "steps": s["steps"]})
    cfg["eval"].update({"before": False, "after": True})
    cfg["advantage"] = {**METHODS[method], "reward_source": args.reward_source}
    t0 = time.perf_counter()
    run_dir = Path(train(cfg, quiet=args.quiet, overwrite=True))  # a sitting's leftovers
    wall = time.perf_counter() - t0
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [
        json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()
    ]
    steps = [r for r in rows if "reward_mean" in r]
    return {
        "heldout_success": summary.get("heldout_success_after"),
        "heldout_reward": (summary.get("eval_after") or {}).get("eval/reward"),
        "train_reward": [r["reward_mean"] for r in steps],
        "train_success": [r["success_rate"] for r in steps],
        "wall_s": wall,
        "run_dir": str(run_dir),
    }


def recipe_config(args, seed: int, out: Path) -> dict[str, Any]:
    """The recipe's config for one run: its own seed and dir, no trainer evals (the
    held-out eval is `heldout` below, so per-task results are kept), no checkpoints."""
    import yaml

    cfg = yaml.safe_load((ROOT / TASKS[args.task]["recipe"]).read_text())
    cfg.update({"seed": seed, "output_dir": str(out)})
    cfg["eval"] = {**cfg.get("eval", {}), "before": False, "after": False}
    cfg["checkpoint"] = {"every": 0, "final": True}
    cfg["log"] = {"progress": not args.quiet, "plot": False, "tensorboard": False}
    return cfg


def heldout(args, model: Path, seed: int, out: Path) -> dict[str, Any]:
    """Held-out success of `model` on the recipe's env: 200 seeds from HELDOUT_SEED_BASE,
    one sample at T=1, sampling seed = training seed; per-task successes kept."""
    from tirgym.eval import evaluate
    from tirgym.eval.metrics import EvalEntry
    from tirgym.registry import HELDOUT_SEED_BASE

    cfg = recipe_config(args, seed, out)
    env, r = cfg["envs"][0], cfg["rollout"]
    n = args.eval_seeds or cfg["eval"].get("num_seeds", 200)
    res = evaluate(
        f"hf:{model}",
        envs=[EvalEntry(id=env["id"], kwargs=env.get("kwargs", {}))],
        samples=1,
        seeds=list(range(HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + n)),
        out_dir=out,
        temperature=1.0,
        max_new_tokens=cfg["eval"].get("max_new_tokens") or r["max_new_tokens"],
        max_total_tokens=r.get("max_total_tokens", 4096),
        sampling_seed=seed,
        write_report=False,
    )
    by_task = {int(e.seed): float(bool(e.success)) for e in res.episodes}
    errors = sum(e.stop_reason == "error" for e in res.episodes)
    if errors:
        raise SystemExit(f"{errors} held-out episodes errored in {out}: not a valid result")
    tasks = sorted(by_task)
    return {
        "heldout_success": sum(by_task.values()) / len(tasks),
        "heldout_tasks": [by_task[t] for t in tasks],
        "tool_use_rate": sum(any(t.tool_calls for t in e.turns) for e in res.episodes)
        / len(res.episodes),
    }


def recipe_start(args, seed: int, root: Path) -> tuple[Path, dict[str, Any]]:
    """The seed's SFT model (the recipe with 0 RL steps) and its held-out result."""
    from tirgym.trainer import train

    cfg = recipe_config(args, seed, root / "start")
    cfg.update({"name": f"start-s{seed}", "steps": 0})
    run_dir = Path(train(cfg, quiet=args.quiet, overwrite=True))  # a sitting's leftovers
    return run_dir / "sft_model", heldout(args, run_dir / "sft_model", seed, root / "start-eval")


def recipe_method(args, seed: int, method: str, model: Path, root: Path) -> dict[str, Any]:
    """RL from the seed's SFT model with one estimator; held-out result of the final model."""
    from tirgym.trainer import train

    cfg = recipe_config(args, seed, root / method)
    cfg.pop("sft", None)
    cfg.update({"name": f"{method}-s{seed}", "model": str(model)})
    if args.steps:
        cfg["steps"] = args.steps
    cfg["advantage"] = {
        **cfg.get("advantage", {}),
        **METHODS[method],
        "reward_source": args.reward_source,
    }
    t0 = time.perf_counter()
    run_dir = Path(train(cfg, quiet=args.quiet, overwrite=True))  # a sitting's leftovers
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    steps = [r for r in rows if "reward_mean" in r]
    out = heldout(args, run_dir / "final_model", seed, root / f"{method}-eval")
    curves = ("token_entropy", "planning_token_ratio", "semantic_entropy", "tool_use_rate")
    return {
        **out,
        "train_reward": [r["reward_mean"] for r in steps],
        "train_success": [r["success_rate"] for r in steps],
        **{f"train_{k}": [r.get(k) for r in steps] for k in curves},
        "wall_s": wall,
        "run_dir": str(run_dir),
    }


def paired_vs(results: dict[str, Any], methods: list[str], base: str = "grpo") -> dict:
    """Each method against `base`, paired twice: over training seeds (the unit that
    carries run-to-run variance; 5 seeds cannot reach p < 0.05 below 5/5 same-sign) and
    over (seed, held-out task) pairs (more power, but blind to run-to-run variance)."""
    import numpy as np

    from tirgym.eval.stats import paired_test

    seeds = [k for k in results["seeds"] if base in results["seeds"][k]["methods"]]
    out = {}
    for m in methods:
        done = [k for k in seeds if m in results["seeds"][k]["methods"]]
        if m == base or not done:
            continue
        run = lambda k, x: results["seeds"][k]["methods"][x]  # noqa: E731
        a = [run(k, base)["heldout_success"] for k in done]
        b = [run(k, m)["heldout_success"] for k in done]
        by_seed = paired_test(a, b)
        ta = np.concatenate([run(k, base).get("heldout_tasks", []) for k in done])
        tb = np.concatenate([run(k, m).get("heldout_tasks", []) for k in done])
        by_task = paired_test(ta, tb) if ta.size and ta.size == tb.size else None
        out[m] = {
            "seeds": len(done),
            "diff": by_seed.diff,
            "seed_ci": list(by_seed.ci),
            "seed_p": by_seed.p_value,
            **(
                {"task_ci": list(by_task.ci), "task_p": by_task.p_value, "tasks": int(ta.size)}
                if by_task
                else {}
            ),
        }
    return out


def mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def summarize(results: dict[str, Any], methods: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for m in methods:
        runs = [v["methods"][m] for v in results["seeds"].values() if m in v["methods"]]
        succ = mean_std([r["heldout_success"] for r in runs])
        # training reward over the last third of the steps: a denser signal than success
        tail = []
        for r in runs:
            rw = r["train_reward"]
            if rw:
                k = max(1, len(rw) // 3)
                tail.append(sum(rw[-k:]) / k)
        rew = mean_std(tail)
        out[m] = {
            "heldout_success_mean": succ[0],
            "heldout_success_std": succ[1],
            "train_reward_last_third_mean": rew[0],
            "train_reward_last_third_std": rew[1],
            "wall_s_mean": mean_std([r["wall_s"] for r in runs])[0],
            "seeds": len(runs),
        }
    before = mean_std([results["seeds"][k]["heldout_success_start"] for k in results["seeds"]])
    out["start"] = {"heldout_success_mean": before[0], "heldout_success_std": before[1]}
    return out


def plot(results: dict[str, Any], methods: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = results["summary"]
    seeds = list(results["seeds"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = range(len(methods))
    means = [summ[m]["heldout_success_mean"] for m in methods]
    stds = [summ[m]["heldout_success_std"] for m in methods]
    ax1.bar(
        xs,
        means,
        yerr=stds,
        capsize=5,
        color=[COLORS[m] for m in methods],
    )
    for i, m in enumerate(methods):
        pts = [
            v["methods"][m]["heldout_success"]
            for v in results["seeds"].values()
            if m in v["methods"]
        ]
        ax1.scatter([i] * len(pts), pts, color="black", s=12, zorder=3)
    start = summ["start"]["heldout_success_mean"]
    if start == start:  # not NaN
        ax1.axhline(start, color="gray", ls="--", lw=1, label="start (after SFT)")
        ax1.legend(fontsize=8)
    ax1.set_xticks(list(xs), methods)
    ax1.set_ylabel("held-out success")
    ax1.set_ylim(0, 1.05)
    ax1.set_title(f"{results['task']}: held-out success ({len(seeds)} seeds, mean ± std)")
    for m in methods:
        curves = [
            v["methods"][m]["train_reward"] for v in results["seeds"].values() if m in v["methods"]
        ]
        n = min((len(c) for c in curves), default=0)
        if n:
            avg = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
            ax2.plot(range(1, n + 1), avg, marker="o", ms=3, label=m, color=COLORS[m])
    ax2.set_xlabel("step")
    ax2.set_ylabel("train reward (mean over seeds)")
    ax2.set_title("training reward (outcome + turn rewards)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="guess")
    p.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}"
    )
    p.add_argument("--seeds", type=int, default=3)
    preset = "default: the task preset's, else %(name)s"
    for flag, typ, hint in [
        ("--steps", int, ""),
        ("--group-size", int, ""),
        ("--tasks-per-step", int, ""),
        ("--max-new-tokens", int, ""),
        ("--eval-seeds", int, "held-out seeds"),
        ("--sft-episodes", int, "solver demos for the warm start; 0: no SFT"),
        ("--sft-epochs", float, ""),
        ("--sft-lr", float, ""),
        ("--lr", float, "RL learning rate"),
    ]:
        name = flag[2:].replace("-", "_")
        text = "; ".join(x for x in (hint, preset % {"name": DEFAULTS[name]}) if x)
        p.add_argument(flag, type=typ, default=None, help=text)
    p.add_argument("--max-turns", type=int, default=0, help="0: the task preset's")
    p.add_argument("--reward-source", choices=["total", "outcome"], default="total")
    p.add_argument("--gpu", action="store_true", help="larger random-init model on CUDA (bf16)")
    p.add_argument(
        "--smallest", action="store_true", help="1 seed, 2 steps, tiny everything (smoke test)"
    )
    p.add_argument("--out", default="runs/ablate_credit")
    p.add_argument(
        "--results",
        default=None,
        help="results JSON (default OUT/ablation.json); with --resume, runs already in it "
        "are kept and skipped, so an ablation can be finished over several sittings",
    )
    p.add_argument("--resume", action="store_true", help="keep OUT and the finished runs")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    recipe = "recipe" in TASKS[args.task]
    s = {"seeds": args.seeds, "steps": args.steps} if recipe else settings(args)
    out = Path(args.out)
    res_path = Path(args.results) if args.results else out / "ablation.json"
    if out.exists() and not args.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "task": args.task,
        "env": TASKS[args.task],
        "settings": s,
        "reward_source": args.reward_source,
        "lr": None if recipe else knob(args, "lr"),
        "seeds": {},
    }
    if args.resume and res_path.exists():
        kept = json.loads(res_path.read_text())
        if kept.get("task") != args.task:
            p.error(f"{res_path} holds task {kept.get('task')!r}, not {args.task!r}")
        results["seeds"] = kept.get("seeds", {})
    t0 = time.perf_counter()
    for seed in range(s["seeds"]):
        root = out / f"seed{seed}"
        entry = results["seeds"].get(str(seed), {"methods": {}})
        todo = [m for m in methods if m not in entry["methods"]]
        if not todo:
            continue
        if recipe:  # the SFT model is rebuilt (seconds); its eval is kept from an earlier sitting
            model = root / "start" / "sft_model"
            if not model.exists() or "heldout_success_start" not in entry:
                model, start = recipe_start(args, seed, root)
                entry.update(heldout_success_start=start["heldout_success"], start=start)
        else:
            model, start = start_model(args, s, seed, root)
            entry["heldout_success_start"] = start
        for m in todo:
            if recipe:
                entry["methods"][m] = recipe_method(args, seed, m, model, root)
            else:
                entry["methods"][m] = run_method(args, s, seed, m, model, root)
            r = entry["methods"][m]
            print(
                f"[seed {seed}] {m:<11} held-out success {r['heldout_success']:.3f}  "
                f"train reward first/last {r['train_reward'][0]:+.3f}/{r['train_reward'][-1]:+.3f}  "
                f"({r['wall_s']:.0f}s)",
                flush=True,
            )
            results["seeds"][str(seed)] = entry
            res_path.parent.mkdir(parents=True, exist_ok=True)
            res_path.write_text(json.dumps(results, indent=2))  # partial, per run
    results["summary"] = summarize(results, methods)
    results["paired_vs_grpo"] = paired_vs(results, methods) if "grpo" in methods else {}
    results["wall_s_this_sitting"] = time.perf_counter() - t0
    res_path.write_text(json.dumps(results, indent=2))
    png = plot(results, methods, res_path.with_suffix(".png"))

    summ = results["summary"]
    shape = "the recipe's" if recipe else f"{s['tasks_per_step']}x{s['group_size']}"
    print(
        f"\n{args.task} ({TASKS[args.task]['id']}), {s['seeds']} seed(s), "
        f"{s['steps'] or 'the recipe'} steps, {shape} episodes/step, "
        f"reward source {args.reward_source}"
    )
    print(
        f"start (after SFT)  held-out success {summ['start']['heldout_success_mean']:.3f} "
        f"± {summ['start']['heldout_success_std']:.3f}"
    )
    print(f"{'method':<12} {'held-out success':>20} {'train reward (last 1/3)':>26}")
    for m in methods:
        r = summ[m]
        print(
            f"{m:<12} {r['heldout_success_mean']:>10.3f} ± {r['heldout_success_std']:<7.3f} "
            f"{r['train_reward_last_third_mean']:>+14.3f} ± {r['train_reward_last_third_std']:<7.3f}"
        )
    for m, t in results["paired_vs_grpo"].items():
        task = f", per task p {t['task_p']:.3f} over {t['tasks']}" if "task_p" in t else ""
        print(
            f"{m:<12} vs grpo {t['diff']:+.3f} [{t['seed_ci'][0]:+.3f}, {t['seed_ci'][1]:+.3f}] "
            f"over {t['seeds']} seeds, paired p {t['seed_p']:.3f}{task}"
        )
    print(f"wrote {res_path} and {png} ({results['wall_s_this_sitting']:.0f}s)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
