"""Countdown / 24 as a multi-turn game: combine two numbers per move until the target appears.

Each move `a op b` (op in + - * /) takes two numbers from the pool and puts the result back;
results must be positive integers (subtraction only to a positive result, exact division).
The game is won as soon as the target is in the pool (with `use_all`, only when it is the
last number left), and lost when no number is left to combine.

Levels: easy = 3 numbers 1-10 and a target built from them; medium = the 24 game (4
numbers 1-13, target 24, every number must be used: `use_all` defaults to True there); hard = Countdown's numbers round (4 small, 2 large numbers,
target 101-999). Every instance is checked solvable by the exact solver, a depth-first
search over the pool (a multiset) that remembers the pools it has proved dead.
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.games.game import GameEnv

_MOVE = re.compile(r"^(\d{1,7})\s*([-+*/x×÷−])\s*(\d{1,7})(?:\s*=\s*-?\d+)?$")
_OPS = {"+": "+", "-": "-", "−": "-", "*": "*", "x": "*", "X": "*", "×": "*", "/": "/", "÷": "/"}
LARGE = (25, 50, 75, 100)


def combine(a: int, op: str, b: int) -> int | None:
    """The result of `a op b` when it is a positive integer, else None."""
    if op == "+":
        return a + b
    if op == "*":
        return a * b
    if op == "-":
        return a - b if a > b else None
    return a // b if b and a % b == 0 else None


def children(pool: tuple[int, ...]):
    """(move, next pool) for every useful move from a sorted pool."""
    n = len(pool)
    seen: set[tuple[int, int]] = set()
    for i in range(n):
        for j in range(i + 1, n):
            small, big = pool[i], pool[j]
            if (small, big) in seen:
                continue
            seen.add((small, big))
            rest = pool[:i] + pool[i + 1 : j] + pool[j + 1 :]
            results = [(big, "+", small, big + small), (big, "*", small, big * small)]
            if big > small:
                results.append((big, "-", small, big - small))
            if small > 1 and big % small == 0:
                results.append((big, "/", small, big // small))
            for a, op, b, r in results:
                yield (a, op, b), tuple(sorted((*rest, r)))


def solve_pool(
    pool: tuple[int, ...], target: int, use_all: bool = False
) -> list[tuple[int, str, int]] | None:
    """A shortest-first list of moves reaching `target` from `pool`, or None (exact DFS)."""
    dead: set[tuple[int, ...]] = set()

    def won(p: tuple[int, ...]) -> bool:
        return (len(p) == 1 and p[0] == target) if use_all else target in p

    def dfs(p: tuple[int, ...], depth: int) -> list[tuple[int, str, int]] | None:
        if won(p):
            return []
        if depth == 0 or len(p) < 2 or p in dead:
            return None
        for move, nxt in children(p):
            sub = dfs(nxt, depth - 1)
            if sub is not None:
                return [move, *sub]
        if depth >= len(p) - 1:  # searched to the bottom: provably dead
            dead.add(p)
        return None

    pool = tuple(sorted(pool))
    if won(pool):
        return []
    for depth in range(1, len(pool)):  # iterative deepening gives a shortest solution
        found = dfs(pool, depth)
        if found is not None:
            return found
    return None


def random_target(rng: np.random.Generator, pool: list[int]) -> int:
    """Combine the numbers in a random order with random legal operations."""
    vals = list(pool)
    while len(vals) > 1:
        i, j = (int(x) for x in rng.choice(len(vals), size=2, replace=False))
        a, b = max(vals[i], vals[j]), min(vals[i], vals[j])
        ops = ["+", "*"] + (["-"] if a > b else []) + (["/"] if b > 1 and a % b == 0 else [])
        r = combine(a, ops[int(rng.integers(len(ops)))], b)
        vals = [v for k, v in enumerate(vals) if k not in (i, j)] + [int(r)]
    return vals[0]


class CountdownEnv(GameEnv):
    pure_moves: ClassVar[bool] = True
    game_name = "Countdown"
    default_max_turns = 8
    description = "Countdown."
    legend: ClassVar[str] = "Numbers: the pool you combine; Target: the number to make."
    done_verb: ClassVar[str] = "Combined"
    default_moves_per_turn: ClassVar[int] = 1

    def __init__(self, difficulty: str = "medium", use_all: bool | None = None, **kwargs: Any):
        super().__init__(difficulty=difficulty, **kwargs)
        self.use_all = (self.difficulty == "medium") if use_all is None else bool(use_all)
        self.start: tuple[int, ...] = ()
        self.pool: list[int] = []
        self.target = 0

    def rules(self) -> str:
        goal = "the only number left" if self.use_all else "one of your numbers"
        return (
            "Countdown: you have a pool of numbers and a target. Each move takes two numbers from the "
            "pool, combines them with +, -, * or /, and puts the result back. Results must be positive "
            f"whole numbers (no negatives, no fractions). Win by making the target {goal}. "
            "The game is lost when a single number is left that is not the target."
        )

    @property
    def move_help(self) -> str:
        return "Moves: '8 * 3' combines 8 and 3 into 24 (operators + - * /; '8 x 3' and '8 * 3 = 24' also work)."

    def new_game(self, rng: np.random.Generator) -> str:
        while True:
            # `built`: the target was made by combining these numbers, which proves it
            # reachable (with `use_all`, only if every number went in): no search needed
            if self.difficulty == "easy":
                pool = [int(x) for x in rng.integers(1, 11, size=3)]
                target, built = random_target(rng, pool), True
                if not 10 <= target <= 99 or target in pool:
                    continue
            elif self.difficulty == "medium":
                pool, target = [int(x) for x in rng.integers(1, 14, size=4)], 24
                built = False
            else:
                large = [int(x) for x in rng.choice(LARGE, size=2, replace=False)]
                small = [
                    int(x)
                    for x in rng.choice(np.repeat(np.arange(1, 11), 2), size=4, replace=False)
                ]
                pool = small + large
                every = rng.random() < 0.5
                target = random_target(rng, pool if every else pool[1:])
                built = every or not self.use_all
                if not 101 <= target <= 999:
                    continue
            if target in pool:
                continue
            if not built and solve_pool(tuple(pool), target, self.use_all) is None:
                continue
            break
        self.start = tuple(sorted(pool))
        self.pool = sorted(pool)
        self.target = target
        return f"Reach the target {target}."

    def render_state(self) -> str:
        return f"Numbers: {', '.join(map(str, self.pool))}\nTarget: {self.target}"

    def parse_move(self, text: str) -> tuple[int, str, int] | None:
        m = _MOVE.match(text)
        return (int(m.group(1)), _OPS[m.group(2)], int(m.group(3))) if m else None

    def move_name(self, move: tuple[int, str, int]) -> str:
        return f"{move[0]} {move[1]} {move[2]}"

    def random_move(self, rng: random.Random) -> tuple[int, str, int]:
        a, b = (rng.choice(self.pool) if rng.random() < 0.8 else rng.randint(1, 20) for _ in "ab")
        return a, rng.choice("+-*/"), b

    def apply_move(self, move: tuple[int, str, int]) -> str | None:
        a, op, b = move
        pool = list(self.pool)
        for v in (a, b):
            if v not in pool:
                return f"{v} is not available (numbers: {', '.join(map(str, self.pool))})."
            pool.remove(v)
        r = combine(a, op, b)
        if r is None:
            why = "would not be positive" if op == "-" else "is not a whole number"
            return f"{a} {op} {b} {why}."
        pool.append(r)
        self.pool = sorted(pool)
        return None

    def is_solved(self) -> bool:
        if self.use_all:
            return len(self.pool) == 1 and self.pool[0] == self.target
        return self.target in self.pool

    def is_lost(self) -> str | None:
        if len(self.pool) < 2 and not self.is_solved():
            return f"only {self.pool[0]} is left and the target was {self.target}."
        return None

    def potential(self) -> float:
        return max(0.0, 1.0 - min(abs(v - self.target) for v in self.pool) / self.target)

    def state_key(self) -> str:
        return ",".join(map(str, self.pool)) + f">{self.target}"

    def solver_moves(self, limit: int) -> list[str]:
        plan = solve_pool(tuple(self.pool), self.target, self.use_all)
        if not plan:  # dead position (only after wrong moves): any legal move
            plan = [next(iter(children(tuple(self.pool))))[0]] if len(self.pool) > 1 else []
        return plan[:limit]
