"""The turn protocol: how one model turn is read and how the format is taught.

A turn is an optional `<think>...</think>` followed by exactly one action:
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the Hermes/Qwen JSON form that
chat templates and vLLM tool parsers use) or `<answer>...</answer>`. Envs may also accept
a fenced ```python block as a call of the `python` tool.

`scan_turn` finds a turn's parts (think, actions) and is the one scanner that both
`parse_turn` and the trainer's token labelling use. It scans with `str.find` (linear time, no
backtracking regexes), so adversarial or huge inputs cost no more than reading them.
`parse_turn` never raises on model text: every problem becomes a precise message the env can
show the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
PY_OPEN, PY_CLOSE = "```python", "```"
STOP_STRINGS = (TOOL_CLOSE, ANSWER_CLOSE)
"""Generation stops after either closing tag: one action per turn."""

ToolSchema = dict[str, Any]
"""{"name": str, "description": str, "parameters": JSON schema} (OpenAI's `function` body)."""


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ParsedTurn:
    """What one model turn said, and what was wrong with its form."""

    think: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    answer: str | None = None
    errors: list[str] = field(default_factory=list)
    extra_actions: int = 0
    """Actions after the first one (ignored under the `first` policy)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def action(self) -> Literal["tool_call", "answer", "none"]:
        if self.tool_calls:
            return "tool_call"
        return "answer" if self.answer is not None else "none"

    @property
    def is_void(self) -> bool:
        """Neither a tool call nor an answer (SimpleTIR's void turn)."""
        return self.action == "none"

    def error_message(self) -> str:
        return " ".join(self.errors)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for info/JSON (hand-written: asdict's deep copy costs ~50 us a step)."""
        return {
            "think": self.think,
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in self.tool_calls],
            "answer": self.answer,
            "errors": list(self.errors),
            "extra_actions": self.extra_actions,
            "action": self.action,
        }


@dataclass(frozen=True)
class TurnFormat:
    """Per-env parsing policies."""

    tools: tuple[str, ...] | None = None
    """Names of the tools the env offers; None accepts any name, () allows no tool calls."""
    allow_answer: bool = True
    allow_python_block: bool = False
    """Treat a fenced ```python block as a call of the `python` tool."""
    multiple_actions: Literal["first", "error"] = "first"
    text_after_action: Literal["ignore", "error"] = "ignore"
    max_answer_chars: int = 10_000


def _parse_tool_json(body: str, fmt: TurnFormat) -> tuple[ToolCall | None, str | None]:
    body = body.strip()
    if not body:
        return None, 'Empty <tool_call>: put {"name": ..., "arguments": {...}} inside it.'
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as e:
        msg = getattr(e, "msg", "too deeply nested")
        return None, (
            f"Invalid JSON in <tool_call> ({msg}). Expected "
            '{"name": "<tool>", "arguments": {...}} with double-quoted keys.'
        )
    if not isinstance(obj, dict):
        return None, 'The <tool_call> body must be a JSON object {"name": ..., "arguments": {...}}.'
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, 'The <tool_call> object needs a string "name".'
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):
            return None, f'"arguments" of tool {name!r} must be a JSON object, got a string.'
    if not isinstance(args, dict):
        return None, f'"arguments" of tool {name!r} must be a JSON object.'
    if fmt.tools is not None and name not in fmt.tools:
        allowed = ", ".join(fmt.tools) if fmt.tools else "none in this environment"
        return None, f"Unknown tool {name!r}. Available tools: {allowed}."
    return ToolCall(name=name, arguments=args), None


RegionKind = Literal["think", "tool_call", "answer", "python"]


class Region(NamedTuple):
    """One tagged part of a turn, in character offsets of the turn's text.

    `start`/`end` include the tags; `body_start`/`body_end` are what is between them. An
    unclosed region runs to the end of the text it was found in (`closed` is False).
    Immutable, and a NamedTuple rather than a frozen dataclass: every env step builds one
    or two, and a frozen dataclass costs ~1 us each to build (a tuple ~0.2 us).
    """

    kind: RegionKind
    start: int
    end: int
    body_start: int
    body_end: int
    closed: bool = True


_ACTION_TAGS: tuple[tuple[RegionKind, str, str], ...] = (
    ("tool_call", TOOL_OPEN, TOOL_CLOSE),
    ("answer", ANSWER_OPEN, ANSWER_CLOSE),
)
_PYTHON_TAGS: tuple[RegionKind, str, str] = ("python", PY_OPEN, PY_CLOSE)


def _think_region(text: str) -> tuple[Region | None, int, int]:
    """The think region and the [lo, hi) range where actions are looked for."""
    close = text.find(THINK_CLOSE)
    open_ = text.find(THINK_OPEN)
    if close >= 0 and open_ < close:  # `<think>..</think>`, or `..</think>` (template-opened)
        body_start = open_ + len(THINK_OPEN) if open_ >= 0 else 0
        end = close + len(THINK_CLOSE)
        return Region("think", max(open_, 0), end, body_start, close), end, len(text)
    if open_ >= 0:  # unclosed (or opened after the close): only the text before it can act
        region = Region("think", open_, len(text), open_ + len(THINK_OPEN), len(text), False)
        return region, 0, open_
    return None, 0, len(text)


def _action_regions(text: str, lo: int, hi: int, fmt: TurnFormat) -> list[Region]:
    """Every action in text[lo:hi], in order; an unclosed one ends the scan.

    Each kind's next opening tag is found once and reused until the scan passes it, so the
    cost is one pass over the text however many tags it holds.
    """
    kinds = _ACTION_TAGS + ((_PYTHON_TAGS,) if fmt.allow_python_block else ())
    nxt = [text.find(open_tag, lo, hi) for _, open_tag, _ in kinds]
    regions: list[Region] = []
    pos = lo
    while True:
        best = -1
        for k, (_, open_tag, _) in enumerate(kinds):
            if 0 <= nxt[k] < pos:
                nxt[k] = text.find(open_tag, pos, hi)
            if nxt[k] >= 0 and (best < 0 or nxt[k] < nxt[best]):
                best = k
        if best < 0:
            return regions
        kind, open_tag, close_tag = kinds[best]
        i = nxt[best]
        body_start = i + len(open_tag)
        j = text.find(close_tag, body_start, hi)
        if j < 0:
            regions.append(Region(kind, i, hi, body_start, hi, False))
            return regions
        pos = j + len(close_tag)
        regions.append(Region(kind, i, pos, body_start, j))


def scan_turn(text: str, fmt: TurnFormat | None = None) -> list[Region]:
    """The think region (if any) and every action of one turn, in the parser's reading.

    The one place that decides where a turn's parts are: `parse_turn` reads its actions from
    here and the trainer labels tokens by the same regions. Linear time on any input.
    """
    fmt = fmt or TurnFormat()
    think, lo, hi = _think_region(text)
    actions = _action_regions(text, lo, hi, fmt)
    return [think, *actions] if think is not None else actions


_PLAIN_ANSWER = re.compile(r"\s*(?:<think>([^<]*)</think>\s*)?<answer>([^<]*)</answer>\s*")
"""A turn that is only an answer (after an optional think), with no other tag inside: the
common shape, read in one C-speed match. `[^<]*` cannot backtrack into a tag, so it is
linear; anything else takes the scanner (`scan_turn`), which reads this shape the same way."""


def plain_answer(text: str, fmt: TurnFormat) -> tuple[str | None, str] | None:
    """(think, answer) of a valid turn that is only an answer, read at C speed; None for
    any other turn (parse it with `parse_turn`, which reads this shape the same way)."""
    plain = _PLAIN_ANSWER.fullmatch(text)
    if plain is None or not fmt.allow_answer:
        return None
    think, body = plain.groups()
    answer = body.strip()
    if answer and len(body) <= fmt.max_answer_chars:
        return (think.strip() if think is not None else None), answer
    return None


def answer_record(think: str | None, answer: str) -> dict[str, Any]:
    """`ParsedTurn.to_dict()` of a valid plain-answer turn, built without the ParsedTurn."""
    return {
        "think": think,
        "tool_calls": [],
        "answer": answer,
        "errors": [],
        "extra_actions": 0,
        "action": "answer",
    }


def parse_turn(text: str, fmt: TurnFormat | None = None) -> ParsedTurn:
    """Parse one model turn. Never raises; problems are listed in `.errors`."""
    fmt = fmt or TurnFormat()
    if not isinstance(text, str):
        return ParsedTurn(errors=[f"A turn must be text, got {type(text).__name__}."])
    plain = plain_answer(text, fmt)
    if plain is not None:
        return ParsedTurn(think=plain[0], answer=plain[1])
    turn = ParsedTurn()
    think, lo, hi = _think_region(text)
    if think is not None:
        turn.think = text[think.body_start : think.body_end].strip()
        if not think.closed:
            turn.errors.append(
                "Unclosed <think>: close your reasoning with </think> before acting."
            )

    actions = _action_regions(text, lo, hi, fmt)
    if not actions:
        if fmt.allow_answer and fmt.tools != ():
            want = "a <tool_call>...</tool_call> or an <answer>...</answer>"
        elif fmt.allow_answer:
            want = "an <answer>...</answer>"
        else:
            want = "a <tool_call>...</tool_call>"
        if fmt.allow_python_block:
            want += " (or a ```python code block)"
        turn.errors.append(f"No action found: end your turn with {want}.")
        return turn

    first = actions[0]
    kind = first.kind
    if len(actions) > 1:
        turn.extra_actions = len(actions) - 1
        if fmt.multiple_actions == "error":
            turn.errors.append(f"Found {len(actions)} actions; give exactly one action per turn.")
    elif fmt.text_after_action == "error" and text[first.end : hi].strip():
        turn.errors.append("Text after the action: end your turn right after the closing tag.")

    if not first.closed:
        tag = {"tool_call": TOOL_CLOSE, "answer": ANSWER_CLOSE, "python": "```"}[kind]
        turn.errors.append(f"Unclosed {kind} block: close it with {tag}.")
        return turn
    body = text[first.body_start : first.body_end]
    if kind == "answer":
        if not fmt.allow_answer:
            turn.errors.append("This environment takes no <answer>; use a tool call.")
        elif not body.strip():
            turn.errors.append("Empty <answer></answer>: put your final answer inside the tags.")
        elif len(body) > fmt.max_answer_chars:
            turn.errors.append(f"Answer too long (limit {fmt.max_answer_chars} characters).")
        else:
            turn.answer = body.strip()
    elif kind == "python":
        if fmt.tools is not None and "python" not in fmt.tools:
            turn.errors.append("This environment has no python tool.")
        elif not body.strip("\n ").strip():
            turn.errors.append("Empty python block.")
        else:
            turn.tool_calls.append(ToolCall("python", {"code": body.strip("\n")}))
    else:
        call, err = _parse_tool_json(body, fmt)
        if err:
            turn.errors.append(err)
        else:
            turn.tool_calls.append(call)
    return turn


def tool_listing(tools: list[ToolSchema]) -> str:
    """The schema listing inside the format paragraph; a chat template that renders
    `tools=` itself replaces it (tirgym.agents.chat.ChatRenderer takes it out)."""
    schemas = [json.dumps(t, ensure_ascii=False, sort_keys=True) for t in tools]
    return "\n".join(["Available tools (JSON schemas):", "<tools>", *schemas, "</tools>"])


def render_format_instructions(
    tools: list[ToolSchema] | None = None,
    *,
    allow_answer: bool = True,
    allow_python_block: bool = False,
) -> str:
    """The system-prompt paragraph that teaches the turn format and lists the tools."""
    lines = [
        "Think step by step inside <think>...</think>, then end your turn with exactly one action.",
    ]
    if tools:
        lines.append(
            'To call a tool, write <tool_call>{"name": <tool name>, "arguments": '
            "<JSON object>}</tool_call>; the result comes back in the next message."
        )
        lines.append(tool_listing(tools))
        if allow_python_block:
            lines.append("A fenced ```python code block also calls the python tool.")
    if allow_answer:
        lines.append("To finish, give your final answer as <answer>...</answer>.")
        if tools and any(t.get("name") == "python" for t in tools):
            # One worked exchange: small instruct models copy it far more reliably than
            # they follow the rules above (they otherwise never close with an answer).
            lines.append(
                'Example: <tool_call>{"name": "python", "arguments": {"code": "print(37 * 91)"}}'
                "</tool_call> runs the code; when 3367 comes back, reply <answer>3367</answer>."
            )
    return "\n".join(lines)
