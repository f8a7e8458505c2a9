"""Env workers on a two-node Ray cluster on this machine (a head and a second raylet, through
ray.cluster_utils): actors spread over the nodes, and losing a whole node mid-run loses no
episode."""

import pytest
import ray
from ray.cluster_utils import Cluster

from tirgym.agents import rollout
from tirgym.agents.ray_envs import EnvWorkersConfig, RayEnvPool
from tirgym.agents.scripted import ReplayPolicy
from tirgym.agents.types import Task

pytestmark = pytest.mark.ray

GUESS = {"low": 1, "high": 16, "max_turns": 4}
GUESSES = ["<answer>8</answer>", "<answer>4</answer>", "<answer>12</answer>", "<answer>2</answer>"]


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    worker = c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False)
    yield c, worker
    ray.shutdown()
    c.shutdown()


class NodeLossPolicy(ReplayPolicy):
    """Replays fixed guesses and removes the second node before the third turn."""

    def __init__(self, cluster, node):
        super().__init__(GUESSES)
        self.cluster, self.node, self.removed = cluster, node, False

    def act(self, requests, params):
        if not self.removed and any(r.turn == 2 for r in requests):
            self.cluster.remove_node(self.node)
            self.removed = True
        return super().act(requests, params)


def test_losing_a_node_mid_run_replays_its_episodes(cluster):
    c, worker = cluster
    tasks = [Task("tirgym/GuessNumber-v0", seed=s, kwargs=GUESS) for s in range(4)]
    local = rollout(ReplayPolicy(GUESSES), tasks, group_size=2)
    pool = RayEnvPool(EnvWorkersConfig(backend="ray", num_workers=2, address=c.address))
    try:
        nodes = {ray.get(a.node_id.remote()) for a in pool.actors}
        assert len(nodes) == 2  # one actor per node (SPREAD)
        policy = NodeLossPolicy(c, worker)
        eps = rollout(policy, tasks, group_size=2, make_env=pool.make)
    finally:
        pool.close()
    assert policy.removed and pool.replaced >= 1 and pool.replayed >= 1
    assert [(e.group_id, e.stop_reason, e.messages) for e in eps] == [
        (e.group_id, e.stop_reason, e.messages) for e in local
    ]
