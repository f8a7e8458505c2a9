"""Sampling does not depend on batch position; diverged weights give a clear error."""

import pytest
import torch

from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.hf_backend import HFPolicy
from tirgym.episode import load_jsonl
from tirgym.errors import TirgymError

GUESS = "tirgym/GuessNumber-v0"
LIMITS = RolloutLimits(max_turns=2, max_new_tokens=16)


def same_episode(a, b):
    assert a.token_ids == b.token_ids
    assert [t.text for t in a.turns] == [t.text for t in b.turns]
    assert max((abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)), default=0) < 1e-4


def test_generate_row_depends_only_on_its_seed(hf_policy):
    tok = hf_policy.tokenizer
    prompts = [tok.encode(t) for t in ("hello there", "a longer prompt than the others", "x")]
    params = SamplingParams(max_new_tokens=12, stop=(), temperature=1.0)
    full = hf_policy.generate(prompts, params.replace(seeds=[11, 22, 33]))
    alone = hf_policy.generate(prompts[1:2], params.replace(seeds=[22]))
    assert alone[0].token_ids == full[1].token_ids
    other = hf_policy.generate(prompts[1:2], params.replace(seeds=[23]))
    assert other[0].token_ids != full[1].token_ids
    # n copies of one prompt sample differently (a GRPO group)
    group = hf_policy.generate(prompts[:1], params.replace(n=4, seeds=[5]))
    assert len({tuple(c.token_ids) for c in group}) == 4


def test_episode_is_the_same_in_any_batch(hf_policy):
    params = SamplingParams(seed=3, temperature=1.0)
    tasks = [Task(GUESS, s) for s in range(3)]
    batch = rollout(hf_policy, tasks, group_size=2, params=params, limits=LIMITS)
    assert [e.info["sample"] for e in batch] == [0, 1] * 3
    # the last task's second sample, run alone as sample_index 1
    alone = rollout(hf_policy, [Task(GUESS, 2, sample_index=1)], params=params, limits=LIMITS)[0]
    assert alone.info["sample"] == 1
    same_episode(alone, batch[5])
    # a different run seed or sample index samples differently
    moved = rollout(hf_policy, [Task(GUESS, 2, sample_index=0)], params=params, limits=LIMITS)[0]
    assert moved.token_ids != alone.token_ids
    same_episode(moved, batch[4])


def test_resumed_sampled_eval_reproduces_an_uninterrupted_one(hf_policy, tmp_path):
    from tirgym.eval import evaluate

    kw = dict(
        envs=[GUESS],
        seeds="0:4",
        samples=3,
        temperature=1.0,
        max_new_tokens=16,
        max_turns=2,
        sampling_seed=7,
        write_report=False,
    )
    full = evaluate(hf_policy, out_dir=tmp_path / "full", **kw)

    class Crash(Exception):
        pass

    seen = []

    def crash_after_half(ep):
        seen.append(ep)
        if len(seen) == 6:
            raise Crash

    with pytest.raises(Crash):
        evaluate(hf_policy, out_dir=tmp_path / "resumed", on_episode=crash_after_half, **kw)
    # episodes the crash cut short are not saved as finished: the resume reruns them
    assert len(load_jsonl(tmp_path / "resumed" / "episodes.jsonl")) == 6
    resumed = evaluate(hf_policy, out_dir=tmp_path / "resumed", **kw)
    assert len(resumed.episodes) == len(full.episodes) == 12
    for a, b in zip(full.episodes, resumed.episodes, strict=True):
        assert a.info["eval"]["sample"] == b.info["eval"]["sample"] and a.seed == b.seed
        same_episode(a, b)
    texts = {tuple(e.token_ids) for e in full.episodes}
    assert len(texts) == 12  # samples of a task differ: the test can fail


@pytest.fixture()
def nan_policy(tiny_path):
    policy = HFPolicy.from_pretrained(tiny_path)
    with torch.no_grad():
        policy.model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    return policy


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_nan_weights_raise_a_clear_error(nan_policy, temperature):
    prompt = nan_policy.tokenizer.encode("hello")
    with pytest.raises(TirgymError, match=r"NaN/inf logits at generation step 0"):
        nan_policy.generate([prompt], SamplingParams(temperature=temperature, seed=0))
    with pytest.raises(TirgymError, match="learning rate"):
        rollout(nan_policy, [Task(GUESS, 0)], params=SamplingParams(temperature=temperature))
