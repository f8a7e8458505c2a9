"""What the grid games share besides the turn logic (that is `game.GameEnv`): the
direction vocabulary, flat-grid geometry (BFS, shortest paths), the labelled renderer and
`GridGameEnv`, a GameEnv whose moves are direction words and whose state renders as a
board plus a status line.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import ClassVar

import numpy as np

from tirgym.envs.games.game import GameEnv

UP, DOWN, LEFT, RIGHT = "up", "down", "left", "right"
DIRECTIONS = (UP, DOWN, LEFT, RIGHT)
DIRECTION_WORDS: dict[str, str] = {
    "up": UP, "u": UP, "north": UP, "n": UP, "^": UP,
    "down": DOWN, "d": DOWN, "south": DOWN, "s": DOWN, "v": DOWN,
    "left": LEFT, "l": LEFT, "west": LEFT, "w": LEFT, "<": LEFT,
    "right": RIGHT, "r": RIGHT, "east": RIGHT, "e": RIGHT, ">": RIGHT,
}  # fmt: skip


def python_rng(rng: np.random.Generator) -> random.Random:
    """A `random.Random` drawn from the task's generator (the grid games' own RNG)."""
    return random.Random(int(rng.integers(0, 2**62)))


def deltas(width: int) -> dict[str, int]:
    """Flat-index offsets of the four directions on a grid `width` cells wide."""
    return {UP: -width, DOWN: width, LEFT: -1, RIGHT: 1}


def bfs_distances(passable: Iterable[bool], width: int, start: int) -> list[int]:
    """Shortest move counts from `start` over a walled flat grid (-1 = unreachable).

    The grid must have an impassable border so that flat-index neighbours never wrap.
    """
    ok = list(passable)
    dist = [-1] * len(ok)
    dist[start] = 0
    queue = deque([start])
    steps = (-width, width, -1, 1)
    while queue:
        p = queue.popleft()
        d = dist[p] + 1
        for s in steps:
            q = p + s
            if ok[q] and dist[q] < 0:
                dist[q] = d
                queue.append(q)
    return dist


def path_moves(passable: list[bool], width: int, start: int, goal: int) -> list[str] | None:
    """Direction words of one shortest path (BFS), or None when the goal is unreachable."""
    if start == goal:
        return []
    parent = {start: -1}
    queue = deque([start])
    steps = (-width, width, -1, 1)
    while queue:
        p = queue.popleft()
        for s in steps:
            q = p + s
            if passable[q] and q not in parent:
                parent[q] = p
                if q == goal:
                    moves = []
                    while q != start:
                        prev = parent[q]
                        moves.append({-width: UP, width: DOWN, -1: LEFT, 1: RIGHT}[q - prev])
                        q = prev
                    return moves[::-1]
                queue.append(q)
    return None


class GridRenderer:
    """Renders an H x W grid with row and column numbers, one column per cell.

    `render(cells)` takes the H*W cell strings, each `cell_chars` long, and right-aligns
    them to the widest column number (or `cell_width`), so the numbers stay above their
    columns on grids wider than 10. The header is built once; rendering is a few joins.
    """

    def __init__(self, height: int, width: int, cell_width: int = 1, cell_chars: int = 1):
        self.height, self.width = height, width
        self.cell_width = max(cell_width, cell_chars, len(str(width - 1)))
        label = len(str(height - 1))
        self.prefixes = [f"{r:>{label}} " for r in range(height)]
        cols = " ".join(f"{c:>{self.cell_width}}" for c in range(width))
        self.header = " " * (label + 1) + cols
        pad = " " * (self.cell_width - cell_chars)
        self.prefixes = [prefix + pad for prefix in self.prefixes]
        self.sep = " " + pad

    def render(self, cells: str | list[str]) -> str:
        w, sep = self.width, self.sep
        lines = [self.header]
        for r, prefix in enumerate(self.prefixes):
            lines.append(prefix + sep.join(cells[r * w : r * w + w]))
        return "\n".join(lines)


class GridGameEnv(GameEnv):
    """A GameEnv on a grid: direction moves (one word each), board + status rendering."""

    pure_moves: ClassVar[bool] = True

    move_help: ClassVar[str] = "Moves: up, down, left, right."  # type: ignore[assignment]
    example_moves: ClassVar[str] = "up || left"
    done_verb: ClassVar[str] = "Moved"
    default_moves_per_turn: ClassVar[int] = 5
    max_move_words: ClassVar[int] = 1

    def parse_move(self, text: str) -> str | None:
        return DIRECTION_WORDS.get(text.strip(".!*"))

    def random_move(self, rng: random.Random) -> str:
        return rng.choice(DIRECTIONS)

    def board_text(self) -> str:
        raise NotImplementedError

    def status_text(self) -> str:
        return ""

    def render_state(self) -> str:
        status = self.status_text()
        return f"{self.board_text()}\n{status}" if status else self.board_text()
