"""A Ray cluster that is not there is a one-line user error, not a traceback."""

import pytest
import ray

from tirgym.agents.ray_envs import EnvWorkersConfig, RayEnvPool
from tirgym.errors import TirgymError

pytestmark = pytest.mark.ray


def test_no_cluster_at_auto_says_how_to_start_one(monkeypatch):
    assert not ray.is_initialized()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(TirgymError, match="ray start --head") as e:
        RayEnvPool(EnvWorkersConfig(backend="ray", address="auto"))
    assert "\n" not in str(e.value)
