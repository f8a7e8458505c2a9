"""Wordle: guess the hidden five-letter word; each guess is scored letter by letter.

The word list ships with the package (data/wordle_words.txt, ~1,800 common words) and is
both the set of allowed guesses and the set of answers. Levels: easy = 8 guesses, medium =
6, hard = 6 in hard mode (revealed greens must stay, revealed letters must be reused).

The scripted player is information-greedy: among the allowed guesses it picks the one that
minimises the expected number of candidates left (a guess that wins counts as 0 left),
using a guess x answer feedback matrix computed once with numpy.
"""

from __future__ import annotations

import importlib.resources
import random
from functools import cache
from typing import Any, ClassVar

import numpy as np

from tirgym.envs.games.game import GameEnv

GUESSES = {"easy": 8, "medium": 6, "hard": 6}
GREEN, YELLOW, GREY = 2, 1, 0
SYMBOL = {GREEN: "G", YELLOW: "Y", GREY: "."}
WIN = 242  # all five green: sum(2 * 3**i)


@cache
def word_list() -> tuple[str, ...]:
    text = (
        importlib.resources.files("tirgym.envs.games.data").joinpath("wordle_words.txt").read_text()
    )
    return tuple(
        w
        for w in (line.strip().lower() for line in text.splitlines())
        if w and not w.startswith("#")
    )


@cache
def word_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(word_list())}


def feedback(guess: str, answer: str) -> list[int]:
    """Per-letter score with Wordle's duplicate rule (greens first, then yellows left to right)."""
    out = [GREY] * 5
    left: dict[str, int] = {}
    for i, (g, a) in enumerate(zip(guess, answer, strict=True)):
        if g == a:
            out[i] = GREEN
        else:
            left[a] = left.get(a, 0) + 1
    for i, g in enumerate(guess):
        if out[i] != GREEN and left.get(g, 0):
            out[i] = YELLOW
            left[g] -= 1
    return out


def encode(marks: list[int]) -> int:
    m0, m1, m2, m3, m4 = marks
    return m0 + 3 * m1 + 9 * m2 + 27 * m3 + 81 * m4


