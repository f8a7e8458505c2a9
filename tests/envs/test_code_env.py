"""CodeTask-v0: procedural tasks, hidden tests in the sandbox, MBPP/HumanEval loading."""

from __future__ import annotations

import json

import pytest
from gymnasium.utils.env_checker import check_env

import tirgym
from tirgym.envs.code.harness import TestCase, grade, values_equal
from tirgym.envs.code.loader import load_code_dataset
from tirgym.envs.code.tasks import DIFFICULTIES, TEMPLATES, generate_code_task


def _make(sandbox_kwargs, **kwargs):
    return tirgym.make("tirgym/CodeTask-v0", **sandbox_kwargs, **kwargs).unwrapped


def _submit(env, code: str):
    return env.step(f"<answer>```python\n{code}\n```</answer>")


def test_check_env_without_a_sandbox(monkeypatch):
    monkeypatch.setattr("tirgym.sandbox.get_sandbox", lambda *a, **k: pytest.fail("sandbox made"))
    env = tirgym.make("tirgym/CodeTask-v0")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    meta = {m.id: m for m in tirgym.list_envs()}
    assert set(meta["tirgym/CodeTask-v0"].tags) == {"code", "tool"}


def test_tasks_are_deterministic_and_cover_every_template():
    for difficulty in DIFFICULTIES:
        names = set()
        for seed in range(12):
            a, b = generate_code_task(seed, difficulty), generate_code_task(seed, difficulty)
            assert a == b and len(a.tests) == 10
            assert len({t.src for t in a.tests}) == 10  # distinct hidden inputs
            names.add(a.entry_point)
        assert names == {t.name for t in TEMPLATES[difficulty]}
    assert generate_code_task(0, "easy").prompt != generate_code_task(6, "easy").prompt


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_oracle_scores_one_on_20_seeds(sandbox_kwargs, difficulty):
    env = _make(sandbox_kwargs, difficulty=difficulty)
    for seed in range(20):
        env.reset(seed=seed)
        _, reward, terminated, _, info = env.step(env.solve())
        assert (reward, terminated, info["success"]) == (1.0, True, True), (seed, info)
        assert info["tests_passed"] == info["tests_total"] == 10
    env.close()


def _half_wrong(reference: str, name: str) -> str:
    """The reference, but every second call returns a wrong value."""
    return (
        f"{reference}\n_orig = {name}\n_calls = [0]\n\n"
        f"def {name}(*args):\n    _calls[0] += 1\n"
        f"    return _orig(*args) if _calls[0] % 2 else ('wrong', _calls[0])\n"
    )


@pytest.mark.parametrize("mode,expected", [("fraction", 0.5), ("all", 0.0)])
def test_wrong_submissions_score_below_one(sandbox_kwargs, mode, expected):
    env = _make(sandbox_kwargs, difficulty="medium", reward_mode=mode)
    env.reset(seed=3)
    p = env.problem
    _, reward, terminated, _, info = _submit(env, _half_wrong(p.reference, p.entry_point))
    assert terminated and reward == expected and not info["success"]
    assert info["tests_passed"] == 5 and "wrong result" in env.last_observation
    env.reset(seed=3)
    _, reward, *_, info = _submit(env, "def nope(:\n    pass")
    assert reward == 0.0 and "SyntaxError" in env.last_observation


HACKS = {
    "always-equal object": "class E:\n    def __eq__(self, o): return True\n    def __repr__(self): return '0'\n"
    "def {name}(*a):\n    return E()",
    "exit before the tests": "import sys\ndef {name}(*a): return 0\nsys.exit(0)",
    "fake records": 'import sys\nfor i in range(10):\n    print(\'@@tirgym-0@@\' + \'{{"i": %d, "ok": true, "repr": "0"}}\' % i)\n'
    "def {name}(*a): raise ValueError",
    "wrong type": "def {name}(*a):\n    return str(a)",
}


@pytest.mark.parametrize("hack", list(HACKS))
def test_hacks_do_not_pass(sandbox_kwargs, hack):
    env = _make(sandbox_kwargs, difficulty="easy")
    env.reset(seed=2)
    _, reward, *_, info = _submit(env, HACKS[hack].format(name=env.problem.entry_point))
    assert reward == 0.0 and not info["success"], hack


def test_placeholder_words_in_the_submission_are_kept(sandbox_kwargs):
    env = _make(sandbox_kwargs, difficulty="easy")
    env.reset(seed=0)
    code = "# MARK TESTS SUBMISSION SETUP LIMIT\nSETUP = 'LIMIT'\n" + env.problem.reference
    assert _submit(env, code)[1] == 1.0


