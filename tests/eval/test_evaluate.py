"""End to end through the real rollout engine: CLI outputs, resume, SIGKILL, compare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tirgym.cli import main as cli_main
from tirgym.episode import load_jsonl
from tirgym.eval import compare_dirs, evaluate, load_results, render_table
from tirgym.eval.metrics import episode_key

OUTPUTS = ("results.json", "episodes.jsonl", "report.md", "success.png", "pass_at_k.png")
REPO = Path(__file__).resolve().parents[2]


def run_cli(argv: list[str]) -> int:
    """tirgym's entry point in-process; returns its exit code."""
    try:
        cli_main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def strip_wall(obj):
    """results.json minus wall-time fields (the only ones allowed to differ between runs)."""
    if isinstance(obj, dict):
        return {k: strip_wall(v) for k, v in obj.items() if not k.startswith("wall")}
    if isinstance(obj, list):
        return [strip_wall(v) for v in obj]
    return obj


def assert_outputs(out: Path) -> dict:
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "success.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = load_results(out)
    assert res["schema"] == "tirgym.eval.results" and res["schema_version"] == 2
    assert "## Summary" in (out / "report.md").read_text()
    return res


def no_duplicates(out: Path) -> list:
    keys = [episode_key(e) for e in load_jsonl(out / "episodes.jsonl")]
    dup = [k for k, n in Counter(keys).items() if n > 1]
    assert not dup, f"duplicated episodes: {dup[:5]}"
    return keys


