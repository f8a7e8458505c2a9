import subprocess
import sys

import pytest

import tirgym
from tirgym.cli import main
from tirgym.envs.base import Outcome, TextEnv


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


# ---- bad input: one line, exit 2, never 0% success --------------------------------------


@pytest.mark.parametrize("args,needle", [
    (["rollout", "--env", "tirgym/GuessNumber-v0", "--n", "0"], "--n must be >= 1, got 0"),
    (["rollout", "--env", "tirgym/GuessNumber-v0", "--n", "-3"], "--n must be >= 1, got -3"),
    (["rollout", "--env", "tirgym/GuessNumber-v0", "--max-turns", "0"], "--max-turns must be >= 1"),
    (["rollout", "--env", "tirgym/Maze-v0", "--kwargs", '{"difficuly": "easy"}'],
     "Did you mean 'difficulty'?"),
    (["rollout", "--env", "tirgym/GuessNumber-v0", "--kwargs", '{"low": "a"}'], "low takes int"),
    (["rollout", "--env", "tirgym/GuessNumber-v0", "--kwargs", '{"low": 10, "high": 1}'],
     "all 1 episodes errored; first: reset failed: ValueError"),
    (["eval", "--policy", "solver", "--env", "tirgym/GuessNumber-v0", "--seeds", "2",
      "--kwargs", '{"low": 10, "high": 1}', "--no-charts", "--no-progress", "--out", "{tmp}/ev"],
     "refuses kwargs"),
    (["rollout", "--env", "tirgym/GuessNumber-v0", "--temperature", "-1"], "--temperature must be >= 0"),
    (["eval", "--policy", "random", "--env", "tirgym/GuessNumber-v0", "--top-p", "0", "--out", "{tmp}/ev"],
     "--top-p must be in (0, 1]"),
    (["play", "tirgym/GuessNumber-v0", "--seed", "-1"], "--seed must be >= 0"),
    (["demos", "--suite", "smoke", "--n", "0", "--out", "{tmp}/d.jsonl"], "--n must be >= 1"),
    (["model", "tiny", "--out", "{tmp}/m", "--heads", "0"], "--heads must be >= 1"),
    (["model", "tiny", "--out", "/dev/null/m"], "Not a directory"),
    (["show", "pyproject.toml"], "is not an episodes JSONL file"),
])
def test_bad_input_is_one_line_exit_2(args, needle, tmp_path):
    r = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_show_a_results_json_is_one_line(tmp_path):
    f = tmp_path / "results.json"
    f.write_text('{\n  "schema": 3,\n  "envs": {}\n}\n')
    r = run_cli("show", str(f))
    assert r.returncode == 2 and "not an episodes JSONL file" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [
    ["show", "{ep}", "--tokenizer", "{missing}"],
    ["rollout", "--env", "tirgym/GuessNumber-v0", "--policy", "hf:{missing}"],
    ["rollout", "--env", "tirgym/GuessNumber-v0", "--tokenizer", "{missing}"],
    ["eval", "--model", "{missing}", "--env", "tirgym/GuessNumber-v0", "--out", "{tmp}/ev"],
    ["demos", "--suite", "smoke", "--n", "1", "--tokenizer", "{missing}", "--out", "{tmp}/d.jsonl"],
])
def test_a_missing_local_model_path_says_no_such_directory(args, tmp_path):
    ep = tmp_path / "eps.jsonl"
    assert run_cli("rollout", "--env", "tirgym/GuessNumber-v0", "--out", str(ep)).returncode == 0
    subs = {"{ep}": str(ep), "{missing}": str(tmp_path / "runs" / "nonexist"), "{tmp}": str(tmp_path)}
    for k, v in subs.items():
        args = [a.replace(k, v) for a in args]
    r = run_cli(*args)
    assert r.returncode == 2 and "No such directory" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


class FlakyEnv(TextEnv):
    """Tasks cannot be set up for the seeds in `bad_seeds`."""

    def __init__(self, bad_seeds: tuple[int, ...] = (1,), **kwargs):
        super().__init__(**kwargs)
        self.bad_seeds = tuple(bad_seeds)

    def generate_task(self, rng, options):
        if self.task_seed in self.bad_seeds or not self.bad_seeds:
            raise RuntimeError(f"no task for seed {self.task_seed}")
        return "say x"

    def on_answer(self, answer):
        return Outcome(reply="ok", terminated=True, success=True)

    def solve(self):
        return "<answer>x</answer>"


tirgym.register("test/Flaky-v0", f"{__name__}:FlakyEnv", override=True)


def test_rollout_counts_errored_episodes_apart(capsys):
    main(["rollout", "--env", "test/Flaky-v0", "--n", "3"])
    out, err = capsys.readouterr()
    assert "success 2/3" in out and "errored 1" in out
    assert "1 of 3 episodes errored; first: reset failed: RuntimeError: no task for seed 1" in err


def test_eval_where_every_episode_errored_exits_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--policy", "solver", "--env", "test/Flaky-v0", "--kwargs", '{"bad_seeds": []}',
              "--seeds", "3", "--no-charts", "--no-progress", "--out", str(tmp_path / "ev")])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert "(3 episodes, 3 errored)" in out
    assert err.strip().splitlines()[-1].startswith("error: all 3 episodes errored; first: reset failed: RuntimeError")


# ---- info, play -----------------------------------------------------------------------


def test_info_lists_kwargs_with_defaults_and_choices(capsys):
    main(["info", "tirgym/Maze-v0"])
    out = capsys.readouterr().out
    kwargs = out.split("kwargs (", 1)[1].split("\n\n", 1)[0]
    assert "difficulty" in kwargs and "default 'easy'; one of 'easy', 'medium', 'hard'" in kwargs
    assert "step_cost" in kwargs and "default 0.0" in kwargs


def test_play_sends_turns_the_way_the_env_reads_them():
    import tirgym
    from tirgym.cli import _as_turn
    from tirgym.protocol import parse_turn

    tir = tirgym.make("tirgym/MathTIR-v0").unwrapped  # a fenced python block calls the tool
    block = "```python\nprint(6 * 7)\n```"
    assert _as_turn(block, tir) == block
    assert parse_turn(_as_turn(block, tir), tir.turn_format).action == "tool_call"
    maze = tirgym.make("tirgym/Maze-v0").unwrapped
    assert _as_turn("up", maze) == "<answer>up</answer>"
    assert _as_turn("<answer>up</answer>", maze) == "<answer>up</answer>"
