"""The openai backend against a real HTTP server on 127.0.0.1 serving the tiny model."""

import socket
import threading
import time

import pytest
import torch

from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.backends import load_policy
from tirgym.agents.openai_backend import OpenAIChatPolicy, OpenAICompletionsPolicy
from tirgym.errors import TirgymError

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("openai")
pytest.importorskip("fastapi")

GUESS = "tirgym/GuessNumber-v0"


def _serve(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def servers(hf_policy):
    from openai_server import make_app

    full = _serve(make_app(hf_policy, "tiny"))
    textonly = _serve(make_app(hf_policy, "tiny", token_ids=False))
    yield full[2], textonly[2]
    for server, thread, _ in (full, textonly):
        server.should_exit = True
        thread.join(timeout=5)


def test_completions_give_trainable_token_exact_episodes(servers, hf_policy):
    url, _ = servers
    pol = load_policy(f"openai:{url}|tiny", tokenizer=hf_policy.tokenizer)
    assert isinstance(pol, OpenAICompletionsPolicy)
    eps = rollout(
        pol,
        [Task(GUESS, 0), Task(GUESS, 1)],
        params=SamplingParams(seed=3),
        limits=RolloutLimits(max_turns=2, max_new_tokens=16),
    )
    model = hf_policy.model
    for ep in eps:
        assert ep.trainable and ep.num_sampled_tokens > 0
        ids = torch.tensor([ep.token_ids])
        with torch.no_grad():
            logp = model(ids).logits[0].log_softmax(-1)
        re = logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
        m = torch.tensor(ep.loss_mask[1:]).bool()
        assert (re[m] - torch.tensor(ep.logprobs[1:])[m]).abs().max() < 1e-4
        for t in ep.turns:
            assert hf_policy.tokenizer.decode(ep.token_ids[t.start : t.end]) == t.text


def test_server_without_token_ids_makes_untrainable_episodes(servers, hf_policy):
    _, url = servers
    pol = OpenAICompletionsPolicy(url, "tiny", hf_policy.tokenizer)
    ep = rollout(pol, [Task(GUESS, 0)], limits=RolloutLimits(max_turns=2, max_new_tokens=8))[0]
    assert not ep.trainable and ep.turns
    assert ep.num_sampled_tokens == sum(t.end - t.start for t in ep.turns)


def test_chat_policy_is_text_level(servers):
    url, _ = servers
    pol = load_policy(f"openai:{url}|tiny")
    assert isinstance(pol, OpenAIChatPolicy)
    ep = rollout(pol, [Task(GUESS, 0)], limits=RolloutLimits(max_turns=2, max_new_tokens=8))[0]
    assert not ep.trainable and ep.token_ids == [] and len(ep.turns) == 2
    assert [m["role"] for m in ep.messages[:3]] == ["system", "user", "assistant"]


def test_unreachable_server_is_a_user_error(hf_policy):
    pol = OpenAICompletionsPolicy("http://127.0.0.1:9", "tiny", hf_policy.tokenizer, timeout=2)
    with pytest.raises(TirgymError, match="Cannot reach"):
        pol.generate([[1, 2, 3]], SamplingParams(max_new_tokens=2))


def test_load_policy_specs():
    with pytest.raises(TirgymError, match="Unknown policy"):
        load_policy("nope:x")
    with pytest.raises(TirgymError, match="openai:URL"):
        load_policy("openai:http://x")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(TirgymError, match="cpu-vllm"):
            load_policy("vllm:/tmp/x")
    assert load_policy("solver").trainable is False
