"""Countdown / 24: solvable generation, exact search solver, move rules, invariants."""

from itertools import permutations

import pytest
from _play import play
from hypothesis import given, settings
from hypothesis import strategies as st

import tirgym
from tirgym.envs.games.countdown import CountdownEnv, combine, solve_pool

DIFFS = ("easy", "medium", "hard")


def reachable(pool):
    """Every value some sequence of moves can produce (brute force, small pools)."""
    out = set(pool)
    if len(pool) < 2:
        return out
    for i, j in permutations(range(len(pool)), 2):
        rest = [v for k, v in enumerate(pool) if k not in (i, j)]
        for op in "+-*/":
            r = combine(pool[i], op, pool[j])
            if r is not None:
                out |= reachable([*rest, r])
    return out


def test_solver_is_exact_on_small_pools():
    pools = [(1, 1, 1), (2, 3, 7), (4, 6, 9), (1, 5, 5, 5), (3, 3, 8, 8), (1, 2, 3, 4)]
    for pool in pools:
        values = reachable(list(pool))
        for target in range(1, 60):
            plan = solve_pool(pool, target)
            assert (plan is not None) == (target in values), (pool, target)
            if plan:
                p = list(pool)
                for a, op, b in plan:
                    p.remove(a)
                    p.remove(b)
                    p.append(combine(a, op, b))
                assert target in p
    assert solve_pool((3, 3, 8, 8), 24, use_all=True) is None  # only 8 / (3 - 8/3): needs fractions
    assert solve_pool((1, 2, 3, 4), 24, use_all=True) is not None
    assert solve_pool((1, 1, 1, 1), 24, use_all=True) is None


@pytest.mark.parametrize("difficulty", DIFFS)
def test_generation_and_determinism(difficulty):
    env = tirgym.make("tirgym/Countdown-v0", difficulty=difficulty).unwrapped
    for seed in range(10):
        env.reset(seed=seed)
        assert env.use_all == (difficulty == "medium")
        assert (
            env.target not in env.pool
            and solve_pool(tuple(env.pool), env.target, env.use_all) is not None
        )
        size = {"easy": 3, "medium": 4, "hard": 6}[difficulty]
        assert len(env.pool) == size
        if difficulty == "medium":
            assert env.target == 24 and all(1 <= v <= 13 for v in env.pool)
        if difficulty == "hard":
            assert 101 <= env.target <= 999 and sum(v >= 25 for v in env.pool) == 2
    a, ia = env.reset(seed=9)
    b, ib = env.reset(seed=9)
    assert a == b and ia["state_key"] == ib["state_key"]


def test_use_all_mode():
    env = CountdownEnv(difficulty="medium", max_turns=8)
    for seed in range(10):
        info = play(env, seed)
        assert info["success"] and env.pool == [24] and env.moves_made == 3
    env.reset(seed=0)
    env.pool = [4, 6, 24]
    assert env.play_move("4 + 6") is None and not env.is_solved() and not env.is_lost()


def test_rules_and_loss():
    env = CountdownEnv(difficulty="easy", invalid_penalty=0.1, max_turns=8)
    env.reset(seed=0)
    env.pool, env.target = [2, 3, 7], 99
    assert "not available" in env.play_move("5 + 2")
    assert "not available" in env.play_move("2 + 2")
    assert "not a whole number" in env.play_move("7 / 2")
    assert "would not be positive" in env.play_move("2 - 7")
    assert "cannot read" in env.play_move("2 ^ 3")
    assert env.pool == [2, 3, 7]
    assert env.play_move("7 x 3 = 21") is None and env.pool == [2, 21]
    _, _, term, _, info = env.step("<answer>21 * 2</answer>")
    assert (
        term
        and not info["success"]
        and info["stop_reason"] == "lost"
        and info["outcome_reward"] == 0.0
    )


MOVES = st.one_of(
    st.text(max_size=10),
    st.builds(
        lambda a, op, b: f"{a} {op} {b}",
        st.integers(0, 30),
        st.sampled_from(["+", "-", "*", "/", "x", "÷", "^", "%"]),
        st.integers(0, 30),
    ),
)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 100), move=MOVES)
def test_invalid_moves_change_nothing(seed, move):
    env = CountdownEnv(difficulty="easy", progress_reward=1.0, invalid_penalty=0.1, max_turns=8)
    env.reset(seed=seed)
    before = env.state_key()
    if env.play_move(move) is not None:
        assert env.state_key() == before
    env.reset(seed=seed)
    _, _, _, _, info = env.step(f"<answer>{move}</answer>")
    if info.get("invalid"):
        assert info["state_key"] == before
        assert (
            "progress" not in info["reward_components"]
            and info["reward_components"]["invalid"] == -0.1
        )
