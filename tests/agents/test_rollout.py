import time

import agents_helpers as helpers
import pytest

import tirgym
from tirgym.agents import RolloutLimits, SamplingParams, Task, rollout
from tirgym.agents.scripted import RandomPolicy, ReplayPolicy, SolverPolicy
from tirgym.episode import Episode, load_jsonl, save_jsonl

GUESS = "tirgym/GuessNumber-v0"


def check_episode(ep: Episode, tokenizer, model=None):
    """The token-exactness bars every episode must meet, and logprobs only where sampled."""
    helpers.assert_token_exact(ep, tokenizer, model)
    assert all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask, strict=True) if not m)
    if ep.trainable:
        assert all(lp < 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask, strict=True) if m)


def test_hf_rollout_is_token_exact(hf_policy, tmp_path):
    tasks = [Task(GUESS, s) for s in range(3)]
    eps = rollout(
        hf_policy,
        tasks,
        group_size=2,
        params=SamplingParams(seed=0),
        limits=RolloutLimits(max_turns=3, max_new_tokens=24),
    )
    assert len(eps) == 6
    assert [e.group_id for e in eps] == [f"{GUESS}#{s}" for s in range(3) for _ in range(2)]
    for ep in eps:
        assert ep.trainable and ep.turns and ep.num_sampled_tokens > 0
        check_episode(ep, hf_policy.tokenizer, hf_policy.model)
        assert ep.stop_reason in {"max_turns", "invalid_format", "env_done"}
        assert ep.terminated or ep.truncated
        assert ep.messages[0]["role"] == "system" and ep.messages[1]["role"] == "user"
    save_jsonl(tmp_path / "e.jsonl", eps)
    back = load_jsonl(tmp_path / "e.jsonl")
    assert [b.to_dict() for b in back] == [e.to_dict() for e in eps]


def test_engine_feeds_exactly_the_trained_sequence(hf_policy):
    tok = hf_policy.tokenizer
    texts = [
        "<think>low</think><answer>50</answer>",
        "<think>mid</think><answer>25</answer><|im_end|>",
        "<answer>12</answer>",
    ]
    pol = helpers.TokenScriptPolicy(tok, texts)
    eps = rollout(pol, [Task(GUESS, 7)], limits=RolloutLimits(max_turns=3))
    ep = eps[0]
    check_episode(ep, tok)
    assert len(pol.calls) == 3
    for call, turn in zip(pol.calls, ep.turns, strict=True):
        (prompt,) = call
        assert ep.token_ids[: len(prompt)] == prompt and turn.start == len(prompt)
    # A sampled end-of-turn token is not repeated by the reply delta.
    text = tok.decode(ep.token_ids)
    assert "<answer>25</answer><|im_end|>\n<|im_start|>user\n" in text
    assert "<|im_end|><|im_end|>" not in text
    # With a prefix-stable template the sequence equals a full render of the conversation.
    full = tok.apply_chat_template(ep.messages[:-1], tokenize=False, add_generation_prompt=False)
    assert ep.info["template_prefix_stable"] is True
    assert text == full.removesuffix("<|im_end|>\n")


