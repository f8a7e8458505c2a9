"""Pull the final answer out of a model response.

Order of preference: the last ``\\boxed{}``/``\\fbox{}`` (balanced braces), then the last
``<answer>...</answer>``, then the last of each phrase in turn: "final answer is ...",
GSM8K's "#### ...", "Answer: ..." (also markdown's ``**Answer:** ...``), "the answer is ...",
and last a concluding sentence with inline math ("So $n = 5$."). Several boxes are only
merged when ``merge_boxes=True``: an early box is usually an intermediate result, and
merging them lets a response hedge (the verifier merges them only against a gold list of
as many items).

Linear time on any input: every regex here is a literal (or a literal with possessive
whitespace) located with ``finditer``; where an answer ends is found with ``str.find``-style
scans, never with a lazy group followed by a repeated class, which backtracks
quadratically on long runs of spaces.
"""

from __future__ import annotations

import re
from collections import deque

from tirgym.rewards.math.limits import Deadline

MAX_EXTRACT_CHARS = 200_000

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*+")
_BRACE = re.compile(r"\\?[{}]")
_BARE_BOX = re.compile(r"[^\s$]+")
_ANSWER_TAG_RE = re.compile(r"<(/?)answer>", re.IGNORECASE)
_DOT_SPACE = re.compile(r"\.\s")
_HOPE = re.compile(r"I hope", re.IGNORECASE)
_CONCLUSION = re.compile(
    r"(?:^|(?<=[.!?:])\s)\s*+(?:so|thus|therefore|hence|finally)\b", re.IGNORECASE
)
_INLINE_MATH = re.compile(r"\$([^$]+)\$")
_SENTENCE_BREAK = re.compile(r"[.!?]\s+\S")


def _balanced_from(
    text: str, start: int, deadline: Deadline | None = None
) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[start] == '{'`` and the end index."""
    depth = 0
    for n, m in enumerate(_BRACE.finditer(text, start)):
        if deadline is not None and n % 4096 == 4095:
            deadline.check()
        if len(m.group(0)) == 2:  # an escaped brace: \{ or \}
            continue
        depth += 1 if m.group(0) == "{" else -1
        if depth == 0:
            return text[start + 1 : m.start()], m.end()
    return None


def boxed_contents(text: str, deadline: Deadline | None = None) -> list[str]:
    """Every ``\\boxed{...}``/``\\fbox{...}`` content in order (also ``\\boxed 5``)."""
    out: list[str] = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            return out
        if deadline is not None and len(out) % 256 == 255:
            deadline.check()
        k = m.end()
        if k < len(text) and text[k] == "{":
            got = _balanced_from(text, k, deadline)
            if got is None:
                return out
            out.append(got[0].strip())
            pos = got[1]
        else:
            tail = _BARE_BOX.match(text, k)
            if tail:
                out.append(tail.group(0))
            pos = tail.end() if tail else k + 1


def _last_answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>...</answer>`` (an open tag pairs with the next close)."""
    found, opened = None, -1
    for m in _ANSWER_TAG_RE.finditer(text):
        if not m.group(1):
            if opened < 0:
                opened = m.end()
        elif opened >= 0:
            found, opened = text[opened : m.start()], -1
    return found


def _answer_end(text: str, start: int, *, hope: bool) -> int:
    """Where an answer that starts at ``start`` ends: the first ". ", newline, final ".",
    or (with ``hope``) the whitespace before "I hope"; at least one character long."""
    first = start + 1
    end = len(text)
    if end - 1 >= first and text.endswith("."):
        end -= 1
    newline = text.find("\n", first)
    if 0 <= newline < end:
        end = newline
    dot = _DOT_SPACE.search(text, first, end + 1)
    if dot is not None and dot.start() < end:
        end = dot.start()
    if hope:
        for m in _HOPE.finditer(text, first, end + len("I hope")):
            q = m.start()
            if q > end:
                break
            r = q
            while r > first and text[r - 1].isspace():
                r -= 1
            if r < q:
                end = min(end, r)
                break
    return end


def _clean(ans: str) -> str:
    ans = ans.strip().strip("*").strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if ans.startswith(left) and ans.endswith(right) and len(ans) >= len(left) + len(right):
            ans = ans[len(left) : len(ans) - len(right)].strip()
    return ans.rstrip(".").strip().strip("*").strip()


def _last(regex: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = deque(regex.finditer(text), maxlen=1)
    return last[0] if last else None


def _phrase_answer(text: str, lead: re.Pattern[str], *, hope: bool = False) -> str | None:
    m = _last(lead, text)
    if m is None or m.end() >= len(text):
        return None
    return _clean(text[m.end() : _answer_end(text, m.end(), hope=hope)]) or None


def _gsm8k_answer(text: str) -> str | None:
    m = _last(_GSM8K_LEAD, text)
    if m is None:
        return None
    stop = text.find("\n", m.end())
    return _clean(text[m.end() : len(text) if stop < 0 else stop]) or None


def conclusion_math(text: str) -> str | None:
    """The inline math of a concluding last sentence: "So $n = 5$." -> ``n = 5``."""
    body = text.rstrip()
    line = body[body.rfind("\n") + 1 :]
    m = _last(_CONCLUSION, line)
    if m is None:
        return None
    sentence = line[m.end() :]
    math = _last(_INLINE_MATH, sentence)
    if math is None or _SENTENCE_BREAK.search(_INLINE_MATH.sub(" ", sentence)):
        return None  # no math, or the conclusion is not the last sentence
    return _clean(math.group(1)) or None


_FINAL_LEAD = re.compile(r"final answer is[:\s]*+", re.IGNORECASE)
_GSM8K_LEAD = re.compile(r"####\s*+")
_COLON_LEAD = re.compile(r"(?:^|(?<=[\s*_]))answer[*_]*+\s*+:[\s*_]*+", re.IGNORECASE)
_IS_LEAD = re.compile(r"(?:answer|option|choice)\s++is[:\s*_]*+", re.IGNORECASE)


def extract_answer(
    text: str, *, merge_boxes: bool = False, deadline: Deadline | None = None
) -> str | None:
    """The final answer in ``text``, or None when the response states none.

    With a ``deadline``, raises ``TimeLimit`` between (and inside) the stages once it passes.
    """
    if not isinstance(text, str) or not text:
        return None
    text = text[-MAX_EXTRACT_CHARS:]
    boxes = boxed_contents(text, deadline)
    if boxes:
        return ", ".join(boxes) if merge_boxes and len(boxes) > 1 else boxes[-1]
    stages = (
        _last_answer_tag,
        lambda t: _phrase_answer(t, _FINAL_LEAD, hope=True),
        _gsm8k_answer,
        lambda t: _phrase_answer(t, _COLON_LEAD),
        lambda t: _phrase_answer(t, _IS_LEAD),
        conclusion_math,
    )
    for k, stage in enumerate(stages):
        if deadline is not None:
            deadline.check()
        got = stage(text)
        if k == 0 and got is not None:  # an <answer> tag is the answer, even if empty
            return _clean(got)
        if got:
            return got
    return None


def has_answer_marker(text: str) -> bool:
    """Whether ``text`` is a response wrapping its answer rather than a bare answer."""
    low = text.lower()
    return (
        "\\boxed" in text
        or "\\fbox" in text
        or "<answer>" in low
        or "answer" in low
        or "####" in text
        or ("$" in text and conclusion_math(text[-MAX_EXTRACT_CHARS:]) is not None)
    )
