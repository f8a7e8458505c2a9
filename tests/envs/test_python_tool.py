"""PythonToolOptions: the one place MathTIR and CodeTask take and check their tool kwargs."""

from __future__ import annotations

import pytest

import tirgym
from tirgym.envs.python_tool import PythonTool, PythonToolOptions

TOOL_ENVS = ["tirgym/MathTIR-v0", "tirgym/CodeTask-v0"]


@pytest.mark.parametrize("bad", [-1, 2.5, "3", True, None])
def test_bad_max_tool_calls_is_one_clear_error_on_both_envs(bad):
    with pytest.raises(tirgym.TirgymError) as direct:
        PythonToolOptions(max_tool_calls=bad)
    assert str(direct.value) == f"max_tool_calls must be an int >= 0, got {bad!r}"
    for env_id in TOOL_ENVS:
        with pytest.raises(tirgym.TirgymError) as made:
            tirgym.make(env_id, max_tool_calls=bad)
        assert str(made.value) == str(direct.value), env_id


def test_both_envs_validate_through_the_shared_options(monkeypatch):
    seen = []

    def check(self):
        seen.append(self.max_tool_calls)
        raise tirgym.TirgymError("checked by PythonToolOptions")

    monkeypatch.setattr(PythonToolOptions, "__post_init__", check)
    for calls, env_id in enumerate(TOOL_ENVS):
        with pytest.raises(tirgym.TirgymError, match="checked by PythonToolOptions"):
            tirgym.make(env_id, max_tool_calls=calls)
    assert seen == [0, 1]


@pytest.mark.parametrize("env_id", TOOL_ENVS)
def test_env_kwargs_reach_the_tool_and_defaults_match(env_id, monkeypatch):
    monkeypatch.setattr("tirgym.sandbox.get_sandbox", lambda *a, **k: pytest.fail("sandbox made"))
    default = tirgym.make(env_id).unwrapped
    assert default.tool == PythonToolOptions().make_tool() == PythonTool(sandbox_options={})
    assert default.max_turns == 6
    opts = {"workers": 1}
    env = tirgym.make(
        env_id,
        max_tool_calls=0,
        sandbox="local",
        sandbox_options=opts,
        tool_timeout_s=2.5,
        tool_memory_mb=256,
        max_output_chars=99,
        tool_error_penalty=0.5,
    ).unwrapped
    assert env.tool == PythonTool("local", {"workers": 1}, 2.5, 99, 256, 0, 0.5)
    assert env.tool.sandbox_options is not opts  # the env owns a copy
    assert env.max_turns == 2 and "up to 0 times" in env.instructions()
    assert tirgym.make(env_id, max_tool_calls=3, max_turns=9).unwrapped.max_turns == 9
    with pytest.raises(tirgym.TirgymError, match="tool_timeout"):
        tirgym.make(env_id, tool_timeout=1.0)  # a misspelt kwarg is not swallowed
