"""Minesweeper: reveal every safe cell without hitting a mine.

Boards are no-guess by seeded construction: the first click is made for you (a random
cell with no mine on it or around it, so it opens a region), and a board is kept only if
the logic player below clears it from that opening without guessing. That player,
`solve()`, reveals cells it can prove safe (single-cell counts, subset constraints and the
total mine count), so it wins every generated board.
"""

from __future__ import annotations

import functools
import random
import re
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.games.grid import GridGameEnv, GridRenderer

# difficulty -> (side, mines)
SIZES = {"easy": (6, 5), "medium": (8, 10), "hard": (10, 16)}
HIDDEN, REVEALED, FLAGGED = 0, 1, 2
_MOVE = re.compile(r"^(?:(reveal|open|click|flag|unflag):?\s+)?(\d{1,3})\s+(\d{1,3})$")
_UNKNOWN, _OPEN, _SAFE, _MINE = 0, 1, 2, 3
"""What `deduce` knows of a cell: nothing, revealed, proven safe, proven a mine."""
_VERBS = {
    "reveal": "reveal",
    "open": "reveal",
    "click": "reveal",
    "flag": "flag",
    "unflag": "unflag",
}


@functools.cache
def neighbours(side: int) -> tuple[tuple[int, ...], ...]:
    out = []
    for r in range(side):
        for c in range(side):
            out.append(
                tuple(
                    rr * side + cc
                    for rr in range(max(r - 1, 0), min(r + 2, side))
                    for cc in range(max(c - 1, 0), min(c + 2, side))
                    if (rr, cc) != (r, c)
                )
            )
    return tuple(out)


def deduce(
    side: int,
    nbrs: tuple[tuple[int, ...], ...],
    revealed: set[int],
    counts: list[int],
    n_mines: int,
) -> tuple[set[int], set[int]]:
    """Cells provably safe and provably mines, from the revealed numbers only."""
    n = side * side
    known = bytearray(n)  # what the deduction knows of each cell: _UNKNOWN, ...
    for p in revealed:
        known[p] = _OPEN
    frontier = [p for p in revealed if counts[p] and not all(known[q] for q in nbrs[p])]
    mines: set[int] = set()
    safe: set[int] = set()
    while True:
        constraints = []
        for p in frontier:
            unknown = []
            need = counts[p]
            for q in nbrs[p]:
                k = known[q]
                if k == _UNKNOWN:
                    unknown.append(q)
                elif k == _MINE:
                    need -= 1
            if unknown:
                constraints.append((frozenset(unknown), need))
        new_safe: set[int] = set()
        new_mines: set[int] = set()
        for cells, need in constraints:
            if need == 0:
                new_safe |= cells
            elif need == len(cells):
                new_mines |= cells
        if not new_safe and not new_mines:
            uniq = list(set(constraints))
            for a, na in uniq:
                for b, nb in uniq:
                    if a is b or len(a) >= len(b) or not a <= b:
                        continue
                    rest = b - a
                    if nb - na == 0:
                        new_safe |= rest
                    elif nb - na == len(rest):
                        new_mines |= rest
        if not new_safe and not new_mines:
            unknown = [p for p in range(n) if known[p] == _UNKNOWN]
            left = n_mines - len(mines)
            if unknown and left == 0:
                new_safe = set(unknown)
            elif unknown and left == len(unknown):
                new_mines = set(unknown)
        if not new_safe and not new_mines:
            return safe, mines
        safe |= new_safe
        mines |= new_mines
        for q in new_safe:
            known[q] = _SAFE
        for q in new_mines:
            known[q] = _MINE
        # safe cells are not revealed here: their numbers are unknown to the player


def open_region(
    start: int, mine: bytearray, counts: list[int], nbrs: tuple[tuple[int, ...], ...]
) -> list[int]:
    """Cells revealed by clicking `start` (flood through zeros)."""
    seen = {start}
    stack = [start]
    while stack:
        p = stack.pop()
        if counts[p] == 0:
            for q in nbrs[p]:
                if q not in seen and not mine[q]:
                    seen.add(q)
                    stack.append(q)
    return list(seen)


