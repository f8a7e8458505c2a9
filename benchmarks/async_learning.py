"""Does the quickstart still learn at `async.max_staleness: 1`? Sync vs k=1, a few seeds.

Trains configs/quickstart.yaml (tiny model, SFT warm start, 40 GRPO steps) once per seed
synchronously and once with k=1 (periodic evals off; held-out success before and after
RL as the quickstart measures it). The SFT start is the same for both runs of a seed, so
the comparison is paired. Printed per run: held-out success before -> after with a 95%
Wilson interval over its episodes; then the mean gain of each arm over seeds with its
standard error, and the mean paired difference (k=1 minus sync).

`--jobs N` trains N runs at a time in worker processes (one torch thread each).

Usage: python benchmarks/async_learning.py [--seeds 0,1,2] [--staleness 1] [--jobs 1]
                                           [--generator thread] [--out runs/async_learning]
                                           [overrides ...]   (e.g. steps=20)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tirgym.trainer import load_config, train


def wilson(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success share p over n episodes."""
    if n <= 0:
        return (float("nan"), float("nan"))
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (c - h, c + h)


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan"))


def one_run(out: Path, seed: int, k: int, generator: str, extra: list[str]) -> dict:
    overrides = [
        *extra,
        f"seed={seed}",
        f"output_dir={out}",
        "eval.every=0",
        "log.progress=false",
        "log.plot=false",
        "log.tensorboard=false",
        f"async.max_staleness={k}",
        f"async.generator={generator}",
    ]
    logging.disable(logging.WARNING)
    train(load_config("configs/quickstart.yaml", overrides), overwrite=True, quiet=True)
    s = json.loads((out / "summary.json").read_text())
    before, after = s["eval_before"], s["eval_after"]
    return {
        "seed": seed,
        "k": k,
        "before": before["eval/success"],
        "after": after["eval/success"],
        "n": after["eval/episodes"],
    }


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--staleness", type=int, default=1)
    ap.add_argument("--generator", default="thread", choices=["thread", "process"])
    ap.add_argument("--out", default="runs/async_learning")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="config overrides for every run, e.g. steps=20")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = [(seed, k) for seed in seeds for k in (0, args.staleness)]
    jobs = [
        (Path(args.out) / f"seed{seed}_k{k}", seed, k, args.generator, args.overrides)
        for seed, k in plan
    ]
    if args.jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_one_thread) as ex:
            rows = list(ex.map(one_run, *zip(*jobs, strict=True)))
    else:
        rows = [one_run(*j) for j in jobs]
    for r in rows:
        lo, hi = wilson(r["after"], r["n"])
        print(
            f"seed {r['seed']} k={r['k']}: {r['before']:.1%} -> {r['after']:.1%} "
            f"(95% CI {lo:.1%}-{hi:.1%}, {r['n']:.0f} episodes)"
        )
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=1))
    gains = {
        k: [r["after"] - r["before"] for r in rows if r["k"] == k] for k in (0, args.staleness)
    }
    for k, g in gains.items():
        m, se = mean_se(g)
        print(f"k={k}: mean gain {m:+.1%} +- {se:.1%} (SE over {len(g)} seeds)")
    diff = [b - a for a, b in zip(gains[0], gains[args.staleness], strict=True)]
    m, se = mean_se(diff)
    print(f"k={args.staleness} minus sync, paired: {m:+.1%} +- {se:.1%} (SE)")


if __name__ == "__main__":
    main()
