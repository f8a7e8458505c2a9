"""PuzzleEnv: the shared turn logic of the move-based puzzles (Sudoku, Hanoi, Lights Out, ...).

A game supplies its state and rules through a few hooks; this class turns an
`<answer>` into a list of moves (`a || b`, one per line, or `;`/`,` separated), applies
them in order and stops at the first invalid one. The invalid move leaves the state as it
was, earns the `invalid` penalty and never counts as progress; the moves before it stand.

Turn reward components (all off by default, so the outcome is the only signal):
- `invalid`: -invalid_penalty for a turn with an invalid move (or too many moves);
- `step_cost`: -step_cost every turn;
- `progress`: progress_reward * (potential after - potential before), a potential-based
  shaping whose sum over an episode telescopes, so it cannot be farmed by undoing moves.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.base import Outcome, TextEnv
from tirgym.errors import TirgymError

DIFFICULTIES = ("easy", "medium", "hard")
_SPLIT = re.compile(r"\|\||[\n;,]")


def split_moves(answer: str) -> list[str]:
    """Moves of one answer: separated by `||`, new lines, `;` or `,`; blanks dropped."""
    return [m.strip() for m in _SPLIT.split(answer) if m.strip()]


def check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    if value not in allowed:
        raise TirgymError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}.")
    return value


class PuzzleEnv(TextEnv):
    default_moves_per_turn: ClassVar[int] = 1
    max_moves_per_turn: ClassVar[int | None] = None
    """Hard cap (Wordle: 1, each guess needs its feedback)."""

    def __init__(
        self,
        difficulty: str = "medium",
        moves_per_turn: int | None = None,
        invalid_penalty: float = 0.0,
        step_cost: float = 0.0,
        progress_reward: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.difficulty = check_choice("difficulty", difficulty, DIFFICULTIES)
        mpt = self.default_moves_per_turn if moves_per_turn is None else int(moves_per_turn)
        cap = self.max_moves_per_turn
        if mpt < 1 or (cap is not None and mpt > cap):
            raise TirgymError(f"moves_per_turn must be in [1, {cap or 'inf'}]; got {mpt}.")
        self.moves_per_turn = mpt
        self.invalid_penalty = float(invalid_penalty)
        self.step_cost = float(step_cost)
        self.progress_reward = float(progress_reward)
        self.moves_made = 0

    # ---- game hooks -------------------------------------------------------------------
    def new_game(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        """Build the instance; return the task's opening line (the board is appended)."""
        raise NotImplementedError

    def render_state(self) -> str:
        raise NotImplementedError

    def apply_move(self, move: str) -> str | None:
        """Apply one move; return None on success, else why it is invalid (state untouched)."""
        raise NotImplementedError

    def is_solved(self) -> bool:
        raise NotImplementedError

    def is_lost(self) -> str | None:
        """Why the game can no longer be won (a dead end), else None."""
        return None

    def potential(self) -> float:
        """Progress in [0, 1] for the optional shaping; 1 when solved."""
        return 1.0 if self.is_solved() else 0.0

    def solver_moves(self, limit: int) -> list[str]:
        """The solver's next `limit` moves from the current state."""
        raise NotImplementedError

    def rules(self) -> str:
        raise NotImplementedError

    def move_help(self) -> str:
        raise NotImplementedError

    # ---- TextEnv hooks ----------------------------------------------------------------
    def instructions(self) -> str:
        if self.moves_per_turn == 1:
            per_turn = "Give exactly one move per turn inside <answer>...</answer>."
        else:
            per_turn = (
                f"Give 1 to {self.moves_per_turn} moves per turn inside <answer>...</answer>, "
                "separated by ' || ' or new lines; they are applied in order and an invalid move "
                "stops the turn (earlier moves stand, later ones are skipped)."
            )
        return (
            f"{self.rules()}\n\nMoves: {self.move_help()}\n{per_turn} "
            f"You have {self.max_turns} turns. Invalid moves change nothing."
        )

    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        self.moves_made = 0
        head = self.new_game(rng, options)
        return f"{head}\n\n{self.render_state()}"

    def on_answer(self, answer: str) -> Outcome:
        moves = split_moves(answer)
        rewards: dict[str, float] = {}
        if self.step_cost:
            rewards["step_cost"] = -self.step_cost
        if len(moves) > self.moves_per_turn:
            if self.invalid_penalty:
                rewards["invalid"] = -self.invalid_penalty
            reply = (
                f"Too many moves: {len(moves)} given, at most {self.moves_per_turn} per turn. "
                f"Nothing was applied.\n\n{self.render_state()}"
            )
            return Outcome(reply=reply, rewards=rewards, info={"invalid_move": True})
        before = self.potential() if self.progress_reward else 0.0
        lines: list[str] = []
        invalid = False
        applied = 0
        for i, move in enumerate(moves):
            error = self.apply_move(move)
            if error is not None:
                invalid = True
                skipped = len(moves) - i - 1
                tail = f" {skipped} later move(s) skipped." if skipped else ""
                lines.append(f"Invalid move {move[:40]!r}: {error}{tail}")
                break
            applied += 1
            self.moves_made += 1
            if self.is_solved() or self.is_lost():
                break
        if invalid and self.invalid_penalty:
            rewards["invalid"] = -self.invalid_penalty
        if self.progress_reward and applied:
            rewards["progress"] = self.progress_reward * (self.potential() - before)
        if applied:
            lines.insert(0, f"Applied {applied} move(s): {' || '.join(moves[:applied])}.")
        info = {"invalid_move": invalid, "moves_applied": applied}
        if self.is_solved():
            lines.append(f"Solved in {self.moves_made} moves!")
            return Outcome(
                reply="\n".join(lines) + f"\n\n{self.render_state()}",
                rewards=rewards,
                terminated=True,
                success=True,
                info=info,
            )
        lost = self.is_lost()
        if lost:
            lines.append(f"Game over: {lost}")
            return Outcome(
                reply="\n".join(lines) + f"\n\n{self.render_state()}",
                rewards=rewards,
                terminated=True,
                info={**info, "stop_reason": "lost"},
            )
        return Outcome(
            reply="\n".join(lines) + f"\n\n{self.render_state()}", rewards=rewards, info=info
        )

    def solve(self) -> str:
        """The solver's next turn: up to `moves_per_turn` moves joined with ' || '."""
        moves = self.solver_moves(self.moves_per_turn)
        return f"<answer>{' || '.join(moves)}</answer>"
