"""Plugin envs (entry-point group `tirgym.envs`) are registered before anyone looks them up."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import tirgym
from tirgym import registry


class SlowEntryPoint:
    """An entry point whose import takes a while, like a real package pulling in its deps."""

    name = "slow"

    def __init__(self, env_id: str, delay_s: float = 0.3):
        self.env_id, self.delay_s = env_id, delay_s
        self.loads = 0

    def load(self):
        self.loads += 1
        time.sleep(self.delay_s)

        def register_envs():
            tirgym.register(self.env_id, "tirgym.envs.guess_number:GuessNumberEnv", override=True)
            tirgym.env_ids()  # a plugin may call back into the registry while it loads

        return register_envs


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Pretend no plugin was loaded yet, with one slow plugin installed."""
    ep = SlowEntryPoint("plugin/Slow-v0")
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [ep])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    return ep


def test_concurrent_lookups_wait_for_plugins(fresh_plugins):
    # rollout resets envs on a thread pool: every thread must see the plugin env
    start = threading.Barrier(8)

    def look_up(_):
        start.wait()
        return tirgym.env_meta("plugin/Slow-v0").id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(look_up, range(8)))
    assert ids == ["plugin/Slow-v0"] * 8
    assert fresh_plugins.loads == 1


def test_plugins_load_once_even_when_one_fails(monkeypatch):
    class Broken:
        name = "broken"
        loads = 0

        def load(self):
            Broken.loads += 1
            raise ImportError("missing dependency")

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [Broken()])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    tirgym.env_ids()
    tirgym.env_ids()
    assert Broken.loads == 1