def no_guess_clearable(
    side: int,
    nbrs: tuple[tuple[int, ...], ...],
    mine: bytearray,
    counts: list[int],
    start: int,
    n_mines: int,
) -> bool:
    """Does the logic player clear the board from the opening at `start`?"""
    revealed = set(open_region(start, mine, counts, nbrs))
    total_safe = side * side - n_mines
    while len(revealed) < total_safe:
        safe, _ = deduce(side, nbrs, revealed, counts, n_mines)
        if not safe:
            return False
        for p in safe:
            if p not in revealed:
                revealed.update(open_region(p, mine, counts, nbrs))
    return True


@functools.lru_cache(maxsize=4096)
def no_guess_board(side: int, n_mines: int, key: int) -> tuple[int, bytes, tuple[int, ...]]:
    """(first click, mines, counts) of the no-guess board drawn from `key`.

    Drawing candidates until the logic player clears one costs milliseconds, and a task is
    reset many times (a GRPO group, eval samples, replays), so boards are kept by key."""
    rng = random.Random(key)
    n, nbrs = side * side, neighbours(side)
    while True:
        start = rng.randrange(n)
        banned = {start, *nbrs[start]}
        mine = bytearray(n)
        for p in rng.sample([p for p in range(n) if p not in banned], n_mines):
            mine[p] = 1
        counts = [sum(mine[q] for q in nbrs[p]) for p in range(n)]
        if no_guess_clearable(side, nbrs, mine, counts, start, n_mines):
            return start, bytes(mine), tuple(counts)


