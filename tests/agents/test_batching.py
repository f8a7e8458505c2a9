"""Continuous batching (agents/batching.py): rows joining a running batch, with kept KV
caches, sample exactly what they would sample alone; the engine uses it for hf."""

import time

import agents_helpers  # noqa: F401  (registers the test envs)
import pytest
from test_rollout import check_episode

from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.seeding import derive_seed
from tirgym.agents.types import DecodeStream

PARAMS = SamplingParams(max_new_tokens=20, stop=(), seed=0)


def prompts(tok, n):
    texts = [f"<|im_start|>user\nround {i} " + "word " * (3 * i) + "<|im_end|>\n" for i in range(n)]
    return [tok.encode(t, add_special_tokens=False) for t in texts]


def solo(policy, ids, seed, params=PARAMS):
    """What the row samples alone (one-row generate with its own seed)."""
    return policy.generate([ids], params.replace(seeds=[seed]))[0]


def assert_same(a, b):
    assert a.token_ids == b.token_ids
    assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-4
    assert a.text == b.text and a.finish_reason == b.finish_reason


def drain(batch, out):
    while batch.busy:
        out.update(batch.step())


def test_rows_joining_a_running_batch_sample_as_if_alone(hf_policy):
    ps = prompts(hf_policy.tokenizer, 5)
    seeds = [derive_seed("row", i) for i in range(5)]
    batch = hf_policy.open_stream(PARAMS)
    assert hf_policy.can_stream and isinstance(batch, DecodeStream)
    out = {}
    joins = hf_policy.stats.joins
    batch.add(0, ps[0], seeds[0])
    batch.add(1, ps[1], seeds[1])
    for _ in range(3):
        out.update(batch.step())
    batch.add(2, ps[2], seeds[2])  # joins mid-flight: a longer prompt than the running rows
    for _ in range(9):  # enough steps that even a lone joiner is admitted (max_wait_steps)
        out.update(batch.step())
    batch.add(3, ps[3], seeds[3])
    batch.add(4, ps[4], seeds[4])
    drain(batch, out)
    assert hf_policy.stats.joins - joins == 3
    for i in range(5):
        assert_same(out[i], solo(hf_policy, ps[i], seeds[i]))


def test_kept_cache_serves_the_next_turn(hf_policy):
    """A finished row keeps its KV cache; its next turn prefills only the new tokens."""
    tok = hf_policy.tokenizer
    ps = prompts(tok, 3)
    reply = tok.encode("<|im_end|>\n<|im_start|>user\nok<|im_end|>\n", add_special_tokens=False)
    batch = hf_policy.open_stream(PARAMS)
    out = {}
    for i in range(3):
        batch.add(i, ps[i], derive_seed("t0", i))
    drain(batch, out)
    for i in range(3):  # every kept cache holds exactly the tokens it claims
        ids, kv = batch.kept[i]
        assert ids == ps[i] + out[i].token_ids[:-1]
        assert all(k.shape[1] == len(ids) == v.shape[1] for k, v in kv)
    stats = hf_policy.stats
    reused, prefilled = stats.reused_tokens, stats.prefill_tokens
    turn2 = {i: ps[i] + out[i].token_ids + reply for i in range(3)}
    turn2[2] = [turn2[2][0] + 1] + turn2[2][1:]  # a changed history: its cache must not be used
    batch.add(0, turn2[0], derive_seed("t1", 0))
    for _ in range(4):
        out.update(batch.step())
    batch.add(1, turn2[1], derive_seed("t1", 1))
    batch.add(2, turn2[2], derive_seed("t1", 2))
    out2 = {}
    drain(batch, out2)
    out2.update({k: v for k, v in out.items() if k == 0 and k not in out2})
    expect_reuse = sum(len(ps[i]) + len(out[i].token_ids) - 1 for i in (0, 1))
    assert stats.reused_tokens - reused == expect_reuse
    assert stats.prefill_tokens - prefilled == sum(len(turn2[i]) for i in range(3)) - expect_reuse
    for i in (1, 2):
        assert_same(out2[i], solo(hf_policy, turn2[i], derive_seed("t1", i)))
    batch.release(1)
    assert 1 not in batch.kept


