"""Maze: walk from the start to the exit.

Mazes are carved by a seeded depth-first backtracker (a perfect maze: one path between any
two cells); medium and hard knock out a few extra walls so that loops exist. The exit is
the cell farthest from the start, so every maze is solvable and the path is long.
The solver follows the BFS distance field from the exit.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from tirgym.envs.games.grid import (
    DIRECTIONS,
    GridGameEnv,
    GridRenderer,
    bfs_distances,
    deltas,
    python_rng,
)

# difficulty -> (cells per side, share of extra walls removed)
SIZES = {"easy": (4, 0.0), "medium": (6, 0.05), "hard": (8, 0.08)}
WALL, FLOOR, PLAYER, EXIT = "#", ".", "@", "E"


def carve_maze(rng: random.Random, cells: int, loops: float) -> tuple[list[bool], int]:
    """Return (passable flags of the (2n+1)^2 grid, width)."""
    size = 2 * cells + 1
    open_ = [False] * (size * size)
    seen = [[False] * cells for _ in range(cells)]
    r0, c0 = rng.randrange(cells), rng.randrange(cells)
    stack = [(r0, c0)]
    seen[r0][c0] = True
    open_[(2 * r0 + 1) * size + 2 * c0 + 1] = True
    while stack:
        r, c = stack[-1]
        nbrs = [
            (r + dr, c + dc)
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= r + dr < cells and 0 <= c + dc < cells and not seen[r + dr][c + dc]
        ]
        if not nbrs:
            stack.pop()
            continue
        nr, nc = nbrs[rng.randrange(len(nbrs))]
        seen[nr][nc] = True
        open_[(2 * nr + 1) * size + 2 * nc + 1] = True
        open_[(r + nr + 1) * size + c + nc + 1] = True  # the wall between
        stack.append((nr, nc))
    if loops:
        inner = [
            r * size + c
            for r in range(1, size - 1)
            for c in range(1, size - 1)
            if not open_[r * size + c] and (r % 2) != (c % 2)
        ]
        for p in rng.sample(inner, int(len(inner) * loops)):
            open_[p] = True
    return open_, size


class MazeEnv(GridGameEnv):
    game_name = "Maze"
    default_max_turns = 40
    description = "Walk through the maze from your position (@) to the exit (E)."
    legend = "# wall, . floor, @ you, E exit. Rows and columns are numbered from 0; up is row - 1."
    move_help = "Moves: up, down, left, right."

    def __init__(self, difficulty: str = "easy", **kwargs: Any):
        super().__init__(difficulty=difficulty, **kwargs)
        self.cells, self.loops = SIZES[self.difficulty]
        self.size = 2 * self.cells + 1
        self.delta = deltas(self.size)
        self.renderer = GridRenderer(self.size, self.size)
        self.open: list[bool] = []
        self.base: list[str] = []
        self.dist: list[int] = []
        self.player = self.exit = 0
        self.boards: dict[int, str] = {}

    def rules(self) -> str:
        return "Walls cannot be crossed. You win when you step onto the exit."

    def new_game(self, rng: np.random.Generator) -> None:
        rng = python_rng(rng)
        self.open, size = carve_maze(rng, self.cells, self.loops)
        cells = [p for p, ok in enumerate(self.open) if ok and (p // size) % 2 and (p % size) % 2]
        self.player = cells[rng.randrange(len(cells))]
        from_start = bfs_distances(self.open, size, self.player)
        far = max(from_start)
        self.exit = min(p for p in cells if from_start[p] == far)
        self.dist = bfs_distances(self.open, size, self.exit)
        self.base = [FLOOR if ok else WALL for ok in self.open]
        self.base[self.exit] = EXIT
        self.boards: dict[int, str] = {}  # rendered board by player cell

    def apply_move(self, move: str) -> str | None:
        q = self.player + self.delta[move]
        if not self.open[q]:
            return "a wall is in the way."
        self.player = q
        return None

    def is_solved(self) -> bool:
        return self.player == self.exit

    def potential(self) -> float:
        return -float(self.dist[self.player])

    def board_text(self) -> str:
        text = self.boards.get(self.player)
        if text is None:
            cells = self.base.copy()
            cells[self.player] = PLAYER
            text = self.boards[self.player] = self.renderer.render(cells)
        return text

    def status_text(self) -> str:
        r, c = divmod(self.player, self.size)
        er, ec = divmod(self.exit, self.size)
        return f"You are at row {r}, column {c}; the exit is at row {er}, column {ec}."

    def win_text(self) -> str:
        return "You reached the exit!"

    def state_key(self) -> str:
        return f"maze:{self.player}"

    def solver_moves(self, limit: int) -> list[str]:
        """Shortest path: step to a neighbour one closer to the exit, repeatedly."""
        plan, p = [], self.player
        while p != self.exit and len(plan) < limit:
            for move in DIRECTIONS:
                q = p + self.delta[move]
                if self.open[q] and self.dist[q] == self.dist[p] - 1:
                    plan.append(move)
                    p = q
                    break
        return plan
