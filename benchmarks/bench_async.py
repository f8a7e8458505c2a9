"""Synchronous vs asynchronous RL steps on one tiny model: wall per step, idle time, ratio.

Runs the same training (model, env, seeds, batch shape, number of steps) twice: once with
the synchronous loop (rollout, then update) and once with `async.max_staleness: k`, where
a generator (`--generator thread` or `process`, see `async.generator`) rolls out the next
batch while the trainer updates. Printed:

- wall per step of each run and async/sync (the first step is left out: it has nothing to
  overlap with, and it pays for warm-up);
- the sync run's phases (rollout, update) and the ideal overlap, mean(max(rollout, update))
  / mean(rollout + update): the ratio a perfect overlap would reach with the two sides on
  separate resources;
- the async run's trainer idle time (waiting for a batch) and generator idle time (waiting
  for weights or for the trainer to take a batch), per step;
- each side's CPU time over its wall time: on a machine shared with other work, a share
  well below 1 at one torch thread means that side waited for its core, and the wall
  ratio says more about the neighbours than about the overlap.

`--threads` sets torch's intra-op threads on each side. A thread generator shares the
trainer's GIL (the hf decode loop holds it between ops), so its measured ratio sits above
the ideal one even on separate cores; a process generator has its own interpreter.
`--pin A,B` gives the two sides separate cores: the trainer runs on core A (the whole sync
run too), the generator on core B (thread: sched_setaffinity from its own thread, where
`on_episodes` callbacks run; process: `async.generator_cores`). `--device cuda` runs the
same on a GPU.

Usage: python benchmarks/bench_async.py [--steps 6] [--staleness 1] [--threads 1]
                                        [--generator thread|process] [--pin 0,1]
                                        [--device cpu] [--hidden 128] [--layers 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from tirgym.agents.models import build_tiny_model
from tirgym.trainer.loop import Callback, Trainer


class StepClock(Callback):
    """The wall-clock time at the end of every step."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.cpu: list[float] = []  # the trainer thread's CPU time at the same moments
        self.metrics: list[dict[str, float]] = []

    def on_step_end(self, trainer, step, metrics) -> None:
        self.ends.append(time.perf_counter())
        self.cpu.append(time.thread_time())
        self.metrics.append(dict(metrics))


class PinGenerator(Callback):
    """Pins the generator's thread to one core the first time it reports episodes."""

    def __init__(self, core: int) -> None:
        self.core, self.done = core, False

    def on_episodes(self, trainer, step, episodes):
        if not self.done and threading.current_thread() is not threading.main_thread():
            os.sched_setaffinity(0, {self.core})
            self.done = True


def config(model: str, out: Path, args: argparse.Namespace, k: int) -> dict:
    return {
        "model": model,
        "seed": 0,
        "steps": args.steps,
        "output_dir": str(out),
        "backend": {"device": args.device},
        "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 50}}],
        "rollout": {
            "group_size": args.group_size,
            "tasks_per_step": args.tasks,
            "max_new_tokens": args.max_new_tokens,
            "max_total_tokens": 1024,
        },
        "update": {"ppo_epochs": args.epochs},
        "optim": {"lr": 1e-4},
        "eval": {"before": False, "after": False},
        "log": {"progress": False, "plot": False, "tensorboard": False, "save_episodes": False},
        "checkpoint": {"final": False},
        "async": {
            "max_staleness": k,
            "generator": args.generator,
            "generator_cores": [args.pin[1]] if args.pin and args.generator == "process" else None,
        },
    }


def run(model: str, out: Path, args: argparse.Namespace, k: int) -> StepClock:
    clock = StepClock()
    callbacks: list[Callback] = [clock]
    if args.pin and args.generator == "thread":
        callbacks.append(PinGenerator(args.pin[1]))
    tr = Trainer(config(model, out, args, k), callbacks=callbacks, quiet=True)
    try:
        tr.setup()
        clock.ends.append(time.perf_counter())
        clock.cpu.append(time.thread_time())
        tr.run()
    finally:
        tr.close()
    return clock


