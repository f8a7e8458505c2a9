"""Rendering a growing conversation to token ids without ever re-tokenizing sampled tokens.

The rollout keeps one flat token sequence per episode. The prompt is the chat template's
rendering of the system and user messages; each sampled turn is appended as the sampler's
own ids; each env reply is appended as the template's *delta*: the text the template adds
to close the assistant message, render the new message(s) and open the next assistant
turn. Earlier tokens are never re-rendered, so what the trainer sees is what was sampled.

Some templates are not prefix-stable: rendering a longer conversation changes the text of
earlier turns (Qwen3 drops the <think> block of assistant turns before the last user
message). `ChatRenderer` probes the template once (recorded in the episode's info) and
always takes the delta from a small neutral stand-in conversation: for a stable template
that equals the real conversation's delta, for an unstable one it gives the tokens a
stable template would and keeps the sampled reasoning in place; its cost does not grow
with the conversation.

Templates differ in what they render. Tool schemas go through `tools=` only where the
template uses them (the env's schema listing then leaves the system message, so the model
sees them once, in the form it was trained on); otherwise the system message keeps the
env's protocol paragraph with the listing. Env replies to tool calls use the `tool` role
where the template knows it; elsewhere (SmolLM2's plain ChatML) they become user messages
holding a <tool_response> block, as Hermes-style templates render them.
"""

from __future__ import annotations

import re
from typing import Any

from tirgym.errors import TirgymError
from tirgym.protocol import tool_listing

_SENTINEL = "\u2063TIRGYM_SENTINEL\u2063"

_PROBE = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "<think>r1</think><answer>1</answer>"},
    {"role": "user", "content": "U2"},
    {
        "role": "assistant",
        "content": '<think>r2</think><tool_call>{"name": "f", "arguments": {}}</tool_call>',
    },
    {"role": "tool", "content": "T1"},
    {"role": "assistant", "content": "<think>r3</think><answer>2</answer>"},
    {"role": "user", "content": "U3"},
]


_USES_TOOLS = re.compile(r"\btools\b")
_TOOL_ROLE = re.compile(r"""['"]tool['"]""")


def template_source(tokenizer: Any) -> str:
    t = getattr(tokenizer, "chat_template", None)
    if isinstance(t, dict):  # named templates: the default one
        t = t.get("default") or next(iter(t.values()), "")
    return t or ""


def supports_tools(tokenizer: Any) -> bool:
    """Does the chat template render a `tools=` argument?"""
    return bool(_USES_TOOLS.search(template_source(tokenizer)))


def supports_tool_role(tokenizer: Any) -> bool:
    """Does the chat template treat `tool` messages specially (not as just another role)?"""
    return bool(_TOOL_ROLE.search(template_source(tokenizer)))


