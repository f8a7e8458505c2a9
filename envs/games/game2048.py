"""2048: slide the tiles, merge equal ones, reach the target tile.

The board is 16 exponents (0 = empty, k = tile 2**k). A move slides every line; a move
that changes nothing is illegal (no tile spawns). New tiles (2 with p=0.9, else 4) come
from the task's seeded generator, so a seed and a move sequence replay exactly.
The solver is an expectimax over the spawns (two plies when the board is tight) with the row heuristic of nneonneo's
2048 AI (empty cells, merges, monotonicity, tile mass); the target tile of each
difficulty is one it reaches in at least 99% of seeded games within the turn limit.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.games.grid import (
    DIRECTIONS,
    DOWN,
    LEFT,
    RIGHT,
    UP,
    GridGameEnv,
    GridRenderer,
    python_rng,
)

# difficulty -> target tile exponent (64, 128, 256)
TARGETS = {"easy": 6, "medium": 7, "hard": 8}
SIDE = 4
TILE_TEXT = [f"{1 << x if x else '.':>4}" for x in range(18)]
LINES = {
    LEFT: [tuple(4 * r + i for i in range(4)) for r in range(4)],
    RIGHT: [tuple(4 * r + 3 - i for i in range(4)) for r in range(4)],
    UP: [tuple(c + 4 * i for i in range(4)) for c in range(4)],
    DOWN: [tuple(c + 12 - 4 * i for i in range(4)) for c in range(4)],
}


@cache
def slide_line(line: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Slide one line towards index 0: (new line, points scored)."""
    tiles = [x for x in line if x]
    out: list[int] = []
    score = 0
    i = 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
            out.append(tiles[i] + 1)
            score += 1 << (tiles[i] + 1)
            i += 2
        else:
            out.append(tiles[i])
            i += 1
    out += [0] * (len(line) - len(out))
    return tuple(out), score


def slide(board: list[int], move: str) -> tuple[list[int], int] | None:
    """The board after `move` and its points, or None if nothing moves."""
    new = board.copy()
    score = 0
    changed = False
    for idx in LINES[move]:
        line = (board[idx[0]], board[idx[1]], board[idx[2]], board[idx[3]])
        out, pts = slide_line(line)
        if out != line:
            changed = True
            score += pts
            new[idx[0]], new[idx[1]], new[idx[2]], new[idx[3]] = out
    return (new, score) if changed else None


@cache
def line_heuristic(line: tuple[int, ...]) -> float:
    total = 0.0
    empty = merges = counter = prev = 0
    for rank in line:
        total += rank**3.5
        if rank == 0:
            empty += 1
        else:
            if prev == rank:
                counter += 1
            elif counter > 0:
                merges += 1 + counter
                counter = 0
            prev = rank
    if counter > 0:
        merges += 1 + counter
    mono_left = mono_right = 0.0
    for a, b in zip(line, line[1:], strict=False):
        if a > b:
            mono_left += a**4 - b**4
        else:
            mono_right += b**4 - a**4
    return (
        200000.0 + 270.0 * empty + 700.0 * merges - 47.0 * min(mono_left, mono_right) - 11.0 * total
    )


def board_value(b: list[int]) -> float:
    h = line_heuristic
    return (
        h((b[0], b[1], b[2], b[3]))
        + h((b[4], b[5], b[6], b[7]))
        + h((b[8], b[9], b[10], b[11]))
        + h((b[12], b[13], b[14], b[15]))
        + h((b[0], b[4], b[8], b[12]))
        + h((b[1], b[5], b[9], b[13]))
        + h((b[2], b[6], b[10], b[14]))
        + h((b[3], b[7], b[11], b[15]))
    )


