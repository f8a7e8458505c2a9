"""Tower of Hanoi: generation, exact solver (optimal from any state), rules, invariants."""

from collections import deque
from itertools import product

import pytest
from _play import play
from hypothesis import given, settings
from hypothesis import strategies as st

import tirgym
from tirgym.envs.games.hanoi import DISKS, HanoiEnv, optimal_length, plan

LEVELS = ("easy", "medium", "hard")


def bfs_distance(pos):
    n = len(pos)
    goal = (2,) * n
    seen, queue = {tuple(pos): 0}, deque([tuple(pos)])
    while queue:
        p = queue.popleft()
        if p == goal:
            return seen[p]
        tops = {}
        for d in range(n - 1, -1, -1):
            tops[p[d]] = d  # smallest disk ends up on top
        for src, d in tops.items():
            for dst in range(3):
                if dst != src and (dst not in tops or tops[dst] > d):
                    q = list(p)
                    q[d] = dst
                    q = tuple(q)
                    if q not in seen:
                        seen[q] = seen[p] + 1
                        queue.append(q)
    raise AssertionError("unreachable")


def test_plan_is_optimal_from_every_state():
    for n in range(1, 5):
        for pos in product(range(3), repeat=n):
            assert len(plan(list(pos))) == optimal_length(list(pos)) == bfs_distance(pos)


@pytest.mark.parametrize("difficulty", LEVELS)
def test_generation_and_determinism(difficulty):
    env = tirgym.make("tirgym/Hanoi-v0", difficulty=difficulty).unwrapped
    p1, i1 = env.reset(seed=7)
    assert (
        env.pegs[0] == list(range(DISKS[difficulty], 0, -1)) and not env.pegs[1] and not env.pegs[2]
    )
    p2, i2 = env.reset(seed=7)
    assert p1 == p2 and i1["state_key"] == i2["state_key"]


def test_random_start_is_seeded_and_solvable():
    env = HanoiEnv(difficulty="medium", start="random", max_turns=80)
    keys = {env.reset(seed=s)[1]["state_key"] for s in range(20)}
    assert len(keys) > 10
    assert env.reset(seed=3)[1]["state_key"] == env.reset(seed=3)[1]["state_key"]
    for s in range(20):
        assert play(env, s)["success"]


@pytest.mark.parametrize("difficulty", LEVELS)
def test_solver_is_optimal_from_the_standard_start(difficulty):
    env = tirgym.make("tirgym/Hanoi-v0", difficulty=difficulty)
    for seed in range(10):
        info = play(env, seed)
        assert info["success"] and info["outcome_reward"] == 1.0
        assert env.unwrapped.moves_made == 2 ** DISKS[difficulty] - 1


def test_rules_and_rewards():
    env = HanoiEnv(difficulty="easy", invalid_penalty=0.1, progress_reward=1.0, max_turns=20)
    env.reset(seed=0)
    reply, reward, _, _, info = env.step("<answer>A C || A C</answer>")  # 2 onto 1: illegal
    assert "cannot go on the smaller disk" in reply and info["state_key"] == "CAA"
    assert info["reward_components"]["invalid"] == -0.1
    assert info["reward_components"]["progress"] == pytest.approx(1 / 7)
    _, _, _, _, info = env.step("<answer>B A</answer>")
    assert "Illegal move" in env.last_observation and "progress" not in info["reward_components"]
    assert info["state_key"] == "CAA"
    reply, _, _, _, info = env.step("<answer>A B || A B || A B || A B || A B</answer>")
    assert "Too many moves" in reply and info["state_key"] == "CAA"
    for move in ("A->B", "move C to B", "1 3", "peg b peg a"):
        assert env.play_move(move) is None, move


MOVES = st.one_of(
    st.text(max_size=12),
    st.builds(
        lambda a, b: f"{a} {b}", st.sampled_from("ABCabc1234D"), st.sampled_from("ABCabc1234D")
    ),
)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 50), warmup=st.lists(st.integers(0, 5), max_size=8), move=MOVES)
def test_invalid_moves_change_nothing(seed, warmup, move):
    env = HanoiEnv(difficulty="medium", progress_reward=1.0, max_turns=100)
    env.reset(seed=seed)
    for k in warmup:  # reach varied legal states
        env.play_move(["A B", "A C", "B C", "B A", "C A", "C B"][k])
    before = env.state_key()
    pegs = [list(p) for p in env.pegs]
    if env.play_move(move) is not None:
        assert env.state_key() == before and env.pegs == pegs
    env.pegs = pegs
    env.pos = [next(i for i, p in enumerate(pegs) if d + 1 in p) for d in range(env.n)]
    _, _, _, _, info = env.step(f"<answer>{move}</answer>")
    if info.get("invalid") and not info.get("moves_executed"):
        assert info["state_key"] == before
        assert "progress" not in info["reward_components"]
