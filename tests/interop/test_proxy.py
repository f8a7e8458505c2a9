"""The token-capturing proxy: an agent written against the `openai` client plays a tirgym
env through it, and what it captured trains."""

import copy
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
import torch

import tirgym
from tirgym.agents.chat import ChatRenderer
from tirgym.agents.proxy import make_proxy_app
from tirgym.agents.types import Completion
from tirgym.episode import Episode
from tirgym.trainer.advantages import compute_advantages
from tirgym.trainer.batch import collate, make_rows
from tirgym.trainer.losses import LossParams, model_logprobs, policy_loss

openai = pytest.importorskip("openai")

GUESS = "tirgym/GuessNumber-v0"


@pytest.fixture
def proxy(serve, hf_policy):
    return serve(make_proxy_app(hf_policy))


def _agent(url: str, session: str, seed: int, *, rewrite_at: int | None = None, turns: int = 3):
    """A plain OpenAI-client agent loop: ask the model, send its reply to the env, repeat.
    `rewrite_at`: from that turn on, the agent drops the middle of its history."""
    client = openai.OpenAI(base_url=f"{url}/s/{session}/v1", api_key="unused", max_retries=0)
    env = tirgym.make(GUESS, max_turns=turns, max_invalid_turns=0)
    obs, info = env.reset(seed=0)
    messages = [
        {"role": "system", "content": info["system_prompt"]},
        {"role": "user", "content": obs},
    ]
    total = 0.0
    for t in range(turns):
        if rewrite_at is not None and t == rewrite_at:
            messages = [messages[0], messages[-1]]
        r = client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=10, seed=1000 * seed + t
        )
        msg = r.choices[0].message
        messages.append(msg.model_dump(exclude_none=True))
        obs, reward, term, trunc, info = env.step(msg.content)
        total += reward
        if term or trunc:
            break
        messages.append({"role": "user", "content": obs})
    return total, bool(info.get("success"))


def _finish(url: str, session: str, reward: float, success: bool) -> list[Episode]:
    calls = httpx.get(f"{url}/tirgym/sessions/{session}").json()["calls"]
    r = httpx.post(
        f"{url}/tirgym/sessions/{session}/finish",
        json={"reward": reward, "success": success, "env_id": GUESS, "seed": 0},
    )
    assert r.status_code == 200
    eps = [Episode.from_dict(d) for d in r.json()["episodes"]]
    return eps, calls


def _assert_token_exact(ep: Episode, model) -> None:
    """The sampler's logprobs are the model's on the episode's tokens, at every mask-1 token."""
    ids = torch.tensor([ep.token_ids])
    with torch.no_grad():
        logp = model(ids).logits[0].log_softmax(-1)
    re = logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
    m = torch.tensor(ep.loss_mask[1:]).bool()
    assert m.any()
    assert (re[m] - torch.tensor(ep.logprobs[1:])[m]).abs().max() < 1e-4
    for t in ep.turns:  # the mask is 1 exactly on the sampled spans
        assert all(ep.loss_mask[t.start : t.end])
    assert sum(ep.loss_mask) == sum(t.end - t.start for t in ep.turns)


def test_openai_agent_through_the_proxy_gives_token_exact_episodes_that_train(proxy, hf_policy):
    episodes = []
    for k in range(4):
        reward, success = _agent(proxy.url, f"run-{k}", seed=k)
        eps, calls = _finish(proxy.url, f"run-{k}", reward, success)
        assert len(eps) == 1 and eps[0].info["segments"] == 1
        ep = eps[0]
        assert len(calls) == len(ep.turns) == 3
        assert [c["continued"] for c in calls] == [False, True, True]
        for c in calls:  # each call saw exactly the episode's tokens up to it
            n = len(c["prompt_ids"])
            assert ep.token_ids[:n] == c["prompt_ids"]
            assert ep.token_ids[n : n + len(c["completion_ids"])] == c["completion_ids"]
        first = ChatRenderer(hf_policy.tokenizer).prompt(ep.messages[:2])[0]
        assert calls[0]["prompt_ids"] == first
        _assert_token_exact(ep, hf_policy.model)
        episodes.append(ep)
    assert len(proxy.app.state.capture.sessions) == 0  # finish closed them

    # One GRPO step on the captured group. The tiny random model never wins GuessNumber, so
    # the env's rewards are all equal; a spread of rewards gives the group advantages.
    for ep, r in zip(episodes, [1.0, 0.0, 0.0, 0.5], strict=True):
        ep.outcome_reward = r
    model = copy.deepcopy(hf_policy.model).train()
    adv = compute_advantages(episodes)
    rows = make_rows(episodes, adv)
    batch = collate(rows, pad_id=0, device=torch.device("cpu"))

    def mean_lp(m):
        lp, _ = model_logprobs(m, batch["input_ids"], batch["attention_mask"], only=batch["mask"])
        mask = batch["mask"]
        return lp, (lp * mask).sum(1) / mask.sum(1)

    lp, before = mean_lp(model)
    gap = (lp - batch["sampler_lp"]).abs()[batch["mask"].bool()].max()
    assert gap < 1e-4  # trainer and sampler agree on the captured tokens
    loss, _ = policy_loss(lp, lp.detach(), batch["adv"], batch["mask"], LossParams())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss.backward()
    opt.step()
    with torch.no_grad():
        _, after = mean_lp(model)
    delta = (after - before.detach()).numpy()
    assert np.isfinite(delta).all()
    assert delta[0] > delta[1]  # the rewarded episode became likelier than a failed one


