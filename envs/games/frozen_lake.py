"""FrozenLake: cross the ice to the goal without falling into a hole.

The lake is generated from the seed: random holes, random start and goal far apart, and
regenerated until a path exists (checked by BFS), so every instance is solvable.
Deterministic by default; `slippery=True` makes a move go the intended way with
probability 1/3 and to either side otherwise (as in Gymnasium), drawn from the task's own
seeded generator, so an episode is still reproducible from its seed and moves.
The solver walks the BFS distance field (deterministic) or follows the value-iteration
policy that maximises the chance of reaching the goal (slippery).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tirgym.envs.games.grid import (
    DIRECTIONS,
    DOWN,
    LEFT,
    RIGHT,
    UP,
    GridGameEnv,
    GridRenderer,
    bfs_distances,
    deltas,
    python_rng,
)

# difficulty -> (side, hole probability)
SIZES = {"easy": (4, 0.15), "medium": (6, 0.2), "hard": (8, 0.25)}
ICE, HOLE, GOAL, PLAYER = ".", "O", "G", "@"
SIDEWAYS = {UP: (LEFT, RIGHT), DOWN: (LEFT, RIGHT), LEFT: (UP, DOWN), RIGHT: (UP, DOWN)}


class FrozenLakeEnv(GridGameEnv):
    game_name = "FrozenLake"
    default_max_turns = 30
    description = "Walk across the frozen lake from your position (@) to the goal (G)."
    legend = ". ice, O hole, G goal, @ you. Rows and columns are numbered from 0; up is row - 1."
    move_help = "Moves: up, down, left, right."

    def __init__(self, difficulty: str = "easy", slippery: bool = False, **kwargs: Any):
        super().__init__(difficulty=difficulty, **kwargs)
        self.n, self.hole_p = SIZES[self.difficulty]
        self.slippery = bool(slippery)
        self.w = self.n + 2  # padded with an off-lake border
        self.delta = deltas(self.w)
        self.renderer = GridRenderer(self.n, self.n)
        self.cells = [self.w * (r + 1) + c + 1 for r in range(self.n) for c in range(self.n)]
        self.on_lake = [False] * (self.w * self.w)
        for p in self.cells:
            self.on_lake[p] = True
        self.holes: list[bool] = []
        self.dist: list[int] = []
        self.player = self.goal = 0
        self.policy: dict[int, str] | None = None
        self.boards: dict[int, str] = {}
        self.base: list[str] = []

    def rules(self) -> str:
        text = "Stepping into a hole ends the game (you lose). You win when you reach the goal. "
        text += "You cannot walk off the lake."
        if self.slippery:
            text += " The ice is slippery: a move goes the intended way only 1/3 of the time, else to either side."
        return text

    def new_game(self, rng: np.random.Generator) -> None:
        self.rng = rng = python_rng(rng)  # slippery moves draw from it too
        n, w = self.n, self.w
        while True:
            start, goal = rng.sample(self.cells, 2)
            (sr, sc), (gr, gc) = divmod(start, w), divmod(goal, w)
            if abs(sr - gr) + abs(sc - gc) < n - 1:
                continue
            holes = [False] * (w * w)
            for p in self.cells:
                if p != start and p != goal and rng.random() < self.hole_p:
                    holes[p] = True
            passable = [self.on_lake[p] and not holes[p] for p in range(w * w)]
            dist = bfs_distances(passable, w, goal)
            if dist[start] > 0:
                break
        self.holes, self.dist, self.player, self.goal = holes, dist, start, goal
        self.policy = None
        self.base = [HOLE if holes[p] else ICE for p in self.cells]
        self.base[self.cells.index(goal)] = GOAL
        self.boards: dict[int, str] = {}  # rendered board by player cell

    def apply_move(self, move: str) -> str | None:
        q = self.player + self.delta[move]
        if not self.on_lake[q]:
            return "that would leave the lake."
        if self.slippery:
            actual = self.rng.choice((move, *SIDEWAYS[move]))
            q = self.player + self.delta[actual]
            if not self.on_lake[q]:
                q = self.player  # slid against the shore
        self.player = q
        return None

    def is_solved(self) -> bool:
        return self.player == self.goal

    def is_lost(self) -> str | None:
        if self.holes[self.player]:
            r, c = divmod(self.player, self.w)
            return f"you fell into the hole at row {r - 1}, column {c - 1}."
        return None

    def potential(self) -> float:
        d = self.dist[self.player]
        return -float(d if d >= 0 else 2 * self.n * self.n)

    def _index(self, p: int) -> int:
        r, c = divmod(p, self.w)
        return (r - 1) * self.n + c - 1

    def board_text(self) -> str:
        text = self.boards.get(self.player)
        if text is None:
            cells = self.base.copy()
            cells[self._index(self.player)] = PLAYER
            text = self.boards[self.player] = self.renderer.render(cells)
        return text

    def status_text(self) -> str:
        r, c = divmod(self.player, self.w)
        gr, gc = divmod(self.goal, self.w)
        return (
            f"You are at row {r - 1}, column {c - 1}; the goal is at row {gr - 1}, column {gc - 1}."
        )

    def win_text(self) -> str:
        return "You reached the goal!"

    def state_key(self) -> str:
        return f"lake:{self.player}"

    def solver_moves(self, limit: int) -> list[str]:
        if self.slippery:
            return [self._slippery_policy()[self.player]]
        plan, p = [], self.player
        while p != self.goal and len(plan) < limit and self.dist[p] > 0:
            for move in DIRECTIONS:
                q = p + self.delta[move]
                if self.on_lake[q] and self.dist[q] == self.dist[p] - 1:
                    plan.append(move)
                    p = q
                    break
        return plan or [self._any_legal_move()]

    def _any_legal_move(self) -> str:
        return next(m for m in DIRECTIONS if self.on_lake[self.player + self.delta[m]])

    def _slippery_policy(self) -> dict[int, str]:
        """Value iteration for the probability of reaching the goal."""
        if self.policy is not None:
            return self.policy
        value = [0.0] * (self.w * self.w)
        value[self.goal] = 1.0
        live = [p for p in self.cells if not self.holes[p] and p != self.goal]

        def outcome(p: int, move: str) -> float:
            total = 0.0
            for d in (move, *SIDEWAYS[move]):
                q = p + self.delta[d]
                total += value[q if self.on_lake[q] else p]
            return total / 3

        legal = {p: [m for m in DIRECTIONS if self.on_lake[p + self.delta[m]]] for p in live}
        for _ in range(300):
            change = 0.0
            for p in live:
                best = max(outcome(p, m) for m in legal[p])
                change = max(change, best - value[p])
                value[p] = best
            if change < 1e-9:
                break
        self.policy = {p: max(legal[p], key=lambda m, p=p: outcome(p, m)) for p in live}
        return self.policy
