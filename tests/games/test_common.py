"""What every game must do, checked once for all ten through the shared GameEnv.

check_env and the prompt; determinism per seed; the solver wins (10 seeds per difficulty
here, 200 under `slow`); an invalid or illegal move never changes the state and never
earns progress (hypothesis, over random move strings); state_key changes iff the state
does. Game-specific rules live in the per-game test files.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import pytest
from _play import play
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import tirgym
from tirgym.envs.games.game import split_pieces

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass
class Game:
    env_id: str
    words: list[str]
    """Move strings for the property test: legal-looking moves, near misses and junk."""
    kwargs: dict = field(default_factory=dict)
    win_rate_200: float = 1.0
    """Solver bar over 200 seeds (1.0 where the solver is exact)."""


GAMES = {
    "sokoban": Game("tirgym/Sokoban-v0", ["up", "down", "left", "right", "u", "l", "push", "UP"]),
    "frozen_lake": Game(
        "tirgym/FrozenLake-v0", ["up", "down", "left", "right", "north", "west", "fly", "s"]
    ),
    "maze": Game("tirgym/Maze-v0", ["up", "down", "left", "right", "d", "r", "jump", "[left]"]),
    "minesweeper": Game(
        "tirgym/Minesweeper-v0",
        ["reveal 1 2", "flag 0 0", "unflag 3 3", "reveal 9 9", "open(2,3)", "2 4", "boom 1 1"],
    ),
    "game2048": Game(
        "tirgym/Game2048-v0",
        ["up", "down", "left", "right", "u", "d", "shake"],
        {"moves_per_turn": 5},
        0.99,
    ),
    "sudoku": Game(
        "tirgym/Sudoku-v0", ["A1 1", "b3 4", "C2=2", "clear A1", "D4 .", "E1 1", "J9 9", "A1 7"]
    ),
    "wordle": Game(
        "tirgym/Wordle-v0", ["crane", "about", "zzzzz", "two words", "raise", "abc"], {}, 0.99
    ),
    "hanoi": Game(
        "tirgym/Hanoi-v0",
        ["A C", "a b", "B C", "C A", "1 3", "A->B", "move c to b", "D A", "A A"],
        {"start": "random"},  # the standard start is one instance for every seed
    ),
    "countdown": Game(
        "tirgym/Countdown-v0", ["1 + 2", "3 * 4", "10 - 3", "8 / 2", "5 x 5", "2 ^ 3", "100 + 1"]
    ),
    "lights_out": Game("tirgym/LightsOut-v0", ["A1", "b2", "press C3", "Z9", "E5", "A0", "B"]),
}
NAMES = list(GAMES)


def make(name: str, **kwargs):
    return tirgym.make(GAMES[name].env_id, **{**GAMES[name].kwargs, **kwargs})


def solver_win_rate(name: str, difficulty: str, seeds: range) -> float:
    env = make(name, difficulty=difficulty)
    return sum(play(env, s)["success"] for s in seeds) / len(seeds)


@pytest.mark.parametrize("name", NAMES)
def test_check_env_and_prompt(name):
    env = make(name)
    check_env(env.unwrapped, skip_render_check=False)
    _, info = env.reset(seed=3)
    assert isinstance(info["state_key"], str) and hash(info["state_key"])
    prompt = info["system_prompt"]
    assert "<answer>" in prompt and "Legend" in prompt and "Moves" in prompt


@pytest.mark.parametrize("name", NAMES)
def test_determinism_per_seed(name):
    for difficulty in DIFFICULTIES:
        a, b = make(name, difficulty=difficulty), make(name, difficulty=difficulty)
        fingerprints = set()
        for seed in range(8):
            pa, ia = a.reset(seed=seed)
            pb, ib = b.reset(seed=seed)
            assert pa == pb and ia["state_key"] == ib["state_key"]
            # the same moves give the same trajectory, rewards included
            rng_a, rng_b = random.Random(seed), random.Random(seed)
            for _ in range(6):
                ra = a.step(a.unwrapped.random_turn(rng_a))
                rb = b.step(b.unwrapped.random_turn(rng_b))
                assert ra[:4] == rb[:4] and ra[4]["state_key"] == rb[4]["state_key"]
                if ra[2] or ra[3]:
                    break
            # an instance's fingerprint: its prompt and its reply to one fixed turn
            a.reset(seed=seed)
            fingerprints.add((pa, a.step(a.unwrapped.random_turn(random.Random(0)))[0]))
        assert len(fingerprints) >= 6, f"{name} {difficulty}: seeds give too few instances"


@pytest.mark.parametrize("name", NAMES)
def test_solver_wins_fast(name):
    for difficulty in DIFFICULTIES:
        assert solver_win_rate(name, difficulty, range(10)) == 1.0, difficulty


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("name", NAMES)
def test_solver_wins_200(name, difficulty):
    assert solver_win_rate(name, difficulty, range(200)) >= GAMES[name].win_rate_200


def move_strings(words: list[str]):
    """Random answers: vocabulary moves, junk and separators in any order."""
    token = st.one_of(
        st.sampled_from(words),
        st.text(alphabet="abcdeflnrsuwxyz0123456789(),*+-/=.: ", max_size=6),
        st.text(max_size=4),
    )
    sep = st.sampled_from([" || ", ", ", " ", "||", "; ", "\n", "|"])
    return st.lists(st.tuples(token, sep), min_size=1, max_size=8).map(
        lambda xs: "".join(t + s for t, s in xs)
    )


PENALTIES = {"progress_reward": 1.0, "step_cost": 0.01, "invalid_penalty": 0.5, "max_turns": 1000}


def replay(name: str, difficulty: str, seed: int, history: list[str], turn: str) -> dict:
    """The info of `turn` played on a fresh env after `history` (same seed, same moves)."""
    env = make(name, difficulty=difficulty, **PENALTIES)
    env.reset(seed=seed)
    for h in history:
        env.step(h)
    return env.step(turn)[4]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    difficulty=st.sampled_from(DIFFICULTIES),
    warmup=st.integers(0, 3),
    data=st.data(),
)
def test_invalid_moves_never_change_state_nor_earn_progress(name, seed, difficulty, warmup, data):
    """The state after a turn is the state after its executed (legal) prefix, with that
    prefix's progress; a turn with nothing executed keeps the state and earns no progress."""
    answer = data.draw(move_strings(GAMES[name].words), label="answer")
    env = make(name, difficulty=difficulty, **PENALTIES)
    u = env.unwrapped
    env.reset(seed=seed)
    history = []
    for _ in range(warmup):
        turn = u.solve()
        if env.step(turn)[2]:
            return
        history.append(turn)
    before, render = u.state_key(), u.render_state()
    _, _, _, _, info = env.step(f"<answer>{answer}</answer>")
    comps = info["reward_components"]
    if "moves_executed" not in info:  # the turn protocol refused it before the game saw it
        assert info["state_key"] == before and "progress" not in comps
        return
    assert comps["step_cost"] == -0.01  # every turn pays it, invalid ones included
    done = info["moves_executed"]
    if info["invalid"] is not None:
        assert comps["invalid"] == -0.5
    else:
        assert "invalid" not in comps and done > 0
    if done == 0:  # unreadable, too many moves, or the first move illegal: nothing changes
        assert info["invalid"] is not None
        assert info["state_key"] == before and u.render_state() == render
        assert "progress" not in comps
        return
    if info["invalid"] is None:
        return
    moves, err = u.parse_moves(answer)
    assert err is None and info["invalid"] == "illegal"
    ref = replay(name, difficulty, seed, history, u.plan_turn(moves[:done]))
    assert ref["state_key"] == info["state_key"] and ref["invalid"] is None
    assert ref["reward_components"].get("progress", 0) == comps.get("progress", 0)