def _chance(board: list[int], depth: int) -> float:
    """Expected value over the spawn (2 with p=0.9, 4 with p=0.1) on each empty cell."""
    empties = [i for i, x in enumerate(board) if x == 0]
    if not empties:
        return board_value(board)
    value = 0.0
    for i in empties:
        board[i] = 1
        value += 0.9 * (_max_value(board, depth - 1) if depth > 1 else board_value(board))
        board[i] = 2
        value += 0.1 * (_max_value(board, depth - 1) if depth > 1 else board_value(board))
        board[i] = 0
    return value / len(empties)


def _max_value(board: list[int], depth: int) -> float:
    best = 0.0  # no legal move: a lost board is worth nothing
    for move in DIRECTIONS:
        result = slide(board, move)
        if result is not None:
            best = max(best, _chance(result[0], depth))
    return best


def best_move(board: list[int]) -> str | None:
    """Expectimax over the spawns: one ply while the board is roomy, two when it is tight."""
    depth = 2 if board.count(0) <= 5 else 1
    best, best_value = None, float("-inf")
    for move in DIRECTIONS:
        result = slide(board, move)
        if result is None:
            continue
        value = _chance(result[0], depth)
        if value > best_value:
            best, best_value = move, value
    return best


class Game2048Env(GridGameEnv):
    game_name = "2048"
    default_max_turns = 300
    description = "Slide the tiles of the 4x4 board to merge equal tiles and build the target tile."
    legend = ". empty; numbers are tiles. Rows and columns are numbered from 0."
    move_help = "Moves: up, down, left, right (every tile slides that way as far as it can)."
    example_moves = "left || down"
    default_moves_per_turn: ClassVar[int] = 1

    def __init__(self, difficulty: str = "easy", **kwargs: Any):
        super().__init__(difficulty=difficulty, **kwargs)
        self.target = TARGETS[self.difficulty]
        self.rng = random.Random(0)
        self.stuck = False
        self.renderer = GridRenderer(SIDE, SIDE, cell_chars=4)
        self.board = [0] * 16
        self.score = 0

    def rules(self) -> str:
        return (
            f"Reach the tile {1 << self.target}. Two equal tiles that slide into each other "
            "merge into their sum. After every move a new tile (2, or 4 one time in ten) "
            "appears on a random empty cell. A move that moves no tile is illegal. The game is "
            "lost when no move is possible."
        )

    def new_game(self, rng: np.random.Generator) -> None:
        self.rng = python_rng(rng)  # the spawns of the whole game draw from it
        self.board = [0] * 16
        self.score = 0
        self.stuck = False
        self._spawn()
        self._spawn()

    def _spawn(self) -> None:
        empties = [i for i, x in enumerate(self.board) if x == 0]
        i = empties[self.rng.randrange(len(empties))]
        self.board[i] = 1 if self.rng.random() < 0.9 else 2

    def apply_move(self, move: str) -> str | None:
        result = slide(self.board, move)
        if result is None:
            return "no tile can move that way."
        self.board, pts = result
        self.score += pts
        if max(self.board) >= self.target:
            return None
        self._spawn()
        self.stuck = 0 not in self.board and all(slide(self.board, m) is None for m in DIRECTIONS)
        return None

    def is_solved(self) -> bool:
        return max(self.board) >= self.target

    def is_lost(self) -> str | None:
        return "no move is possible." if self.stuck else None

    def potential(self) -> float:
        """log2 of the largest tile, relative to the target: 1.0 at the target."""
        return max(self.board) / self.target

    def board_text(self) -> str:
        return self.renderer.render([TILE_TEXT[x] for x in self.board])

    def status_text(self) -> str:
        return f"Score: {self.score}. Largest tile: {1 << max(self.board)}. Target: {1 << self.target}."

    def win_text(self) -> str:
        return f"You made the {1 << self.target} tile. You won!"

    def state_key(self) -> str:
        return "2048:" + "".join("0123456789abcdefghij"[x] for x in self.board)

    def solver_moves(self, limit: int) -> list[str]:
        return [best_move(self.board) or LEFT]
