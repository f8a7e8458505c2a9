"""TRL adapter: a tirgym env as the `environment_factory` of TRL's GRPOTrainer.

    from tirgym.integrations.trl import environment_factory, seed_dataset, tirgym_reward
    trainer = GRPOTrainer(
        model=...,
        environment_factory=environment_factory("tirgym/GuessNumber-v0"),
        reward_funcs=tirgym_reward,
        train_dataset=seed_dataset("tirgym/GuessNumber-v0", 256),
        args=GRPOConfig(...),
    )

TRL builds one instance per rollout, calls `reset(**example)` (the dataset row), and lets
the model call the instance's public methods as tools: `answer(answer)` sends
`<answer>...</answer>` and each env tool (e.g. `python(code)`) sends a `<tool_call>`, so the
env sees the turn text it sees from tirgym's own rollouts. `tirgym_reward` ends each
rollout: a final plain-text message (no tool call) is the model's last turn and goes to the
env as it is (tirgym's text protocol: `<answer>42</answer>` counts, untagged text is an
invalid turn); the reward is then the sum of the env's step rewards (tirgym's
Episode.total_reward). The row's `seed` picks the task, so the copies of a prompt in a GRPO
group play the same task.
"""

from __future__ import annotations

import inspect
import json
import threading
from typing import Any

from tirgym.errors import TirgymError

_JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}

ANSWER_DOC = """Send your answer (a guess, a move, a final result) to the environment.

Args:
    answer: The answer as text.

Returns:
    The environment's reply.
"""

INSTRUCTIONS = (
    "Act by calling the tools; the environment replies to every call. Give each answer "
    "(guess, move, final result) with the `answer` tool, or end with <answer>...</answer>."
)


def _tool_method(schema: dict[str, Any]):
    """A method named after an env tool, with typed parameters and a Google-style
    docstring (TRL reads both to render the tool's JSON schema)."""
    name = schema["name"]
    params = schema.get("parameters", {}) or {}
    props = params.get("properties", {}) or {}
    required = set(params.get("required", props))
    sig_params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    arg_docs = []
    for arg, spec in props.items():
        py = _JSON_TYPES.get(spec.get("type", "string"), str)
        default = inspect.Parameter.empty if arg in required else None
        sig_params.append(
            inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=py)
        )
        annotations[arg] = py
        arg_docs.append(f"    {arg}: {spec.get('description') or arg}")
    annotations["return"] = str

    def method(self, **arguments: Any) -> str:
        return self._act(
            f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"
        )

    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(sig_params, return_annotation=str)
    method.__annotations__ = annotations
    args_section = "\n\nArgs:\n" + "\n".join(arg_docs) if arg_docs else ""
    method.__doc__ = (
        f"{schema.get('description') or name}{args_section}\n\nReturns:\n    The tool's output."
    )
    return method


def environment_factory(env_id: str, **kwargs: Any) -> type:
    """The class TRL's GRPOTrainer takes as `environment_factory` for env `env_id`
    (kwargs go to `tirgym.make`, `remote=URL` included)."""
    import tirgym

    probe = tirgym.make(env_id, **kwargs)
    try:
        env_cls = type(probe.unwrapped)
        tools = list(getattr(probe.unwrapped, "tools", []) or [])
        allow_answer = bool(getattr(env_cls, "allow_answer", True))
        instructions = (
            probe.unwrapped.instructions() if hasattr(probe.unwrapped, "instructions") else ""
        )
    finally:
        probe.close()

    def __init__(self) -> None:
        self._env = tirgym.make(env_id, **kwargs)
        self._seed: int | None = None
        self._actions: list[str] = []
        self._reward = 0.0
        self._done = True

    def reset(self, seed: int | None = None, **example: Any) -> str:
        """Start the task of `seed` (the dataset row's seed); returns the task prompt."""
        obs, _info = self._env.reset(seed=None if seed is None else int(seed))
        self._seed, self._actions, self._reward, self._done = (
            _info.get("seed", seed),
            [],
            0.0,
            False,
        )
        head = f"{instructions}\n\n{INSTRUCTIONS}" if instructions else INSTRUCTIONS
        return f"{head}\n\n{obs}"

    def _act(self, text: str) -> str:
        if self._done:
            return "The episode is over; no more actions are taken."
        self._actions.append(text)
        obs, reward, terminated, truncated, _info = self._env.step(text)
        self._reward += float(reward)
        self._done = bool(terminated or truncated)
        return obs

    def _finish(self, final_text: str | None) -> float:
        """Send the rollout's final plain-text turn (if any); return the total reward."""
        if final_text is not None:
            self._act(final_text)
        with self._rollouts_lock:
            self.rollouts.append(
                {"seed": self._seed, "actions": list(self._actions), "reward": self._reward}
            )
        return self._reward

    namespace: dict[str, Any] = {
        "__init__": __init__,
        "__doc__": f"tirgym env {env_id} for TRL's environment_factory.",
        "env_id": env_id,
        "env_kwargs": dict(kwargs),
        "reset": reset,
        "_act": _act,
        "_finish": _finish,
        "rollouts": [],
        "_rollouts_lock": threading.Lock(),
    }
    if allow_answer:

        def answer(self, answer: str) -> str:
            return self._act(f"<answer>{answer}</answer>")

        answer.__doc__ = ANSWER_DOC
        namespace["answer"] = answer
    for schema in tools:
        if not schema["name"].isidentifier() or schema["name"] in namespace:
            raise TirgymError(f"{env_id}: tool name {schema['name']!r} cannot be a method name")
        namespace[schema["name"]] = _tool_method(schema)
    name = "Tirgym" + "".join(c for c in env_id.split("/")[-1] if c.isalnum())
    return type(name, (), namespace)


def _final_text(completion: Any) -> str | None:
    """The text of a rollout's last assistant message, when it calls no tool."""
    if isinstance(completion, str):
        return completion or None
    for m in reversed(completion or []):
        if m.get("role") == "assistant":
            if m.get("tool_calls"):
                return None
            content = m.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content or None
    return None


def tirgym_reward(
    completions: list, environments: list | None = None, **kwargs: Any
) -> list[float]:
    """TRL reward function for `environment_factory` envs: each rollout's final plain-text
    turn goes to its env, then the env's total reward is the rollout's reward."""
    if environments is None:
        raise TirgymError(
            "tirgym_reward scores environment_factory rollouts; pass environment_factory too."
        )
    return [env._finish(_final_text(c)) for c, env in zip(completions, environments, strict=True)]


def seed_dataset(env_id: str, n: int, start: int = 0, system_prompt: str | None = None):
    """A `datasets.Dataset` of `n` rows (`prompt`, `seed`): the seeds pick the tasks, the
    prompt holds a system message and an empty user message that `reset()` fills."""
    try:
        from datasets import Dataset
    except ImportError:
        raise TirgymError(
            "seed_dataset needs the datasets package: pip install 'tirgym[interop]'"
        ) from None
    system = system_prompt or f"You are solving a task of the environment {env_id}."
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "system", "content": system}, {"role": "user", "content": ""}],
                "seed": start + i,
            }
            for i in range(n)
        ]
    )
