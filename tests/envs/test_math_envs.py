"""MathAnswer-v0 and MathTIR-v0: answers, tool calls in a per-episode session, oracle runs."""

from __future__ import annotations

import json

import pytest
from gymnasium.utils.env_checker import check_env

import tirgym
from tirgym.envs.math.generators import GENERATORS, generate


def _tool(code: str) -> str:
    return f"<tool_call>{json.dumps({'name': 'python', 'arguments': {'code': code}})}</tool_call>"


def _episode(env, seed):
    obs, info = env.reset(seed=seed)
    steps = []
    while True:
        step = env.step(env.solve())
        steps.append(step)
        if step[2] or step[3]:
            return obs, steps


@pytest.fixture
def no_sandbox(monkeypatch):
    """Any attempt to create a sandbox fails the test."""

    def boom(*a, **k):
        raise AssertionError("a sandbox was created")

    monkeypatch.setattr("tirgym.sandbox.get_sandbox", boom)


@pytest.mark.parametrize("env_id", ["tirgym/MathAnswer-v0", "tirgym/MathTIR-v0"])
def test_check_env_and_format_errors_need_no_sandbox(env_id, no_sandbox):
    env = tirgym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=1)
    _, reward, *_ = env.step("no tags here")
    assert reward == 0.0
    env.close()


def test_registration_tags():
    meta = {m.id: m for m in tirgym.list_envs()}
    assert set(meta["tirgym/MathAnswer-v0"].tags) == {"math"}
    assert set(meta["tirgym/MathTIR-v0"].tags) == {"math", "tool"}


def test_same_seed_same_task_and_family_choice():
    a = tirgym.make("tirgym/MathAnswer-v0", family="modular", difficulty="medium").unwrapped
    b = tirgym.make("tirgym/MathAnswer-v0", family="modular", difficulty="medium").unwrapped
    assert a.reset(seed=5)[0] == b.reset(seed=5)[0] == generate("modular", 5, "medium").question
    assert a.reset(seed=6)[0] != b.reset(seed=5)[0]
    mixed = tirgym.make("tirgym/MathAnswer-v0").unwrapped
    families = {(mixed.reset(seed=s), mixed.task.family)[1] for s in range(len(GENERATORS))}
    assert families == set(GENERATORS)


def test_bad_kwargs_are_user_errors():
    with pytest.raises(tirgym.TirgymError, match="difficulty"):
        tirgym.make("tirgym/MathAnswer-v0", difficulty="insane")
    env = tirgym.make("tirgym/MathAnswer-v0", family="topology")
    with pytest.raises(tirgym.TirgymError, match="unknown math family"):
        env.reset(seed=0)


def test_math_answer_rewards():
    env = tirgym.make("tirgym/MathAnswer-v0", family="fractions", format_penalty=0.1).unwrapped
    env.reset(seed=2)
    gold = env.task.answer
    assert "/" in gold
    num, den = gold.split("/")
    # the answer tag, an equivalent LaTeX form, and a bare \boxed{} after thinking all count
    for turn in (
        f"<answer>{gold}</answer>",
        f"<answer>\\frac{{{num}}}{{{den}}}</answer>",
        f"<think>work</think>So it is \\boxed{{\\frac{{{num}}}{{{den}}}}}.",
    ):
        env.reset(seed=2)
        _, reward, terminated, truncated, info = env.step(turn)
        assert (reward, terminated, info["success"]) == (1.0, True, True), turn
        assert info["reward_components"] == {"outcome": 1.0}
    env.reset(seed=2)
    _, reward, terminated, _, info = env.step(f"<answer>{num}</answer>")
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    env.reset(seed=2)
    _, reward, terminated, truncated, info = env.step("I think it is " + gold)
    assert terminated and not truncated and not info["success"]
    assert info["reward_components"] == {"format": -0.1, "outcome": 0.0}
    assert reward == pytest.approx(-0.1)


def test_math_answer_countdown_accepts_any_correct_expression():
    env = tirgym.make("tirgym/MathAnswer-v0", family="countdown").unwrapped
    env.reset(seed=4)
    nums, target = env.task.meta["numbers"], env.task.meta["target"]
    assert env.step(env.solve())[1] == 1.0
    env.reset(seed=4)
    assert env.step(f"<answer>{target}</answer>")[1] == 0.0  # the target itself is no expression
    assert nums


def test_math_answer_from_dataset_file(tmp_path):
    rows = [
        {"question": "What is 6 times 7?", "answer": "6*7=42\n#### 42"},
        {"problem": "Simplify $2/4$.", "solution": "It is $\\boxed{\\frac{1}{2}}$."},
    ]
    path = tmp_path / "mini.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = tirgym.make("tirgym/MathAnswer-v0", dataset=str(path)).unwrapped
    assert env.reset(seed=0)[0] == "What is 6 times 7?"
    assert env.step("<answer>42</answer>")[1] == 1.0
    assert env.reset(seed=3)[0] == "Simplify $2/4$."
    assert env.step("<answer>0.5</answer>")[1] == 1.0


