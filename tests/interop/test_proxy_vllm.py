"""The token-capturing proxy over a vLLM engine (vLLM's CPU build in CI)."""

import pytest
import torch

from tirgym.agents.proxy import make_proxy_app

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="vLLM is not installed (pip install tirgym[cpu-vllm])")
pytest.importorskip("openai")

LOGPROB_TOL = 1e-3  # vLLM's kernels against transformers' float32 forward


@pytest.fixture(scope="module")
def vllm_policy(tiny_path):
    from tirgym.agents.vllm_backend import VLLMPolicy

    pol = VLLMPolicy.from_pretrained(tiny_path, dtype="float32", max_model_len=2048, seed=0)
    yield pol
    pol.close()


def test_proxy_over_vllm_captures_token_exact_episodes(serve, vllm_policy, hf_policy):
    from test_proxy import _agent, _finish

    server = serve(make_proxy_app(vllm_policy))
    reward, success = _agent(server.url, "v", seed=3)
    (ep,), calls = _finish(server.url, "v", reward, success)
    assert [c["continued"] for c in calls] == [False, True, True]
    ids = torch.tensor([ep.token_ids])
    with torch.no_grad():
        logp = hf_policy.model(ids).logits[0].log_softmax(-1)
    re = logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
    m = torch.tensor(ep.loss_mask[1:]).bool()
    assert m.sum() == sum(len(c["completion_ids"]) for c in calls)
    assert (re[m] - torch.tensor(ep.logprobs[1:])[m]).abs().max() < LOGPROB_TOL
