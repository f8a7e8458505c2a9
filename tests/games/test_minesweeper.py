import tirgym
from tirgym.envs.games.minesweeper import REVEALED, SIZES, no_guess_clearable

make = tirgym.make
ENV = "tirgym/Minesweeper-v0"


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
    assert u.parse_moves("reveal 1 2 flag 0 3 4 5")[0] == [
        ("reveal", 1, 2),
        ("flag", 0, 3),
        ("reveal", 4, 5),
    ]


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
