import pytest

import tirgym
from tirgym.envs.games.grid import bfs_distances

make = tirgym.make
ENV = "tirgym/Maze-v0"


def test_generation_is_solvable_and_exit_is_far():
    for difficulty in ("easy", "medium", "hard"):
        env = make(ENV, difficulty=difficulty)
        for seed in range(20):
            env.reset(seed=seed)
            u = env.unwrapped
            assert u.dist[u.player] > 0
            # the exit is a cell farthest from the start
            assert u.dist[u.player] == max(bfs_distances(u.open, u.size, u.player))
            assert u.size == 2 * u.cells + 1


def test_walls_block_and_exit_wins():
    env = make(ENV, difficulty="easy", invalid_penalty=0.25)
    env.reset(seed=0)
    u = env.unwrapped
    wall = next(m for m, d in u.delta.items() if not u.open[u.player + d])
    before = u.state_key()
    reply, reward, term, _, info = env.step(f"<answer>{wall}</answer>")
    assert "Illegal move" in reply and "wall" in reply
    assert u.state_key() == before and reward == -0.25 and not term
    while True:
        _, _, term, trunc, info = env.step(u.solve())
        if term or trunc:
            break
    assert info["success"] and info["outcome_reward"] == 1.0


def test_progress_shaping_is_potential_based():
    env = make(ENV, difficulty="medium", progress_reward=0.1, step_cost=0.01)
    env.reset(seed=4)
    u = env.unwrapped
    d0 = u.dist[u.player]
    _, _, _, _, info = env.step(u.solve())
    moved = info["moves_executed"]
    assert info["reward_components"]["progress"] == pytest.approx(0.1 * moved)
    assert info["reward_components"]["step_cost"] == pytest.approx(-0.01)  # per turn
    assert u.dist[u.player] == d0 - moved


def test_multi_move_formats_and_limit():
    env = make(ENV, difficulty="hard", moves_per_turn=3)
    for text in ("up || left", "up, left", "up left", "[Up; LEFT]", "u l"):
        assert env.unwrapped.parse_moves(text) == (["up", "left"], None)
    env.reset(seed=1)
    reply, *_, info = env.step("<answer>up || up || up || up</answer>")
    assert "Too many moves" in reply and info["moves_executed"] == 0
    assert (
        "at most 3" in env.unwrapped.system_prompt() or "up to 3" in env.unwrapped.system_prompt()
    )
