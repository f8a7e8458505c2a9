"""Sudoku (4x4 and 9x9): fill the grid so each row, column and box holds every digit once.

Generation: a random full grid (a base pattern under random digit relabelling, row/column
permutations within bands and stacks, band/stack permutations and transposition), then
cells are blanked in random order while the exact solver (bit-mask backtracking with the
most-constrained cell first) still finds exactly one solution. Every puzzle is therefore
unique, and the stored solution is the solver's.

Placing a digit that repeats one in its row, column or box, or writing over a given, is an
illegal move. A digit that is legal now but wrong (not the unique solution's) is accepted;
it can be cleared again, and the solver's next moves clear such entries first.
"""

from __future__ import annotations

import functools
import random
import re
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.choices import check_choice
from tirgym.envs.games.game import GameEnv

LEVELS = {"easy": (4, 6), "medium": (9, 36), "hard": (9, 26)}
"""difficulty -> (size, target number of givens; generation stops at a minimal puzzle)."""
_PLACE = re.compile(r"^([a-z])\s*([1-9])\s*(?:=|:|\s|->|to)?\s*([0-9.])$")
_CLEAR = re.compile(r"^(?:clear|erase|del(?:ete)?)\s+([a-z])\s*([1-9])$")


class Geometry:
    """Cell peers of an n x n board (n = 4 or 9), computed once per size."""

    def __init__(self, n: int):
        self.n = n
        self.b = int(round(n**0.5))
        self.unit_of = [
            (i // n, n + i % n, 2 * n + (i // n // self.b) * self.b + (i % n) // self.b)
            for i in range(n * n)
        ]
        self.peers = []
        for i in range(n * n):
            r, c = divmod(i, n)
            br, bc = r // self.b * self.b, c // self.b * self.b
            ps = {r * n + k for k in range(n)} | {k * n + c for k in range(n)}
            ps |= {(br + dr) * n + bc + dc for dr in range(self.b) for dc in range(self.b)}
            ps.discard(i)
            self.peers.append(tuple(sorted(ps)))
        self.full = (1 << n) - 1


_GEOM = {4: Geometry(4), 9: Geometry(9)}


def solve_grid(grid: list[int], n: int, limit: int = 2) -> list[list[int]]:
    """Up to `limit` solutions of `grid` (0 = blank); exact backtracking with MRV."""
    g = _GEOM[n]
    rows, cols, boxes = [0] * n, [0] * n, [0] * n
    cells = list(grid)
    for i, v in enumerate(cells):
        if v:
            bit = 1 << (v - 1)
            r, c, b = i // n, i % n, (i // n // g.b) * g.b + (i % n) // g.b
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return []
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
    blanks = [i for i, v in enumerate(cells) if not v]
    box_of = [(i // n // g.b) * g.b + (i % n) // g.b for i in range(n * n)]
    out: list[list[int]] = []

    def rec() -> None:
        best, best_cands, best_count = -1, 0, n + 1
        for i in blanks:
            if cells[i]:
                continue
            cands = g.full & ~(rows[i // n] | cols[i % n] | boxes[box_of[i]])
            k = cands.bit_count()
            if k < best_count:
                best, best_cands, best_count = i, cands, k
                if k <= 1:
                    break
        if best < 0:
            out.append(list(cells))
            return
        if best_count == 0:
            return
        r, c, b = best // n, best % n, box_of[best]
        cands = best_cands
        while cands:
            bit = cands & -cands
            cands ^= bit
            cells[best] = bit.bit_length()
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            rec()
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            cells[best] = 0
            if len(out) >= limit:
                return

    rec()
    return out


def random_full_grid(rng: np.random.Generator, n: int) -> list[int]:
    b = _GEOM[n].b
    base = [[(b * (r % b) + r // b + c) % n for c in range(n)] for r in range(n)]
    bands = rng.permutation(b)
    row_order = [int(band) * b + int(x) for band in bands for x in rng.permutation(b)]
    stacks = rng.permutation(b)
    col_order = [int(s) * b + int(x) for s in stacks for x in rng.permutation(b)]
    digits = [int(d) + 1 for d in rng.permutation(n)]
    grid = [[digits[base[r][c]] for c in col_order] for r in row_order]
    if rng.random() < 0.5:
        grid = [list(col) for col in zip(*grid, strict=True)]
    return [v for row in grid for v in row]


def make_puzzle(rng: np.random.Generator, n: int, target: int) -> tuple[list[int], list[int]]:
    """(puzzle, solution): blank cells while the solution stays unique, down to `target` givens."""
    solution = random_full_grid(rng, n)
    puzzle = list(solution)
    givens = n * n
    for i in rng.permutation(n * n):
        if givens <= target:
            break
        i = int(i)
        keep = puzzle[i]
        puzzle[i] = 0
        if len(solve_grid(puzzle, n, limit=2)) == 1:
            givens -= 1
        else:
            puzzle[i] = keep
    (found,) = solve_grid(puzzle, n, limit=2)
    assert found == solution
    return puzzle, found


_SYMBOL = ".123456789"
"""How a cell value shows on the board (0 = blank)."""


@functools.cache
def _board_template(n: int, b: int) -> str:
    """The board's text with one `{}` per cell: column letters, row numbers, box rules."""
    letters = [chr(ord("A") + c) for c in range(n)]
    head = "   " + " | ".join(" ".join(letters[s : s + b]) for s in range(0, n, b))
    sep = "   " + "-+-".join("-" * (2 * b - 1) for _ in range(0, n, b))
    row = " | ".join(" ".join(["{}"] * b) for _ in range(0, n, b))
    lines = [head]
    for r in range(n):
        if r and r % b == 0:
            lines.append(sep)
        lines.append(f"{r + 1:>2} " + row)
    return "\n".join(lines)


class SudokuEnv(GameEnv):
    pure_moves: ClassVar[bool] = True
    game_name = "Sudoku"
    default_max_turns = 40
    description = "Sudoku."
    legend: ClassVar[str] = (
        ". = blank; columns are letters, rows are numbers; | and - separate the boxes."
    )
    default_moves_per_turn: ClassVar[int] = 9

    def __init__(
        self,
        difficulty: str = "medium",
        size: int | None = None,
        givens: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(difficulty=difficulty, **kwargs)
        n, target = LEVELS[self.difficulty]
        self.n = check_choice("size", int(size) if size is not None else n, (4, 9))
        if size is not None and givens is None and self.n != n:
            target = {4: 6, 9: 30}[self.n]
        self.target = int(givens) if givens is not None else target
        self.geom = _GEOM[self.n]
        self.puzzle: list[int] = []
        self.solution: list[int] = []
        self.cells: list[int] = []

    def rules(self) -> str:
        g = self.geom
        return (
            f"Sudoku {self.n}x{self.n}: fill every blank so that each row, each column and each "
            f"{g.b}x{g.b} box contains the digits 1-{self.n} exactly once. Givens cannot be changed."
        )

    @property
    def move_help(self) -> str:
        last, d = chr(ord("A") + self.n - 1), min(5, self.n)
        return (
            f"Moves: 'B3 {d}' writes {d} in column B, row 3 (columns A-{last}, rows 1-{self.n}; "
            f"'B3={d}' also works); 'clear B3' (or 'B3 .') erases a digit you wrote. A digit "
            "already in the same row, column or box is illegal."
        )

    def new_game(self, rng: np.random.Generator) -> str:
        self.puzzle, self.solution = make_puzzle(rng, self.n, self.target)
        self.cells = list(self.puzzle)
        return f"Solve this Sudoku ({self.puzzle.count(0)} blanks)."

    def render_state(self) -> str:
        return _board_template(self.n, self.geom.b).format(*[_SYMBOL[v] for v in self.cells])

    def parse_move(self, text: str) -> tuple[int, int, int] | None:
        """(column, row, digit) from 0, digit 0 = clear."""
        m = _CLEAR.match(text)
        if m:
            return ord(m.group(1)) - ord("a"), int(m.group(2)) - 1, 0
        m = _PLACE.match(text)
        if not m:
            return None
        d = m.group(3)
        return ord(m.group(1)) - ord("a"), int(m.group(2)) - 1, 0 if d in ".0" else int(d)

    def move_name(self, move: tuple[int, int, int]) -> str:
        c, r, v = move
        cell = f"{chr(ord('A') + c)}{r + 1}"
        return f"{cell} {v}" if v else f"clear {cell}"

    def random_move(self, rng: random.Random) -> tuple[int, int, int]:
        return rng.randrange(self.n + 1), rng.randrange(self.n), rng.randrange(min(self.n + 2, 10))

    def apply_move(self, move: tuple[int, int, int]) -> str | None:
        c, r, v = move
        cell = f"{chr(ord('A') + c)}{r + 1}"
        if not (0 <= c < self.n and 0 <= r < self.n):
            return f"cell {cell} is off the {self.n}x{self.n} board."
        i = r * self.n + c
        if self.puzzle[i]:
            return f"{cell} is a given and cannot be changed."
        if not v:
            if not self.cells[i]:
                return f"{cell} is already blank."
            self.cells[i] = 0
            return None
        if v > self.n:
            return f"digits go from 1 to {self.n}."
        for p in self.geom.peers[i]:
            if self.cells[p] == v:
                where = f"{chr(ord('A') + p % self.n)}{p // self.n + 1}"
                return f"{v} is already at {where} (same row, column or box)."
        self.cells[i] = v
        return None

    def is_solved(self) -> bool:
        return 0 not in self.cells  # every placement is legal, so a full grid is a solution

    def potential(self) -> float:
        """Share of the blanks holding the solution's digit (uses the hidden solution)."""
        blanks = self.puzzle.count(0)
        right = sum(
            1
            for v, s, p in zip(self.cells, self.solution, self.puzzle, strict=True)
            if not p and v == s
        )
        return right / blanks if blanks else 1.0

    def state_key(self) -> str:
        return "".join(map(str, self.cells))

    def solver_moves(self, limit: int) -> list[tuple[int, int, int]]:
        n = self.n
        wrong = [i for i, v in enumerate(self.cells) if v and v != self.solution[i]]
        moves = [(i % n, i // n, 0) for i in wrong]
        blanks = [i for i, v in enumerate(self.cells) if not v or v != self.solution[i]]
        moves += [(i % n, i // n, self.solution[i]) for i in blanks]
        return moves[:limit]
