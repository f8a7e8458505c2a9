"""MathVerifier: extraction, fast paths, memoised gold parsing, bounded comparison.

``verify`` never raises: any failure (unparseable text, time limit, oversized input) is a
``Verdict`` with ``equal=False`` and a reason. Time limits are cooperative deadlines
checked inside the parser, evaluator and comparer, plus size caps applied before any
evaluation, so they work from any thread (no SIGALRM) and nothing can block on a
``9^{9^{9^9}}``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from multiprocessing import get_context

from tirgym.rewards.math.compare import Comparer, VerifyPolicy, rounds_to
from tirgym.rewards.math.extract import (
    MAX_EXTRACT_CHARS,
    boxed_contents,
    extract_answer,
    has_answer_marker,
)
from tirgym.rewards.math.limits import MAX_ANSWER_CHARS, Deadline, ParseError, TimeLimit
from tirgym.rewards.math.normalize import is_empty_set_phrase, normalize
from tirgym.rewards.math.parse import parse_expression

DEFAULT_TIMEOUT_S = 1.5
_GOLD_CACHE_MAX = 50_000
_SIMPLE_NUM = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_SIMPLE_FRAC = re.compile(r"^(-?\d+)/(\d+)$")
_CHOICE_GOLD = re.compile(r"^\(?\s*([A-E])\s*\)?$")
_CHOICE_PRED = re.compile(r"^\(\s*([A-E])\s*\)(?:\s|$)|^([A-E])(?:[).:]|$)")
_CHOICE_ANYWHERE = re.compile(r"\(([A-E])\)")
_TEXT_KEEP = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Verdict:
    """Outcome of one verification."""

    equal: bool
    reason: str
    prediction_parsed: str | None
    gold_parsed: str | None
    elapsed: float

    def __bool__(self) -> bool:
        return self.equal


def _answer_text(text: str, deadline: Deadline) -> str:
    if has_answer_marker(text):
        got = extract_answer(text, deadline=deadline)
        if got is not None:
            return got
    return text


def _boxes_as_list(prediction: str, gold_parsed: tuple, deadline: Deadline) -> str | None:
    """Several boxes against a gold list of as many items: ``\\boxed{2}, \\boxed{3}`` is the
    list ``2, 3``. Otherwise the last box counts (an earlier one is usually a step, and a
    response must not win by boxing every candidate)."""
    if gold_parsed[0] != "ast" or gold_parsed[1][0] != "list" or "\\" not in prediction:
        return None
    boxes = boxed_contents(prediction[-MAX_EXTRACT_CHARS:], deadline)
    if len(boxes) < 2 or len(boxes) != len(gold_parsed[1][1]):
        return None
    joined = ", ".join(boxes)
    return joined if len(joined) <= MAX_ANSWER_CHARS else None


def _decimal_fraction(text: str) -> tuple[Fraction, Fraction | None]:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    whole, _, frac = body.partition(".")
    value = Fraction(int((whole or "0") + frac), 10 ** len(frac))
    ulp = Fraction(1, 10 ** len(frac)) if frac else None
    return (-value if neg else value), ulp


def _simple_number(text: str) -> tuple[Fraction, Fraction | None] | None:
    if _SIMPLE_NUM.match(text):
        return _decimal_fraction(text)
    m = _SIMPLE_FRAC.match(text)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2))), None
    return None


def _lower_symbols(node: tuple) -> tuple:
    if node[0] == "s":
        return ("s", node[1].lower())
    out = [node[0]]
    for child in node[1:]:
        if isinstance(child, tuple) and child and isinstance(child[0], str):
            out.append(_lower_symbols(child))
        elif isinstance(child, tuple):
            out.append(
                tuple(
                    _lower_symbols(x) if isinstance(x, tuple) and x and isinstance(x[0], str) else x
                    for x in child
                )
            )
        else:
            out.append(child)
    return tuple(out)


def _mentions_j_only(text: str) -> bool:
    return bool(re.search(r"(?<![A-Za-z\\])j(?![A-Za-z])", text)) and not re.search(
        r"(?<![A-Za-z\\])[a-hk-zA-Z](?![A-Za-z])", text
    )


def _contains_i(node: tuple) -> bool:
    return "('c', 'i')" in repr(node)


def parse_answer(
    text: str,
    deadline: Deadline,
    *,
    j_imag: bool,
    case_sensitive: bool,
    normalized: str | None = None,
) -> tuple:
    """``("ast", node)``, ``("choice", letter)`` or ``("text", canonical string)``."""
    s = normalize(text) if normalized is None else normalized
    m = _CHOICE_GOLD.match(s) or _CHOICE_PRED.match(s)
    if m:
        return ("choice", m.group(1) or m.group(2))
    if is_empty_set_phrase(s):
        return ("ast", ("empty",))
    try:
        node = parse_expression(s, deadline, j_imag=j_imag)
    except (ParseError, RecursionError, ValueError, ZeroDivisionError):
        return ("text", _TEXT_KEEP.sub("", s.lower()))
    if not case_sensitive:
        node = _lower_symbols(node)
    return ("ast", node)


def _show(parsed: tuple) -> str:
    return f"{parsed[0]}:{parsed[1]!r}" if parsed[0] != "ast" else repr(parsed[1])


class MathVerifier:
    """Compare predictions with gold answers; see ``VerifyPolicy`` for the options."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S, **policy: bool):
        self.policy = VerifyPolicy(**policy)
        self.timeout_s = timeout_s
        self._gold_cache: dict[tuple, tuple] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._pool_workers = 0

    # -- single --------------------------------------------------------------------------
    def verify(self, *, prediction: str, gold: str) -> Verdict:
        """Whether ``prediction`` (a model response or bare answer) equals ``gold``.

        Keyword-only: Math-Verify's ``verify(gold, target)`` takes the gold first, so a
        positional call here could swap them silently (and asymmetric rules, such as a
        decimal gold accepting what rounds to it, would then judge the wrong side).
        """
        start = time.perf_counter()
        try:
            equal, reason, pp, gp = self._verify(prediction, gold, Deadline(self.timeout_s))
        except TimeLimit:
            equal, reason, pp, gp = False, "time limit", None, None
        except RecursionError:
            equal, reason, pp, gp = False, "too deeply nested", None, None
        except Exception as exc:  # never raise on model text
            equal, reason, pp, gp = False, f"error: {type(exc).__name__}", None, None
        return Verdict(equal, reason, pp, gp, time.perf_counter() - start)

    def _gold(self, gold: str, deadline: Deadline) -> tuple[str, tuple]:
        key = (gold, self.policy.case_sensitive_symbols)
        hit = self._gold_cache.get(key)
        if hit is not None:
            return hit
        text = _answer_text(gold, deadline)
        norm = normalize(text)
        deadline.check()
        parsed = parse_answer(
            text,
            deadline,
            j_imag=_mentions_j_only(norm),
            case_sensitive=self.policy.case_sensitive_symbols,
            normalized=norm,
        )
        if len(self._gold_cache) >= _GOLD_CACHE_MAX:
            self._gold_cache.clear()
        self._gold_cache[key] = (norm, parsed)
        return norm, parsed

    def _verify(self, prediction: str, gold: str, deadline: Deadline):
        if not isinstance(prediction, str) or not isinstance(gold, str):
            return False, "not a string", None, None
        pred_text = _answer_text(prediction, deadline)
        gold_text = gold if len(gold) > MAX_ANSWER_CHARS else None
        if len(pred_text) > MAX_ANSWER_CHARS or gold_text is not None:
            same = pred_text.strip() == (gold_text or _answer_text(gold, deadline)).strip()
            return same, "oversized: string comparison", None, None
        gold_norm, gold_parsed = self._gold(gold, deadline)
        pred_text = _boxes_as_list(prediction, gold_parsed, deadline) or pred_text
        pred_norm = normalize(pred_text)
        deadline.check()
        if not self.policy.case_sensitive_symbols:
            same = pred_norm.lower() == gold_norm.lower()
        else:
            same = pred_norm == gold_norm
        if not pred_norm or not gold_norm:
            return False, "empty answer", pred_norm, gold_norm
        if same:
            return True, "string match", pred_norm, gold_norm
        fast = self._fast_numbers(pred_norm, gold_norm)
        if fast is not None:
            return fast, "number fast path", pred_norm, gold_norm
        pred_parsed = parse_answer(
            pred_text,
            deadline,
            j_imag=gold_parsed[0] == "ast" and _contains_i(gold_parsed[1]),
            case_sensitive=self.policy.case_sensitive_symbols,
            normalized=pred_norm,
        )
        equal, reason = self._compare(pred_parsed, gold_parsed, pred_norm, deadline)
        return equal, reason, _show(pred_parsed), _show(gold_parsed)

    def _fast_numbers(self, pred: str, gold: str) -> bool | None:
        p, g = _simple_number(pred), _simple_number(gold)
        if p is None or g is None:
            return None
        (pv, p_ulp), (gv, g_ulp) = p, g
        if pv == gv:
            return True
        if self.policy.allow_rounded_decimals:
            if p_ulp is not None and rounds_to(pv, gv, p_ulp):
                return True
            if g_ulp is not None and rounds_to(gv, pv, g_ulp):
                return True
        return False

    def _compare(
        self, pp: tuple, gp: tuple, pred_norm: str, deadline: Deadline
    ) -> tuple[bool, str]:
        if gp[0] == "choice":
            if pp[0] == "choice":
                return pp[1] == gp[1], "choice letter"
            found = _CHOICE_ANYWHERE.findall(pred_norm)
            return bool(found) and found[-1] == gp[1], "choice letter"
        if pp[0] == "choice":
            if gp[0] == "ast" and gp[1] == ("s", pp[1]):
                return True, "choice letter"
            return False, "choice vs non-choice"
        if pp[0] == "text" or gp[0] == "text":
            return pp == gp, "text"
        equal = Comparer(self.policy, deadline).nodes_equal(pp[1], gp[1])
        return equal, "math equal" if equal else "math differ"

    # -- many ----------------------------------------------------------------------------
    def verify_many(
        self, pairs: Iterable[tuple[str, str]], workers: int | None = None
    ) -> list[Verdict]:
        """Verify ``(prediction, gold)`` pairs, in worker processes when ``workers > 1`` (default:
        CPU count)."""
        pairs = list(pairs)
        if workers is None:
            workers = os.cpu_count() or 1
        if workers <= 1 or len(pairs) < 2 * workers:
            return [self.verify(prediction=p, gold=g) for p, g in pairs]
        pool = self._get_pool(workers)
        chunk = max(1, len(pairs) // (workers * 4))
        chunks = [pairs[k : k + chunk] for k in range(0, len(pairs), chunk)]
        args = (asdict(self.policy), self.timeout_s)
        out: list[Verdict] = []
        for part in pool.map(_verify_chunk, [(args, c) for c in chunks]):
            out.extend(part)
        return out

    def _get_pool(self, workers: int) -> ProcessPoolExecutor:
        if self._pool is None or self._pool_workers != workers:
            self.close()
            self._pool = ProcessPoolExecutor(workers, mp_context=get_context("forkserver"))
            self._pool_workers = workers
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"] = None
        return state


_WORKER_VERIFIERS: dict[tuple, MathVerifier] = {}


def _verify_chunk(job: tuple[tuple[dict, float], Sequence[tuple[str, str]]]) -> list[Verdict]:
    (policy, timeout_s), pairs = job
    key = (tuple(sorted(policy.items())), timeout_s)
    verifier = _WORKER_VERIFIERS.get(key)
    if verifier is None:
        verifier = _WORKER_VERIFIERS[key] = MathVerifier(timeout_s=timeout_s, **policy)
    return [verifier.verify(prediction=p, gold=g) for p, g in pairs]


_DEFAULT_VERIFIERS: dict[tuple, MathVerifier] = {}


def math_equal(*, prediction: str, gold: str, **policy) -> bool:
    """True when ``prediction`` is mathematically equal to ``gold`` under ``policy``.

    Keyword-only, so that the gold cannot be passed where the prediction belongs (Math-Verify's
    ``verify`` takes the gold first).

    Keyword options and defaults: allow_rounded_decimals=False, percent_as_fraction=True,
    degrees_equal_radians=True, tuple_equals_vector=True, case_sensitive_symbols=True,
    timeout_s=1.5. Never raises on any string.
    """
    key = tuple(sorted(policy.items()))
    verifier = _DEFAULT_VERIFIERS.get(key)
    if verifier is None:
        verifier = _DEFAULT_VERIFIERS[key] = MathVerifier(**policy)
    return verifier.verify(prediction=prediction, gold=gold).equal
