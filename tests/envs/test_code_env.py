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


# Rewrites the judge's test list through frame introspection: every frame above the
# submission that holds a list named `tests` gets trivially passing statements.
FRAME_HACK = """
import sys
frame = sys._getframe(1)
while frame is not None:
    tests = frame.f_locals.get("tests")
    if isinstance(tests, list):
        for k in range(len(tests)):
            tests[k] = ["stmt", "pass"]
    frame = frame.f_back
"""
# Finds the record marker in any frame, prints a pass record for every test (to stdout and
# to the parent's stdout through /proc) and exits before any test runs.
FAKE_RECORDS_HACK = """
import json, os, sys
mark = None
frame = sys._getframe(1)
while frame is not None and mark is None:
    scope = frame.f_locals
    mark = scope.get("mark") or (scope.get("config") or {}).get("mark")
    frame = frame.f_back
lines = "".join(mark + json.dumps({"i": i, "ok": True, "value": 0}) + "\\n" for i in range(20))
print(lines, flush=True)
try:
    os.write(os.open(f"/proc/{os.getppid()}/fd/1", os.O_WRONLY), lines.encode())
except OSError:
    pass
os._exit(0)
"""
STMT_ROWS = [
    {
        "task_id": 2,
        "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
            "assert not similar_elements((1, 2),(3, 4))",
        ],
    }
]


@pytest.mark.parametrize("hack", [FRAME_HACK, FAKE_RECORDS_HACK], ids=["frame", "fake-records"])
def test_the_submission_cannot_reach_the_tests_or_the_record_channel(
    tmp_path, sandbox_kwargs, hack
):
    if hack is FAKE_RECORDS_HACK and sandbox_kwargs["sandbox"] == "local":
        pytest.skip("local runs code unsandboxed: the host user may open any /proc/PID/fd")
    path = tmp_path / "stmt.jsonl"
    path.write_text(json.dumps(STMT_ROWS[0]) + "\n")
    env = _make(sandbox_kwargs, dataset=str(path))
    env.reset(seed=0)
    wrong = "def similar_elements(a, b):\n    return (0,)\n"
    _, reward, *_, info = _submit(env, hack + wrong)
    assert reward == 0.0 and not info["success"]
    env.close()
    env = _make(sandbox_kwargs, difficulty="easy")  # procedural tasks (expr tests) too
    env.reset(seed=1)
    wrong = f"def {env.problem.entry_point}(*a):\n    return ('wrong',)\n"
    _, reward, *_ = _submit(env, hack + wrong)
    assert reward == 0.0
    env.reset(seed=1)
    assert env.step(env.solve())[1] == 1.0  # an honest solution still scores 1
    env.close()


def _problem(tests, setup="", entry="f"):
    from tirgym.envs.code.tasks import CodeProblem

    return CodeProblem("t", "", entry, "", tuple(tests), setup, "mbpp")


def _judge(sandbox_kwargs, code, tests, setup="", entry="f"):
    from tirgym.envs.code.harness import run_hidden_tests
    from tirgym.sandbox import get_sandbox

    with get_sandbox(backend=sandbox_kwargs["sandbox"], workers=1) as sb:
        return run_hidden_tests(sb, code, tuple(tests), setup, timeout_s=5, entry_point=entry)


def test_judge_gives_the_tests_plain_data_only(sandbox_kwargs):
    doctored = (
        "class Yes:\n    def __eq__(self, o): return True\n    def __bool__(self): return True\n"
        "def f(x):\n    return Yes()\n"
    )
    tests = [
        TestCase("stmt", "assert f(1) == [1, 2]"),
        TestCase("stmt", "assert f(1)"),
        TestCase("expr", "f(1)", 0),
    ]
    report = _judge(sandbox_kwargs, doctored, tests)
    assert report.results == [False, False, False]


def test_judge_supports_objects_mutation_and_exceptions(sandbox_kwargs):
    code = (
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
        "def longest(pairs):\n    return max(p.b - p.a for p in pairs)\n"
        "def bump(xs, d):\n    xs.append(1)\n    d['k'] = 2\n"
        "def count(n):\n    return iter(range(n))\n"
        "def check(n):\n    if n < 0:\n        raise ValueError('negative')\n    return n\n"
    )
    tests = [
        TestCase("expr", "longest([Pair(1, 5), Pair(2, 3)])", 4),
        TestCase("stmt", "xs, d = [0], {}\nbump(xs, d)\nassert xs == [0, 1] and d == {'k': 2}"),
        TestCase("expr", "list(count(3))", [0, 1, 2]),
        TestCase(
            "stmt",
            "try:\n    check(-1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError",
        ),
        TestCase("expr", "check(2**9000) > 0", True),
        TestCase(
            "expr",
            "[float('inf'), {1: (2, 3)}, {4}, b'x', 1j]",
            [float("inf"), {1: (2, 3)}, {4}, b"x", 1j],
        ),
    ]
    report = _judge(sandbox_kwargs, code, tests, entry="longest")
    assert report.results == [True] * 6, report.first_error


def test_judge_reports_a_submission_that_hangs_or_dies(sandbox_kwargs):
    tests = [TestCase("expr", "f(1)", 1), TestCase("expr", "f(2)", 2)]
    hang = _judge(
        sandbox_kwargs, "def f(x):\n    while x == 1:\n        pass\n    return x\n", tests
    )
    assert hang.results == [False, False] and "ran out of time" in hang.first_error
    died = _judge(sandbox_kwargs, "import os\ndef f(x):\n    os._exit(3)\n", tests)
    assert died.results == [False, False] and "exited" in died.first_error


def test_judge_codec_round_trip():
    from tirgym.envs.code import judge

    value = [
        None,
        True,
        -(2**9000),
        1.5,
        "s",
        b"b",
        bytearray(b"a"),
        (1,),
        {2},
        frozenset({3}),
        {(1, 2): [3]},
        2j,
    ]
    assert judge.plain(judge.encode(value, judge.no_refs)) == value
    with pytest.raises(TypeError, match="plain data"):
        judge.encode(object(), judge.no_refs)
    with pytest.raises(ValueError):
        judge.plain({"ref": 1, "type": "x"})


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
            mark + json.dumps({"i": 0, "ok": True, "value": {"list": [1, 2.0000000001]}}),
            mark + json.dumps({"i": 1, "ok": True, "value": 3}),
            mark + json.dumps({"i": 1, "ok": True, "value": 3}),
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
