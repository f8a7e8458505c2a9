"""Lights Out: generation from presses, exact GF(2) solver (fewest presses), rules, invariants."""

import random
from itertools import combinations

import pytest
from _play import play
from hypothesis import given, settings
from hypothesis import strategies as st

import tirgym
from tirgym.envs.games.lights_out import LEVELS, LightsOutEnv, press_masks, solve_presses

DIFFS = ("easy", "medium", "hard")


def apply(n, presses):
    lights = 0
    for i in range(n * n):
        if presses >> i & 1:
            lights ^= press_masks(n)[i]
    return lights


@pytest.mark.parametrize("n", [3, 4, 5])
def test_solver_is_exact_and_minimal(n):
    rng = random.Random(n)
    for _ in range(200):
        lights = apply(n, rng.getrandbits(n * n))
        x = solve_presses(n, lights)
        assert x is not None and apply(n, x) == lights
    if n <= 4:  # brute force the minimum for small weights
        for _ in range(30):
            lights = apply(n, rng.getrandbits(n * n))
            best = next(
                k
                for k in range(n * n + 1)
                for cells in combinations(range(n * n), k)
                if apply(n, sum(1 << c for c in cells)) == lights
            )
            assert solve_presses(n, lights).bit_count() == best


def test_unsolvable_patterns_are_detected():
    # on 4x4 and 5x5 the press matrix is singular: a lone light cannot always be switched off
    assert solve_presses(5, 1) is None
    assert solve_presses(4, 1) is None
    assert solve_presses(3, 1) is not None


@pytest.mark.parametrize("difficulty", DIFFS)
def test_generation_and_determinism(difficulty):
    env = tirgym.make("tirgym/LightsOut-v0", difficulty=difficulty).unwrapped
    n, presses = LEVELS[difficulty]
    for seed in range(20):
        env.reset(seed=seed)
        assert env.n == n and env.lights != 0
        x = solve_presses(n, env.lights)
        assert x is not None and x.bit_count() <= presses
    a, ia = env.reset(seed=11)
    b, ib = env.reset(seed=11)
    assert a == b and ia["state_key"] == ib["state_key"]
    assert len({env.reset(seed=s)[1]["state_key"] for s in range(20)}) > 10


@pytest.mark.parametrize("difficulty", DIFFS)
def test_solver_presses_at_most_the_scramble(difficulty):
    env = tirgym.make("tirgym/LightsOut-v0", difficulty=difficulty)
    for seed in range(10):
        info = play(env, seed)
        assert info["success"]
        assert env.unwrapped.moves_made <= LEVELS[difficulty][1]


def test_solver_from_midgame_state():
    env = LightsOutEnv(difficulty="hard", moves_per_turn=25, max_turns=30)
    env.reset(seed=4)
    env.step("<answer>A1 || C3 || E5</answer>")
    _, _, term, _, info = env.step(env.solve())
    assert term and info["success"]


def test_rules_and_rewards():
    env = LightsOutEnv(
        size=3, presses=2, invalid_penalty=0.5, progress_reward=1.0, step_cost=0.01, max_turns=10
    )
    env.reset(seed=1)
    env.lights = 0b000010000  # centre only
    reply, _, _, _, info = env.step("<answer>Z9</answer>")
    assert "Illegal move" in reply and info["reward_components"] == {
        "invalid": -0.5,
        "step_cost": -0.01,
    }
    reply, _, _, _, info = env.step("<answer>D1</answer>")
    assert "off the 3x3 board" in reply and env.lights == 0b000010000
    env.step("<answer>press b2</answer>")
    assert env.lights == 0b010101010
    assert "A B C" in env.render_state() and " 2 # . #" in env.render_state()


MOVES = st.one_of(
    st.text(max_size=10),
    st.builds(lambda c, r: f"{c}{r}", st.sampled_from("ABCDEFZabc"), st.integers(-1, 12)),
)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 100), moves=st.lists(MOVES, min_size=1, max_size=3))
def test_invalid_moves_change_nothing(seed, moves):
    env = LightsOutEnv(difficulty="medium", progress_reward=1.0, max_turns=10)
    env.reset(seed=seed)
    before = env.state_key()
    for move in moves:
        key = env.state_key()
        if env.play_move(move) is not None:
            assert env.state_key() == key
    env.reset(seed=seed)
    _, _, _, _, info = env.step("<answer>" + " || ".join(moves) + "</answer>")
    if info.get("invalid") and not info.get("moves_executed"):
        assert info["state_key"] == before and "progress" not in info["reward_components"]
