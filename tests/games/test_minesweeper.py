import pytest
from _grid_checks import (
    check_determinism,
    check_gym_api,
    check_move_property,
    make,
    move_strings,
    solver_win_rate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tirgym.envs.games.minesweeper import REVEALED, SIZES, no_guess_clearable

ENV = "tirgym/Minesweeper-v0"
WORDS = ["reveal 1 2", "flag 0 0", "unflag 3 3", "reveal 9 9", "open(2,3)", "2 4", "boom 1 1"]


def test_boards_have_mine_count_opening_and_no_guess():
    for difficulty, (side, mines) in SIZES.items():
        env = make(ENV, difficulty=difficulty)
        for seed in range(20):
            env.reset(seed=seed)
            u = env.unwrapped
            assert sum(u.mine) == mines
            opened = [p for p, st_ in enumerate(u.state) if st_ == REVEALED]
            assert opened and not any(u.mine[p] for p in opened)
            assert any(u.counts[p] == 0 for p in opened)  # the first click opened a region
            start = next(p for p in opened if u.counts[p] == 0)
            assert no_guess_clearable(side, u.nbrs, u.mine, u.counts, start, mines)


def test_parse_formats():
    env = make(ENV)
    u = env.unwrapped
    assert u.parse_moves("reveal 1 2 || flag(0,3), unflag 0 3; 4 5") == (
        [("reveal", 1, 2), ("flag", 0, 3), ("unflag", 0, 3), ("reveal", 4, 5)],
        None,
    )
    moves, err = u.parse_moves("reveal 1 2 || dig 3 3")
    assert moves == [] and "dig" in err


def test_mine_loses_flags_block_reveal():
    env = make(ENV, difficulty="medium", invalid_penalty=0.2)
    env.reset(seed=3)
    u = env.unwrapped
    mine = u.mine.index(1)
    r, c = divmod(mine, u.side)
    reply, reward, term, _, info = env.step(f"<answer>flag {r} {c} || reveal {r} {c}</answer>")
    assert "flagged" in reply and not term and info["moves_executed"] == 1 and reward == -0.2
    reply, _, term, _, info = env.step(f"<answer>unflag {r} {c} || reveal {r} {c}</answer>")
    assert term and not info["success"] and "X" in reply and "Boom" in reply


def test_revealing_twice_is_illegal():
    env = make(ENV)
    env.reset(seed=0)
    u = env.unwrapped
    p = u.state.index(REVEALED)
    before = u.state_key()
    reply, *_, info = env.step(f"<answer>reveal {p // u.side} {p % u.side}</answer>")
    assert "already revealed" in reply and u.state_key() == before


def test_determinism():
    check_determinism(ENV)


def test_check_env():
    check_gym_api(ENV)


def test_solver_fast():
    for difficulty in ("easy", "medium", "hard"):
        assert solver_win_rate(ENV, difficulty, range(10)) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_solver_200(difficulty):
    assert solver_win_rate(ENV, difficulty, range(200)) == 1.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), warmup=st.integers(0, 2), answer=move_strings(WORDS))
def test_invalid_moves_never_change_state(seed, warmup, answer):
    check_move_property(ENV, seed, warmup, answer, difficulty="medium")
