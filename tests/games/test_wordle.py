"""Wordle: shipped word list, feedback rule, information-greedy player, hard mode, invariants."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tirgym
from tirgym.envs.games.wordle import (
    GREEN,
    GREY,
    YELLOW,
    WordleEnv,
    encode,
    feedback,
    pattern_matrix,
    word_list,
)

DIFFS = ("easy", "medium", "hard")


def test_word_list_ships_and_is_clean():
    words = word_list()
    assert len(words) >= 1500 and len(set(words)) == len(words)
    assert all(len(w) == 5 and w.isalpha() and w.islower() for w in words)
    assert {"crane", "about", "world"} <= set(words)


def test_feedback_duplicate_rule_and_matrix():
    assert feedback("speed", "abide") == [GREY, GREY, YELLOW, GREY, YELLOW]
    assert feedback("eerie", "there") == [YELLOW, GREY, YELLOW, GREY, GREEN]
    assert feedback("crane", "crane") == [GREEN] * 5
    assert feedback("llama", "hello") == [YELLOW, YELLOW, GREY, GREY, GREY]
    words, m = word_list(), pattern_matrix()
    rng = random.Random(0)
    for _ in range(3000):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        assert m[i, j] == encode(feedback(words[i], words[j]))


@pytest.mark.parametrize("difficulty", DIFFS)
def test_generation_and_determinism(difficulty):
    env = tirgym.make("tirgym/Wordle-v0", difficulty=difficulty).unwrapped
    env.reset(seed=3)
    first = env.answer
    assert first in word_list()
    env.reset(seed=3)
    assert env.answer == first
    assert len({(env.reset(seed=s), env.answer)[1] for s in range(30)}) > 20
    assert env.max_guesses == {"easy": 8, "medium": 6, "hard": 6}[difficulty]
    assert env.hard_mode == (difficulty == "hard")


@pytest.mark.slow
@pytest.mark.parametrize("hard_mode", [False, True])
def test_solver_over_every_answer(hard_mode):
    """The greedy player on every word of the list: 100% in normal mode, >= 99% in hard mode."""
    env = WordleEnv(hard_mode=hard_mode, max_guesses=6, max_turns=10)
    wins = 0
    for answer in word_list():
        env.reset(seed=0)
        env.answer = answer
        while not env.is_solved() and not env.is_lost():
            assert env.apply_move(env.solver_moves(1)[0]) is None
        wins += env.is_solved()
    rate = wins / len(word_list())
    assert rate == 1.0 if not hard_mode else rate >= 0.99


def test_rules_and_rewards():
    env = WordleEnv(difficulty="hard", invalid_penalty=0.1, progress_reward=1.0, max_turns=10)
    env.reset(seed=0)
    env.answer = "crane"
    reply, _, _, _, info = env.step("<answer>zzzzz</answer>")
    assert "not in the word list" in reply and info["reward_components"] == {"invalid": -0.1}
    _, _, _, _, info = env.step("<answer>two words</answer>")
    assert "five-letter" in env.last_observation
    reply, _, _, _, info = env.step("<answer>TRACE</answer>")
    assert "Result:  . G G Y G" in reply and info["reward_components"]["progress"] > 0
    assert "hard mode" in env.play_move("about")  # must keep R, A, E greens and C
    _, _, _, _, info = env.step("<answer>crane || trace</answer>")
    assert "Too many moves" in env.last_observation and len(env.history) == 1
    _, _, term, _, info = env.step("<answer>crane</answer>")
    assert term and info["success"]


def test_loss_after_max_guesses():
    env = WordleEnv(difficulty="medium", max_turns=10)
    env.reset(seed=0)
    env.answer = "crane"
    for g in ["about", "world", "fight", "jumpy", "music"]:
        assert not env.step(f"<answer>{g}</answer>")[2]
    _, _, term, _, info = env.step("<answer>ghost</answer>")
    assert term and not info["success"] and "CRANE" in env.last_observation


def test_candidates_follow_feedback():
    env = WordleEnv(max_turns=10)
    env.reset(seed=1)
    env.step("<answer>raise</answer>")
    words = np.array(word_list())
    consistent = [w for w in word_list() if feedback("raise", w) == env.history[0][1]]
    assert sorted(words[env.candidates]) == sorted(consistent) and env.answer in consistent


MOVES = st.one_of(
    st.text(max_size=8),
    st.text(alphabet="abcdeilnorst", min_size=4, max_size=6),
    st.sampled_from(word_list()),
)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 100), move=MOVES, hard=st.booleans())
def test_invalid_moves_change_nothing(seed, move, hard):
    env = WordleEnv(hard_mode=hard, progress_reward=1.0, max_turns=10)
    env.reset(seed=seed)
    env.step("<answer>raise</answer>")
    if env.done:  # the answer was RAISE
        return
    before = (env.state_key(), len(env.candidates))
    if env.play_move(move) is not None:
        assert (env.state_key(), len(env.candidates)) == before
    env.reset(seed=seed)
    env.step("<answer>raise</answer>")
    _, _, _, _, info = env.step(f"<answer>{move}</answer>")
    if info.get("invalid"):
        assert info["state_key"] == before[0] and "progress" not in info["reward_components"]
