"""Env throughput: steps per second of every game env, single process, no model.

Each env plays episodes of random moves (`env.random_turn`, for the grid games) or of its
solver's moves (`env.solve()`) or, lacking both, random text. Only the env's own calls
are timed (reset and step), not the policy choosing the move. Printed per env and
difficulty: step-only steps/s, resets/s, steps/s over whole episodes (reset included),
and the step rate as a ratio to a bare TextEnv (GuessNumber) measured in the same run,
which is the floor set by the shared turn parsing and bookkeeping.

Usage: python benchmarks/bench_envs.py [--seconds 1.0] [--policy random|solver] [--env ID ...]
Each figure is the best of `--repeats` rounds (as timeit does), timed by default with this
process's CPU time: the machine is shared, and wall time would count other processes.
"""

from __future__ import annotations

import argparse
import inspect
import random
import time

import tirgym
from tirgym.registry import env_ids

GRID_GAMES = {
    "tirgym/Sokoban-v0",
    "tirgym/FrozenLake-v0",
    "tirgym/Maze-v0",
    "tirgym/Minesweeper-v0",
    "tirgym/Game2048-v0",
}
BAR = 20_000


def turn_source(env, policy: str, rng: random.Random):
    """(next_turn, state_free): state-free turns can be drawn before the timed block."""
    u = env.unwrapped
    if policy == "guess":  # the baseline: GuessNumber with random integer guesses
        return (lambda: f"<answer>{rng.randint(u.low, u.high)}</answer>"), True
    if policy == "random" and hasattr(u, "random_turn"):
        return (lambda: u.random_turn(rng)), True
    if hasattr(u, "solve"):
        return u.solve, False
    words = ["up", "down", "1", "2 3", "left", "abc"]
    return (lambda: f"<answer>{rng.choice(words)}</answer>"), True


def best_of(repeats: int, env_id: str, kwargs: dict, seconds: float, policy: str, clock):
    rounds = [measure(env_id, kwargs, seconds / repeats, policy, clock) for _ in range(repeats)]
    return {k: max(r[k] for r in rounds) for k in rounds[0]}


def measure(env_id: str, kwargs: dict, seconds: float, policy: str, clock) -> dict[str, float]:
    """Play episodes for `seconds` of wall time; time reset and step with `clock`.

    With state-free (random) turns a whole episode's steps are one timed block, so the
    clock is read twice per episode, not per step (a CPU clock read costs microseconds)."""
    env = tirgym.make(env_id, **kwargs)
    rng = random.Random(0)
    next_turn, state_free = turn_source(env, policy, rng)
    max_turns = env.unwrapped.max_turns
    steps = resets = 0
    t_step = t_reset = 0.0
    seed = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = clock()
        env.reset(seed=seed)
        t_reset += clock() - t0
        resets += 1
        seed += 1
        if state_free:
            turns = [next_turn() for _ in range(max_turns)]
            t0 = clock()
            for text in turns:
                _, _, terminated, truncated, _ = env.step(text)
                steps += 1
                if terminated or truncated:
                    break
            t_step += clock() - t0
            continue
        while True:
            text = next_turn()
            t0 = clock()
            _, _, terminated, truncated, _ = env.step(text)
            t_step += clock() - t0
            steps += 1
            if terminated or truncated:
                break
    return {
        "steps": steps,
        "step_per_s": steps / t_step,
        "reset_per_s": resets / t_reset,
        "episode_step_per_s": steps / (t_step + t_reset),
    }


def difficulties(env_id: str) -> list[dict]:
    cls = tirgym.make(env_id).unwrapped.__class__
    if "difficulty" in inspect.signature(cls.__init__).parameters:
        return [{"difficulty": d} for d in ("easy", "medium", "hard")]
    return [{}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per env and difficulty")
    ap.add_argument("--policy", choices=["random", "solver"], default="random")
    ap.add_argument("--env", action="append", help="env id (default: every env tagged game)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds per figure (best is kept)")
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="cpu: this process's CPU time (robust on a shared machine); wall: perf_counter",
    )
    args = ap.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    base = best_of(
        args.repeats, "tirgym/GuessNumber-v0", {"max_turns": 200}, args.seconds, "guess", clock
    )
    print(
        f"baseline tirgym/GuessNumber-v0 (bare TextEnv, random guesses): "
        f"{base['step_per_s']:,.0f} steps/s ({args.clock} clock)"
    )
    header = f"{'env':28} {'difficulty':10} {'steps/s':>9} {'resets/s':>9} {'ep steps/s':>10} {'vs base':>7}  bar"
    print(header)
    print("-" * len(header))
    failed = []
    for env_id in args.env or env_ids("game"):
        if env_id == "tirgym/GuessNumber-v0":
            continue
        for kwargs in difficulties(env_id):
            r = best_of(args.repeats, env_id, kwargs, args.seconds, args.policy, clock)
            bar = ""
            if env_id in GRID_GAMES:
                ok = r["step_per_s"] >= BAR
                bar = "ok" if ok else f"< {BAR:,}"
                if not ok:
                    failed.append(f"{env_id} {kwargs.get('difficulty', '')}")
            print(
                f"{env_id:28} {kwargs.get('difficulty', '-'):10} {r['step_per_s']:9,.0f} "
                f"{r['reset_per_s']:9,.0f} {r['episode_step_per_s']:10,.0f} "
                f"{r['step_per_s'] / base['step_per_s']:7.2f}  {bar}",
                flush=True,
            )
    if failed:
        print(f"below {BAR:,} steps/s: {', '.join(failed)}")
    else:
        print(f"every grid game runs at >= {BAR:,} steps/s (step only, {args.policy} moves)")


if __name__ == "__main__":
    main()