def test_cli_solver_smoke_writes_all_outputs(tmp_path: Path, capsys) -> None:
    out = tmp_path / "solver"
    assert (
        run_cli(
            ["eval", "--policy", "solver", "--suite", "smoke", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    res = assert_outputs(out)
    assert "overall" in capsys.readouterr().out
    n_tasks = sum(1 for _ in res["entries"]) * res["seeds"]["count"]
    assert res["overall"]["episodes"] == n_tasks * res["samples"] == len(no_duplicates(out))
    assert res["seeds"]["start"] >= 1_000_000_000  # held-out seeds by default
    # the solver is the ceiling on GuessNumber
    assert res["envs"]["GuessNumber"]["success"]["mean"] == 1.0
    assert set(res["overall"]["pass_at_k"]) == {str(k) for k in range(1, res["samples"] + 1)}


def test_resume_runs_only_missing_keys(tmp_path: Path) -> None:
    out = tmp_path / "r"
    ran: list = []
    kw = dict(envs=["tirgym/GuessNumber-v0"], samples=3, out_dir=out, on_episode=ran.append)
    first = evaluate("solver", seeds="0:4", **kw)
    assert len(ran) == 12 and first.results["overall"]["episodes"] == 12
    ran.clear()
    again = evaluate("solver", seeds="0:4", **kw)
    assert ran == [] and strip_wall(again.results) == strip_wall(first.results)
    more = evaluate("solver", seeds="0:6", **kw)  # extend: only the two new seeds run
    assert sorted({e.seed for e in ran}) == [4, 5] and len(ran) == 6
    assert more.results["overall"]["episodes"] == 18
    no_duplicates(out)
    # a different policy in the same dir is refused, not mixed in
    with pytest.raises(Exception, match="different policy"):
        evaluate("random", seeds="0:4", **kw)
    scalars = more.scalars()
    assert scalars["eval/overall/success"] == 1.0 and "eval/tirgym/GuessNumber-v0/pass@3" in scalars


SLOW_SUITE = """
name: evalkill
envs:
  - {id: tirgym/GuessNumber-v0, name: GuessBig, kwargs: {low: 1, high: 1000000, max_turns: 24}}
  - {id: tirgym/Maze-v0, name: Maze-easy, kwargs: {difficulty: easy}}
  - {id: tirgym/Hanoi-v0, name: Hanoi-easy, kwargs: {difficulty: easy}}
eval: {num_seeds: 100, samples: 2}
"""


def _eval_cmd(suite: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tirgym",
        "eval",
        "--policy",
        "solver",
        "--suite",
        str(suite),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--no-progress",
        "--no-charts",
    ]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    suite = tmp_path / "evalkill.yaml"
    suite.write_text(SLOW_SUITE)
    total = 3 * 100 * 2
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    clean = tmp_path / "clean"
    subprocess.run(_eval_cmd(suite, clean), check=True, cwd=REPO, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _eval_cmd(suite, killed),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ep_file = killed / "episodes.jsonl"
    deadline = time.monotonic() + 60
    lines = 0
    while time.monotonic() < deadline:
        if ep_file.exists():
            lines = ep_file.read_bytes().count(b"\n")
            if lines >= 40:
                break
        time.sleep(0.005)
    assert proc.poll() is None, "eval finished before it could be killed: make the suite bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survived = len(load_jsonl(ep_file))
    assert 40 <= survived < total
    assert not (killed / "results.json").exists()

    subprocess.run(_eval_cmd(suite, killed), check=True, cwd=REPO, env=env, capture_output=True)
    keys = no_duplicates(killed)
    assert len(keys) == total
    a = json.loads((clean / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert strip_wall(a) == strip_wall(b)
    assert a["overall"]["success"]["mean"] == 1.0  # the solver wins every task, killed or not


def test_random_baseline_and_compare(tmp_path: Path, capsys) -> None:
    kw = dict(envs=["tirgym/GuessNumber-v0"], seeds="0:12", samples=2)
    evaluate("solver", out_dir=tmp_path / "solver", **kw)
    rnd = evaluate("random", out_dir=tmp_path / "random", **kw)
    assert rnd.results["overall"]["success"]["mean"] < 0.5  # the floor
    cmp = compare_dirs([tmp_path / "random", tmp_path / "solver"])
    row = {r.env: r for r in cmp.rows}["overall"]
    assert row.values[1] == 1.0 and row.tests[0].diff > 0.5 and row.tests[0].significant()
    assert run_cli(["compare", str(tmp_path / "random"), str(tmp_path / "solver")]) == 0
    table = capsys.readouterr().out
    assert "overall" in table and " *" in table
    assert render_table(cmp).count("\n") >= 4


GSM8K_ROWS = [
    {"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"},
    {"question": "What is 4 * 6?", "answer": "#### 24"},
    {"question": "What is 10 - 7?", "answer": "#### 3"},
]


def _rows_file(tmp_path: Path, rows: list[dict], name: str = "rows.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_dataset_env_runs_each_row_once_by_default(tmp_path: Path, caplog) -> None:
    data = _rows_file(tmp_path, GSM8K_ROWS)
    kw = dict(envs=["tirgym/MathAnswer-v0"], env_kwargs={"dataset": data})
    res = evaluate("solver", out_dir=tmp_path / "once", **kw).results
    (entry,) = res["entries"]
    assert entry["num_tasks"] == 3 and entry["seeds"]["count"] == 3
    assert res["overall"]["tasks"] == 3 and res["overall"]["episodes"] == 3
    assert res["warnings"] == []
    # 20 seeds on 3 rows: warned, and the repeats are still 3 tasks, not 20
    caplog.set_level("WARNING")
    wrapped = evaluate("solver", seeds="0:20", out_dir=tmp_path / "wrap", **kw).results
    assert wrapped["overall"]["episodes"] == 20 and wrapped["overall"]["tasks"] == 3
    assert any("20 seeds wrap around its 3 dataset rows" in w for w in wrapped["warnings"])
    assert "wrap around" in caplog.text  # said before the run, not only in the files
    assert "## Warnings" in (tmp_path / "wrap" / "report.md").read_text()


def test_code_dataset_env_reports_its_rows(tmp_path: Path) -> None:
    import tirgym

    rows = [
        {"task_id": i, "text": "Return x.", "code": "def f(x):\n    return x", "test_list": []}
        for i in range(4)
    ]
    data = _rows_file(tmp_path, [{**r, "test_list": ["assert f(1) == 1"]} for r in rows])
    env = tirgym.make("tirgym/CodeTask-v0", dataset=data)
    try:
        assert env.unwrapped.num_tasks == 4
    finally:
        env.close()
    assert tirgym.make("tirgym/GuessNumber-v0").unwrapped.num_tasks is None


def test_samples_at_temperature_zero_warn(tmp_path: Path) -> None:
    kw = dict(envs=["tirgym/GuessNumber-v0"], seeds="0:3", out_dir=tmp_path / "t0")
    res = evaluate("solver", samples=3, **kw).results
    assert res["sampling"]["temperature"] == 0.0
    (w,) = res["warnings"]
    assert "3 samples per task at temperature 0" in w
    report = (tmp_path / "t0" / "report.md").read_text()
    assert "## Warnings" in report and "Wilson score at the effective sample size" in report
    # one estimate, one interval: success@1 is pass@1
    o = res["overall"]
    assert o["pass_at_k"]["1"]["mean"] == o["success"]["mean"]
    assert o["pass_at_k"]["1"]["ci"] == o["success"]["ci"]


def test_compare_shows_common_task_means_and_warns_on_settings(tmp_path: Path) -> None:
    """The baseline ran 12 tasks, the other 4 of them with more samples: the difference is
    made of the baseline's mean on those 4 tasks, and that mean is what the table shows."""
    env = ["tirgym/GuessNumber-v0"]
    base = evaluate("random", envs=env, seeds="0:12", samples=1, out_dir=tmp_path / "rnd")
    evaluate("solver", envs=env, seeds="0:4", samples=2, out_dir=tmp_path / "sol")
    cmp = compare_dirs([tmp_path / "rnd", tmp_path / "sol"])
    row = {r.env: r for r in cmp.rows}["overall"]
    common = [float(e.success) for e in base.episodes if e.seed < 4]
    test = row.tests[0]
    assert test.n_tasks == 4 and test.mean_a == pytest.approx(sum(common) / 4)
    assert test.mean_b == 1.0 and test.diff == pytest.approx(1.0 - test.mean_a)
    assert row.values[0] == base.results["overall"]["success"]["mean"]  # its own 12 tasks
    (w,) = cmp.warnings
    assert "samples 1 vs 2" in w
    table = render_table(cmp)
    assert table.startswith("**warning**: ")
    assert f"{100 * test.mean_a:.1f}% → 100.0%" in table
    vs = cmp.to_dict()["rows"][-1]["vs_baseline"][0]
    assert vs["baseline_mean"] == test.mean_a and vs["mean"] == 1.0
    # the same settings: no warnings
    evaluate("solver", envs=env, seeds="0:4", samples=1, out_dir=tmp_path / "sol1")
    assert compare_dirs([tmp_path / "rnd", tmp_path / "sol1"]).warnings == []