def per_step(clock: StepClock) -> float:
    """Mean wall per step, steps 2.. (the first has nothing to overlap with)."""
    e = clock.ends
    return (e[-1] - e[1]) / (len(e) - 2)


def mean(xs) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--staleness", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--generator", default="thread", choices=["thread", "process"])
    ap.add_argument("--pin", default=None, help="A,B: trainer on core A, generator on core B")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=2, help="PPO epochs (update work per step)")
    ap.add_argument("--repeats", type=int, default=1, help="sync/async pairs, alternated")
    args = ap.parse_args()
    if args.steps < 3:
        ap.error("--steps must be at least 3 (the first step is not timed)")
    if args.pin:
        args.pin = [int(c) for c in args.pin.split(",")]
        if len(args.pin) != 2 or args.pin[0] == args.pin[1]:
            ap.error("--pin takes two different core ids, e.g. 0,1")
        os.sched_setaffinity(0, {args.pin[0]})  # this (the trainer's) thread
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    print(
        f"tiny model {args.hidden}x{args.layers} on {args.device}, torch threads {args.threads}, "
        f"{'pinned to cores ' + str(args.pin) + ', ' if args.pin else ''}"
        f"{args.tasks}x{args.group_size} episodes/step, {args.epochs} PPO epochs, "
        f"k={args.staleness} ({args.generator} generator), {args.steps} steps (step 1 not timed)"
    )
    ratios = []
    with tempfile.TemporaryDirectory() as d:
        tiny = str(
            build_tiny_model(
                Path(d) / "model",
                seed=0,
                hidden_size=args.hidden,
                num_heads=args.hidden // 64,
                num_layers=args.layers,
            )
        )
        for i in range(args.repeats):  # alternate, so a load change hits both arms alike
            sync = run(tiny, Path(d) / f"sync{i}", args, 0)
            asy = run(tiny, Path(d) / f"async{i}", args, args.staleness)
            ratios.append(
                report(sync, asy, f"[{i + 1}/{args.repeats}] " if args.repeats > 1 else "")
            )
    if args.repeats > 1:
        print(f"async/sync step time, median of {args.repeats}: {statistics.median(ratios):.3f}")


def report(sync: StepClock, asy: StepClock, tag: str) -> float:
    """Print one sync/async pair's figures; returns async/sync step time."""
    s_step, a_step = per_step(sync), per_step(asy)
    sm, am = sync.metrics[1:], asy.metrics[1:]
    roll = [m["rollout_s"] for m in sm]
    upd = [m["update_s"] for m in sm]
    ideal = mean([max(r, u) for r, u in zip(roll, upd, strict=True)]) / mean(
        [r + u for r, u in zip(roll, upd, strict=True)]
    )
    wait = mean([m["async_wait_s"] for m in am])
    gen = mean([m["async_generate_s"] for m in am])
    print(
        f"{tag}sync : {s_step:7.3f} s/step   rollout {mean(roll):.3f} s, update {mean(upd):.3f} s"
    )
    print(
        f"{tag}async: {a_step:7.3f} s/step   trainer idle {wait:.3f} s/step, "
        f"generator idle {max(a_step - gen, 0.0):.3f} s/step (generating {gen:.3f} s/step)"
    )
    print(
        f"{tag}async/sync step time: {a_step / s_step:.3f}   ideal overlap: {ideal:.3f}", flush=True
    )
    share = mean([m["async_generate_cpu_share"] for m in am])
    print(
        f"{tag}CPU share of the wall (1.0 = a core to itself at 1 torch thread): "
        f"sync trainer {cpu_share(sync):.2f}, async trainer {cpu_share(asy):.2f}, "
        f"async generator {share:.2f}",
        flush=True,
    )
    return a_step / s_step


def cpu_share(clock: StepClock) -> float:
    """The trainer thread's CPU time over wall time, steps 2.. (below 1: it waited, for a
    batch or for a core another process held)."""
    return (clock.cpu[-1] - clock.cpu[1]) / (clock.ends[-1] - clock.ends[1])


if __name__ == "__main__":
    main()