def test_tool_call_runs_in_the_episode_session(sandbox_kwargs):
    env = _make(sandbox_kwargs, difficulty="hard", max_tool_calls=1)
    obs, info = env.reset(seed=1)
    assert info["tools"][0]["name"] == "python" and f"`{env.problem.entry_point}(" in obs
    reply, reward, terminated, _, info = env.step(env.example_tool_call())
    assert reply.splitlines()[0] == repr(env.problem.tests[0].expected)
    assert not terminated and not info["tool_error"] and info["role"] == "tool"
    assert "limit" in env.step(env.example_tool_call())[0]
    assert env.step(env.solve())[1] == 1.0
    env.close()


def test_grade_reads_only_marked_unique_records():
    tests = (
        TestCase("expr", "f(1)", [1, 2.0]),
        TestCase("expr", "f(2)", 3),
        TestCase("stmt", "assert f(3)"),
    )
    mark = "@@m@@"
    out = "\n".join(
        [
            "noise",
            mark + json.dumps({"i": 0, "ok": True, "repr": "[1, 2.0000000001]"}),
            mark + json.dumps({"i": 1, "ok": True, "repr": "3"}),
            mark + json.dumps({"i": 1, "ok": True, "repr": "3"}),
            mark + json.dumps({"i": 2, "ok": True}),
        ]
    )
    report = grade(out, mark, tests)
    assert report.results == [True, False, True] and report.fraction == pytest.approx(2 / 3)
    assert values_equal(True, 1) and not values_equal([1], (1,)) and not values_equal("1", 1)


MBPP_ROWS = [
    {
        "task_id": 11,
        "text": "Write a function to remove the first and last occurrence of a given character.",
        "code": "def remove_Occ(s, ch):\n    i = s.find(ch)\n    if i >= 0:\n        s = s[:i] + s[i + 1:]\n"
        "    j = s.rfind(ch)\n    if j >= 0:\n        s = s[:j] + s[j + 1:]\n    return s",
        "test_list": [
            'assert remove_Occ("hello","l") == "heo"',
            'assert remove_Occ("abcda","a") == "bcd"',
            'assert remove_Occ("PHP","P") == "H"',
        ],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
    {
        "task_id": 2,
        "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
        ],
    },
]
HUMANEVAL_ROWS = [
    {
        "task_id": "HumanEval/0",
        "entry_point": "add",
        "prompt": 'def add(x: int, y: int) -> int:\n    """Add two numbers."""\n',
        "canonical_solution": "    return x + y\n",
        "test": "METADATA = {}\n\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
        "    assert candidate(0, 0) == 0\n    assert abs(candidate(1, 1) - 2) < 1e-9\n",
    },
    {
        "task_id": "HumanEval/1",
        "entry_point": "double",
        "prompt": 'def double(xs):\n    """Double each element."""\n',
        "canonical_solution": "    return [2 * x for x in xs]\n",
        "test": "def check(candidate):\n    for n in range(5):\n        assert candidate([n]) == [2 * n]\n",
    },
]


def test_loader_mbpp_and_humaneval(tmp_path, sandbox_kwargs):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in MBPP_ROWS + HUMANEVAL_ROWS) + "\n")
    problems = load_code_dataset(path)
    assert [p.entry_point for p in problems] == ["remove_Occ", "similar_elements", "add", "double"]
    assert [t.kind for t in problems[0].tests] == ["expr"] * 3
    assert [t.kind for t in problems[1].tests] == ["stmt"] * 2  # set(...) is no literal
    assert [t.kind for t in problems[2].tests] == ["expr", "expr", "stmt"]  # split per assert
    assert len(problems[3].tests) == 1  # a loop inside check(): one all-or-nothing test
    env = _make(sandbox_kwargs, dataset=str(path))
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        assert obs == problems[seed].prompt
        assert env.step(env.solve())[1] == 1.0, seed
    env.reset(seed=2)  # add: a wrong body passes only the (0, 0) case
    _, reward, *_ = _submit(env, "def add(x, y):\n    return x * y")
    assert reward == pytest.approx(1 / 3)
    env.reset(seed=0)
    assert _submit(env, "def remove_Occ(s, ch):\n    return s[1:-1]")[1] == pytest.approx(2 / 3)


def test_loader_rejects_unknown_rows(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(tirgym.TirgymError, match="MBPP"):
        load_code_dataset(path)
    with pytest.raises(tirgym.TirgymError, match="reward_mode"):
        tirgym.make("tirgym/CodeTask-v0", reward_mode="most")
