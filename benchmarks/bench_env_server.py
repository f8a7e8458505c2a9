"""Env server overhead: GuessNumber episodes played locally and through `tirgym serve-env`.

The same binary-search episodes (seeds 0..N-1) run against a local env and against
RemoteEnv clients of a uvicorn server on loopback (in a subprocess, so client and server
do not share a GIL), with 1 and with C concurrent clients. Printed: steps/s of each and
the remote/local ratio (the local run is the baseline measured in the same run), and the
median and p99 latency of one remote step.

Usage: python benchmarks/bench_env_server.py [--episodes 64] [--clients 16] [--env ID]
Wall time on a shared machine: run it twice and read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

import tirgym


def play(env, seed: int, latencies: list[float] | None = None) -> int:
    """Binary search on GuessNumber; returns the steps taken."""
    _obs, info = env.reset(seed=seed)
    lo, hi, steps = 1, 100, 0
    for _ in range(info["max_turns"]):
        guess = (lo + hi) // 2
        t = time.perf_counter()
        obs, _r, term, trunc, _info = env.step(f"<answer>{guess}</answer>")
        if latencies is not None:
            latencies.append(time.perf_counter() - t)
        steps += 1
        if term or trunc:
            break
        lo, hi = (guess + 1, hi) if "higher" in obs else (lo, guess - 1)
    return steps


def run(make_env, episodes: int, clients: int, latencies: list[float] | None = None) -> float:
    """Steps per second over `episodes` episodes spread over `clients` threads."""

    def one(seed: int) -> int:
        env = make_env()
        try:
            return play(env, seed, latencies)
        finally:
            env.close()

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        steps = sum(pool.map(one, range(episodes)))
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--env", default="tirgym/GuessNumber-v0")
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tirgym", "serve-env", "--envs", args.env, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(f"{args.env}: {args.episodes} binary-search episodes")
        print(f"{'clients':>8} {'local steps/s':>14} {'remote steps/s':>15} {'remote/local':>13}")
        for c in (1, args.clients):
            local = run(lambda: tirgym.make(args.env), args.episodes, c)
            lat: list[float] = []
            remote = run(lambda: tirgym.make(args.env, remote=url), args.episodes, c, lat)
            print(f"{c:>8} {local:>14.0f} {remote:>15.0f} {remote / local:>13.4f}")
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            print(
                f"{'':>8} remote step latency: median {1e3 * statistics.median(lat):.2f} ms, "
                f"p99 {1e3 * p99:.2f} ms"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
