"""The verifiers adapter (examples/verifiers_env) against verifiers' real evaluation API."""

import sys
from pathlib import Path

import pytest

from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.openai_backend import OpenAIChatPolicy

vf = pytest.importorskip("verifiers")
pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
GUESS = "tirgym/GuessNumber-v0"
KWARGS = {"max_turns": 3, "format_penalty": 0.1}


@pytest.fixture
def chat_server(serve, hf_policy, monkeypatch):
    """The tiny model behind a stateless OpenAI chat server (each call renders its messages)."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "agents"))
    from openai_server import make_app

    return serve(make_app(hf_policy, "tiny"))


@pytest.fixture
def adapter(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "verifiers_env"))
    sys.modules.pop("tirgym_verifiers_env", None)
    import tirgym_verifiers_env

    return tirgym_verifiers_env


def test_verifiers_scores_equal_tirgyms_on_the_same_seeds(chat_server, adapter):
    from openai import AsyncOpenAI

    seeds = [11, 12, 13]
    env = adapter.load_environment(GUESS, num_examples=3, seed_start=11, env_kwargs=KWARGS)
    client = vf.OpenAIChatCompletionsClient(
        AsyncOpenAI(base_url=f"{chat_server.url}/v1", api_key="unused")
    )
    results = env.evaluate_sync(
        client,
        model="tiny",
        sampling_args={"temperature": 0.0, "max_tokens": 12},
        num_examples=3,
        rollouts_per_example=1,
        max_concurrent=1,
    )
    outputs = sorted(results["outputs"], key=lambda o: o["example_id"])
    vf_rewards = [o["reward"] for o in outputs]
    vf_turns = [sum(m["role"] == "assistant" for m in o["completion"]) for o in outputs]

    policy = OpenAIChatPolicy(chat_server.url, "tiny", None)
    eps = rollout(
        policy,
        [Task(GUESS, s, kwargs=dict(KWARGS)) for s in seeds],
        params=SamplingParams(temperature=0.0, max_new_tokens=12, stop=()),
        limits=RolloutLimits(max_new_tokens=12),
    )
    assert vf_turns == [len(ep.turns) for ep in eps] == [3, 3, 3]
    for o, ep in zip(outputs, eps, strict=True):  # the same prompts gave the same greedy turns
        said = [m["content"] for m in o["completion"] if m["role"] == "assistant"]
        assert said == [m["content"] for m in ep.messages if m["role"] == "assistant"]
    assert vf_rewards == pytest.approx([ep.total_reward for ep in eps])
    assert all(r == pytest.approx(-0.3) for r in vf_rewards)  # three invalid turns each


def test_load_environment_builds_the_envs_own_prompts(adapter):
    import tirgym

    env = adapter.load_environment("tirgym/Sokoban-v0", num_examples=2, seed_start=5)
    rows = list(env.eval_dataset)
    assert [r["info"]["seed"] for r in rows] == [5, 6]
    local = tirgym.make("tirgym/Sokoban-v0")
    obs, info = local.reset(seed=6)
    prompt = rows[1]["prompt"]
    assert prompt[0]["content"] == info["system_prompt"] and prompt[1]["content"] == obs
