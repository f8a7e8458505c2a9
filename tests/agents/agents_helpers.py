"""Test envs and policies for the agents tests."""

from __future__ import annotations

import threading
import time

import tirgym
from tirgym.agents.types import Completion
from tirgym.envs.base import Outcome, TextEnv


class SleepyEnv(TextEnv):
    """Answer anything; the episode lasts `max_turns` (any text counts as a turn, so random
    models run it too); step sleeps `sleep_s` for seeds in `slow_seeds` (all when empty) on
    turns up to `sleep_turns`."""

    description = "Say anything."

    def __init__(self, sleep_s: float = 0.0, slow_seeds: tuple = (), sleep_turns: int = 99, **kw):
        kw.setdefault("max_turns", 4)
        kw.setdefault("max_invalid_turns", 0)
        super().__init__(**kw)
        self.sleep_s, self.slow_seeds, self.sleep_turns = sleep_s, tuple(slow_seeds), sleep_turns

    def generate_task(self, rng, options):
        return f"Task {int(rng.integers(1000))}: reply with <answer>anything</answer>."

    def step(self, action):
        slow = not self.slow_seeds or self.task_seed in self.slow_seeds
        if self.sleep_s and slow and self.turn < self.sleep_turns:
            time.sleep(self.sleep_s)
        return super().step(action)

    def on_answer(self, answer):
        return Outcome(reply=f"got {answer}", rewards={"step": 0.1})


class ToolEnv(TextEnv):
    """One `echo` tool; answer 'done' to finish."""

    tools = [{"name": "echo", "description": "Echo text.", "parameters": {"type": "object"}}]

    def __init__(self, **kw):
        kw.setdefault("max_turns", 5)
        super().__init__(**kw)

    def generate_task(self, rng, options):
        return "Call echo, then answer done."

    def on_tool_call(self, call):
        return Outcome(reply=f"echo: {call.arguments}")

    def on_answer(self, answer):
        return Outcome(reply="ok", terminated=True, success=answer == "done")


class HangEnv(TextEnv):
    def generate_task(self, rng, options):
        return "hang"

    def on_answer(self, answer):
        threading.Event().wait(30)
        return Outcome(reply="late")


tirgym.register("test/Sleepy-v0", f"{__name__}:SleepyEnv", override=True)
tirgym.register("test/Tool-v0", f"{__name__}:ToolEnv", override=True)
tirgym.register("test/Hang-v0", f"{__name__}:HangEnv", override=True)


class TokenScriptPolicy:
    """A token-level policy that 'samples' fixed texts (ids = tokenization of the text).

    Records every prompt it was given, so tests can check the engine fed the sequence it trains on.
    """

    trainable = True

    def __init__(self, tokenizer, texts):
        self.tokenizer = tokenizer
        self.texts = texts
        self.calls: list[list[list[int]]] = []
        self.im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")

    def generate(self, prompt_token_ids, params):
        self.calls.append([list(p) for p in prompt_token_ids])
        out = []
        for p in prompt_token_ids:
            n = (p.count(self.im_start) - 3) // 2  # turn index: two <|im_start|> per turn
            text = self.texts[min(n, len(self.texts) - 1)]
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            out.append(Completion(ids, [-0.5] * len(ids), self.tokenizer.decode(ids), "stop", None))
        return out

    def update_weights(self, named_tensors):
        pass


def assert_token_exact(ep, tokenizer, model=None, tol: float = 1e-4) -> None:
    """The token-exactness bars: the mask is 1 exactly on sampled tokens, each turn's ids
    decode to its text, spans tile the sequence, and (with `model`) a full-sequence
    recompute gives the sampled logprobs."""
    import torch

    n = len(ep.token_ids)
    assert len(ep.loss_mask) == n and len(ep.logprobs) == n
    sampled = [0] * n
    for t in ep.turns:
        assert tokenizer.decode(ep.token_ids[t.start : t.end]) == t.text
        sampled[t.start : t.end] = [1] * (t.end - t.start)
    assert ep.loss_mask == sampled, "mask must be 1 exactly on sampled tokens"
    pos = 0
    for s in ep.spans:
        assert s.start == pos and s.end > s.start
        pos = s.end
    assert pos == n
    if model is not None:
        ids = torch.tensor([ep.token_ids])
        with torch.no_grad():
            logp = model(ids).logits[0].float().log_softmax(-1)
        re = logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
        mask = torch.tensor(ep.loss_mask[1:]).bool()
        err = (re[mask] - torch.tensor(ep.logprobs[1:])[mask]).abs().max().item()
        assert err < tol, err
