"""Lights Out: pressing a cell toggles it and its four neighbours; switch every light off.

Instances are made by pressing random distinct cells of the all-off board, so each one is
solvable. The solver is exact: it solves A x = s over GF(2) by Gaussian elimination on bit
masks and, since 4x4 and 5x5 boards have a kernel, takes the fewest-press solution among
the particular solution plus every kernel combination.
"""

from __future__ import annotations

import random
import re
from functools import cache
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.games.game import GameEnv

LEVELS = {"easy": (3, 3), "medium": (4, 5), "hard": (5, 8)}
"""difficulty -> (board size, random presses used to scramble)."""
_CELL = re.compile(r"^(?:press\s+|toggle\s+)?([a-z])\s*(\d{1,2})$")


@cache
def press_masks(n: int) -> tuple[int, ...]:
    """Bit mask toggled by pressing each cell (bit r*n+c)."""
    masks = []
    for r in range(n):
        for c in range(n):
            m = 1 << (r * n + c)
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < n and 0 <= cc < n:
                    m |= 1 << (rr * n + cc)
            masks.append(m)
    return tuple(masks)


@cache
def _elimination(
    n: int,
) -> tuple[tuple[tuple[int, int, int], ...], tuple[int, ...], tuple[int, ...]]:
    """Row-reduce the press matrix once per size.

    Returns (pivot rows as (pivot column, row mask, combination of original rows),
    combinations that reduce to zero (consistency checks), kernel basis of press sets).
    """
    size = n * n
    masks = press_masks(n)  # the matrix is symmetric: row i = the presses that toggle cell i
    rows = [[masks[i], 1 << i] for i in range(size)]
    pivot_rows: list[tuple[int, int]] = []  # (column, row index)
    used = [False] * size
    for col in range(size):
        bit = 1 << col
        pick = next((i for i in range(size) if not used[i] and rows[i][0] & bit), None)
        if pick is None:
            continue
        used[pick] = True
        pivot_rows.append((col, pick))
        for i in range(size):
            if i != pick and rows[i][0] & bit:
                rows[i][0] ^= rows[pick][0]
                rows[i][1] ^= rows[pick][1]
    pivots = tuple((col, rows[i][0], rows[i][1]) for col, i in pivot_rows)
    zero = tuple(rows[i][1] for i in range(size) if not used[i])
    pivot_cols = {col for col, _ in pivot_rows}
    kernel = []
    for free in range(size):
        if free in pivot_cols:
            continue
        x = 1 << free
        for col, m, _ in pivots:
            if m >> free & 1:
                x |= 1 << col
        kernel.append(x)
    return pivots, zero, tuple(kernel)


@cache
def row_strings(n: int) -> tuple[str, ...]:
    """Column header, then the rendering of every n-bit row pattern (a lookup per row)."""
    head = "   " + " ".join(chr(ord("A") + c) for c in range(n))
    return (head, *(" ".join("#" if m >> c & 1 else "." for c in range(n)) for m in range(1 << n)))


def parity(x: int) -> int:
    return x.bit_count() & 1


def solve_presses(n: int, lights: int) -> int | None:
    """Fewest-press set (bit mask) that switches `lights` off, or None if unsolvable."""
    pivots, zero, kernel = _elimination(n)
    if any(parity(comb & lights) for comb in zero):
        return None
    x = 0
    for col, _, comb in pivots:
        if parity(comb & lights):
            x |= 1 << col
    best = x
    for k in range(1, 1 << len(kernel)):
        y = x
        for j, v in enumerate(kernel):
            if k >> j & 1:
                y ^= v
        if y.bit_count() < best.bit_count():
            best = y
    return best


class LightsOutEnv(GameEnv):
    pure_moves: ClassVar[bool] = True
    game_name = "LightsOut"
    default_max_turns = 30
    description = "Lights Out."
    legend: ClassVar[str] = "# = on, . = off."
    done_verb: ClassVar[str] = "Pressed"
    default_moves_per_turn: ClassVar[int] = 5

    def __init__(
        self,
        difficulty: str = "medium",
        size: int | None = None,
        presses: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(difficulty=difficulty, **kwargs)
        n, k = LEVELS[self.difficulty]
        self.n = int(size) if size is not None else n
        if not 2 <= self.n <= 9:
            raise ValueError(f"size must be in [2, 9], got {self.n}")
        self.presses = min(int(presses) if presses is not None else k, self.n * self.n)
        self.masks = press_masks(self.n)
        self.lights = 0

    def rules(self) -> str:
        return (
            f"Lights Out on a {self.n}x{self.n} grid. Pressing a cell toggles it and its up, down, left "
            "and right neighbours (on <-> off). Switch every light off."
        )

    @property
    def move_help(self) -> str:
        last = chr(ord("A") + self.n - 1)
        return f"Moves: a cell as column letter + row number, e.g. 'B3' (columns A-{last}, rows 1-{self.n}); 'press B3' also works."

    def new_game(self, rng: np.random.Generator) -> str:
        self.lights = 0
        while self.lights == 0:  # a pressed set can cancel out (kernel of 4x4/5x5 boards)
            cells = rng.choice(self.n * self.n, size=self.presses, replace=False)
            self.lights = 0
            for c in cells:
                self.lights ^= self.masks[int(c)]
        return "Some lights are on. Switch them all off."

    def render_state(self) -> str:
        n, rows = self.n, row_strings(self.n)
        lines = [rows[0]] + [
            f"{r + 1:>2} {rows[1 + (self.lights >> (r * n) & ((1 << n) - 1))]}" for r in range(n)
        ]
        return "\n".join(lines) + f"\nLights on: {self.lights.bit_count()}"

    def parse_move(self, text: str) -> tuple[int, int] | None:
        """(column, row) from 0."""
        m = _CELL.match(text)
        return (ord(m.group(1)) - ord("a"), int(m.group(2)) - 1) if m else None

    def move_name(self, move: tuple[int, int]) -> str:
        return f"{chr(ord('A') + move[0])}{move[1] + 1}"

    def random_move(self, rng: random.Random) -> tuple[int, int]:
        return rng.randrange(self.n + 1), rng.randrange(self.n + 1)

    def apply_move(self, move: tuple[int, int]) -> str | None:
        c, r = move
        if not (0 <= c < self.n and 0 <= r < self.n):
            return f"cell is off the {self.n}x{self.n} board."
        self.lights ^= self.masks[r * self.n + c]
        return None

    def is_solved(self) -> bool:
        return self.lights == 0

    def potential(self) -> float:
        return 1.0 - self.lights.bit_count() / (self.n * self.n)

    def state_key(self) -> str:
        return f"{self.n}:{self.lights:x}"

    def solver_moves(self, limit: int) -> list[tuple[int, int]]:
        x = solve_presses(self.n, self.lights) or 0
        cells = [i for i in range(self.n * self.n) if x >> i & 1]
        return [(i % self.n, i // self.n) for i in cells[:limit]]
