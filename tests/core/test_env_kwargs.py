"""Env kwargs are checked against the constructor before it runs."""

from typing import Literal

import pytest

import tirgym
from tirgym.envs.base import Outcome, TextEnv
from tirgym.errors import TirgymError


class PickyEnv(TextEnv):
    """A base declares the choices of `mode`; PickyChild only changes the default."""

    def __init__(self, mode: Literal["fast", "slow"] = "fast", size: int = 3, ratio: float = 0.5,
                 tags: tuple[str, ...] = (), **kwargs):
        super().__init__(**kwargs)
        self.mode, self.size = mode, size

    def generate_task(self, rng, options):
        return "say hi"

    def on_answer(self, answer):
        return Outcome(reply="ok", terminated=True, success=True)


class PickyChild(PickyEnv):
    def __init__(self, mode: str = "slow", **kwargs):
        super().__init__(mode=mode, **kwargs)


class BuggyEnv(PickyEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        len(5)  # a bug inside the constructor: its TypeError is not the user's fault


class OpenEnv:
    """Not a TextEnv: a bare **kwargs whose names cannot be known."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


tirgym.register("test/Picky-v0", f"{__name__}:PickyEnv", override=True)
tirgym.register("test/PickyChild-v0", f"{__name__}:PickyChild", override=True)
tirgym.register("test/Buggy-v0", f"{__name__}:BuggyEnv", override=True)
tirgym.register("test/Open-v0", f"{__name__}:OpenEnv", override=True)


@pytest.mark.parametrize("kwargs,needle", [
    ({"sise": 4}, "no kwarg 'sise'. Did you mean 'size'?"),
    ({"size": "4"}, "size='4' has type str; size takes int"),
    ({"size": 4.0}, "size takes int"),
    ({"size": True}, "size takes int"),
    ({"mode": "fsat"}, "mode='fsat' is not allowed. Did you mean 'fast'? Choose one of 'fast', 'slow'"),
    ({"max_turns": "3"}, "max_turns takes int"),
    ({"multiple_actions": "all"}, "Choose one of 'first', 'error'"),
])
def test_bad_kwargs_fail_in_one_line(kwargs, needle):
    with pytest.raises(TirgymError, match=None) as e:
        tirgym.validate_env_kwargs("test/Picky-v0", kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_good_kwargs_pass_unchanged():
    # an int for a float, a JSON list for a tuple, an inherited TextEnv kwarg
    kwargs = {"size": 4, "ratio": 1, "tags": ["a"], "max_turns": 2, "mode": "slow"}
    tirgym.validate_env_kwargs("test/Picky-v0", kwargs)
    env = tirgym.make("test/Picky-v0", **kwargs)
    assert env.unwrapped.size == 4 and env.unwrapped.max_turns == 2


def test_subclass_default_keeps_base_choices():
    spec = tirgym.env_kwargs("test/PickyChild-v0")
    assert spec.params["mode"].default == "slow"
    assert spec.params["mode"].choices == ("fast", "slow")
    with pytest.raises(TirgymError, match="not allowed"):
        tirgym.make("test/PickyChild-v0", mode="medium")


def test_builtin_envs_declare_their_choices_and_tool_options():
    assert tirgym.env_kwargs("tirgym/Maze-v0").params["difficulty"].choices == ("easy", "medium", "hard")
    tir = tirgym.env_kwargs("tirgym/MathTIR-v0").params
    assert tir["max_tool_calls"].default == 4 and "sandbox" in tir  # taken out of **kwargs
    with pytest.raises(TirgymError, match="Did you mean 'max_tool_calls'"):
        tirgym.make("tirgym/MathTIR-v0", max_tool_call=2)
    with pytest.raises(TirgymError, match="Did you mean 'difficulty'"):
        tirgym.make("tirgym/Maze-v0", difficuly="easy")


def test_registered_defaults_count_as_given():
    tirgym.register("test/PickyBig-v0", f"{__name__}:PickyEnv", {"size": 9}, override=True)
    assert tirgym.env_kwargs("test/PickyBig-v0").params["size"].default == 9


def test_typeerror_inside_constructor_is_not_bad_arguments():
    with pytest.raises(TypeError, match="has no len"):
        tirgym.make("test/Buggy-v0")


def test_open_signature_passes_unknown_names_through():
    assert tirgym.env_kwargs("test/Open-v0").open
    tirgym.validate_env_kwargs("test/Open-v0", {"anything": 1})


def test_suite_entry_with_a_kwarg_typo_fails_when_the_suite_loads(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("name: typo\nenvs:\n  - {id: tirgym/Maze-v0, kwargs: {difficuly: easy}}\n")
    with pytest.raises(TirgymError, match="entry 'tirgym/Maze-v0'.*Did you mean 'difficulty'"):
        tirgym.get_suite(str(f))
