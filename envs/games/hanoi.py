"""Tower of Hanoi: move the tower to peg C, one disk at a time, never a larger on a smaller.

The solver is exact from any legal state (not only the start): to bring disks 1..k to peg
T, if disk k is already on T solve 1..k-1 to T, else move 1..k-1 to the spare peg, move
disk k, then move 1..k-1 onto it. That plan is the shortest, so `solve()` is optimal.
`start="random"` begins from a random legal position instead of the full tower on A.
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.choices import check_choice
from tirgym.envs.games.game import GameEnv

PEGS = "ABC"
DISKS = {"easy": 3, "medium": 5, "hard": 7}
_MOVE = re.compile(
    r"^(?:move\s+)?(?:peg\s*)?([abc1-3])\s*(?:->|→|to|-|\s)\s*(?:peg\s*)?([abc1-3])$"
)


def parse_peg(token: str) -> int:
    return int(token) - 1 if token.isdigit() else "abc".index(token.lower())


def plan(pos: list[int], target: int = 2, limit: int | None = None) -> list[tuple[int, int]]:
    """Shortest move list bringing every disk to `target`; pos[d] = peg of disk d (0 = smallest)."""
    pos = list(pos)
    moves: list[tuple[int, int]] = []

    def bring(k: int, tgt: int) -> bool:  # disks 0..k-1 onto tgt; False when the limit is hit
        for d in range(k - 1, -1, -1):
            if pos[d] != tgt:
                src = pos[d]
                spare = 3 - src - tgt
                if not bring(d, spare):
                    return False
                if limit is not None and len(moves) >= limit:
                    return False
                moves.append((src, tgt))
                pos[d] = tgt
                return bring(d, tgt)  # the smaller disks, now on the spare, go onto disk d
        return True

    bring(len(pos), target)
    return moves


def optimal_length(pos: list[int], target: int = 2) -> int:
    """Number of moves of the optimal plan (closed form, no enumeration)."""
    total, tgt = 0, target
    for d in range(len(pos) - 1, -1, -1):
        if pos[d] != tgt:
            total += 1 << d
            tgt = 3 - pos[d] - tgt
    return total


class HanoiEnv(GameEnv):
    pure_moves: ClassVar[bool] = True
    game_name = "Hanoi"
    default_max_turns = 80
    description = "Tower of Hanoi."
    legend: ClassVar[str] = "pegs are listed bottom to top; 1 is the smallest disk."
    default_moves_per_turn: ClassVar[int] = 4

    def __init__(
        self,
        difficulty: str = "medium",
        disks: int | None = None,
        start: str = "standard",
        **kwargs: Any,
    ):
        super().__init__(difficulty=difficulty, **kwargs)
        self.n = int(disks) if disks is not None else DISKS[self.difficulty]
        if not 1 <= self.n <= 12:
            raise ValueError(f"disks must be in [1, 12], got {self.n}")
        self.start = check_choice("start", start, ("standard", "random"))
        self.pegs: list[list[int]] = [[], [], []]  # disk sizes bottom -> top, 1 = smallest
        self.pos: list[int] = [0] * self.n

    def rules(self) -> str:
        return (
            f"Tower of Hanoi with {self.n} disks (1 = smallest, {self.n} = largest) on pegs A, B, C. "
            "Move all disks to peg C. Move one top disk at a time; never put a disk on a smaller one."
        )

    @property
    def move_help(self) -> str:
        return "Moves: 'A C' moves the top disk of peg A onto peg C (also 'A->C', 'move A to C', '1 3')."

    def new_game(self, rng: np.random.Generator) -> str:
        if self.start == "random":
            while True:
                self.pos = [int(p) for p in rng.integers(0, 3, size=self.n)]
                if optimal_length(self.pos) > 0:
                    break
        else:
            self.pos = [0] * self.n
        self.pegs = [[], [], []]
        for d in range(self.n - 1, -1, -1):
            self.pegs[self.pos[d]].append(d + 1)
        return "Move the whole tower onto peg C."

    def render_state(self) -> str:
        rows = [
            f"Peg {PEGS[i]}: {' '.join(map(str, p)) if p else '(empty)'}"
            for i, p in enumerate(self.pegs)
        ]
        return "\n".join(rows)

    def parse_move(self, text: str) -> tuple[int, int] | None:
        m = _MOVE.match(text)
        return (parse_peg(m.group(1)), parse_peg(m.group(2))) if m else None

    def move_name(self, move: tuple[int, int]) -> str:
        return f"{PEGS[move[0]]} {PEGS[move[1]]}"

    def random_move(self, rng: random.Random) -> tuple[int, int]:
        return rng.randrange(3), rng.randrange(3)

    def apply_move(self, move: tuple[int, int]) -> str | None:
        src, dst = move
        if src == dst:
            return "source and destination are the same peg."
        if not self.pegs[src]:
            return f"peg {PEGS[src]} is empty."
        disk = self.pegs[src][-1]
        if self.pegs[dst] and self.pegs[dst][-1] < disk:
            return f"disk {disk} cannot go on the smaller disk {self.pegs[dst][-1]}."
        self.pegs[dst].append(self.pegs[src].pop())
        self.pos[disk - 1] = dst
        return None

    def is_solved(self) -> bool:
        return len(self.pegs[2]) == self.n

    def potential(self) -> float:
        """Share of the optimal distance already covered."""
        return 1.0 - optimal_length(self.pos) / ((1 << self.n) - 1)

    def state_key(self) -> str:
        return "".join(PEGS[p] for p in self.pos)

    def solver_moves(self, limit: int) -> list[tuple[int, int]]:
        return plan(self.pos, 2, limit)
