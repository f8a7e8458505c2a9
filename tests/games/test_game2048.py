import tirgym
from tirgym.envs.games.game2048 import TARGETS, slide, slide_line

make = tirgym.make
ENV = "tirgym/Game2048-v0"


def test_slide_rules():
    assert slide_line((1, 1, 1, 1)) == ((2, 2, 0, 0), 8)
    assert slide_line((1, 1, 2, 0)) == ((2, 2, 0, 0), 4)  # a merged tile does not merge again
    assert slide_line((0, 2, 0, 2)) == ((3, 0, 0, 0), 8)
    assert slide_line((1, 2, 3, 4)) == ((1, 2, 3, 4), 0)
    board = [1, 0, 0, 1] + [0] * 12
    assert slide(board, "right")[0][:4] == [0, 0, 0, 2]
    assert slide(board, "up") is None


def test_start_board_and_targets():
    assert [TARGETS[d] for d in ("easy", "medium", "hard")] == [6, 7, 8]
    env = make(ENV)
    for seed in range(10):
        env.reset(seed=seed)
        tiles = [x for x in env.unwrapped.board if x]
        assert len(tiles) == 2 and set(tiles) <= {1, 2}


def test_illegal_move_spawns_nothing_and_loss_ends():
    env = make(ENV, difficulty="hard", invalid_penalty=0.1)
    env.reset(seed=0)
    u = env.unwrapped
    u.board = [1, 0, 0, 0] + [0] * 12
    before = u.state_key()
    reply, reward, *_ = env.step("<answer>left</answer>")
    assert "no tile can move" in reply and u.state_key() == before and reward == -0.1
    # after this move the only empty cell gets the new tile and no move is left
    u.board = [1, 2, 1, 2, 2, 1, 2, 1, 3, 2, 1, 2, 4, 0, 5, 6]
    reply, _, term, _, info = env.step("<answer>right</answer>")
    assert term and not info["success"] and "You lost" in reply
    assert 0 not in u.board and all(
        slide(u.board, m) is None for m in ("up", "down", "left", "right")
    )


def test_reaching_target_wins():
    env = make(ENV, difficulty="easy")
    env.reset(seed=0)
    u = env.unwrapped
    u.board = [5, 5] + [0] * 14
    _, _, term, _, info = env.step("<answer>left</answer>")
    assert term and info["success"] and info["outcome_reward"] == 1.0