@pytest.mark.parametrize("name", NAMES)
def test_state_key_changes_iff_state_changes(name):
    """Random play: the key moves exactly when the rendered state does, never on a no-op."""
    for difficulty in DIFFICULTIES:
        env = make(name, difficulty=difficulty, max_turns=40)
        u = env.unwrapped
        changed = 0
        for seed in range(4):
            _, info = env.reset(seed=seed)
            rng = random.Random(seed)
            while True:
                key, render = u.state_key(), u.render_state()
                assert info["state_key"] == key
                _, _, term, trunc, info = env.step(u.random_turn(rng))
                moved = u.render_state() != render
                assert (info["state_key"] != key) == moved
                if info["moves_executed"] == 0:
                    assert not moved
                changed += moved
                if term or trunc:
                    break
        assert changed > 0


@pytest.mark.parametrize("name", NAMES)
def test_turn_format_and_limits(name):
    """One parse rule for every game: separators, the per-turn limit, the info keys."""
    env = make(name, moves_per_turn=1, invalid_penalty=0.25)
    env.reset(seed=1)
    u = env.unwrapped
    rng = random.Random(0)
    moves = [u.random_move(rng) for _ in range(2)]
    names = [u.move_name(m) for m in moves]
    for sep in (" || ", "\n", ", ", "; ", " | "):
        assert u.parse_moves(sep.join(names)) == (moves, None), sep
    before = u.state_key()
    reply, reward, *_, info = env.step(f"<answer>{' || '.join(names)}</answer>")
    assert "Too many moves" in reply and reward == -0.25
    assert info["moves_executed"] == 0 and info["invalid"] == "too_many"
    assert info["state_key"] == before
    reply, reward, *_, info = env.step("<answer>§§§ ??</answer>")
    assert "Cannot read" in reply and info["invalid"] == "parse" and reward == -0.25
    reply, *_, info = env.step("<answer>, || ;</answer>")
    assert "No move found" in reply and info["invalid"] == "parse"
    assert "one move per turn" in u.system_prompt()
    assert u.random_turn(random.Random(0)).startswith("<answer>")


def test_split_pieces():
    assert split_pieces("Up || left,down; [right]\n(a,b) 'x'|y") == [
        ["up"],
        ["left"],
        ["down"],
        ["right"],
        ["a", "b", "x"],
        ["y"],
    ]


@pytest.mark.parametrize("name", NAMES)
def test_bad_settings_are_user_errors(name):
    from tirgym.errors import TirgymError

    with pytest.raises(TirgymError, match="difficulty"):
        make(name, difficulty="extreme")
    with pytest.raises(TirgymError, match="moves_per_turn"):
        make(name, moves_per_turn=0)


@pytest.mark.parametrize("name", NAMES)
def test_play_cli_wins_with_the_solver_turns(name):
    from tirgym.cli import app

    env = make(name, difficulty="easy")
    env.reset(seed=1)
    turns = []
    while True:
        turn = env.unwrapped.solve()
        turns.append(turn[len("<answer>") : -len("</answer>")])
        _, _, term, trunc, _ = env.step(turn)
        if term or trunc:
            break
    kwargs = json.dumps({**GAMES[name].kwargs, "difficulty": "easy"})
    args = ["play", GAMES[name].env_id, "--seed", "1", "--kwargs", kwargs]
    result = CliRunner().invoke(app, args, input="\n\n".join(turns) + "\n\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("-- turn") == len(turns) and "(reward" in result.output
    assert "== WON" in result.output
