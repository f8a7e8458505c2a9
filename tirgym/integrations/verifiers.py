"""verifiers adapter: a tirgym env as a verifiers environment (`load_environment`).

verifiers loads a pip package's `load_environment(**args)`; examples/verifiers_env is such
a package around this module (`vf-eval tirgym-verifiers-env -a '{"env_id": ...}'`).

Each dataset row is one tirgym task (its seed in `info`), the prompt is the env's own system
prompt and task text, every assistant message is one turn sent to the env as it is
(tirgym's text protocol), the env's reply is the next user message, and the rollout ends
when the env ends the episode (its own turn limit included). The reward is tirgym's total
reward for the episode (outcome plus turn rewards), so scores match tirgym's eval on the
same seeds. Needs the `verifiers` extra.
"""

from __future__ import annotations

from typing import Any

import verifiers as vf
from datasets import Dataset

import tirgym
from tirgym.registry import HELDOUT_SEED_BASE


def _rows(env_id: str, kwargs: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    env = tirgym.make(env_id, **kwargs)
    try:
        rows = []
        for seed in seeds:
            obs, info = env.reset(seed=seed)
            prompt = [
                {"role": "system", "content": info["system_prompt"]},
                {"role": "user", "content": obs},
            ]
            rows.append({"prompt": prompt, "answer": "", "info": {"seed": seed}})
        return rows
    finally:
        env.close()


class TirgymEnv(vf.MultiTurnEnv):
    def __init__(self, env_id: str, env_kwargs: dict[str, Any], dataset: Dataset, **kwargs: Any):
        # verifiers' Environment owns `env_id`; these name the tirgym env
        self.tirgym_env_id, self.tirgym_kwargs = env_id, dict(env_kwargs)
        rubric = vf.Rubric(funcs=[tirgym_reward], weights=[1.0])
        # max_turns=-1: the tirgym env's own turn limit ends the episode (its last turn is stepped)
        super().__init__(
            dataset=dataset, eval_dataset=dataset, rubric=rubric, max_turns=-1, **kwargs
        )

    async def setup_state(self, state: vf.State, **kwargs: Any) -> vf.State:
        env = tirgym.make(self.tirgym_env_id, **self.tirgym_kwargs)
        env.reset(seed=int(state["info"]["seed"]))
        state["tirgym_env"], state["tirgym_reward"], state["tirgym_success"] = env, 0.0, False
        return state

    async def env_response(
        self, messages: vf.Messages, state: vf.State, **kwargs: Any
    ) -> vf.Messages:
        last = messages[-1]
        content = last.get("content") if isinstance(last, dict) else getattr(last, "content", "")
        reply, reward, terminated, truncated, info = state["tirgym_env"].step(content or "")
        state["tirgym_reward"] += float(reward)
        response = [vf.UserMessage(content=reply)]
        if terminated or truncated:
            state["tirgym_success"] = bool(info.get("success"))
            state["final_env_response"] = response
        return response

    @vf.cleanup
    async def close_tirgym_env(self, state: vf.State) -> None:
        env = state.pop("tirgym_env", None)
        if env is not None:
            env.close()


def tirgym_reward(state: vf.State) -> float:
    """tirgym's total reward of the episode (outcome plus turn rewards)."""
    return float(state.get("tirgym_reward", 0.0))


def load_environment(
    env_id: str = "tirgym/GuessNumber-v0",
    num_examples: int = 20,
    seed_start: int = HELDOUT_SEED_BASE,
    env_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> vf.Environment:
    """Tasks `seed_start .. seed_start + num_examples - 1` of `env_id` (tirgym's eval seeds
    by default); `env_kwargs` go to `tirgym.make`, `remote=URL` included."""
    env_kwargs = dict(env_kwargs or {})
    seeds = list(range(seed_start, seed_start + num_examples))
    dataset = Dataset.from_list(_rows(env_id, env_kwargs, seeds))
    return TirgymEnv(env_id, env_kwargs, dataset, **kwargs)
