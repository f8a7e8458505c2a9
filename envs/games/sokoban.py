"""Sokoban: push every box onto a target.

Levels are made by reverse play (as gym-sokoban does): carve a room by a random walk, put
the boxes on their targets, then walk the player backwards, pulling boxes; every pull is
the reverse of a legal push, so the level is solvable by construction. The candidate whose
boxes moved farthest is then solved by the push-level A* below within a node budget, and
only a level the solver solves is kept: `solve()` plays the same search.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from typing import Any

import numpy as np

from tirgym.envs.games.grid import (
    DIRECTIONS,
    GridGameEnv,
    GridRenderer,
    deltas,
    path_moves,
    python_rng,
)

# difficulty -> (side, boxes, reverse-play steps, minimum pushes of the solution)
SIZES = {"easy": (6, 1, 100, 3), "medium": (7, 2, 150, 5), "hard": (8, 3, 200, 8)}
WALL, FLOOR, TARGET, BOX, BOX_ON, PLAYER, PLAYER_ON = "#", "_", ".", "$", "*", "@", "+"
NODE_BUDGET = 20_000
MAX_ROOMS = 20
_MASKS = (
    ((0, 0),),
    ((0, 0), (0, 1)),
    ((0, 0), (1, 0)),
    ((0, 0), (0, 1), (1, 0), (1, 1)),
    ((0, 0), (0, 1), (0, 2)),
    ((0, 0), (1, 0), (2, 0)),
)


def carve_room(rng: random.Random, side: int) -> list[bool]:
    """Floor flags of a side x side room (walled border) carved by a random walk."""
    floor = [False] * (side * side)
    r, c = rng.randrange(1, side - 1), rng.randrange(1, side - 1)
    dr, dc = rng.choice(((-1, 0), (1, 0), (0, -1), (0, 1)))
    for _ in range(int(1.5 * 2 * side)):
        if rng.random() < 0.35:
            dr, dc = rng.choice(((-1, 0), (1, 0), (0, -1), (0, 1)))
        r = min(max(r + dr, 1), side - 2)
        c = min(max(c + dc, 1), side - 2)
        for mr, mc in rng.choice(_MASKS):
            rr, cc = r + mr, c + mc
            if 1 <= rr < side - 1 and 1 <= cc < side - 1:
                floor[rr * side + cc] = True
    return floor


def reach(floor: list[bool], width: int, start: int, boxes: set[int] | frozenset[int]) -> set[int]:
    """Cells the player can walk to without pushing."""
    seen = {start}
    stack = [start]
    steps = (-width, width, -1, 1)
    while stack:
        p = stack.pop()
        for s in steps:
            q = p + s
            if floor[q] and q not in seen and q not in boxes:
                seen.add(q)
                stack.append(q)
    return seen


class Solver:
    """Push-level A* over (boxes, player region) with dead-square pruning.

    The heuristic (sum of each box's push distance to its nearest target) never
    overestimates, so plans are push-optimal when the search finishes within its budget.
    """

    def __init__(self, floor: list[bool], width: int, targets: frozenset[int]):
        self.floor, self.width, self.targets = floor, width, targets
        self.steps = (-width, width, -1, 1)
        # push distance to the nearest target, by pulling boxes back from the targets
        dist = [-1] * len(floor)
        queue = deque(targets)
        for t in targets:
            dist[t] = 0
        while queue:
            b = queue.popleft()
            for s in self.steps:
                q = b + s
                if floor[q] and floor[q + s] and dist[q] < 0:
                    dist[q] = dist[b] + 1
                    queue.append(q)
        self.dist = dist

    def heuristic(self, boxes: frozenset[int]) -> int:
        return sum(self.dist[b] for b in boxes)

    def solve(
        self, player: int, boxes: frozenset[int], budget: int = NODE_BUDGET
    ) -> list[tuple[int, int]] | None:
        """Pushes (box cell, step) that solve the level, or None (unsolvable / over budget)."""
        if any(self.dist[b] < 0 for b in boxes):
            return None
        floor, dist, targets = self.floor, self.dist, self.targets
        region = reach(floor, self.width, player, boxes)
        key = (boxes, min(region))
        parent: dict[Any, Any] = {key: None}
        heap = [(self.heuristic(boxes), 0, 0, boxes, region, key)]
        counter = 0
        while heap and counter < budget:
            _, g, _, boxes, region, key = heapq.heappop(heap)
            if boxes == targets:
                pushes = []
                while parent[key] is not None:
                    key, push = parent[key]
                    pushes.append(push)
                return pushes[::-1]
            for b in boxes:
                for s in self.steps:
                    to = b + s
                    if b - s not in region or not floor[to] or to in boxes or dist[to] < 0:
                        continue
                    nb = boxes - {b} | {to}
                    nregion = reach(floor, self.width, b, nb)
                    nkey = (nb, min(nregion))
                    if nkey in parent:
                        continue
                    parent[nkey] = (key, (b, s))
                    counter += 1
                    h = sum(dist[x] for x in nb)
                    heapq.heappush(heap, (g + 1 + h, g + 1, counter, nb, nregion, nkey))
        return None

    def moves(self, player: int, boxes: frozenset[int], pushes: list[tuple[int, int]]) -> list[str]:
        """Expand pushes into player moves (walk to each box, then push)."""
        names = dict(zip(self.steps, DIRECTIONS, strict=True))
        out: list[str] = []
        current = set(boxes)
        for b, s in pushes:
            passable = [f and i not in current for i, f in enumerate(self.floor)]
            walk = path_moves(passable, self.width, player, b - s)
            assert walk is not None, "push plan out of reach"
            out += walk
            out.append(names[s])
            current.remove(b)
            current.add(b + s)
            player = b
        return out


def reverse_play(
    rng: random.Random, floor: list[bool], side: int, targets: frozenset[int], steps: int
) -> tuple[float, frozenset[int], int] | None:
    """Walk the player backwards from the solved state, pulling boxes; return the
    (score, boxes, player) of the state whose boxes travelled farthest from their targets."""
    moves = (-side, side, -1, 1)
    free = [p for p, f in enumerate(floor) if f and p not in targets]
    player = rng.choice(free)
    origin = {t: t for t in targets}  # box cell -> the target it came from
    best, best_score = None, 0.0
    random_ = rng.random
    for _ in range(steps):
        s = moves[int(random_() * 4)]
        if random_() < 0.5:  # next to a box: prefer stepping away from it, pulling it along
            k = int(random_() * 4)
            for i in range(4):
                d = moves[(k + i) & 3]
                if player - d in origin and floor[player + d] and player + d not in origin:
                    s = d
                    break
        q = player + s
        if not floor[q] or q in origin:
            continue
        behind = player - s
        if behind in origin and random_() < 0.8:
            origin[player] = origin.pop(behind)  # the reverse of a push from player to behind
        player = q
        if any(b in targets for b in origin):
            continue
        score = sum(
            abs(b // side - t // side) + abs(b % side - t % side) for b, t in origin.items()
        )
        if score > best_score:
            best, best_score = (frozenset(origin), player), float(score)
    return None if best is None else (best_score, best[0], best[1])


def generate_level(
    rng: random.Random, side: int, n_boxes: int, reverse_steps: int, min_pushes: int
) -> tuple[list[bool], frozenset[int], frozenset[int], int, list[str]]:
    """(floor, targets, boxes, player, solution moves) of a level the solver solved.

    Tries rooms until the solver needs at least `min_pushes` pushes; after MAX_ROOMS
    solved rooms it keeps the one needing the most pushes (bounded reset time)."""
    best, best_rank, solved = None, (-1, -1), 0
    while best is None or solved < MAX_ROOMS:
        floor = carve_room(rng, side)
        cells = [p for p, f in enumerate(floor) if f]
        if len(cells) < n_boxes + 4:
            continue
        targets = frozenset(rng.sample(cells, n_boxes))
        walks = [reverse_play(rng, floor, side, targets, reverse_steps) for _ in range(3)]
        found = [w for w in walks if w is not None]
        if not found:
            continue
        _, boxes, player = max(found, key=lambda w: w[0])
        solver = Solver(floor, side, targets)
        pushes = solver.solve(player, boxes)
        if pushes is None:
            continue
        solved += 1
        moves = solver.moves(player, boxes, pushes)
        if len(pushes) >= min_pushes:
            return floor, targets, boxes, player, moves
        if (len(pushes), len(moves)) > best_rank:
            best, best_rank = (floor, targets, boxes, player, moves), (len(pushes), len(moves))
    return best


class SokobanEnv(GridGameEnv):
    game_name = "Sokoban"
    default_max_turns = 40
    description = "Push every box ($) onto a target (.)."
    legend = (
        "# wall, _ floor, . target, $ box, * box on a target, @ you, + you on a target. "
        "Rows and columns are numbered from 0; up is row - 1."
    )
    move_help = "Moves: up, down, left, right (walking into a box pushes it one cell)."

    def __init__(self, difficulty: str = "easy", **kwargs: Any):
        super().__init__(difficulty=difficulty, **kwargs)
        self.side, self.n_boxes, self.reverse_steps, self.min_pushes = SIZES[self.difficulty]
        self.delta = deltas(self.side)
        self.renderer = GridRenderer(self.side, self.side)
        self.floor: list[bool] = []
        self.targets: frozenset[int] = frozenset()
        self.boxes: set[int] = set()
        self.player = 0
        self.on_target = 0
        self.solver: Solver | None = None
        self.plan: list[str] = []
        self.plan_keys: list[str] = []
        self.base: list[str] = []

    def rules(self) -> str:
        return (
            "You push a box by walking into it; the cell behind it must be free floor. You "
            "cannot pull boxes or push two at once. You win when every box is on a target."
        )

    def new_game(self, rng: np.random.Generator) -> None:
        floor, targets, boxes, player, moves = generate_level(
            python_rng(rng), self.side, self.n_boxes, self.reverse_steps, self.min_pushes
        )
        self.floor, self.targets, self.boxes, self.player = floor, targets, set(boxes), player
        self.on_target = len(self.boxes & targets)
        self.solver = Solver(floor, self.side, targets)
        self.base = [
            (TARGET if p in targets else FLOOR) if f else WALL for p, f in enumerate(floor)
        ]
        self._set_plan(moves)

    def apply_move(self, move: str) -> str | None:
        s = self.delta[move]
        q = self.player + s
        if not self.floor[q]:
            return "a wall is in the way."
        boxes = self.boxes
        if q in boxes:
            to = q + s
            if not self.floor[to] or to in boxes:
                return "the box cannot move there (a wall or another box is behind it)."
            boxes.remove(q)
            boxes.add(to)
            targets = self.targets
            self.on_target += (to in targets) - (q in targets)
        self.player = q
        return None

    def is_solved(self) -> bool:
        return self.on_target == self.n_boxes

    def potential(self) -> float:
        return float(self.on_target)

    def board_text(self) -> str:
        cells = self.base.copy()
        for b in self.boxes:
            cells[b] = BOX_ON if b in self.targets else BOX
        cells[self.player] = PLAYER_ON if self.player in self.targets else PLAYER
        return self.renderer.render(cells)

    def status_text(self) -> str:
        r, c = divmod(self.player, self.side)
        return f"You are at row {r}, column {c}. Boxes on targets: {self.on_target}/{self.n_boxes}."

    def win_text(self) -> str:
        return "Every box is on a target. You won!"

    def state_key(self) -> str:
        return f"sokoban:{self.player}:{','.join(map(str, sorted(self.boxes)))}"

    def _set_plan(self, moves: list[str]) -> None:
        """Remember the plan with the state key expected before each move."""
        saved = (self.player, set(self.boxes), self.on_target)
        keys = []
        for m in moves:
            keys.append(self.state_key())
            self.apply_move(m)
        self.player, self.boxes, self.on_target = saved
        self.plan, self.plan_keys = moves, keys

    def solver_moves(self, limit: int) -> list[str]:
        """Next moves of a push-optimal plan from the current state (A*, cached)."""
        key = self.state_key()
        try:
            i = self.plan_keys.index(key)
        except ValueError:
            assert self.solver is not None
            pushes = self.solver.solve(self.player, frozenset(self.boxes), budget=10 * NODE_BUDGET)
            if pushes is None:  # deadlocked: no plan exists, make any legal move
                legal = [m for m in DIRECTIONS if self.floor[self.player + self.delta[m]]]
                return legal[:1] or [DIRECTIONS[0]]
            self._set_plan(self.solver.moves(self.player, frozenset(self.boxes), pushes))
            i = 0
        return self.plan[i : i + limit]
