"""Env throughput: steps per second of every game env, single process, no model.

Each env plays episodes of random moves (`env.random_turn`, for the grid games) or of its
solver's moves (`env.solve()`) or, lacking both, random text. Only the env's own calls
are timed (reset and step), not the policy choosing the move. Printed per env and
difficulty: step-only steps/s, resets/s, steps/s over whole episodes (reset included),
and the step rate as a ratio to a bare TextEnv (GuessNumber) measured in the same run,
which is the floor set by the shared turn parsing and bookkeeping.

When GEM (`pip install gem-llm`, in the `bench` extra) is importable, a second table
compares every game the two libraries share, in the same process: both sides play one
random well-formed move per turn on matched boards and turn limits, in interleaved rounds,
and the table shows the medians and the tirgym/GEM ratio of step and reset rates. The
`same semantics` column names what still differs (GEM reads `\\boxed{...}`, tirgym a
`<answer>`, and tirgym's Minesweeper boards are no-guess).

Usage: python benchmarks/bench_envs.py [--seconds 1.0] [--policy random|solver] [--env ID ...]
                                       [--gem auto|off|only] [--rounds 7]
Each figure is the best of `--repeats` rounds (as timeit does), timed by default with this
process's CPU time: the machine is shared, and wall time would count other processes.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.metadata
import inspect
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


# ---- tirgym vs GEM ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One game in both libraries, configured alike (board, size, turn limit)."""

    name: str
    tirgym_id: str
    tirgym_kwargs: dict
    gem_id: str
    gem_kwargs: dict = field(default_factory=dict)
    gem_move: Callable[[object, random.Random], str] | None = None
    """A random well-formed GEM action; None uses the env's own `sample_random_action`."""
    differs: str = "answer tags vs \\boxed{}"
    group: int = 1
    """Resets per seed (a GRPO group resets each task this many times)."""


def _gem_hanoi_move(env, rng: random.Random) -> str:
    return f"\\boxed{{{rng.choice('ABC')} {rng.choice('ABC')}}}"


def _gem_sudoku_move(env, rng: random.Random) -> str:
    n = env.scale
    return f"\\boxed{{{rng.randint(1, n)} {rng.randint(1, n)} {rng.randint(1, n)}}}"


def gem_pairs() -> list[Pair]:
    """The shared games, each at the tirgym difficulty whose board GEM can also build."""
    from tirgym.envs.games import game2048, hanoi, minesweeper, sokoban, sudoku

    pairs = [
        Pair(
            "GuessNumber 1-50",
            "tirgym/GuessNumber-v0",
            {"low": 1, "high": 50, "max_turns": 7},
            "game:GuessTheNumber-v0-hard",
        ),
        Pair(
            "Wordle 5 letters",
            "tirgym/Wordle-v0",
            {"difficulty": "medium", "max_guesses": 10},
            "game:Wordle-v0-hard",
            {"max_turns": 10},
            differs="answer tags vs \\boxed{}; both draw from tirgym's word list",
        ),
    ]
    for level in ("easy", "medium"):
        disks = hanoi.DISKS[level]
        pairs.append(
            Pair(
                f"Hanoi {disks} disks",
                "tirgym/Hanoi-v0",
                {"difficulty": level},
                "game:TowerofHanoi-v0-easy",
                {"num_disks": disks, "max_turns": 80},
                _gem_hanoi_move,
            )
        )
    for level in ("easy", "medium"):
        side, mines = minesweeper.SIZES[level]
        for group in (1, 8):
            pairs.append(
                Pair(
                    f"Minesweeper {side}x{side}/{mines}" + (f" x{group}" if group > 1 else ""),
                    "tirgym/Minesweeper-v0",
                    {"difficulty": level},
                    "game:Minesweeper-v0-easy",
                    {"rows": side, "cols": side, "num_mines": mines, "max_turns": 60},
                    differs="tirgym boards are no-guess (a logic solver clears each); GEM's "
                    "are not"
                    + (f"; each seed reset {group} times, as a GRPO group" if group > 1 else ""),
                    group=group,
                )
            )
    for level in ("easy", "medium"):
        n, givens = sudoku.LEVELS[level]
        pairs.append(
            Pair(
                f"Sudoku {n}x{n}/{givens}",
                "tirgym/Sudoku-v0",
                {"difficulty": level},
                "game:Sudoku-v0-easy",
                {"scale": n, "clues": givens, "max_turns": 40},
                _gem_sudoku_move,
            )
        )
    side, boxes = sokoban.SIZES["medium"][:2]
    pairs.append(
        Pair(
            f"Sokoban {side}x{side}/{boxes}",
            "tirgym/Sokoban-v0",
            {"difficulty": "medium"},
            "game:Sokoban-v0-easy",
            {"dim_room": (side, side), "num_boxes": boxes, "max_turns": 40},
            differs="answer tags vs \\boxed{}; tirgym keeps only levels its solver solves",
        )
    )
    target = 2 ** game2048.TARGETS["easy"]
    pairs.append(
        Pair(
            f"2048 to {target}",
            "tirgym/Game2048-v0",
            {"difficulty": "easy"},
            "game:Game2048-v0-easy",
            {"target_tile": target, "max_turns": 300},
        )
    )
    return pairs


