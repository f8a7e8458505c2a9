import json
import subprocess
import sys

import pytest

from tirgym.envs.math.generators import (
    DIFFICULTIES,
    GENERATORS,
    MathTask,
    check_countdown,
    generate,
    generate_mixed,
    load_math_dataset,
)
from tirgym.errors import TirgymError
from tirgym.rewards.math import math_equal


@pytest.mark.parametrize("family", list(GENERATORS))
def test_generators_are_deterministic_and_vary_with_the_seed(family):
    for difficulty in DIFFICULTIES:
        a, b = generate(family, 7, difficulty), generate(family, 7, difficulty)
        assert a == b and a.solution_code == b.solution_code
        assert isinstance(a, MathTask) and a.family == family and a.difficulty == difficulty
        questions = {generate(family, seed, difficulty).question for seed in range(8)}
        assert len(questions) >= 4


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("family", list(GENERATORS))
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_reference_solution_prints_the_gold(family, difficulty):
    for seed in (0, 1):
        task = generate(family, seed, difficulty)
        printed = _run(task.solution_code)
        assert math_equal(prediction=printed, gold=task.answer), (
            task.question,
            printed,
            task.answer,
        )
        if family == "countdown":
            numbers, target = task.meta["numbers"], task.meta["target"]
            assert check_countdown(task.answer, numbers, target)
            assert check_countdown(printed, numbers, target)


def test_difficulty_changes_the_size_of_the_problem():
    easy = generate("arithmetic", 3, "easy").answer
    hard = generate("arithmetic", 3, "hard").answer
    assert len(hard) > len(easy) + 10
    assert len(generate("countdown", 3, "hard").meta["numbers"]) > len(
        generate("countdown", 3, "easy").meta["numbers"]
    )


def test_bad_family_or_difficulty_is_a_user_error():
    with pytest.raises(TirgymError):
        generate("topology", 0)
    with pytest.raises(TirgymError):
        generate("fractions", 0, "extreme")


def test_generate_mixed_cycles_families():
    assert {generate_mixed(s).family for s in range(len(GENERATORS))} == set(GENERATORS)


def test_check_countdown_rules():
    assert check_countdown("(8 * 9) + 8", [8, 9, 8], 80)
    assert check_countdown(r"8 \times 9 + 8", [8, 9, 8], 80)
    assert not check_countdown("8 * 9 + 8", [8, 9, 8], 81)
    assert not check_countdown("8 * 9 + 8 + 8", [8, 9, 8], 88)  # 8 used three times
    assert not check_countdown("2 ** 3", [2, 3], 8)
    assert not check_countdown("__import__('os').getcwd()", [1], 1)
    assert not check_countdown("1 / 0", [1, 0], 1)
    assert check_countdown("6 / 4 * 4", [6, 4, 4], 6)  # exact, fractions allowed midway


def test_loader_reads_gsm8k_and_math_formats(tmp_path):
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"question": "Natalia sold 48 clips...", "answer": "48 + 24 = 72\n#### 72"},
                {"question": "How much?", "answer": "So it costs 1,200.\n#### 1,200"},
            ]
        )
    )
    tasks = load_math_dataset(gsm)
    assert [t.answer for t in tasks] == ["72", "1200"]
    assert tasks[0].family == "gsm8k" and _run(tasks[0].solution_code) == "72"

    math_rows = [
        {
            "problem": "Half of one?",
            "solution": r"It is $\boxed{\frac{1}{2}}$.",
            "level": "Level 1",
            "type": "Algebra",
        },
        {"problem": "No answer here", "solution": "We give up."},
        {"problem": "Given", "solution": "...", "answer": r"\sqrt{2}"},
    ]
    math_file = tmp_path / "math.json"
    math_file.write_text(json.dumps(math_rows))
    tasks = load_math_dataset(math_file)
    assert [t.answer for t in tasks] == [r"\frac{1}{2}", r"\sqrt{2}"]
    assert tasks[0].family == "Algebra" and tasks[0].difficulty == "Level 1"
    assert math_equal(prediction="0.5", gold=tasks[0].answer)

    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "test.jsonl").write_text(json.dumps(math_rows[0]) + "\n")
    (folder / "train.jsonl").write_text(json.dumps(math_rows[2]) + "\n")
    assert [t.answer for t in load_math_dataset(folder)] == [r"\frac{1}{2}"]
    assert [t.answer for t in load_math_dataset(folder, split="train")] == [r"\sqrt{2}"]


def test_loader_errors_are_user_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(TirgymError):
        load_math_dataset(bad)
    with pytest.raises(TirgymError):
        load_math_dataset(tmp_path / "data.csv")


def test_loader_reads_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "q", "answer": "#### 5"}]), path)
    assert [t.answer for t in load_math_dataset(path)] == ["5"]
