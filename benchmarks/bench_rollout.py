"""Rollout engine overhead vs the raw backend generate loop (hf backend, tiny model, CPU).

(a) raw: the same multi-turn token sequences driven by hand: generate, append the sampled
    ids and a fixed reply, repeat.  (b) engine: `rollout` on a cheap env (templated
    replies, env steps on the thread pool).  (c) engine with every env step sleeping 50 ms.
Every turn samples exactly --tokens tokens (no stop strings) so all three make the same
number of tokens. Prints tokens/s and the ratios to (a).

Second part, turns of different lengths (stop strings the tiny model hits at random
points, so rows finish at different times) and env steps sleeping 50 ms: (d) the raw
generate loop replaying exactly the engine's turns (same prompts, same per-episode seeds,
so the same tokens, no env), (e) the engine with env steps started only when a generate
call returns (`early_steps=False`, the old behaviour), (f) the engine starting each env
step as soon as its row finishes (`early_steps=True`). Prints wall times and ratios.

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
from tirgym.agents.rollout import episode_seed
from tirgym.agents.seeding import derive_seed
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


def replay_loop(policy: HFPolicy, tasks: list[Task], episodes: list, params: SamplingParams) -> int:
    """Generate exactly the engine's turns with the raw backend: per turn index, one call
    for every episode that has that turn, with its real prompt and its per-episode seed."""
    n = 0
    for t in range(max(len(e.turns) for e in episodes)):
        rows = [(task, e) for task, e in zip(tasks, episodes, strict=True) if len(e.turns) > t]
        prompts = [e.token_ids[: e.turns[t].start] for _, e in rows]
        seeds = [derive_seed(episode_seed(params.seed, task, 0), "turn", t) for task, _ in rows]
        comps = policy.generate(prompts, params.replace(seeds=seeds))
        for (_, e), c in zip(rows, comps, strict=True):
            assert c.token_ids == e.token_ids[e.turns[t].start : e.turns[t].end]
            n += len(c.token_ids)
    return n


def varied_case(policy: HFPolicy, args: argparse.Namespace) -> None:
    stop = tuple(args.stop.split(","))
    params = SamplingParams(max_new_tokens=args.tokens, stop=stop, seed=0)
    limits = RolloutLimits(
        max_turns=args.turns, max_new_tokens=args.tokens, max_total_tokens=100_000
    )
    kw = {"max_turns": args.turns, "max_invalid_turns": 0, "sleep_s": 0.05}
    tasks = [Task("bench/Cheap-v0", s, kw) for s in range(args.batch)]

    def engine(early: bool) -> tuple[float, list]:
        best = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            eps = rollout(policy, tasks, params=params, limits=limits, early_steps=early)
            dt = time.perf_counter() - t
            best = (dt, eps) if best is None or dt < best[0] else best
        return best

    old, eps_old = engine(False)
    new, eps_new = engine(True)
    assert [e.token_ids for e in eps_old] == [e.token_ids for e in eps_new]
    raw = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        n = replay_loop(policy, tasks, eps_new, params)
        raw = min(raw, time.perf_counter() - t)
    lens = sorted(t.end - t.start for e in eps_new for t in e.turns)
    print(
        f"\nvaried turn lengths (stop {stop}: min {lens[0]}, median {lens[len(lens) // 2]}, "
        f"max {lens[-1]} tokens), {args.batch} episodes x {args.turns} turns, env sleeps 50 ms"
    )
    print(f"(d) raw generate loop, same tokens, no env : {raw:6.2f} s  ({n} tokens)")
    print(
        f"(e) engine, env steps after generate (old) : {old:6.2f} s  ratio to (d) {old / raw:.3f}"
    )
    print(
        f"(f) engine, env step as each row finishes : {new:6.2f} s  ratio to (d) {new / raw:.3f}, "
        f"to (e) {new / old:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--stop", default="x,q,z,!,:", help="stop strings of the varied case")
    ap.add_argument("--only-varied", action="store_true")
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
    if args.only_varied:
        varied_case(policy, args)
        return
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
    varied_case(policy, args)


if __name__ == "__main__":
    main()