def import_gem():
    """GEM, quiet and offline: its Wordle reads nltk's `words` corpus, which is given
    tirgym's word list (so both games draw from the same words) instead of a download."""
    try:
        import nltk
    except ImportError:
        return None
    from tirgym.envs.games.wordle import word_list

    root = Path(tempfile.mkdtemp(prefix="bench-nltk-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    corpus = root / "corpora" / "words"
    corpus.mkdir(parents=True)
    (corpus / "en-basic").write_text("\n".join(word_list()) + "\n")
    (corpus / "README").write_text("tirgym's Wordle list, for the GEM comparison.\n")
    os.environ["NLTK_DATA"] = str(root)
    nltk.data.path.insert(0, str(root))
    nltk.download = lambda *a, **k: True  # no network here, and the corpus is in place
    try:
        import gem
    except ImportError:
        return None
    logging.getLogger().setLevel(logging.WARNING)  # gem configures INFO logging on import
    return gem


@dataclass
class Side:
    """One library's env in a pair, played in rounds; keeps per-round rates."""

    env: object
    turn: Callable[[random.Random], str]
    max_turns: int
    group: int = 1
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    seed: int = 0
    step_rates: list[float] = field(default_factory=list)
    reset_rates: list[float] = field(default_factory=list)

    def play(self, seconds: float, clock) -> None:
        steps = resets = 0
        t_step = t_reset = 0.0
        env, rng = self.env, self.rng
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or resets < 3:
            t0 = clock()
            env.reset(seed=self.seed // self.group)
            t_reset += clock() - t0
            self.seed += 1
            resets += 1
            turns = [self.turn(rng) for _ in range(self.max_turns)]
            t0 = clock()
            for text in turns:
                _, _, terminated, truncated, _ = env.step(text)
                steps += 1
                if terminated or truncated:
                    break
            t_step += clock() - t0
        self.step_rates.append(steps / max(t_step, 1e-9))
        self.reset_rates.append(resets / max(t_reset, 1e-9))


def tirgym_side(pair: Pair) -> Side:
    env = tirgym.make(pair.tirgym_id, **pair.tirgym_kwargs).unwrapped
    if hasattr(env, "random_turn"):
        turn = lambda rng: env.random_turn(rng, 1)  # noqa: E731  one move, as GEM's
    else:
        turn = lambda rng: f"<answer>{rng.randint(env.low, env.high)}</answer>"  # noqa: E731
    return Side(env, turn, env.max_turns, pair.group)


def gem_side(gem, pair: Pair) -> Side:
    env = gem.make(pair.gem_id, **pair.gem_kwargs)
    if pair.gem_move is None:
        turn = lambda rng: env.sample_random_action()  # noqa: E731  (GEM's global RNG)
    else:
        turn = lambda rng: pair.gem_move(env, rng)  # noqa: E731
    return Side(env, turn, env.max_turns, pair.group)


def compare_with_gem(gem, seconds: float, rounds: int, clock, only: list[str] | None) -> bool:
    """Print the tirgym/GEM table; True when every ratio is >= 1."""
    print(
        f"\ntirgym vs GEM {importlib.metadata.version('gem-llm')}: medians of {rounds} interleaved "
        "rounds, one random well-formed move per turn"
    )
    header = (
        f"{'game':22} {'tirgym st/s':>11} {'GEM st/s':>9} {'ratio':>6}   "
        f"{'tirgym rs/s':>11} {'GEM rs/s':>9} {'ratio':>6}  same semantics except"
    )
    print(header)
    print("-" * len(header))
    all_ok = True
    for pair in gem_pairs():
        if only and pair.tirgym_id not in only:
            continue
        sides = (tirgym_side(pair), gem_side(gem, pair))
        for side in sides:  # warm-up: caches, lazy tables, first-call costs
            side.play(0.0, clock)
            side.step_rates.clear()
            side.reset_rates.clear()
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                side.play(seconds / rounds / 2, clock)
        t, g = sides
        ts, gs = statistics.median(t.step_rates), statistics.median(g.step_rates)
        tr, gr = statistics.median(t.reset_rates), statistics.median(g.reset_rates)
        all_ok &= ts >= gs and tr >= gr
        print(
            f"{pair.name:22} {ts:11,.0f} {gs:9,.0f} {ts / gs:6.2f}   "
            f"{tr:11,.0f} {gr:9,.0f} {tr / gr:6.2f}  {pair.differs}",
            flush=True,
        )
    print("every shared game: tirgym >= GEM" if all_ok else "some ratio is below 1.00")
    return all_ok


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
    ap.add_argument(
        "--gem",
        choices=["auto", "off", "only"],
        default="auto",
        help="compare with GEM when importable (auto), never (off), or only that (only)",
    )
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per GEM pair")
    args = ap.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    if args.gem != "only":
        tirgym_table(args, clock)
    if args.gem != "off":
        gem = import_gem()
        if gem is None:
            print("\nGEM is not importable (pip install gem-llm): no comparison.")
        else:
            compare_with_gem(gem, args.seconds * 2, args.rounds, clock, args.env)


def tirgym_table(args, clock) -> None:
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