def test_an_agent_that_rewrites_history_gets_split_marked_episodes(proxy, hf_policy):
    reward, success = _agent(proxy.url, "rewriter", seed=7, rewrite_at=2, turns=4)
    eps, calls = _finish(proxy.url, "rewriter", reward, success)
    assert [c["continued"] for c in calls] == [False, True, False, True]
    assert len(eps) == 2
    assert [e.info["segment"] for e in eps] == [0, 1]
    assert "split_reason" not in eps[0].info
    assert eps[1].info["split_reason"] == "history rewritten"
    assert [len(e.turns) for e in eps] == [2, 2]
    for ep in eps:
        _assert_token_exact(ep, hf_policy.model)
    # the second segment starts from a fresh rendering of the shortened conversation
    assert calls[2]["prompt_ids"] == eps[1].token_ids[: len(calls[2]["prompt_ids"])]


class _Scripted:
    """A token-level policy that samples a fixed script (logprob -0.5 per token)."""

    trainable = True

    def __init__(self, tokenizer, turns):
        self.tokenizer, self.turns = tokenizer, list(turns)

    def generate(self, prompts, params):
        text = self.turns.pop(0)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        ids.append(self.tokenizer.convert_tokens_to_ids("<|im_end|>"))
        out = self.tokenizer.decode(ids, skip_special_tokens=False)
        return [Completion(ids, [-0.5] * len(ids), out, "stop")]

    def update_weights(self, named_tensors):
        pass


def test_tool_calls_round_trip_through_the_openai_client(serve, hf_policy):
    call = '<tool_call>{"name": "python", "arguments": {"code": "print(6*7)"}}</tool_call>'
    policy = _Scripted(hf_policy.tokenizer, [call, "<answer>42</answer>"])
    server = serve(make_proxy_app(policy))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "python",
                "description": "Run Python code.",
                "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
            },
        }
    ]
    client = openai.OpenAI(base_url=f"{server.url}/s/tools/v1", api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "What is 6*7? Use python."}]
    r = client.chat.completions.create(model="t", messages=messages, tools=tools)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    tc = choice.message.tool_calls[0]
    assert tc.function.name == "python" and json.loads(tc.function.arguments) == {
        "code": "print(6*7)"
    }
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tc.id, "content": "42"},
    ]
    r = client.chat.completions.create(model="t", messages=messages, tools=tools)
    assert r.choices[0].message.content == "<answer>42</answer>"
    assert r.choices[0].finish_reason == "stop"
    (ep,) = server.app.state.capture.episodes("tools", reward=1.0, success=True)
    assert [t.action for t in ep.turns] == ["tool_call", "answer"]
    assert [t.tool_calls for t in ep.turns] == [1, 0]
    assert sum(ep.loss_mask) == sum(t.end - t.start for t in ep.turns)
    assert ep.messages[-1]["content"] == "<answer>42</answer>"


def test_bad_requests_are_one_line_4xx(proxy):
    c = httpx.Client(base_url=proxy.url)
    r = c.post("/v1/chat/completions", json={"messages": []})
    assert r.status_code == 422
    r = c.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "n": 2}
    )
    assert r.status_code == 422
    r = c.post("/tirgym/sessions/nope/finish", json={})
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_cli_proxy_refuses_a_policy_without_token_ids():
    r = subprocess.run(
        [sys.executable, "-m", "tirgym", "proxy", "--policy", "solver"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "hf:PATH or vllm:PATH" in r.stderr


def test_cli_proxy_serves_an_agent_and_writes_its_episodes(tiny_path, tmp_path):
    import socket
    import time

    from tirgym.episode import load_jsonl

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "captured.jsonl"
    cmd = [sys.executable, "-m", "tirgym", "proxy", "--policy", f"hf:{tiny_path}"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/v1/models").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        reward, success = _agent(url, "cli", seed=1, turns=2)
        r = httpx.post(
            f"{url}/tirgym/sessions/cli/finish", json={"reward": reward, "env_id": GUESS}
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    (ep,) = load_jsonl(out)
    assert ep.env_id == GUESS and len(ep.turns) == 2 and ep.trainable
    assert sum(ep.loss_mask) == sum(t.end - t.start for t in ep.turns)


def test_abandoned_sessions_are_dropped_after_the_ttl(serve, hf_policy):
    import time

    policy = _Scripted(hf_policy.tokenizer, ["<answer>1</answer>", "<answer>2</answer>"])
    server = serve(make_proxy_app(policy, session_ttl_s=0.3))
    msgs = {"messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{server.url}/s/gone/v1/chat/completions", json=msgs).status_code == 200
    time.sleep(0.5)
    assert httpx.post(f"{server.url}/s/live/v1/chat/completions", json=msgs).status_code == 200
    assert set(server.app.state.capture.sessions) == {"live"}
