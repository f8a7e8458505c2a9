"""GameEnv: the turn logic every game shares, in one place.

A game supplies its rules through a few hooks (`new_game`, `parse_move`, `apply_move`,
`is_solved`, `is_lost`, `render_state`, `solver_moves`, ...); this class turns one
`<answer>` into a list of moves, applies them in order and keeps the rewards.

Parsing (identical for every game): the answer is lowercased; commas inside parentheses
stay with their coordinates (`flag(0,3)`); `||`, `|`, `;`, `,`, new lines and tabs
separate moves; brackets and quotes are ignored. Inside a piece, words are read greedily:
the longest run of at most `max_move_words` words that `parse_move` accepts is one move,
so `up left`, `A C A B` and `reveal 1 2 flag 0 3` need no separator.

A turn that does not parse (an unreadable piece, no move, more than `moves_per_turn`
moves) changes nothing at all. Otherwise moves run in order and the first illegal one
stops the turn: the moves before it stand, it and the rest are not executed.

Turn reward components, each apart from the outcome:
- `invalid`: -invalid_penalty for a turn that did not parse or hit an illegal move;
- `step_cost`: -step_cost for every turn (a turn is one `step`, invalid ones included);
- `progress`: progress_reward * (potential after - potential before), a potential-based
  shaping that telescopes over an episode, so undoing progress costs what it earned and
  an illegal move (state unchanged) never earns any.

Info keys of every turn: `moves_executed` (int) and `invalid` (None, "parse", "too_many"
or "illegal"); a lost game adds `stop_reason: "lost"`.
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.base import Outcome, TextEnv
from tirgym.envs.choices import Difficulty, check_difficulty
from tirgym.errors import TirgymError

_PARENS = re.compile(r"\(([^()]*)\)")
_SEPARATORS = re.compile(r"\|\|?|[\n\t;,]")
_NOISE = str.maketrans({c: " " for c in "()[]{}'\"`"})
_PLAIN = re.compile(r"[^()\[\]{}'\"`|;,\n\t]*")
"""An answer with no separator and no noise character: one piece, read without splitting."""


def split_pieces(text: str) -> list[list[str]]:
    """The words of each separated piece of an answer (lowercased, noise removed)."""
    text = text.lower()
    if "(" in text:
        text = _PARENS.sub(lambda m: " " + m.group(1).replace(",", " ") + " ", text)
    pieces = []
    for piece in _SEPARATORS.split(text):
        words = piece.translate(_NOISE).split()
        if words:
            pieces.append(words)
    return pieces


class GameEnv(TextEnv):
    """A TextEnv for move-based games; subclasses implement the game hooks below."""

    game_name: ClassVar[str] = "Game"
    legend: ClassVar[str] = ""
    example_moves: ClassVar[str] = ""
    done_verb: ClassVar[str] = "Played"
    default_moves_per_turn: ClassVar[int] = 1
    max_moves_per_turn: ClassVar[int | None] = None
    """Hard cap (Wordle: 1, each guess needs its feedback)."""
    max_move_words: ClassVar[int] = 6
    """The most words one move can take (directions: 1, so `up left` is two moves)."""
    pure_moves: ClassVar[bool] = False
    """`parse_move` and `move_name` depend on the text and move alone, never on the game
    state: then an answer read once is not read again (models repeat the same moves)."""

    def __init__(
        self,
        difficulty: Difficulty = "medium",
        moves_per_turn: int | None = None,
        step_cost: float = 0.0,
        progress_reward: float = 0.0,
        invalid_penalty: float = 0.1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.difficulty = check_difficulty(difficulty, self.game_name)
        mpt = self.default_moves_per_turn if moves_per_turn is None else int(moves_per_turn)
        cap = self.max_moves_per_turn
        if mpt < 1 or (cap is not None and mpt > cap):
            raise TirgymError(
                f"{self.game_name}: moves_per_turn must be in [1, {cap or 'inf'}]; got {mpt}."
            )
        self.moves_per_turn = mpt
        self.step_cost = float(step_cost)
        self.progress_reward = float(progress_reward)
        self.invalid_penalty = float(invalid_penalty)
        self.moves_made = 0
        self._readings: dict[str, tuple[list[Any], list[str]]] = {}

    # ---- game hooks -------------------------------------------------------------------
    @property
    def move_help(self) -> str:
        """The move vocabulary, shown in the system prompt and in parse errors."""
        raise NotImplementedError

    def rules(self) -> str:
        return ""

    def new_game(self, rng: np.random.Generator) -> str | None:
        """Build a solvable instance from `rng`; optionally return the task's opening line."""
        raise NotImplementedError

    def render_state(self) -> str:
        raise NotImplementedError

    def parse_move(self, text: str) -> Any | None:
        """One move's words (lowercased, space-joined) -> a move, or None if unreadable."""
        raise NotImplementedError

    def apply_move(self, move: Any) -> str | None:
        """Apply a parsed move and return None, or return why it is illegal (state untouched)."""
        raise NotImplementedError

    def move_name(self, move: Any) -> str:
        """A parsed move as text that `parse_move` reads back."""
        return str(move)

    def is_solved(self) -> bool:
        raise NotImplementedError

    def is_lost(self) -> str | None:
        """Why the game can no longer be won (a sentence), else None."""
        return None

    def win_text(self) -> str:
        return f"Solved in {self.moves_made} moves!"

    def potential(self) -> float:
        """Progress measure for the optional shaping (higher is better)."""
        return 1.0 if self.is_solved() else 0.0

    def solver_moves(self, limit: int) -> list[Any]:
        """The solver's next (at most `limit`) moves from the current state."""
        raise NotImplementedError

    def random_move(self, rng: random.Random) -> Any:
        """A random move of the vocabulary (legal or not), for baselines and tests."""
        raise NotImplementedError

    # ---- parsing ------------------------------------------------------------------------
    def parse_moves(self, text: str) -> tuple[list[Any], str | None]:
        """All moves of an answer, or ([], why it cannot be read)."""
        moves = []
        span, parse = self.max_move_words, self.parse_move
        if _PLAIN.fullmatch(text):  # the common one-move answer: the greedy read's first try
            words = text.lower().split()
            if 0 < len(words) <= span:
                move = parse(" ".join(words) if len(words) > 1 else words[0])
                if move is not None:
                    return [move], None
        for words in split_pieces(text):
            i, n = 0, len(words)
            while i < n:
                for k in range(min(n, i + span), i, -1):
                    move = parse(words[i] if k == i + 1 else " ".join(words[i:k]))
                    if move is not None:
                        break
                else:
                    bad = " ".join(words[i : i + 3])[:30]
                    return [], f"Cannot read {bad!r} as a move. {self.move_help}"
                moves.append(move)
                i = k
        if not moves:
            return [], f"No move found. {self.move_help}"
        return moves, None

    def play_move(self, text: str) -> str | None:
        """Parse and apply one move given as text: None, or why it is unreadable or illegal."""
        move = self.parse_move(" ".join(w for p in split_pieces(text) for w in p))
        if move is None:
            return f"cannot read {text[:30]!r} as a move. {self.move_help}"
        return self.apply_move(move)

    # ---- TextEnv hooks ----------------------------------------------------------------
    def system_prompt(self) -> str:
        """Built once per turn limit and moves per turn: a game's rules and move help read
        only its constructor arguments, and the prompt costs as much as a small reset."""
        key = (self.max_turns, self.moves_per_turn)
        cached = self.__dict__.get("_prompt")
        if cached is None or cached[0] != key:
            cached = self._prompt = (key, super().system_prompt())
        return cached[1]

    def instructions(self) -> str:
        if self.moves_per_turn > 1:
            example = f", e.g. <answer>{self.example_moves}</answer>" if self.example_moves else ""
            per = (
                f"Give up to {self.moves_per_turn} moves per turn, separated by '||' (or new lines, "
                f"commas or semicolons){example}. Moves run in order; the first illegal move is "
                "refused and the moves after it are skipped."
            )
        else:
            first = self.example_moves.split(" || ")[0]
            per = "Give exactly one move per turn" + (
                f", e.g. <answer>{first}</answer>." if first else "."
            )
        legend = f"\nLegend: {self.legend}" if self.legend else ""
        return (
            f"{self.description}\n{self.rules()}\n{self.move_help}\n{per}{legend}\n"
            f"You have {self.max_turns} turns. Invalid and illegal moves change nothing."
        )

    def generate_task(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        self.moves_made = 0
        head = self.new_game(rng) or f"{self.game_name} ({self.difficulty})."
        legend = f"Legend: {self.legend}\n" if self.legend else ""
        return f"{head}\n{self.render_state()}\n{legend}Your move."

    def read_answer(self, answer: str) -> tuple[list[Any], list[str] | None, str | None]:
        """`parse_moves` plus the moves' names (None unless `pure_moves`: then the names are
        taken after the moves ran), memoised for games with `pure_moves`."""
        hit = self._readings.get(answer)
        if hit is not None:
            return hit[0], hit[1], None
        moves, error = self.parse_moves(answer)
        if error is not None or not self.pure_moves:
            return moves, None, error
        names = [self.move_name(m) for m in moves]
        if len(self._readings) >= 4096:
            self._readings.clear()
        self._readings[answer] = (moves, names)
        return moves, names, None

    def on_answer(self, answer: str) -> Outcome:
        rewards: dict[str, float] = {"step_cost": -self.step_cost} if self.step_cost else {}
        moves, names, error = self.read_answer(answer)
        kind = "parse"
        if error is None and len(moves) > self.moves_per_turn:
            error = f"Too many moves ({len(moves)}): at most {self.moves_per_turn} per turn."
            kind = "too_many"
        if error is not None:
            if self.invalid_penalty:
                rewards["invalid"] = -self.invalid_penalty
            return Outcome(
                reply=f"Invalid: {error} Nothing was executed.\n{self.render_state()}",
                rewards=rewards,
                info={"moves_executed": 0, "invalid": kind},
            )
        before = self.potential() if self.progress_reward else 0.0
        done = 0
        illegal = lost = None
        solved = False
        apply, is_solved, is_lost = self.apply_move, self.is_solved, self.is_lost
        for move in moves:
            why = apply(move)
            if why is not None:
                illegal = why
                break
            done += 1
            solved = is_solved()
            lost = None if solved else is_lost()
            if solved or lost:
                break
        self.moves_made += done
        if names is None:
            names = [self.move_name(m) for m in moves[: done + 1]]
        if done == 1 and len(moves) == 1 and not solved and not lost:  # the common turn
            return Outcome(
                reply=f"{self.done_verb} {names[0]}.\n{self.render_state()}",
                rewards=self._progress(rewards, before, done),
                info={"moves_executed": 1, "invalid": None},
            )
        parts = []
        if done:
            parts.append(f"{self.done_verb} {', '.join(names[:done])}.")
        if illegal is not None:
            parts.append(
                f"Illegal move {names[done][:40]!r}: {illegal}"
                + (" The moves after it were skipped." if done + 1 < len(moves) else "")
            )
            if self.invalid_penalty:
                rewards["invalid"] = -self.invalid_penalty
        elif done < len(moves):
            parts.append("The game ended; the remaining moves were skipped.")
        info: dict[str, Any] = {
            "moves_executed": done,
            "invalid": "illegal" if illegal is not None else None,
        }
        if solved:
            parts.append(self.win_text())
        elif lost:
            parts.append(f"Game over: {lost} You lost.")
            info["stop_reason"] = "lost"
        return Outcome(
            reply=" ".join(parts) + "\n" + self.render_state(),
            rewards=self._progress(rewards, before, done),
            terminated=solved or bool(lost),
            success=solved,
            info=info,
        )

    def _progress(self, rewards: dict[str, float], before: float, done: int) -> dict[str, float]:
        if self.progress_reward and done:
            rewards["progress"] = self.progress_reward * (self.potential() - before)
        return rewards

    # ---- policies -------------------------------------------------------------------------
    def plan_turn(self, plan: list[Any]) -> str:
        """Format moves as one turn, within `moves_per_turn`."""
        moves = plan[: self.moves_per_turn]
        return "<answer>" + " || ".join(self.move_name(m) for m in moves) + "</answer>"

    def solve(self) -> str:
        """The solver's next turn: up to `moves_per_turn` moves joined with ' || '."""
        return self.plan_turn(self.solver_moves(self.moves_per_turn))

    def random_turn(self, rng: random.Random, n_moves: int | None = None) -> str:
        """A turn of `n_moves` random moves (default: a random count up to moves_per_turn)."""
        n = n_moves or rng.randint(1, self.moves_per_turn)
        return self.plan_turn([self.random_move(rng) for _ in range(n)])
