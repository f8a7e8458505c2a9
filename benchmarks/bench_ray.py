"""Env throughput on Ray actors vs local threads, and Ray's cost per env step.

Workload: MathTIR episodes played by a fixed policy that makes `--calls` python tool calls
(each a CPU-bound loop of `--work` iterations in the env's sandbox) and then answers, so
each episode's env time is sandbox execution, verification and env logic. The same episodes
run with local envs (the rollout's thread pool) and with envs in 1, 2, 4 Ray actors
(`rollout(make_env=RayEnvPool.make)`); printed: episodes/s, the ratio to local threads and
to one actor.

Per-call overhead: a trivial env (GuessNumber) stepped `--steps` times in sequence, locally
and through a Ray actor; the difference per step is what a remote env step adds.

    .venv/bin/python benchmarks/bench_ray.py                 # 1, 2, 4 workers
    .venv/bin/python benchmarks/bench_ray.py --episodes 32 --workers 1,2,4,8
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import ray

import tirgym
from tirgym.agents import rollout
from tirgym.agents.ray_envs import EnvWorkersConfig, RayEnvPool
from tirgym.agents.scripted import ReplayPolicy
from tirgym.agents.types import Task


def policy_turns(calls: int, work: int) -> list[str]:
    code = f"s = 0\nfor i in range({work}):\n    s += i * i % 7\nprint(s)"
    call = (
        "<tool_call>" + json.dumps({"name": "python", "arguments": {"code": code}}) + "</tool_call>"
    )
    return [call] * calls + ["<answer>42</answer>"]


def run_episodes(turns: list[str], n: int, seed0: int, make_env=None) -> tuple[float, list]:
    tasks = [Task("tirgym/MathTIR-v0", seed=seed0 + i) for i in range(n)]
    t = time.perf_counter()
    eps = rollout(ReplayPolicy(turns), tasks, make_env=make_env)
    dt = time.perf_counter() - t
    bad = [e.info.get("error") for e in eps if e.stop_reason == "error"]
    if bad:
        raise SystemExit(f"{len(bad)} episodes errored, e.g. {bad[0]}")
    return dt, eps


def step_times_ms(env, steps: int) -> np.ndarray:
    """Each of `steps` sequential steps' wall time (ms): their median resists load spikes."""
    env.reset(seed=0)
    out = np.empty(steps)
    for i in range(steps):
        t = time.perf_counter()
        env.step("<answer>500</answer>")
        out[i] = (time.perf_counter() - t) * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--calls", type=int, default=2, help="python tool calls per episode")
    ap.add_argument("--work", type=int, default=300_000, help="loop iterations per call")
    ap.add_argument("--steps", type=int, default=300, help="steps for the per-call overhead")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    turns = policy_turns(args.calls, args.work)
    print(
        f"cores visible: {os.cpu_count()}; {args.episodes} MathTIR episodes, "
        f"{args.calls} python calls of {args.work} iterations each, then an answer; "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    run_episodes(turns, 2, 10_000)  # warm-up: imports, sandbox start
    local_s, local_eps = run_episodes(turns, args.episodes, 0)
    local_rate = args.episodes / local_s
    print(f"{'envs':<16}{'wall s':>8}{'episodes/s':>12}{'vs local':>10}{'vs 1 actor':>12}")
    print(f"{'local threads':<16}{local_s:>8.2f}{local_rate:>12.2f}{1.0:>10.2f}{'':>12}")

    ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
    # the sandbox keeps os.cpu_count() warm slots per process: local envs share one pool,
    # each actor brings its own, so actors can hold more sessions at once than local threads
    one = None
    for w in workers:
        pool = RayEnvPool(EnvWorkersConfig(backend="ray", num_workers=w))
        try:
            run_episodes(turns, 2 * w, 10_000, pool.make)  # warm each actor
            dt, eps = run_episodes(turns, args.episodes, 0, pool.make)
        finally:
            pool.close()
        same = [e.messages for e in eps] == [e.messages for e in local_eps]
        rate = args.episodes / dt
        one = one or rate
        label = f"ray x{w}" + ("" if same else " (DIFFERENT episodes)")
        print(f"{label:<16}{dt:>8.2f}{rate:>12.2f}{rate / local_rate:>10.2f}{rate / one:>12.2f}")

    again_s, _ = run_episodes(turns, args.episodes, 0)  # the baseline again: load drifts
    print(f"{'local (again)':<16}{again_s:>8.2f}{args.episodes / again_s:>12.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    kwargs = {"low": 1, "high": 1000, "max_turns": args.steps + 1}
    local_env = tirgym.make("tirgym/GuessNumber-v0", **kwargs)
    step_times_ms(local_env, 20)
    local_ms = step_times_ms(local_env, args.steps)
    pool = RayEnvPool(EnvWorkersConfig(backend="ray", num_workers=1))
    try:
        remote_env = pool.make("tirgym/GuessNumber-v0", **kwargs)
        step_times_ms(remote_env, 20)
        ray_ms = step_times_ms(remote_env, args.steps)
        remote_env.close()
    finally:
        pool.close()
        ray.shutdown()
    over = np.median(ray_ms) - np.median(local_ms)
    print(
        f"\nper env step ({args.steps} sequential GuessNumber steps, median / p90 ms): "
        f"local {np.median(local_ms):.3f} / {np.percentile(local_ms, 90):.3f}, "
        f"through a Ray actor {np.median(ray_ms):.3f} / {np.percentile(ray_ms, 90):.3f}\n"
        f"Ray overhead per env step: {over:.3f} ms median, "
        f"{ray_ms.mean() - local_ms.mean():.3f} ms mean (bar <= 2 ms)"
    )


if __name__ == "__main__":
    main()