def test_tir_oracle_calls_python_and_answers_correctly(sandbox_kwargs):
    env = tirgym.make("tirgym/MathTIR-v0", **sandbox_kwargs).unwrapped
    for seed in range(len(GENERATORS)):  # one task of every family
        _, steps = _episode(env, seed)
        (tool_reply, r1, *_, info1), last = steps[0], steps[-1]
        assert len(steps) == 2 and info1["role"] == "tool" and not info1["tool_error"]
        assert info1["tool_calls_used"] == 1 and r1 == 0.0
        if env.task.family != "countdown":  # the program prints the gold
            assert tool_reply.splitlines()[0].strip() == env.task.answer
        assert last[1] == 1.0 and last[2] and last[4]["success"], env.task
        assert last[4]["reward_components"] == {"outcome": 1.0}
    env.close()


def test_tir_session_persists_within_and_resets_between_episodes(sandbox_kwargs):
    env = tirgym.make("tirgym/MathTIR-v0", **sandbox_kwargs).unwrapped
    env.reset(seed=0)
    assert env.tool._session is None  # created lazily, on the first call
    env.step(_tool("secret = 41"))
    reply, *_, info = env.step(_tool("print(secret + 1)"))
    assert reply.startswith("42") and not info["tool_error"]
    env.reset(seed=0)
    assert env.tool._session is None and env.tool.calls == 0
    reply, *_, info = env.step(_tool("print(secret)"))
    assert "NameError" in reply and info["tool_error"]
    env.close()
    assert env.tool._session is None


def test_tir_tool_errors_penalty_truncation_and_limit(sandbox_kwargs):
    env = tirgym.make(
        "tirgym/MathTIR-v0",
        max_tool_calls=2,
        tool_error_penalty=0.25,
        max_output_chars=300,
        **sandbox_kwargs,
    ).unwrapped
    obs, info = env.reset(seed=1)
    assert info["max_turns"] == 4 and info["tools"][0]["name"] == "python"
    reply, reward, *_, info = env.step(_tool("def f():\n    return 1 / 0\nf()"))
    assert info["tool_error"] and info["tool_status"] == "error"
    assert "ZeroDivisionError" in reply.splitlines()[-2]  # traceback tail, then the calls-left note
    assert reward == -0.25 and info["reward_components"] == {"tool_error": -0.25}
    reply, reward, *_, info = env.step("```python\nprint('x' * 5000)\n```")  # fenced block = a call
    assert "truncated" in reply and len(reply) < 400 and not info["tool_error"] and reward == 0.0
    reply, reward, *_, info = env.step(_tool("print('never runs')"))
    assert "limit" in reply and "never runs" not in reply and info["tool_limit_reached"]
    _, reward, terminated, _, info = env.step(f"<answer>{env.task.answer}</answer>")
    assert terminated and info["reward_components"] == {"outcome": 1.0}
    env.close()


def test_tir_bad_tool_arguments_are_tool_errors(sandbox_kwargs):
    env = tirgym.make("tirgym/MathTIR-v0", **sandbox_kwargs).unwrapped
    env.reset(seed=0)
    call = json.dumps({"name": "python", "arguments": {"source": "print(1)"}})
    reply, _, terminated, _, info = env.step(f"<tool_call>{call}</tool_call>")
    assert "code" in reply and info["tool_error"] and info["tool_status"] == "bad_arguments"
    assert not terminated
    env.close()


def test_tir_explained_oracle_states_its_plan(sandbox_kwargs):
    """explain=True: the oracle still wins, and the think text of both its turns holds a
    built-in strategic gram (a plan, then a check), so its demos have planning tokens."""
    from tirgym.protocol import scan_turn
    from tirgym.trainer.planning import builtin_grams

    grams = builtin_grams()
    env = tirgym.make("tirgym/MathTIR-v0", family="arithmetic", explain=True, **sandbox_kwargs)
    env = env.unwrapped
    for seed in range(4):
        env.reset(seed=seed)
        clusters = []
        for _turn in range(2):
            text = env.solve()
            think = next(r for r in scan_turn(text, env.turn_format) if r.kind == "think")
            clusters += [grams.clusters[g] for *_, g in grams.find(text, think.start, think.end)]
            *_, info = env.step(text)
        assert info["success"] and clusters == ["plan", "verify"], clusters
    env.close()
    plain = tirgym.make("tirgym/MathTIR-v0", family="arithmetic", **sandbox_kwargs).unwrapped
    plain.reset(seed=0)
    assert plain.solve().startswith("<think>Compute it with Python.</think>")
    plain.close()


@pytest.mark.parametrize("env_id", ["tirgym/MathAnswer-v0", "tirgym/MathTIR-v0"])
def test_an_expression_that_restates_the_task_is_not_an_answer(env_id, no_sandbox):
    """ "Compute 1065 * 4987": the verifier finds "1065 \\times 4987" equal to the gold, but it
    is the task, not its result; a number gold takes a number (commas and $ allowed)."""
    env = tirgym.make(env_id, family="arithmetic").unwrapped
    env.reset(seed=3)
    a, op, b = env.task.question.split("$")[1].split()
    assert op in ("+", "-", "\\times")
    reply, reward, done, _, info = env.step(f"<answer>{a} {op} {b}</answer>")
    assert done and reward == 0.0 and not info["success"]
    assert "a number, not an expression" in reply
    env.reset(seed=3)
    gold = int(env.task.answer)
    _, reward, *_ = env.step(f"<answer>${gold:,}$</answer>")
    assert reward == 1.0
    env.close()
