"""Every registered env passes gymnasium's checker and is deterministic per seed."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import tirgym

# Built-in envs only: test modules register throwaway envs of their own at collection time.
ALL_ENVS = [i for i in tirgym.env_ids() if i.startswith("tirgym/")]


@pytest.mark.parametrize("env_id", ALL_ENVS)
def test_check_env(env_id):
    env = tirgym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ALL_ENVS)
def test_same_seed_same_task(env_id):
    a, b = tirgym.make(env_id), tirgym.make(env_id)
    for seed in (3, 11):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert obs_a == obs_b and info_a["system_prompt"] == info_b["system_prompt"]
        assert info_a["task_id"] == info_b["task_id"]
    a.close()
    b.close()


def test_gymnasium_make_works_too():
    env = gym.make("tirgym/GuessNumber-v0")
    obs, info = env.reset(seed=1)
    assert "Guess" in obs and info["tools"] == []


def test_unknown_id_suggests_close_match():
    with pytest.raises(tirgym.TirgymError, match="Did you mean 'tirgym/GuessNumber-v0'"):
        tirgym.make("tirgym/GuesNumber-v0")


def test_register_and_list_by_tag():
    tirgym.register("test/Echo-v0", "tirgym.envs.guess_number:GuessNumberEnv",
                    {"low": 1, "high": 4}, tags=["unit-test"], max_turns=5)
    assert [m.id for m in tirgym.list_envs(tag="unit-test")] == ["test/Echo-v0"]
    env = tirgym.make("test/Echo-v0")
    assert env.unwrapped.max_turns == 5 and env.unwrapped.high == 4


def test_suites_register_and_yaml(tmp_path):
    tirgym.register_suite("unit", ["tirgym/GuessNumber-v0"], eval={"num_seeds": 3})
    assert tirgym.get_suite("unit").eval.num_seeds == 3
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nenvs:\n  - id: tirgym/GuessNumber-v0\n    weight: 2\n")
    assert tirgym.get_suite(str(f)).envs[0].weight == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nenvs:\n  - id: tirgym/GuessNumber-v0\n    wieght: 2\n")
    with pytest.raises(tirgym.TirgymError, match="wieght"):
        tirgym.load_suite_file(bad)
    with pytest.raises(tirgym.TirgymError, match="Unknown suite"):
        tirgym.get_suite("nope")