class ChatRenderer:
    """Turns conversations into token ids by chat-template deltas (see module doc)."""

    def __init__(self, tokenizer: Any, tools: list[dict] | None = None):
        if getattr(tokenizer, "chat_template", None) is None:
            raise TirgymError(
                "The tokenizer has no chat template; use an instruct/chat model or set "
                "tokenizer.chat_template."
            )
        self.tokenizer = tokenizer
        self.tools = (tools or None) if supports_tools(tokenizer) else None
        """What `tools=` gets: None when the template does not render tools."""
        self._listing = tool_listing(self.tools) if self.tools else None
        self.tool_role = "tool" if supports_tool_role(tokenizer) else "user"
        self.prefix_stable = self._probe_prefix_stable()
        self._close = self._assistant_close()

    # ---- rendering ---------------------------------------------------------------------
    def adapt(self, messages: list[dict]) -> list[dict]:
        """The messages as this template should see them (see the module doc)."""
        out = []
        for m in messages:
            role, content = m.get("role"), m.get("content", "")
            if role == "system" and self._listing and self._listing in content:
                m = {**m, "content": _drop(content, self._listing)}
            elif role == "tool" and self.tool_role != "tool":
                m = {"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>"}
            out.append(m)
        return out

    def render(self, messages: list[dict], gen: bool) -> str:
        return self.tokenizer.apply_chat_template(
            self.adapt(messages), tools=self.tools, tokenize=False, add_generation_prompt=gen
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _probe_prefix_stable(self) -> bool:
        """Is every rendering a prefix of the rendering of any longer conversation?"""
        try:
            prev = self.render(_PROBE[:2], gen=True)
            for k in range(3, len(_PROBE) + 1):
                gen = _PROBE[k - 1]["role"] != "assistant"
                cur = self.render(_PROBE[:k], gen=gen)
                if not cur.startswith(prev):
                    return False
                prev = cur
        except Exception:  # a template that rejects the probe (strict alternation, ...)
            return False
        return True

    def _assistant_close(self) -> str:
        """What the template writes after an assistant message's content (e.g. '<|im_end|>\\n')."""
        msgs = [*_PROBE[:2], {"role": "assistant", "content": _SENTINEL}]
        text = self.render(msgs, gen=False)
        if _SENTINEL not in text:
            raise TirgymError("The chat template does not render assistant message contents.")
        return text.rsplit(_SENTINEL, 1)[1]

    # ---- token ids ---------------------------------------------------------------------
    def prompt(self, messages: list[dict]) -> tuple[list[int], list[tuple[int, int, str]]]:
        """Token ids of the opening messages plus the generation prompt, and message spans.

        Each message is tokenized on its own (message boundaries fall on special tokens,
        so this equals tokenizing the whole), which gives exact per-message spans.
        """
        ids: list[int] = []
        spans: list[tuple[int, int, str]] = []
        prev = ""
        full = self.render(messages, gen=True)
        pieces = []
        for k in range(1, len(messages) + 1):
            cur = self.render(messages[:k], gen=k == len(messages))
            if not cur.startswith(prev):
                pieces = [(full, messages[-1]["role"])]
                break
            pieces.append((cur[len(prev) :], messages[k - 1]["role"]))
            prev = cur
        for text, role in pieces:
            piece = self.encode(text)
            spans.append((len(ids), len(ids) + len(piece), role))
            ids += piece
        return ids, spans

    def reply_text(
        self, history: list[dict], content: str, sampled_end: str, replies: list[dict]
    ) -> str:
        """Text to append after a sampled assistant turn: close it, add `replies`, reopen.

        `history` ends before the assistant turn; `content` is the turn as a message
        content; `sampled_end` is the end-of-turn token text the sampler already emitted
        (e.g. '<|im_end|>'), which is not repeated.
        """
        # The delta is rendered after a small neutral conversation: constant cost per turn,
        # and equal to the real conversation's delta for prefix-stable templates (tested).
        text = self._close + self._delta(replies)
        if sampled_end and text.startswith(sampled_end):
            text = text[len(sampled_end) :]
        return text

    def _delta(self, replies: list[dict]) -> str:
        """The rendering of `replies` (+ generation prompt) after a neutral conversation."""
        bases = [
            [*_PROBE[:2], {"role": "assistant", "content": "A"}],
            list(_PROBE[:2]),
        ]
        for base in bases:
            try:
                before = self.render(base, gen=False)
                after = self.render([*base, *replies], gen=True)
            except Exception:
                continue
            if after.startswith(before):
                return after[len(before) :]
        raise TirgymError(
            "Cannot render env replies as a chat-template delta for this tokenizer's template."
        )

    def reply_ids(
        self, history: list[dict], content: str, sampled_end: str, replies: list[dict]
    ) -> list[int]:
        return self.encode(self.reply_text(history, content, sampled_end, replies))


def _drop(text: str, part: str) -> str:
    """`text` without `part` and the line break that joined it to the text before."""
    i = text.find(part)
    head, tail = text[:i], text[i + len(part) :]
    if head.endswith("\n"):
        head = head[:-1]
    elif tail.startswith("\n"):
        tail = tail[1:]
    return head + tail


def end_token_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """Ids that end a turn: the tokenizer's eos, <|im_end|>/<|endoftext|>, the model's eos."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
        if t in vocab:
            ids.add(int(vocab[t]))
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    if eos is not None:
        ids.update(int(e) for e in (eos if isinstance(eos, list | tuple) else [eos]))
    return ids
