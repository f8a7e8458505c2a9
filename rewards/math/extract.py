"""Pull the final answer out of a model response.

Order of preference: the last ``\\boxed{}``/``\\fbox{}`` (balanced braces), then the last
``<answer>...</answer>``, then phrases such as "final answer is ...", "Answer: ...",
GSM8K's "#### ...". Several boxes are only merged when ``merge_boxes=True``: an early
box is usually an intermediate result, and merging them lets a response hedge.
"""

from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_PHRASE_RES = [
    re.compile(r"final answer is[:\s]*(.+?)(?:\.\s|\.?$|\n|\s+I hope)", re.IGNORECASE | re.DOTALL),
    re.compile(r"####\s*(.+?)\s*$", re.MULTILINE),
    re.compile(r"(?:^|\n|\s)answer\s*:\s*(.+?)(?:\.\s|\.?$|\n)", re.IGNORECASE),
    re.compile(
        r"(?:answer|option|choice)\s+is[:\s]*(.+?)(?:\.\s|\.?$|\n)", re.IGNORECASE | re.DOTALL
    ),
]
MAX_EXTRACT_CHARS = 200_000


def _balanced_from(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[start] == '{'`` and the end index."""
    depth = 0
    for k in range(start, len(text)):
        ch = text[k]
        if ch == "\\" and k + 1 < len(text) and text[k + 1] in "{}":
            continue
        if ch == "{" and (k == 0 or text[k - 1] != "\\"):
            depth += 1
        elif ch == "}" and (k == 0 or text[k - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : k], k + 1
    return None


def boxed_contents(text: str) -> list[str]:
    """Every ``\\boxed{...}``/``\\fbox{...}`` content in order (also ``\\boxed 5``)."""
    out: list[str] = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            return out
        k = m.end()
        if k < len(text) and text[k] == "{":
            got = _balanced_from(text, k)
            if got is None:
                return out
            out.append(got[0].strip())
            pos = got[1]
        else:
            tail = re.match(r"[^\s$]+", text[k:])
            if tail:
                out.append(tail.group(0))
            pos = k + 1


def _clean(ans: str) -> str:
    ans = ans.strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if ans.startswith(left) and ans.endswith(right) and len(ans) >= len(left) + len(right):
            ans = ans[len(left) : len(ans) - len(right)].strip()
    return ans.rstrip(".").strip()


def extract_answer(text: str, *, merge_boxes: bool = False) -> str | None:
    """The final answer in ``text``, or None when the response states none."""
    if not isinstance(text, str) or not text:
        return None
    text = text[-MAX_EXTRACT_CHARS:]
    boxes = boxed_contents(text)
    if boxes:
        return ", ".join(boxes) if merge_boxes and len(boxes) > 1 else boxes[-1]
    tags = _ANSWER_TAG_RE.findall(text)
    if tags:
        return _clean(tags[-1])
    for regex in _PHRASE_RES:
        found = regex.findall(text)
        if found:
            got = _clean(found[-1])
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
    )