def decode(code: int) -> list[int]:
    return [(code // 3**i) % 3 for i in range(5)]


@cache
def pattern_matrix() -> np.ndarray:
    """M[g, a] = encoded feedback of guess g against answer a (uint8), vectorised."""
    w = np.array([[ord(c) - 97 for c in word] for word in word_list()], dtype=np.int8)
    g, a = w[:, None, :], w[None, :, :]
    green = g == a  # (N, N, 5)
    code = np.zeros(green.shape[:2], dtype=np.int16)
    yellow = np.zeros_like(green)
    for i in range(5):
        avail = np.zeros(code.shape, dtype=np.int8)
        for j in range(5):
            avail += (a[:, :, j] == g[:, :, i]) & ~green[:, :, j]
        for j in range(i):
            avail -= (g[:, :, j] == g[:, :, i]) & yellow[:, :, j]
        yellow[:, :, i] = ~green[:, :, i] & (avail > 0)
        code += (2 * green[:, :, i] + yellow[:, :, i]).astype(np.int16) * 3**i
    return code.astype(np.uint8)


def hard_mode_error(guess: str, history: list[tuple[str, list[int]]]) -> str | None:
    """Why `guess` breaks hard mode given earlier (guess, marks), else None."""
    for prev, marks in history:
        need: dict[str, int] = {}
        for i, (c, m) in enumerate(zip(prev, marks, strict=True)):
            if m == GREEN and guess[i] != c:
                return f"hard mode: position {i + 1} must be {c.upper()}."
            if m != GREY:
                need[c] = need.get(c, 0) + 1
        for c, k in need.items():
            if guess.count(c) < k:
                return f"hard mode: the guess must contain {c.upper()}" + (
                    f" {k} times." if k > 1 else "."
                )
    return None


def best_guess(candidates: np.ndarray, allowed: np.ndarray | None = None) -> int:
    """The allowed guess minimising the expected number of candidates left (ties: candidates first)."""
    m = pattern_matrix()
    if len(candidates) <= 2:
        return int(candidates[0])
    guesses = np.arange(m.shape[0]) if allowed is None else allowed
    sub = m[np.ix_(guesses, candidates)].astype(np.int64)
    sub += (np.arange(len(guesses)) * 243)[:, None]
    counts = np.bincount(sub.ravel(), minlength=243 * len(guesses)).reshape(len(guesses), 243)
    is_cand = np.isin(guesses, candidates)
    score = (counts.astype(np.int64) ** 2).sum(axis=1) - is_cand  # a win leaves 0 candidates
    best = np.flatnonzero(score == score.min())
    pick = next((b for b in best if is_cand[b]), best[0])
    return int(guesses[pick])


@cache
def opening() -> int:
    """The first guess depends only on the word list, so compute it once."""
    return best_guess(np.arange(len(word_list())))


class WordleEnv(GameEnv):
    pure_moves: ClassVar[bool] = True
    game_name = "Wordle"
    default_max_turns = 10
    description = "Wordle."
    legend: ClassVar[str] = (
        "G = right letter, right spot; Y = in the word but elsewhere; . = not in the word."
    )
    done_verb: ClassVar[str] = "Guessed"
    max_move_words: ClassVar[int] = 1
    default_moves_per_turn: ClassVar[int] = 1
    max_moves_per_turn: ClassVar[int | None] = 1

    def __init__(
        self,
        difficulty: str = "medium",
        max_guesses: int | None = None,
        hard_mode: bool | None = None,
        **kwargs: Any,
    ):
        super().__init__(difficulty=difficulty, **kwargs)
        self.max_guesses = int(max_guesses) if max_guesses is not None else GUESSES[self.difficulty]
        self.hard_mode = (self.difficulty == "hard") if hard_mode is None else bool(hard_mode)
        self.words = word_list()
        self.answer = ""
        self.history: list[tuple[str, list[int]]] = []
        self._new_history()

    def rules(self) -> str:
        hard = (
            " Hard mode: every green letter must stay in place and every revealed letter must be used "
            "in later guesses."
            if self.hard_mode
            else ""
        )
        return (
            f"Wordle: guess the hidden five-letter English word in at most {self.max_guesses} guesses. "
            "Each guess must be a word from the game's list. After each guess every letter is marked: "
            "G = right letter, right spot; Y = in the word but in another spot; . = not in the word "
            "(a repeated letter is marked Y/G only as often as it occurs in the word)." + hard
        )

    @property
    def move_help(self) -> str:
        return "Moves: a five-letter word, e.g. 'crane' (case does not matter)."

    def new_game(self, rng: np.random.Generator) -> str:
        self.answer = self.words[int(rng.integers(len(self.words)))]
        self.history = []
        self._new_history()
        return f"I am thinking of a five-letter word. You have {self.max_guesses} guesses."

    def _new_history(self) -> None:
        """Per-episode summaries kept up to date guess by guess (render and state key
        then cost the same on the tenth guess as on the first)."""
        self._lines: list[str] = []
        self._present: set[str] = set()
        self._greyed: set[str] = set()
        self._keys: list[str] = []
        self._candidates = np.arange(len(self.words))
        self._filtered = 0  # guesses of `history` already applied to `_candidates`

    def _record(self, guess: str, marks: list[int]) -> None:
        self.history.append((guess, marks))
        self._lines.append(f"Guess {len(self.history)}: {' '.join(guess.upper())}")
        self._lines.append(f"Result:  {' '.join([SYMBOL[m] for m in marks])}")
        for c, m in zip(guess, marks, strict=True):
            (self._greyed if m == GREY else self._present).add(c)
        self._keys.append(f"{guess}:{encode(marks)}")

    @property
    def candidates(self) -> np.ndarray:
        """Indices of the words consistent with every guess so far (filtered on demand:
        only the shaping potential and the solver read them)."""
        if self._filtered < len(self.history):
            m, words = pattern_matrix(), word_index()
            for guess, marks in self.history[self._filtered :]:
                c = self._candidates
                self._candidates = c[m[words[guess], c] == encode(marks)]
            self._filtered = len(self.history)
        return self._candidates

    def render_state(self) -> str:
        if not self.history:
            return "No guesses yet."
        present = " ".join(sorted(self._present)).upper() or "-"
        absent = " ".join(sorted(self._greyed - self._present)).upper() or "-"
        return (
            "\n".join(self._lines)
            + f"\nLetters in the word: {present}\nLetters not in the word: {absent}"
            + f"\nGuesses left: {self.max_guesses - len(self.history)}"
        )

    def parse_move(self, text: str) -> str | None:
        return text if len(text) == 5 and text.isalpha() else None

    def random_move(self, rng: random.Random) -> str:
        return rng.choice(self.words)

    def apply_move(self, move: str) -> str | None:
        guess = move
        if guess not in word_index():
            return f"{guess.upper()} is not in the word list."
        if self.hard_mode:
            err = hard_mode_error(guess, self.history)
            if err:
                return err
        self._record(guess, feedback(guess, self.answer))
        return None

    def is_solved(self) -> bool:
        return bool(self.history) and self.history[-1][0] == self.answer

    def is_lost(self) -> str | None:
        if len(self.history) >= self.max_guesses and not self.is_solved():
            return f"no guesses left. The word was {self.answer.upper()}."
        return None

    def potential(self) -> float:
        if self.is_solved():
            return 1.0
        return 1.0 - float(np.log(len(self.candidates)) / np.log(len(self.words)))

    def state_key(self) -> str:
        return "|".join(self._keys) or "start"

    def solver_moves(self, limit: int) -> list[str]:
        if not self.history:
            return [self.words[opening()]]
        allowed = None
        if self.hard_mode:
            allowed = np.array(
                [i for i, w in enumerate(self.words) if hard_mode_error(w, self.history) is None]
            )
        return [self.words[best_guess(self.candidates, allowed)]]
