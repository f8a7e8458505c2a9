"""Rollout engine overhead vs the raw backend generate loop (hf backend, tiny model, CPU).

(a) raw: the same multi-turn token sequences driven by hand: generate, append the sampled
    ids and a fixed reply, repeat.  (b) engine: `rollout` on a cheap env (templated
    replies, env steps on the thread pool).  (c) engine with every env step sleeping 50 ms.
Every turn samples exactly --tokens tokens (no stop strings) so all three make the same
number of tokens. Prints tokens/s and the ratios to (a).

    python benchmarks/bench_rollout.py [--batch 32 --turns 4 --tokens 64 --threads 1]
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
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    path = build_tiny_model(tempfile.mkdtemp(prefix="tirgym-bench-"), seed=0)
    policy = HFPolicy.from_pretrained(path)
    params = SamplingParams(max_new_tokens=args.tokens, stop=(), seed=0)
    limits = RolloutLimits(
        max_turns=args.turns, max_new_tokens=args.tokens, max_total_tokens=100_000
    )
    tasks = [
        Task("bench/Cheap-v0", s, {"max_turns": args.turns, "max_invalid_turns": 0})
        for s in range(args.batch)
    ]
    slow = [
        Task(
            "bench/Cheap-v0", s, {"max_turns": args.turns, "max_invalid_turns": 0, "sleep_s": 0.05}
        )
        for s in range(args.batch)
    ]
    first = rollout(policy, tasks[:1], limits=limits, params=params)[0]  # warm-up
    prompts = [first.token_ids[: first.turns[0].start]] * args.batch

    def best(fn):
        out = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = fn()
            out.append((n / (time.perf_counter() - t), n))
        return max(out)

    raw, n_raw = best(lambda: raw_loop(policy, prompts, args.turns, params))
    eng, n_eng = best(
        lambda: sum(
            e.num_sampled_tokens for e in rollout(policy, tasks, params=params, limits=limits)
        )
    )
    slw, n_slw = best(
        lambda: sum(
            e.num_sampled_tokens for e in rollout(policy, slow, params=params, limits=limits)
        )
    )
    env_serial = 0.05 * args.turns * args.batch
    print(
        f"batch {args.batch} x {args.turns} turns x {args.tokens} tokens, torch threads {args.threads}"
    )
    print(f"(a) raw generate loop      : {raw:9.0f} tok/s  ({n_raw} tokens)")
    print(
        f"(b) engine, cheap env      : {eng:9.0f} tok/s  ({n_eng} tokens)  ratio {eng / raw:.3f} "
        f"(overhead {100 * (1 - eng / raw):.1f}%)"
    )
    print(
        f"(c) engine, env sleeps 50ms: {slw:9.0f} tok/s  ({n_slw} tokens)  ratio {slw / raw:.3f}; "
        f"serial env time would be {env_serial:.1f} s, wall {n_slw / slw:.2f} s"
    )


if __name__ == "__main__":
    main()
