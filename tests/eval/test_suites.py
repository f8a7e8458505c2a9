"""Built-in suites: they parse, name only registered envs, all = every env."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import tirgym
from tirgym import registry
from tirgym.errors import TirgymError
from tirgym.registry import Suite

SUITES_DIR = Path(tirgym.__file__).resolve().parent.parent / "configs" / "suites"


def _yaml(name: str) -> dict:
    return yaml.safe_load((SUITES_DIR / f"{name}.yaml").read_text())


def _missing(name: str) -> list[str]:
    envs = _yaml(name)["envs"]
    registered = set(tirgym.env_ids())
    return sorted({e["id"] for e in envs} - registered) if isinstance(envs, list) else []


@pytest.mark.parametrize("name", ["smoke", "games", "math", "all"])
def test_builtin_suite_files_validate(name: str) -> None:
    data = _yaml(name)
    assert data["name"] == name
    if data["envs"] != "all":
        Suite.model_validate(data)  # schema only; env ids are checked by get_suite
        labels = [e.get("name") or e["id"] for e in data["envs"]]
        assert len(labels) == len(set(labels)), "entries of one suite need distinct names"
    assert name in tirgym.suite_names()


def test_games_suite_lists_every_game_at_three_difficulties() -> None:
    entries = _yaml("games")["envs"]
    games = {e["id"] for e in entries}
    assert len(games) == 10
    for g in games:
        assert sorted(e["kwargs"]["difficulty"] for e in entries if e["id"] == g) == [
            "easy",
            "hard",
            "medium",
        ]
    # every game the games package registers is in the suite
    assert set(tirgym.env_ids("game")) - {"tirgym/GuessNumber-v0"} <= games


def test_smoke_suite_loads() -> None:
    s = tirgym.get_suite("smoke")
    assert s.envs and all(e.id in tirgym.env_ids() for e in s.envs)


@pytest.mark.parametrize("name", ["smoke", "games", "math"])
def test_suite_names_only_registered_envs(name: str) -> None:
    """A typo'd id in a built-in suite file fails here (and get_suite names it)."""
    assert _missing(name) == [], f"{name}.yaml names envs that are not registered"
    s = tirgym.get_suite(name)
    assert len(s.envs) == len(_yaml(name)["envs"])


def test_missing_ids_are_caught(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: evaltypo\nenvs:\n  - {id: tirgym/GuesNumber-v0}\n")
    try:
        with pytest.raises(TirgymError, match="GuesNumber"):
            tirgym.get_suite(str(bad))
    finally:  # loading a file registers its suite; leave the registry as other tests expect
        registry._SUITES.pop("evaltypo", None)


def test_all_suite_covers_every_registered_env_even_late_ones() -> None:
    assert [e.id for e in tirgym.get_suite("all").envs] == tirgym.env_ids()
    late = "tirgym/EvalLateTestEnv-v0"
    tirgym.register(late, "tirgym.envs.guess_number:GuessNumberEnv")
    try:
        assert late in [e.id for e in tirgym.get_suite("all").envs]
    finally:  # leave the registry as other tests expect it
        del registry._ENVS[late]
        del gym.registry[late]
    assert late not in [e.id for e in tirgym.get_suite("all").envs]
    assert tirgym.get_suite("all").eval.num_seeds == 20
