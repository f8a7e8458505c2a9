"""Policies and the rollout engine: (policy, tasks) -> token-exact Episodes.

    from tirgym.agents import SamplingParams, Task, rollout
    from tirgym.agents.hf_backend import HFPolicy
    policy = HFPolicy.from_pretrained(path)
    episodes = rollout(policy, [Task("tirgym/GuessNumber-v0", seed=0)], group_size=4)

Heavy modules (torch, transformers) load only when a backend is used.
"""

from tirgym.agents.rollout import rollout
from tirgym.agents.types import (
    Completion,
    Policy,
    RolloutLimits,
    SamplingParams,
    Task,
    TextPolicy,
    TurnRequest,
)

__all__ = [
    "Completion",
    "Policy",
    "RolloutLimits",
    "SamplingParams",
    "Task",
    "TextPolicy",
    "TurnRequest",
    "rollout",
]
