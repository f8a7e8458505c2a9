"""The fast paths of reset and step read and build exactly what the general paths do.

Each fast path is checked against the general code it short-cuts (switched off with
monkeypatch), on ordinary and awkward inputs, so a speed-up can never change a reading.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from gymnasium.utils import seeding

import tirgym
from tirgym import protocol
from tirgym.envs.games import game as game_module
from tirgym.envs.games import minesweeper, wordle
from tirgym.protocol import TurnFormat, parse_turn

NEVER = re.compile(r"(?!)")

TURNS = [
    "<answer>25</answer>",
    "  <answer> up left </answer>\n",
    "<think>lower half</think>\n<answer>12</answer>",
    "<think></think><answer>x</answer>",
    "reasoning</think><answer>7</answer>",
    "<answer></answer>",
    "<answer>   </answer>",
    "<answer>a < b</answer>",
    "<think>a < b</think><answer>3</answer>",
    "<answer>1</answer><answer>2</answer>",
    "<answer>1</answer> trailing words",
    "<think>unclosed <answer>1</answer>",
    "<answer>```python\nprint(1)\n```</answer>",
    "x" * 50 + "<answer>" + "9" * 20_000 + "</answer>",
    '<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>',
    "no tags at all",
]
FORMATS = [
    TurnFormat(tools=()),
    TurnFormat(tools=("python",), allow_python_block=True),
    TurnFormat(allow_answer=False, tools=("python",)),
    TurnFormat(tools=(), text_after_action="error", multiple_actions="error"),
    TurnFormat(tools=(), max_answer_chars=3),
]


@pytest.mark.parametrize("fmt", FORMATS, ids=range(len(FORMATS)))
def test_plain_answer_fast_path_reads_as_the_scanner(fmt, monkeypatch):
    fast = [parse_turn(t, fmt).to_dict() for t in TURNS]
    monkeypatch.setattr(protocol, "_PLAIN_ANSWER", NEVER)
    assert fast == [parse_turn(t, fmt).to_dict() for t in TURNS]


GAMES = ["Hanoi", "Minesweeper", "Sudoku", "Sokoban", "Game2048", "Wordle", "Countdown", "Maze"]


@pytest.mark.parametrize("name", GAMES)
def test_one_piece_move_fast_path_reads_as_the_splitter(name, monkeypatch):
    env = tirgym.make(f"tirgym/{name}-v0").unwrapped
    env.reset(seed=3)
    rng = random.Random(0)
    answers = [env.random_turn(rng)[len("<answer>") : -len("</answer>")] for _ in range(60)]
    answers += ["UP", "a c", "reveal 1 2 flag 0 3", "A1 5", "3 + 4", "crane", "up up up up"]
    answers += ["up, left", "flag(0,3)", "??", "  ", "move A to C", "1 2 3 4 5 6 7 8"]
    fast = [env.parse_moves(a) for a in answers]
    monkeypatch.setattr(game_module, "_PLAIN", NEVER)
    assert fast == [env.parse_moves(a) for a in answers]


def test_seeded_reset_gives_gymnasiums_generator_lazily():
    env = tirgym.make("tirgym/GuessNumber-v0").unwrapped
    env.reset(seed=7)
    expected, _ = seeding.np_random(7)
    assert env.np_random_seed == 7
    assert (
        env._np_random.integers(0, 10**9, size=4).tolist()
        == expected.integers(0, 10**9, size=4).tolist()
    )
    # an unseeded reset after a seeded one draws its seed from that generator, as in gymnasium
    env.reset(seed=7)
    _, info = env.reset()
    expected, _ = seeding.np_random(7)
    assert info["seed"] == int(expected.integers(0, 2**31 - 1))


def test_observation_space_repr_is_short():
    env = tirgym.make("tirgym/GuessNumber-v0")
    text = repr(env.observation_space)
    assert len(text) < 200 and text.startswith("Text(0, 262144")
    assert env.observation_space == env.unwrapped.action_space


def test_minesweeper_boards_are_kept_by_seed():
    env = tirgym.make("tirgym/Minesweeper-v0", difficulty="medium").unwrapped
    minesweeper.no_guess_board.cache_clear()
    first, _ = env.reset(seed=11)
    mines = bytes(env.mine)
    again, _ = env.reset(seed=11)
    assert (again, bytes(env.mine)) == (first, mines)
    assert minesweeper.no_guess_board.cache_info().hits == 1
    key = int(np.random.default_rng(11).integers(0, 2**62))
    assert minesweeper.no_guess_board.__wrapped__(env.side, env.n_mines, key)[1] == mines


def _render_from_history(env: wordle.WordleEnv) -> str:
    """The Wordle panel recomputed from the whole history (what the incremental one keeps)."""
    lines = []
    for k, (g, marks) in enumerate(env.history, 1):
        lines.append(f"Guess {k}: {' '.join(g.upper())}")
        lines.append(f"Result:  {' '.join(wordle.SYMBOL[m] for m in marks)}")
    grey = {c for g, ms in env.history for c, m in zip(g, ms, strict=True) if m == wordle.GREY}
    seen = {c for g, ms in env.history for c, m in zip(g, ms, strict=True) if m != wordle.GREY}
    lines.append(f"Letters in the word: {' '.join(sorted(seen)).upper() or '-'}")
    lines.append(f"Letters not in the word: {' '.join(sorted(grey - seen)).upper() or '-'}")
    lines.append(f"Guesses left: {env.max_guesses - len(env.history)}")
    return "\n".join(lines)


def test_wordle_panel_and_candidates_follow_every_guess():
    env = tirgym.make("tirgym/Wordle-v0", difficulty="easy").unwrapped
    rng = random.Random(1)
    for seed in range(5):
        env.reset(seed=seed)
        done = False
        while not done:
            *_, term, trunc, _ = env.step(env.random_turn(rng))
            done = term or trunc
            assert env.render_state() == _render_from_history(env)
        words = np.array(wordle.word_list())
        consistent = [
            w for w in wordle.word_list() if all(wordle.feedback(g, w) == m for g, m in env.history)
        ]
        assert sorted(words[env.candidates]) == sorted(consistent)
