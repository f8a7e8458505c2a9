"""Sampled tokens <-> characters, and which part of a turn each sampled token belongs to.

Character offsets come from decoding the *sampled* token ids of each turn piece by piece
(incremental detokenisation, the way inference engines stream text), never from
re-tokenising the text: re-tokenising can split the same text differently from how it was
sampled. A token that produced only part of a multi-byte character shares the span of the
token that completed it. Regions (think, tool call, answer) come from the parser's own
scanner, `tirgym.protocol.scan_turn`, so the trainer and the env read a turn the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tirgym.episode import Episode, Turn
from tirgym.protocol import TurnFormat, scan_turn

SPAN_OTHER, SPAN_THINK, SPAN_TOOL, SPAN_ANSWER = 0, 1, 2, 3
SPAN_NAMES = {
    SPAN_OTHER: "other",
    SPAN_THINK: "think",
    SPAN_TOOL: "tool_call",
    SPAN_ANSWER: "answer",
}
_REGION_LABEL = {
    "think": SPAN_THINK,
    "tool_call": SPAN_TOOL,
    "python": SPAN_TOOL,
    "answer": SPAN_ANSWER,
}
LABEL_FORMAT = TurnFormat(allow_python_block=True)
"""What `span_labels` reads when it is not told the env's format: python blocks count as
tool calls (the superset; pass the env's `TurnFormat` to label exactly as it parsed)."""


def decode_ids(tokenizer, ids: Sequence[int]) -> str:
    """Decode without dropping special tokens or cleaning spaces (HF or `tokenizers`)."""
    ids = list(ids)
    try:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    except TypeError:  # a raw `tokenizers.Tokenizer`
        return tokenizer.decode(ids, skip_special_tokens=False)


def token_char_spans(tokenizer, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """The text the sampled ids produce and, per id, the [start, end) characters it added.

    Incremental detokenisation: the text a token adds is decode(window + token) minus
    decode(window), where the window starts at the previously emitted token, so
    window-start artefacts (a dropped leading space, a visible '##') cancel out. A token
    that leaves a UTF-8 character unfinished spans up to and including that character
    once a later token completes it; a token that adds nothing gets an empty span.
    Offsets index the returned text exactly.
    """
    ids = list(ids)
    spans: list[tuple[int, int]] = [(0, 0)] * len(ids)
    parts: list[str] = []
    pos = 0
    prefix_offset = read_offset = 0
    emitted = 0  # characters of decode(ids[prefix_offset:...]) already emitted
    pending: list[tuple[int, int, int]] = []  # (token, first char touched, char awaited)
    for i in range(len(ids)):
        new_text = decode_ids(tokenizer, ids[prefix_offset : i + 1])
        incomplete = new_text.endswith("\ufffd") and i < len(ids) - 1 and i + 1 - prefix_offset < 64
        stable = new_text.rstrip("\ufffd") if incomplete else new_text
        chunk = stable[emitted:]
        start = pos
        if chunk:
            parts.append(chunk)
            pos += len(chunk)
            emitted = len(stable)
            # Tokens that left a character unfinished end with that character.
            for k, first, awaited in pending:
                spans[k] = (first, min(pos, awaited + 1))
            pending = []
        if incomplete:
            pending.append((i, start, pos))
            continue
        spans[i] = (start, pos)
        if chunk:
            prefix_offset, read_offset = read_offset, i + 1
            emitted = len(decode_ids(tokenizer, ids[prefix_offset:read_offset]))
    return "".join(parts), spans


@dataclass
class TurnTokens:
    """One turn's sampled ids decoded, with per-token character spans (relative to `text`)."""

    start: int
    text: str
    spans: list[tuple[int, int]]


def decode_turn(episode: Episode, turn: Turn, tokenizer) -> TurnTokens:
    text, spans = token_char_spans(tokenizer, episode.token_ids[turn.start : turn.end])
    return TurnTokens(turn.start, text, spans)


def think_region(text: str) -> tuple[int, int] | None:
    """[start, end) of the think text inside one turn's text, or None when there is none."""
    regions = scan_turn(text)
    if regions and regions[0].kind == "think":
        return regions[0].body_start, regions[0].body_end
    return None


def span_regions(text: str, fmt: TurnFormat = LABEL_FORMAT) -> list[tuple[int, int, int]]:
    """(start, end, label) character regions of one turn: think, tool calls, answer (tags included)."""
    return [(r.start, r.end, _REGION_LABEL[r.kind]) for r in scan_turn(text, fmt)]


def span_labels(episode: Episode, tokenizer, fmt: TurnFormat = LABEL_FORMAT) -> np.ndarray:
    """int8 array over episode.token_ids: SPAN_THINK / SPAN_TOOL / SPAN_ANSWER / SPAN_OTHER.

    A sampled token takes the label of the region its first character falls in (a token
    straddling `</think><answer>` counts as think); prompt and tool-output tokens are OTHER.
    """
    labels = np.zeros(len(episode.token_ids), dtype=np.int8)
    for turn in episode.turns:
        if turn.end <= turn.start:
            continue
        tt = decode_turn(episode, turn, tokenizer)
        regions = span_regions(tt.text, fmt)
        for k, (s, e) in enumerate(tt.spans):
            if e <= s:
                continue
            for a, b, label in regions:
                if a <= s < b:
                    labels[tt.start + k] = label
                    break
    return labels