QWEN3_STYLE = (
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}"
    "{%- set c = m.content %}"
    "{%- set later_user = namespace(v=false) %}"
    "{%- for n in messages[loop.index0 + 1:] %}{%- if n.role == 'user' %}{%- set later_user.v = true %}{%- endif %}{%- endfor %}"
    "{%- if later_user.v and '</think>' in c %}{%- set c = c.split('</think>')[-1] %}{%- endif %}"
    "{{- '<|im_start|>assistant\\n' + c + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def test_qwen3_style_template_keeps_sampled_thinking(tiny_path):
    """A template that strips past <think> blocks: the engine must keep the sampled tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_path)
    tok.chat_template = QWEN3_STYLE
    texts = [f"<think>reason {i}</think><answer>{g}</answer>" for i, g in enumerate((50, 25, 12))]
    pol = helpers.TokenScriptPolicy(tok, texts)
    ep = rollout(pol, [Task(GUESS, 7)], limits=RolloutLimits(max_turns=3))[0]
    check_episode(ep, tok)
    assert ep.info["template_prefix_stable"] is False
    for call in pol.calls:  # every prompt the policy saw is a prefix of the trained sequence
        assert ep.token_ids[: len(call[0])] == call[0]
    text = tok.decode(ep.token_ids)
    for i in range(3):
        assert f"<think>reason {i}</think>" in text
    # A naive full re-render would have dropped the earlier reasoning: the bug this avoids.
    rerender = tok.apply_chat_template(ep.messages[:-1], tokenize=False)
    assert "<think>reason 0</think>" not in rerender
    assert text.count("<|im_start|>user\n") == 3


def test_tool_replies_render_as_tool_role(hf_policy):
    tok = hf_policy.tokenizer
    texts = [
        '<tool_call>{"name": "echo", "arguments": {"x": 1}}</tool_call>',
        "<answer>done</answer>",
    ]
    ep = rollout(helpers.TokenScriptPolicy(tok, texts), [Task("test/Tool-v0", 0)])[0]
    check_episode(ep, tok)
    assert ep.success and ep.terminated and ep.stop_reason == "env_done"
    assert [t.action for t in ep.turns] == ["tool_call", "answer"]
    assert ep.turns[0].tool_calls == 1 and ep.turns[0].reply_role == "tool"
    assert "<tool_response>\necho: {'x': 1}\n</tool_response>" in tok.decode(ep.token_ids)
    assert [s.role for s in ep.spans] == ["system", "user", "assistant", "tool", "assistant"]
    assert ep.outcome_reward == 1.0 and ep.turns[-1].reward_components == {"outcome": 1.0}


def test_turn_records_and_state_keys():
    ep = rollout(SolverPolicy(), [Task(GUESS, 3)])[0]
    assert ep.success and not ep.trainable and ep.token_ids == []
    assert ep.turns[0].state_key == "1-100"  # the state the turn acted from
    assert ep.turns[1].state_key != "1-100"
    assert all(t.action == "answer" and not t.format_errors for t in ep.turns)
    assert [t.reply_role for t in ep.turns[:-1]] == ["user"] * (len(ep.turns) - 1)
    assert ep.turns[-1].reply_role == ""
    assert ep.messages[-1]["content"].startswith("Correct!")


def test_solver_demos_are_tokenized_for_sft(hf_policy):
    tok = hf_policy.tokenizer
    eps = rollout(SolverPolicy(tok), [Task(GUESS, s) for s in range(4)])
    for ep in eps:
        assert ep.success and not ep.trainable
        check_episode(ep, tok)
        assert ep.num_sampled_tokens == sum(t.end - t.start for t in ep.turns) > 0


def test_token_budget_truncates(hf_policy):
    eps = rollout(
        hf_policy,
        [Task(GUESS, 0)],
        params=SamplingParams(seed=1, stop=()),
        limits=RolloutLimits(max_new_tokens=40, max_total_tokens=200),
    )
    ep = eps[0]
    assert ep.truncated and ep.stop_reason == "max_tokens"
    assert len(ep.token_ids) <= 200
    check_episode(ep, hf_policy.tokenizer, hf_policy.model)


def test_hung_env_times_out_without_blocking_others():
    t = time.perf_counter()
    eps = rollout(
        ReplayPolicy(["<answer>1</answer>"] * 4),
        [Task("test/Hang-v0", 0), Task("test/Sleepy-v0", 1)],
        limits=RolloutLimits(episode_timeout_s=1.0),
    )
    assert time.perf_counter() - t < 5
    assert eps[0].stop_reason == "timeout" and eps[0].truncated
    assert eps[1].stop_reason == "max_turns" and len(eps[1].turns) == 4


def test_slow_env_does_not_delay_the_batch():
    """One env step sleeping 2 s in a batch of 16: the others finish all turns meanwhile."""
    tasks = [
        Task("test/Sleepy-v0", s, kwargs={"sleep_s": 2.0, "slow_seeds": (0,), "sleep_turns": 1})
        for s in range(16)
    ]
    t = time.perf_counter()
    eps = rollout(ReplayPolicy(["<answer>x</answer>"] * 4), tasks)
    wall = time.perf_counter() - t
    slow, fast = eps[0], eps[1:]
    assert all(len(e.turns) == 4 and e.stop_reason == "max_turns" for e in eps)
    assert max(e.timings["total_s"] for e in fast) < 1.0
    assert slow.timings["total_s"] >= 2.0 and wall < 4.0


def test_unknown_env_is_a_user_error():
    from tirgym.errors import TirgymError

    with pytest.raises(TirgymError):
        rollout(SolverPolicy(), [Task("tirgym/NoSuch-v0", 0)])


class ClosingEnv(helpers.SleepyEnv):
    """Records its close(), as a sandbox-backed env releases its session there."""

    closed: list[int] = []

    def close(self):
        ClosingEnv.closed.append(self.task_seed)
        super().close()


tirgym.register("test/Closing-v0", f"{__name__}:ClosingEnv", override=True)


def test_env_still_stepping_at_the_timeout_is_closed_when_its_step_returns():
    ClosingEnv.closed.clear()
    eps = rollout(
        ReplayPolicy(["<answer>1</answer>"] * 4),
        [Task("test/Closing-v0", 7, kwargs={"sleep_s": 1.0})],
        limits=RolloutLimits(episode_timeout_s=0.3),
    )
    assert eps[0].stop_reason == "timeout"
    deadline = time.perf_counter() + 5
    while not ClosingEnv.closed and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert ClosingEnv.closed == [7]


@pytest.mark.parametrize(
    "env_id,kwargs",
    [
        ("tirgym/Maze-v0", {"difficulty": "easy"}),
        ("tirgym/Countdown-v0", {"difficulty": "easy"}),
    ],
)
def test_random_policy_plays_valid_moves_in_games(env_id, kwargs):
    eps = rollout(
        RandomPolicy(), [Task(env_id, s, kwargs) for s in range(4)], params=SamplingParams(seed=0)
    )
    turns = [t for e in eps for t in e.turns]
    replies = [m["content"] for e in eps for m in e.messages[2:] if m["role"] != "assistant"]
    assert turns and all(not t.format_errors for t in turns)
    assert not [r for r in replies if "Cannot read" in r]  # the game reads every move
    assert len({t.text for t in turns}) > len(turns) // 2  # it really moves at random
    again = rollout(
        RandomPolicy(), [Task(env_id, s, kwargs) for s in range(4)], params=SamplingParams(seed=0)
    )
    assert [t.text for e in again for t in e.turns] == [t.text for t in turns]  # seeded


def test_random_guesses_stay_in_the_envs_range():
    eps = rollout(
        RandomPolicy(),
        [Task(GUESS, s, {"low": 1, "high": 8}) for s in range(4)],
        params=SamplingParams(seed=0),
    )
    guesses = [
        int(t.text[len("<answer>") : -len("</answer>")])
        for e in eps
        for t in e.turns
        if t.text.startswith("<answer>")
    ]
    assert guesses and all(1 <= g <= 8 for g in guesses)


def test_demos_say_why_episodes_were_dropped_and_take_a_larger_cap(tiny_path, tmp_path, capsys):
    from tirgym.cli import main

    tirgym.register_suite(
        "long-game",
        [{"id": "tirgym/Maze-v0", "name": "Maze-hard", "kwargs": {"difficulty": "hard"}}],
        override=True,
    )
    args = [
        "demos",
        "--suite",
        "long-game",
        "--n",
        "2",
        "--tokenizer",
        str(tiny_path),
        "--out",
        str(tmp_path / "d.jsonl"),
    ]
    main([*args, "--max-total-tokens", "600"])
    out = capsys.readouterr().out
    assert "Maze-hard: kept 0/2 (dropped: max_tokens 2); raise --max-total-tokens (now 600)" in out
    main([*args, "--max-total-tokens", "32000"])
    assert "Maze-hard: kept 2/2" in capsys.readouterr().out


class CountingStream:
    """A continuous batch that records how many episodes were in it at once."""

    def __init__(self, batch):
        self.batch, self.inside, self.most = batch, set(), 0

    def add(self, key, ids, seed):
        self.inside.add(key)
        self.most = max(self.most, len(self.inside))
        self.batch.add(key, ids, seed)

    def release(self, key):
        self.inside.discard(key)
        self.batch.release(key)

    def __getattr__(self, name):
        return getattr(self.batch, name)


def test_max_concurrent_streams_episodes_through_a_bounded_batch(hf_policy, monkeypatch):
    """Episodes wait for a place, then sample exactly what they sample in one big batch."""
    tasks = [Task(GUESS, s) for s in range(5)]
    params = SamplingParams(seed=3, max_new_tokens=12)
    limits = RolloutLimits(max_turns=3)
    free = rollout(hf_policy, tasks, group_size=2, params=params, limits=limits)
    streams = []
    real = hf_policy.open_stream
    monkeypatch.setattr(
        hf_policy,
        "open_stream",
        lambda *a, **k: streams.append(CountingStream(real(*a, **k))) or streams[-1],
    )
    seen = []
    capped = rollout(
        hf_policy,
        tasks,
        group_size=2,
        params=params,
        limits=limits,
        max_concurrent=3,
        on_episode=seen.append,
    )
    assert streams and streams[0].most == 3
    assert len(seen) == 10
    assert [(e.token_ids, e.stop_reason) for e in capped] == [
        (e.token_ids, e.stop_reason) for e in free
    ]
    with pytest.raises(tirgym.TirgymError, match="max_concurrent"):
        rollout(hf_policy, tasks, max_concurrent=0)


class SwapAfter:
    """LiveWeights that has version 1 waiting once `calls` checks have passed; its load
    records whether a turn was being generated at that moment."""

    def __init__(self, calls, streams):
        self.version, self.calls, self.streams = 0, calls, streams
        self.busy_at_load: list[bool] = []

    def pending(self):
        self.calls -= 1
        return self.version == 0 and self.calls < 0

    def load(self):
        self.busy_at_load.append(any(s.busy for s in self.streams))
        self.version = 1


@pytest.mark.parametrize(
    ("continuous", "checks"), [(True, 6), (False, 1)], ids=["stream", "rounds"]
)
def test_partial_rollouts_load_new_weights_between_turns(
    hf_policy, monkeypatch, continuous, checks
):
    """Episodes in flight go on with the newer weights; no turn is split across versions,
    and each turn says which version sampled it."""
    streams = []
    real = hf_policy.open_stream
    monkeypatch.setattr(
        hf_policy,
        "open_stream",
        lambda *a, **k: streams.append(CountingStream(real(*a, **k))) or streams[-1],
    )
    live = SwapAfter(checks, streams)
    eps = rollout(
        hf_policy,
        [Task(GUESS, s) for s in range(4)],
        group_size=2,
        params=SamplingParams(seed=1, max_new_tokens=12),
        limits=RolloutLimits(max_turns=3),
        continuous=continuous,
        live_weights=live,
    )
    assert live.busy_at_load == [False]
    versions = [[t.policy_version for t in e.turns] for e in eps]
    assert all(v == sorted(v) and set(v) <= {0, 1} for v in versions)  # never back to old
    assert any(v[0] == 0 and v[-1] == 1 for v in versions), versions  # crossed the update
    for ep in eps:
        check_episode(ep, hf_policy.tokenizer)
