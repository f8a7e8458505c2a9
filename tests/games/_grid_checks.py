"""Checks shared by the grid-game tests (Sokoban, FrozenLake, Maze, Minesweeper, 2048)."""

from __future__ import annotations

import random

from gymnasium.utils.env_checker import check_env
from hypothesis import strategies as st

import tirgym

DIFFICULTIES = ("easy", "medium", "hard")


def make(env_id: str, **kwargs):
    return tirgym.make(env_id, **kwargs)


def play_solver(env_id: str, seed: int, **kwargs) -> tuple[bool, int]:
    """Play one episode with env.solve(); (success, turns)."""
    env = make(env_id, **kwargs)
    env.reset(seed=seed)
    turns = 0
    while True:
        _, _, terminated, truncated, info = env.step(env.unwrapped.solve())
        turns += 1
        if terminated or truncated:
            return bool(info["success"]), turns


def solver_win_rate(env_id: str, difficulty: str, seeds: range, **kwargs) -> float:
    wins = sum(play_solver(env_id, s, difficulty=difficulty, **kwargs)[0] for s in seeds)
    return wins / len(seeds)


def check_determinism(env_id: str) -> None:
    for difficulty in DIFFICULTIES:
        a, b = make(env_id, difficulty=difficulty), make(env_id, difficulty=difficulty)
        prompts = set()
        for seed in range(8):
            pa, ia = a.reset(seed=seed)
            pb, ib = b.reset(seed=seed)
            assert pa == pb and ia["state_key"] == ib["state_key"]
            prompts.add(pa)
            # the same moves give the same trajectory, rewards included
            rng_a, rng_b = random.Random(seed), random.Random(seed)
            for _ in range(6):
                ra = a.step(a.unwrapped.random_turn(rng_a))
                rb = b.step(b.unwrapped.random_turn(rng_b))
                assert ra[:4] == rb[:4] and ra[4]["state_key"] == rb[4]["state_key"]
                if ra[2] or ra[3]:
                    break
        assert len(prompts) >= 6, f"{env_id} {difficulty}: seeds give too few distinct instances"


def check_gym_api(env_id: str) -> None:
    env = make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=3)
    assert isinstance(info["state_key"], str) and hash(info["state_key"])
    assert "<answer>" in info["system_prompt"] and "Legend" in info["system_prompt"]


def replay_prefix(env_id: str, seed: int, history: list[str], turn_text: str, kwargs: dict):
    """A fresh env at `seed` after `history`, then `turn_text`: (state_key, step result)."""
    env = make(env_id, **kwargs)
    env.reset(seed=seed)
    for h in history:
        env.step(h)
    out = env.step(turn_text)
    return out


def check_move_property(env_id: str, seed: int, warmup: int, answer: str, **kwargs) -> None:
    """An invalid or illegal move never changes the state and never earns progress.

    The state after a turn equals the state after only its executed (legal) prefix, with the
    same progress; a turn with nothing executed keeps the state and has no progress."""
    kwargs = {"progress_reward": 1.0, "step_cost": 0.01, "invalid_penalty": 0.5, **kwargs}
    env = make(env_id, max_turns=1000, **kwargs)
    env.reset(seed=seed)
    history = []
    for _ in range(warmup):
        turn = env.unwrapped.solve()
        _, _, terminated, _, _ = env.step(turn)
        if terminated:
            return
        history.append(turn)
    before = env.unwrapped.state_key()
    text = f"<answer>{answer}</answer>"
    _, _, _, _, info = env.step(text)
    comps = info["reward_components"]
    done = info.get("moves_executed", 0)
    if done == 0:  # unreadable turn, or its first move illegal: nothing changes
        assert info["state_key"] == before
        assert "progress" not in comps and "step_cost" not in comps
        return
    if info.get("invalid") is None:
        return
    assert comps.get("invalid") == -0.5
    moves, err = env.unwrapped.parse_moves(answer)
    assert err is None
    prefix = env.unwrapped.plan_turn(moves[:done]) if done <= env.unwrapped.moves_per_turn else None
    _, _, _, _, ref = replay_prefix(env_id, seed, history, prefix, {"max_turns": 1000, **kwargs})
    assert ref["state_key"] == info["state_key"]
    assert ref["reward_components"].get("progress", 0) == comps.get("progress", 0)
    assert "invalid" not in ref["reward_components"]


def move_strings(words: list[str]):
    """Random answers: vocabulary words, junk and separators in any order."""
    token = st.one_of(
        st.sampled_from(words), st.text(alphabet="abcdeflnrsuwxyz0123456789(), ", max_size=6)
    )
    sep = st.sampled_from([" || ", ", ", " ", "||", "; ", "\n"])
    return st.lists(st.tuples(token, sep), min_size=1, max_size=8).map(
        lambda xs: "".join(t + s for t, s in xs)
    )
