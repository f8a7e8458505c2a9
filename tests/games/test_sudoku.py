"""Sudoku: unique-solution generation, exact solver, legal-move rules, invariants, `tirgym play`."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import tirgym
from tirgym.envs.games.sudoku import LEVELS, SudokuEnv, make_puzzle, random_full_grid, solve_grid

DIFFS = ("easy", "medium", "hard")


def is_valid_solution(grid, n):
    b = int(n**0.5)
    units = [[r * n + c for c in range(n)] for r in range(n)]
    units += [[r * n + c for r in range(n)] for c in range(n)]
    units += [
        [(br + dr) * n + bc + dc for dr in range(b) for dc in range(b)]
        for br in range(0, n, b)
        for bc in range(0, n, b)
    ]
    return all(sorted(grid[i] for i in u) == list(range(1, n + 1)) for u in units)


@pytest.mark.parametrize("n", [4, 9])
def test_full_grids_are_valid(n):
    for seed in range(20):
        assert is_valid_solution(random_full_grid(np.random.default_rng(seed), n), n)


def test_solver_counts_solutions():
    assert solve_grid([0] * 16, 4, limit=5).__len__() == 5
    grid = random_full_grid(np.random.default_rng(0), 9)
    assert solve_grid(grid, 9) == [grid]
    broken = list(grid)
    broken[1] = broken[0]
    assert solve_grid(broken, 9) == []


@pytest.mark.parametrize("difficulty", DIFFS)
def test_generation_unique_and_deterministic(difficulty):
    n, target = LEVELS[difficulty]
    for seed in range(10):
        puzzle, solution = make_puzzle(np.random.default_rng(seed), n, target)
        givens = sum(1 for v in puzzle if v)
        assert target <= givens <= target + 3
        assert solve_grid(puzzle, n, limit=3) == [solution]
        assert is_valid_solution(solution, n)
        assert all(p in (0, s) for p, s in zip(puzzle, solution, strict=True))
    env = tirgym.make("tirgym/Sudoku-v0", difficulty=difficulty)
    a, ia = env.reset(seed=5)
    b, ib = env.reset(seed=5)
    assert a == b and ia["state_key"] == ib["state_key"]
    assert env.reset(seed=6)[1]["state_key"] != ia["state_key"]


def test_solver_repairs_wrong_entries():
    env = SudokuEnv(difficulty="medium", moves_per_turn=81, max_turns=5)
    env.reset(seed=2)
    blank = env.cells.index(0)
    wrong = next(
        v
        for v in range(1, 10)
        if v != env.solution[blank]
        and env.play_move(f"{'ABCDEFGHI'[blank % 9]}{blank // 9 + 1} {v}") is None
    )
    assert env.cells[blank] == wrong
    assert env.solve().startswith("<answer>clear ")
    _, _, term, _, info = env.step(env.solve())
    assert term and info["success"]


def test_rules():
    env = SudokuEnv(difficulty="easy", invalid_penalty=0.2, progress_reward=1.0, max_turns=20)
    env.reset(seed=0)
    given_i = next(i for i, v in enumerate(env.puzzle) if v)
    name = f"{'ABCD'[given_i % 4]}{given_i // 4 + 1}"
    assert "given" in env.play_move(f"{name} 1")
    blank = env.cells.index(0)
    bname = f"{'ABCD'[blank % 4]}{blank // 4 + 1}"
    peer_digit = next(env.cells[p] for p in env.geom.peers[blank] if env.cells[p])
    assert "already at" in env.play_move(f"{bname} {peer_digit}")
    assert "1 to 4" in env.play_move(f"{bname} 7")
    assert "off the 4x4 board" in env.play_move("E1 1")
    assert "already blank" in env.play_move(f"clear {bname}")
    right = env.solution[blank]
    _, _, _, _, info = env.step(f"<answer>{bname}={right}</answer>")
    assert info["reward_components"]["progress"] == pytest.approx(1 / env.puzzle.count(0))
    assert env.cells[blank] == right
    _, _, _, _, info = env.step(f"<answer>clear {bname}</answer>")
    assert env.cells[blank] == 0 and info["reward_components"]["progress"] < 0
    _, _, _, _, info = env.step("<answer>nonsense</answer>")
    assert info["reward_components"] == {"invalid": -0.2}


def test_cli_play_solves_easy_sudoku():
    from tirgym.cli import app

    env = SudokuEnv(difficulty="easy", moves_per_turn=16, max_turns=40)
    env.reset(seed=0)
    moves = env.solve()[len("<answer>") : -len("</answer>")]
    result = CliRunner().invoke(
        app,
        [
            "play",
            "tirgym/Sudoku-v0",
            "--seed",
            "0",
            "--kwargs",
            '{"difficulty": "easy", "moves_per_turn": 16}',
        ],
        input=moves + "\n\n",
    )
    assert result.exit_code == 0, result.output
    assert "WON" in result.output


MOVES = st.one_of(
    st.text(max_size=10),
    st.builds(
        lambda c, r, d: f"{c}{r} {d}",
        st.sampled_from("ABCDEIJa"),
        st.integers(0, 10),
        st.sampled_from("0123456789."),
    ),
    st.builds(lambda c, r: f"clear {c}{r}", st.sampled_from("ABCDEa"), st.integers(0, 10)),
)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 30),
    moves=st.lists(MOVES, min_size=1, max_size=3),
    size=st.sampled_from([4, 9]),
)
def test_invalid_moves_change_nothing(seed, moves, size):
    env = SudokuEnv(size=size, progress_reward=1.0, max_turns=10)
    env.reset(seed=seed)
    for move in moves:
        key = env.state_key()
        if env.play_move(move) is not None:
            assert env.state_key() == key
        assert all(p in (0, c) for p, c in zip(env.puzzle, env.cells, strict=True))  # givens stay
    env.reset(seed=seed)
    before = env.state_key()
    _, _, _, _, info = env.step("<answer>" + " || ".join(moves) + "</answer>")
    if info.get("invalid") and not info.get("moves_executed"):
        assert info["state_key"] == before and "progress" not in info["reward_components"]
