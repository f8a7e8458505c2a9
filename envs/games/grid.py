"""Shared machinery of the grid games: move parsing, turn bookkeeping, rewards, rendering.

A `GridGameEnv` turns one `<answer>` into a list of moves (`up || left`, `up, left` or
`up left`), applies them in order and stops at the first illegal one: moves before it
stand, the illegal move and everything after it are not executed, the state is exactly
the one after the legal prefix, and the turn gets the `invalid` penalty component. A turn
that does not parse (unknown word, too many moves) changes nothing at all.

Shaping is potential based: `progress` is `progress_reward * (potential after - before)`,
so an illegal move (state unchanged) can never earn progress, and undoing progress costs
what it earned. Every component is reported apart from the outcome.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.base import Outcome, TextEnv
from tirgym.errors import TirgymError

DIFFICULTIES = ("easy", "medium", "hard")

UP, DOWN, LEFT, RIGHT = "up", "down", "left", "right"
DIRECTIONS = (UP, DOWN, LEFT, RIGHT)
DIRECTION_WORDS: dict[str, str] = {
    "up": UP, "u": UP, "north": UP, "n": UP, "^": UP,
    "down": DOWN, "d": DOWN, "south": DOWN, "s": DOWN, "v": DOWN,
    "left": LEFT, "l": LEFT, "west": LEFT, "w": LEFT, "<": LEFT,
    "right": RIGHT, "r": RIGHT, "east": RIGHT, "e": RIGHT, ">": RIGHT,
}  # fmt: skip
_STRIP = "[](){}'\"`.!*"
_SEPARATORS = str.maketrans({",": " ", ";": " ", "|": " ", "\n": " ", "\t": " "})


def check_difficulty(difficulty: str, game: str) -> str:
    if difficulty not in DIFFICULTIES:
        raise TirgymError(
            f"{game}: unknown difficulty {difficulty!r}; use one of {', '.join(DIFFICULTIES)}."
        )
    return difficulty


def split_moves(text: str) -> list[str]:
    """`up || left`, `up, left`, `up left`, `[up; left]` -> ['up', 'left'] (lowercased)."""
    out = []
    for word in text.lower().translate(_SEPARATORS).split():
        word = word.strip(_STRIP)
        if word:
            out.append(word)
    return out


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


class GridGameEnv(TextEnv):
    """A TextEnv for move-based games; subclasses implement the game hooks below."""

    game_name: ClassVar[str] = "game"
    move_help: ClassVar[str] = "Moves: up, down, left, right."
    legend: ClassVar[str] = ""
    example_moves: ClassVar[str] = "up || left"
    done_verb: ClassVar[str] = "Moved"

    def __init__(
        self,
        difficulty: str = "easy",
        moves_per_turn: int = 5,
        step_cost: float = 0.0,
        progress_reward: float = 0.0,
        invalid_penalty: float = 0.1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.difficulty = check_difficulty(difficulty, self.game_name)
        if moves_per_turn < 1:
            raise TirgymError(
                f"{self.game_name}: moves_per_turn must be >= 1, got {moves_per_turn}."
            )
        self.moves_per_turn = int(moves_per_turn)
        self.step_cost = float(step_cost)
        self.progress_reward = float(progress_reward)
        self.invalid_penalty = float(invalid_penalty)
        self.rng = random.Random(0)
        self.over = False
        self.won = False
        self.moves_made = 0

    # ---- game hooks -------------------------------------------------------------------
    def new_game(self, rng: random.Random) -> None:
        """Generate a solvable instance from `rng` and set the state."""
        raise NotImplementedError

    def parse_move(self, word: str) -> Any | None:
        """One move word -> a move, or None if it is not in the vocabulary."""
        return DIRECTION_WORDS.get(word)

    def parse_moves(self, text: str) -> tuple[list[Any], str | None]:
        moves = []
        for word in split_moves(text):
            move = self.parse_move(word)
            if move is None:
                return [], f"Unknown move {word[:30]!r}. {self.move_help}"
            moves.append(move)
        if not moves:
            return [], f"No move found. {self.move_help}"
        return moves, None

    def apply_move(self, move: Any) -> str | None:
        """Apply a legal move and return None, or return why it is illegal (state unchanged).

        Sets `self.over` / `self.won` when the game ends."""
        raise NotImplementedError

    def move_name(self, move: Any) -> str:
        return str(move)

    def potential(self) -> float:
        """Progress measure for shaping (higher is better)."""
        return 0.0

    def board_text(self) -> str:
        raise NotImplementedError

    def status_text(self) -> str:
        return ""

    def end_text(self) -> str:
        return "You won!" if self.won else "Game over."

    # ---- TextEnv hooks ----------------------------------------------------------------
    def instructions(self) -> str:
        per = (
            f"Give up to {self.moves_per_turn} moves per turn, separated by '||' (or commas or "
            f"spaces), e.g. <answer>{self.example_moves}</answer>. Moves run in order; the "
            "first illegal move is refused and the moves after it are skipped."
            if self.moves_per_turn > 1
            else f"Give one move per turn, e.g. <answer>{self.example_moves.split(' || ')[0]}</answer>."
        )
        return (
            f"{self.description}\n{self.rules()}\n{self.move_help}\n{per}\n"
            f"Legend: {self.legend}\nYou have {self.max_turns} turns."
        )

    def rules(self) -> str:
        return ""

    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        self.rng = random.Random(int(rng.integers(0, 2**62)))
        self.over = False
        self.won = False
        self.moves_made = 0
        self.new_game(self.rng)
        status = self.status_text()
        return (
            f"{self.game_name} ({self.difficulty}).\n{self.board_text()}\n"
            + (f"{status}\n" if status else "")
            + f"Legend: {self.legend}\nYour move."
        )

    def on_answer(self, answer: str) -> Outcome:
        moves, error = self.parse_moves(answer)
        if error is None and len(moves) > self.moves_per_turn:
            error = f"Too many moves ({len(moves)}): at most {self.moves_per_turn} per turn."
        rewards: dict[str, float] = {}
        if error is not None:
            if self.invalid_penalty:
                rewards["invalid"] = -self.invalid_penalty
            return Outcome(
                reply=f"Invalid: {error} Nothing was executed.\n{self.board_text()}"
                + (f"\n{status}" if (status := self.status_text()) else ""),
                rewards=rewards,
                info={"moves_executed": 0, "invalid": "parse"},
            )
        before = self.potential() if self.progress_reward else 0.0
        done = 0
        illegal = None
        for move in moves:
            why = self.apply_move(move)
            if why is not None:
                illegal = why
                break
            done += 1
            if self.over:
                break
        self.moves_made += done
        parts = []
        if done:
            parts.append(
                f"{self.done_verb} " + ", ".join(self.move_name(m) for m in moves[:done]) + "."
            )
        if illegal is not None:
            parts.append(
                f"Illegal move {self.move_name(moves[done])!r}: {illegal}"
                + (" The moves after it were skipped." if done + 1 < len(moves) else "")
            )
            if self.invalid_penalty:
                rewards["invalid"] = -self.invalid_penalty
        elif self.over and done < len(moves):
            parts.append("The game ended; the remaining moves were skipped.")
        if self.step_cost and done:
            rewards["step_cost"] = -self.step_cost * done
        if self.progress_reward:
            rewards["progress"] = self.progress_reward * (self.potential() - before)
        info = {"moves_executed": done, "invalid": "illegal" if illegal is not None else None}
        if self.over:
            parts.append(self.end_text())
            return Outcome(
                reply=" ".join(parts) + "\n" + self.board_text(),
                rewards=rewards,
                terminated=True,
                success=self.won,
                info=info,
            )
        status = self.status_text()
        reply = " ".join(parts) + "\n" + self.board_text() + (f"\n{status}" if status else "")
        return Outcome(reply=reply, rewards=rewards, info=info)

    def random_move(self, rng: random.Random) -> Any:
        """A uniformly random move of the vocabulary (legal or not), for baselines."""
        return rng.choice(DIRECTIONS)

    def random_turn(self, rng: random.Random, n_moves: int | None = None) -> str:
        """A turn of `n_moves` random moves (default: a random count up to moves_per_turn)."""
        n = n_moves or rng.randint(1, self.moves_per_turn)
        return self.plan_turn([self.random_move(rng) for _ in range(n)])

    def plan_turn(self, plan: list[Any]) -> str:
        """Format solver moves as one turn, within `moves_per_turn`."""
        moves = plan[: self.moves_per_turn]
        return "<answer>" + " || ".join(self.move_name(m) for m in moves) + "</answer>"