class MinesweeperEnv(GridGameEnv):
    pure_moves: ClassVar[bool] = True
    game_name = "Minesweeper"
    default_max_turns = 60
    description = "Reveal every cell that has no mine, without revealing a mine."
    legend = (
        "? hidden, F flag, . revealed with no adjacent mine, 1-8 revealed with that many "
        "mines among its 8 neighbours. Rows and columns are numbered from 0."
    )
    move_help = (
        "Moves: 'reveal R C' reveals the cell at row R, column C; 'flag R C' marks a "
        "hidden cell as a mine; 'unflag R C' removes a flag."
    )
    example_moves = "reveal 2 3 || flag 0 1"
    done_verb = "Played"
    max_move_words: ClassVar[int] = 3

    def __init__(self, difficulty: str = "easy", **kwargs: Any):
        super().__init__(difficulty=difficulty, **kwargs)
        self.side, self.n_mines = SIZES[self.difficulty]
        self.nbrs = neighbours(self.side)
        self.renderer = GridRenderer(self.side, self.side)
        n = self.side * self.side
        self.mine = bytearray(n)
        self.counts = [0] * n
        self.state = bytearray(n)
        self.safe_left = 0
        self.exploded = -1
        self.cells: list[str] = ["?"] * n
        """What the player sees of each cell, kept up to date move by move."""

    def rules(self) -> str:
        return (
            f"The board has {self.n_mines} mines. The first click was made for you. Revealing "
            "a cell with no adjacent mine also reveals its neighbours. Revealing a mine loses; "
            "you win when every safe cell is revealed (flags are optional)."
        )

    def new_game(self, rng: np.random.Generator) -> None:
        n = self.side * self.side
        start, mine, counts = no_guess_board(self.side, self.n_mines, int(rng.integers(0, 2**62)))
        self.mine, self.counts = bytearray(mine), list(counts)
        self.state = bytearray(n)
        self.exploded = -1
        self.safe_left = n - self.n_mines
        self.cells = ["?"] * n
        self._reveal(start)

    def _reveal(self, start: int) -> None:
        state = self.state
        for p in open_region(start, self.mine, self.counts, self.nbrs):
            if state[p] != REVEALED:
                state[p] = REVEALED
                self.cells[p] = str(self.counts[p]) if self.counts[p] else "."
                self.safe_left -= 1

    def parse_move(self, text: str) -> tuple[str, int, int] | None:
        """`reveal 1 2`, `flag 0 3`, `unflag 0 3`, `open(2,3)`; a bare `R C` reveals."""
        m = _MOVE.match(text)
        if m is None:
            return None
        return (_VERBS[m.group(1) or "reveal"], int(m.group(2)), int(m.group(3)))

    def random_move(self, rng: random.Random) -> tuple[str, int, int]:
        verb = "reveal" if rng.random() < 0.8 else rng.choice(("flag", "unflag"))
        return (verb, rng.randrange(self.side), rng.randrange(self.side))

    def move_name(self, move: tuple[str, int, int]) -> str:
        return f"{move[0]} {move[1]} {move[2]}"

    def apply_move(self, move: tuple[str, int, int]) -> str | None:
        verb, r, c = move
        side = self.side
        if not (0 <= r < side and 0 <= c < side):
            return f"row and column must be between 0 and {side - 1}."
        p = r * side + c
        st = self.state[p]
        if verb == "reveal":
            if st == REVEALED:
                return "that cell is already revealed."
            if st == FLAGGED:
                return "that cell is flagged; unflag it first."
            if self.mine[p]:
                self.exploded = p
                return None
            self._reveal(p)
        elif verb == "flag":
            if st != HIDDEN:
                return "only a hidden, unflagged cell can be flagged."
            self.state[p] = FLAGGED
            self.cells[p] = "F"
        else:
            if st != FLAGGED:
                return "that cell has no flag."
            self.state[p] = HIDDEN
            self.cells[p] = "?"
        return None

    def potential(self) -> float:
        total = self.side * self.side - self.n_mines
        return (total - self.safe_left) / total

    def is_solved(self) -> bool:
        return self.safe_left == 0

    def is_lost(self) -> str | None:
        if self.exploded < 0:
            return None
        r, c = divmod(self.exploded, self.side)
        return f"Boom: row {r}, column {c} was a mine (X; other mines shown as *)."

    def board_text(self) -> str:
        if self.exploded < 0:
            return self.renderer.render(self.cells)
        cells = self.cells.copy()
        for p in range(self.side * self.side):
            if self.mine[p]:
                cells[p] = "X" if p == self.exploded else "*"
        return self.renderer.render(cells)

    def status_text(self) -> str:
        flags = self.state.count(FLAGGED)
        return f"Mines: {self.n_mines}. Flags: {flags}. Safe cells still hidden: {self.safe_left}."

    def win_text(self) -> str:
        return "Every safe cell is revealed. You won!"

    def state_key(self) -> str:
        boom = f"!{self.exploded}" if self.exploded >= 0 else ""  # a lost board is its own state
        return "mines:" + self.state.hex() + boom

    def solver_moves(self, limit: int) -> list[tuple[str, int, int]]:
        """Reveal cells proven safe; unflag a proven-safe flag first; guess only if stuck."""
        side = self.side
        revealed = {p for p, st in enumerate(self.state) if st == REVEALED}
        safe, mines = deduce(side, self.nbrs, revealed, self.counts, self.n_mines)
        plan: list[tuple[str, int, int]] = []
        for p in sorted(safe):
            r, c = divmod(p, side)
            if self.state[p] == FLAGGED:
                plan.append(("unflag", r, c))
            plan.append(("reveal", r, c))
        if not plan:  # no proof: reveal the hidden cell with the lowest naive mine odds
            hidden = [p for p, st in enumerate(self.state) if st != REVEALED and p not in mines]
            left = (self.n_mines - len(mines)) / max(len(hidden), 1)

            def risk(p: int) -> float:
                odds = [left]
                for q in self.nbrs[p]:
                    if q in revealed:
                        unk = [x for x in self.nbrs[q] if x not in revealed and x not in mines]
                        need = self.counts[q] - sum(x in mines for x in self.nbrs[q])
                        odds.append(need / max(len(unk), 1))
                return max(odds)

            p = min(hidden, key=risk)
            r, c = divmod(p, side)
            plan = ([("unflag", r, c)] if self.state[p] == FLAGGED else []) + [("reveal", r, c)]
        return plan[:limit]
