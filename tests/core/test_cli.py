import subprocess
import sys

import pytest

from tirgym.cli import main


def run_cli(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "tirgym", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_list_shows_guess_number(capsys):
    main(["list"])
    assert "tirgym/GuessNumber-v0" in capsys.readouterr().out


def test_info(capsys):
    main(["info", "tirgym/GuessNumber-v0"])
    out = capsys.readouterr().out
    assert "max turns:" in out and "<answer>" in out


@pytest.mark.parametrize("args,needle", [
    (["info", "tirgym/Nope-v0"], "Unknown env id"),
    (["list", "--tag", "no-such-tag"], "no env has tag"),
    (["play", "tirgym/GuessNumber-v0", "--kwargs", "{bad"], "--kwargs must be a JSON object"),
    (["list", "--bogus"], "No such option"),
])
def test_errors_are_one_line_exit_2(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_play_to_a_win_through_stdin():
    import tirgym

    env = tirgym.make("tirgym/GuessNumber-v0")
    env.reset(seed=1)
    moves = []
    while True:
        move = env.unwrapped.solve()
        moves.append(move)
        *_, term, trunc, info = env.step(move)
        if term or trunc:
            break
    assert info["success"]
    r = run_cli("play", "tirgym/GuessNumber-v0", "--seed", "1", stdin="".join(m + "\n\n" for m in moves))
    assert r.returncode == 0, r.stderr
    assert "== WON" in r.stdout and "Correct!" in r.stdout


def test_play_bare_moves_are_wrapped():
    r = run_cli("play", "tirgym/GuessNumber-v0", "--seed", "1", stdin="50\n\n")
    assert "50 is too" in r.stdout