def test_shared_prefix_is_prefilled_once_and_rows_sample_as_if_alone(hf_policy):
    """Rows that open with the same long system prompt get its K/V from one forward; each
    still samples what it samples alone, and a later joiner with that prefix reuses it."""
    tok = hf_policy.tokenizer
    system = tok.encode("<|im_start|>system\n" + "rule " * 60 + "<|im_end|>\n", add_special_tokens=False)
    ps = [system + p for p in prompts(tok, 4)]
    other = prompts(tok, 1)[0] + system  # the same tokens, not as a prefix: no sharing
    seeds = [derive_seed("shared", i) for i in range(5)]
    stats = hf_policy.stats
    prefilled, shared = stats.prefill_tokens, stats.shared_tokens
    batch = hf_policy.open_stream(PARAMS)
    out = {}
    for i in range(3):
        batch.add(i, ps[i], seeds[i])
    out.update(batch.step())
    assert batch.prefix is not None and batch.prefix[0] == ps[0][: len(batch.prefix[0])]
    L = len(batch.prefix[0])
    assert len(system) <= L < len(ps[0])
    batch.add(3, ps[3], seeds[3])
    batch.add(4, other, seeds[4])
    drain(batch, out)
    assert stats.shared_tokens - shared == 4 * L
    assert stats.prefill_tokens - prefilled == sum(len(p) for p in ps) - 4 * L + L + len(other)
    for i in range(4):
        assert_same(out[i], solo(hf_policy, ps[i], seeds[i]))
    assert_same(out[4], solo(hf_policy, other, seeds[4]))


def test_greedy_and_top_p_rows_match_alone(hf_policy):
    ps = prompts(hf_policy.tokenizer, 3)
    for params in (PARAMS.replace(temperature=0.0), PARAMS.replace(top_p=0.8, temperature=0.7)):
        batch = hf_policy.open_stream(params)
        out = {}
        batch.add(0, ps[0], 11)
        out.update(batch.step())
        batch.add(1, ps[1], 12)
        batch.add(2, ps[2], 13)
        drain(batch, out)
        for i in range(3):
            assert_same(out[i], solo(hf_policy, ps[i], 11 + i, params))


@pytest.mark.parametrize("continuous", [True, False])
def test_multi_turn_rollout_is_token_exact_in_both_schedules(hf_policy, continuous):
    tasks = [
        Task("test/Sleepy-v0", s, {"sleep_s": 0.02 * (s % 3), "max_turns": 3}) for s in range(6)
    ]
    params = SamplingParams(seed=3, max_new_tokens=16)
    eps = rollout(
        hf_policy,
        tasks,
        params=params,
        limits=RolloutLimits(max_new_tokens=16),
        continuous=continuous,
    )
    for ep in eps:
        assert len(ep.turns) == 3
        check_episode(ep, hf_policy.tokenizer, hf_policy.model)


def test_schedules_sample_the_same_episodes(hf_policy):
    """Continuous and round-by-round rollouts of the same seeds give the same tokens."""
    tasks = [Task("tirgym/GuessNumber-v0", s) for s in range(4)]
    kw = dict(group_size=2, params=SamplingParams(seed=5), limits=RolloutLimits(max_new_tokens=24))
    a = rollout(hf_policy, tasks, continuous=True, **kw)
    b = rollout(hf_policy, tasks, continuous=False, **kw)
    assert [e.token_ids for e in a] == [e.token_ids for e in b]


def test_slow_env_step_does_not_hold_the_continuous_batch(hf_policy):
    """One env step sleeping 3 s in a batch of 16: the others finish all turns meanwhile."""
    tasks = [
        Task("test/Sleepy-v0", s, {"sleep_s": 3.0, "slow_seeds": (0,), "sleep_turns": 1})
        for s in range(16)
    ]
    t = time.perf_counter()
    eps = rollout(hf_policy, tasks, params=SamplingParams(seed=0, max_new_tokens=16))
    wall = time.perf_counter() - t
    slow, fast = eps[0], eps[1:]
    assert all(len(e.turns) == 4 for e in eps)
    assert slow.timings["total_s"] >= 3.0
    assert max(e.timings["total_s"] for e in fast) < 3.0 <= wall
