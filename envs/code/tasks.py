"""Procedural coding tasks: string, list and number functions at three difficulties.

A task is a statement, a function name, a reference solution and hidden tests. Each
template draws its constants (a shift, a modulus, the letters to count, ...) and its test
inputs from `random.Random` seeded with the (difficulty, seed) string, so a seed gives the
same task on any machine. Expected outputs come from running the reference solution here
(trusted code) on the inputs; the hidden tests compare the submission's return values with
them outside the sandbox, so a submission cannot fake a pass by printing or by returning
objects with a doctored `__eq__`.
"""

from __future__ import annotations

import copy
import random
import string
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tirgym.envs.choices import DIFFICULTIES as DIFFICULTIES  # re-exported
from tirgym.envs.choices import check_difficulty

HIDDEN_TESTS = 10
EXAMPLES = 2


@dataclass(frozen=True)
class TestCase:
    """`expr`: evaluate `src` in the submission's namespace and compare with `expected`
    outside the sandbox; `stmt`: run `src` (e.g. an assert) and pass when it raises nothing."""

    __test__ = False  # not a pytest test class

    kind: str
    src: str
    expected: Any = None


@dataclass(frozen=True)
class CodeProblem:
    task_id: str
    prompt: str
    entry_point: str
    reference: str
    tests: tuple[TestCase, ...]
    setup: str = ""
    """Code run after the submission and before the tests (dataset test helpers)."""
    difficulty: str = ""
    family: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class _Template:
    name: str
    signature: str
    statement: Callable[[dict], str]
    reference: Callable[[dict], str]
    params: Callable[[random.Random], dict]
    inputs: Callable[[random.Random, dict], tuple]


def _src(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def _word(r: random.Random, lo: int = 1, hi: int = 7, letters: str = string.ascii_lowercase) -> str:
    return "".join(r.choice(letters) for _ in range(r.randint(lo, hi)))


def _ints(r: random.Random, lo: int, hi: int, n_lo: int = 0, n_hi: int = 10) -> list[int]:
    return [r.randint(lo, hi) for _ in range(r.randint(n_lo, n_hi))]


def _none(r: random.Random) -> dict:
    return {}


# ----------------------------------------------------------------------------- easy
EASY = [
    _Template(
        "reverse_words",
        "reverse_words(s: str) -> str",
        lambda p: (
            "Return the words of `s` (separated by single spaces) in reverse order, joined by single spaces."
        ),
        lambda p: _src("""
            def reverse_words(s):
                return " ".join(reversed(s.split(" "))) if s else ""
            """),
        _none,
        lambda r, p: (" ".join(_word(r) for _ in range(r.randint(1, 6))),),
    ),
    _Template(
        "count_letters",
        "count_letters(s: str) -> int",
        lambda p: (
            f"Return how many characters of `s` are one of the letters {', '.join(repr(c) for c in p['letters'])} (case-insensitive)."
        ),
        lambda p: _src(f"""
            def count_letters(s):
                return sum(1 for c in s.lower() if c in {p["letters"]!r})
            """),
        lambda r: {"letters": "".join(sorted(r.sample(string.ascii_lowercase, 3)))},
        lambda r, p: (_word(r, 0, 20, string.ascii_letters + "  "),),
    ),
    _Template(
        "sum_multiples",
        "sum_multiples(n: int) -> int",
        lambda p: (
            f"Return the sum of all positive integers below `n` that are divisible by {p['a']} or by {p['b']} (0 when there are none)."
        ),
        lambda p: _src(f"""
            def sum_multiples(n):
                return sum(k for k in range(1, n) if k % {p["a"]} == 0 or k % {p["b"]} == 0)
            """),
        lambda r: dict(zip("ab", r.sample(range(2, 12), 2), strict=True)),
        lambda r, p: (r.randint(0, 300),),
    ),
    _Template(
        "digit_sum",
        "digit_sum(n: int) -> int",
        lambda p: "Return the sum of the decimal digits of the integer `n` (ignore the sign).",
        lambda p: _src("""
            def digit_sum(n):
                return sum(int(d) for d in str(abs(n)))
            """),
        _none,
        lambda r, p: (r.randint(-(10 ** r.randint(1, 12)), 10 ** r.randint(1, 12)),),
    ),
    _Template(
        "keep_greater",
        "keep_greater(xs: list[int]) -> list[int]",
        lambda p: (
            f"Return a list of the elements of `xs` that are strictly greater than {p['k']}, in their original order."
        ),
        lambda p: _src(f"""
            def keep_greater(xs):
                return [x for x in xs if x > {p["k"]}]
            """),
        lambda r: {"k": r.randint(-5, 20)},
        lambda r, p: (_ints(r, -20, 40),),
    ),
    _Template(
        "caesar",
        "caesar(s: str) -> str",
        lambda p: (
            f"Shift every lowercase letter of `s` forward by {p['k']} places in the alphabet, wrapping from 'z' to 'a'; leave every other character unchanged."
        ),
        lambda p: _src(f"""
            def caesar(s):
                return "".join(chr((ord(c) - 97 + {p["k"]}) % 26 + 97) if "a" <= c <= "z" else c for c in s)
            """),
        lambda r: {"k": r.randint(1, 25)},
        lambda r, p: (_word(r, 0, 16, string.ascii_lowercase + "XYZ !,"),),
    ),
]

# --------------------------------------------------------------------------- medium
MEDIUM = [
    _Template(
        "run_length",
        "run_length(s: str) -> str",
        lambda p: (
            "Run-length encode `s`: each maximal run of a repeated character becomes the character followed by the run length, e.g. 'aaabcc' -> 'a3b1c2'. The empty string encodes to ''."
        ),
        lambda p: _src("""
            def run_length(s):
                out, i = [], 0
                while i < len(s):
                    j = i
                    while j < len(s) and s[j] == s[i]:
                        j += 1
                    out.append(f"{s[i]}{j - i}")
                    i = j
                return "".join(out)
            """),
        _none,
        lambda r, p: ("".join(r.choice("abc") * r.randint(1, 4) for _ in range(r.randint(0, 6))),),
    ),
    _Template(
        "second_largest",
        "second_largest(xs: list[int]) -> int | None",
        lambda p: (
            "Return the second largest distinct value in `xs`, or None when `xs` has fewer than two distinct values."
        ),
        lambda p: _src("""
            def second_largest(xs):
                values = sorted(set(xs))
                return values[-2] if len(values) >= 2 else None
            """),
        _none,
        lambda r, p: (_ints(r, -10, 10, 0, 9),),
    ),
    _Template(
        "rotate",
        "rotate(xs: list[int], k: int) -> list[int]",
        lambda p: (
            "Return `xs` rotated to the right by `k` positions (k may be negative, meaning to the left, or larger than the length). Do not modify `xs`."
        ),
        lambda p: _src("""
            def rotate(xs, k):
                if not xs:
                    return []
                k %= len(xs)
                return xs[-k:] + xs[:-k] if k else list(xs)
            """),
        _none,
        lambda r, p: (_ints(r, 0, 9, 0, 8), r.randint(-12, 12)),
    ),
    _Template(
        "is_palindrome",
        "is_palindrome(s: str) -> bool",
        lambda p: (
            "Return True when `s` reads the same forwards and backwards after removing every character that is not a letter or digit and ignoring case, else False."
        ),
        lambda p: _src("""
            def is_palindrome(s):
                t = [c.lower() for c in s if c.isalnum()]
                return t == t[::-1]
            """),
        _none,
        lambda r, p: (
            (lambda w: w + r.choice(["", " ", ",", "x"]) + w[::-1].upper())(
                _word(r, 0, 5, "abAB1 ")
            )
            if r.random() < 0.5
            else _word(r, 0, 9, "abAB1 ,"),
        ),
    ),
    _Template(
        "word_counts",
        "word_counts(s: str) -> list[tuple[str, int]]",
        lambda p: (
            "Split `s` on whitespace and return a list of (word, count) tuples, sorted by decreasing count and then alphabetically."
        ),
        lambda p: _src("""
            def word_counts(s):
                counts = {}
                for w in s.split():
                    counts[w] = counts.get(w, 0) + 1
                return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            """),
        _none,
        lambda r, p: (
            " ".join(r.choice(["a", "b", "cat", "dog", "ox"]) for _ in range(r.randint(0, 10))),
        ),
    ),
    _Template(
        "prefix_sums_mod",
        "prefix_sums_mod(xs: list[int]) -> list[int]",
        lambda p: (
            f"Return the list of prefix sums of `xs` taken modulo {p['m']} (Python's % semantics), so element i is (xs[0] + ... + xs[i]) % {p['m']}."
        ),
        lambda p: _src(f"""
            def prefix_sums_mod(xs):
                out, total = [], 0
                for x in xs:
                    total += x
                    out.append(total % {p["m"]})
                return out
            """),
        lambda r: {"m": r.randint(5, 97)},
        lambda r, p: (_ints(r, -100, 100),),
    ),
]

# ----------------------------------------------------------------------------- hard
HARD = [
    _Template(
        "lis_length",
        "lis_length(xs: list[int]) -> int",
        lambda p: (
            "Return the length of the longest strictly increasing subsequence of `xs` (not necessarily contiguous)."
        ),
        lambda p: _src("""
            import bisect

            def lis_length(xs):
                tails = []
                for x in xs:
                    i = bisect.bisect_left(tails, x)
                    tails[i:i + 1] = [x]
                return len(tails)
            """),
        _none,
        lambda r, p: (_ints(r, 0, 30, 0, 40),),
    ),
    _Template(
        "longest_unique_substring",
        "longest_unique_substring(s: str) -> int",
        lambda p: (
            "Return the length of the longest contiguous substring of `s` with no repeated character."
        ),
        lambda p: _src("""
            def longest_unique_substring(s):
                last, start, best = {}, 0, 0
                for i, c in enumerate(s):
                    if last.get(c, -1) >= start:
                        start = last[c] + 1
                    last[c] = i
                    best = max(best, i - start + 1)
                return best
            """),
        _none,
        lambda r, p: (_word(r, 0, 30, "abcdefg"),),
    ),
    _Template(
        "merge_intervals",
        "merge_intervals(intervals: list[list[int]]) -> list[list[int]]",
        lambda p: (
            "Given closed intervals [start, end] (start <= end), merge every group of overlapping or touching intervals (sharing an endpoint) and return the merged intervals as [start, end] lists sorted by start."
        ),
        lambda p: _src("""
            def merge_intervals(intervals):
                out = []
                for a, b in sorted(intervals):
                    if out and a <= out[-1][1]:
                        out[-1][1] = max(out[-1][1], b)
                    else:
                        out.append([a, b])
                return out
            """),
        _none,
        lambda r, p: (
            [sorted([r.randint(0, 40), r.randint(0, 40)]) for _ in range(r.randint(0, 8))],
        ),
    ),
    _Template(
        "count_climbs",
        "count_climbs(n: int) -> int",
        lambda p: (
            f"A staircase has `n` steps; each move climbs one of {p['steps']} steps. Return the number of distinct move sequences that reach exactly step `n`, modulo 1000000007 (1 for n = 0)."
        ),
        lambda p: _src(f"""
            def count_climbs(n):
                ways = [1] + [0] * n
                for i in range(1, n + 1):
                    ways[i] = sum(ways[i - s] for s in {p["steps"]!r} if s <= i) % 1000000007
                return ways[n]
            """),
        lambda r: {"steps": sorted(r.sample(range(1, 7), r.randint(2, 3)))},
        lambda r, p: (r.randint(0, 400),),
    ),
    _Template(
        "edit_distance",
        "edit_distance(a: str, b: str) -> int",
        lambda p: (
            "Return the minimum number of single-character insertions, deletions and substitutions that turn `a` into `b`."
        ),
        lambda p: _src("""
            def edit_distance(a, b):
                prev = list(range(len(b) + 1))
                for i, ca in enumerate(a, 1):
                    cur = [i]
                    for j, cb in enumerate(b, 1):
                        cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
                    prev = cur
                return prev[-1]
            """),
        _none,
        lambda r, p: (_word(r, 0, 10, "abcd"), _word(r, 0, 10, "abcd")),
    ),
    _Template(
        "min_bracket_removals",
        "min_bracket_removals(s: str) -> int",
        lambda p: (
            "`s` consists of the characters ()[]{}. Return the minimum number of characters to delete so that the rest is a correctly nested bracket sequence (the empty string is correct)."
        ),
        lambda p: _src("""
            from functools import lru_cache

            def min_bracket_removals(s):
                pairs = {"(": ")", "[": "]", "{": "}"}

                @lru_cache(maxsize=None)
                def keep(i, j):  # longest correct subsequence of s[i:j]
                    if j - i < 2:
                        return 0
                    best = keep(i + 1, j)
                    if s[i] in pairs:
                        for k in range(i + 1, j):
                            if s[k] == pairs[s[i]]:
                                best = max(best, 2 + keep(i + 1, k) + keep(k + 1, j))
                    return best

                return len(s) - keep(0, len(s))
            """),
        _none,
        lambda r, p: (_word(r, 0, 14, "()[]{}"),),
    ),
]

TEMPLATES = {"easy": EASY, "medium": MEDIUM, "hard": HARD}


def reference_function(source: str, name: str) -> Callable:
    """The reference solution as a callable (trusted source written in this module)."""
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<reference {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def _example(name: str, args: tuple, value: Any) -> str:
    return f"{name}({', '.join(repr(a) for a in args)}) == {value!r}"


def generate_code_task(seed: int, difficulty: str = "easy") -> CodeProblem:
    """The procedural task for (seed, difficulty): a template, its constants and tests."""
    check_difficulty(difficulty)
    r = random.Random(f"tirgym-code:{difficulty}:{int(seed)}")
    pool = TEMPLATES[difficulty]
    template = pool[int(seed) % len(pool)]  # round robin: every template at every seed block
    params = template.params(r)
    reference = template.reference(params)
    fn = reference_function(reference, template.name)
    seen: set[str] = set()
    cases: list[tuple[tuple, Any]] = []
    for _ in range(200):
        if len(cases) == HIDDEN_TESTS + EXAMPLES:
            break
        args = template.inputs(r, params)
        key = repr(args)
        if key in seen:
            continue
        seen.add(key)
        cases.append((args, fn(*copy.deepcopy(args))))
    examples, hidden = cases[:EXAMPLES], cases[EXAMPLES:]
    lines = "\n".join(f"    {_example(template.name, a, v)}" for a, v in examples)
    prompt = (
        f"Write a Python function `{template.signature}`.\n"
        f"{template.statement(params)}\n"
        f"Examples:\n{lines}\n"
        "Your function is run on hidden tests. Submit the complete code (imports included) "
        "inside <answer>...</answer>."
    )
    tests = tuple(
        TestCase("expr", f"{template.name}({', '.join(repr(a) for a in args)})", value)
        for args, value in hidden
    )
    return CodeProblem(
        task_id=f"{template.name}:{difficulty}:{seed}",
        prompt=prompt,
        entry_point=template.name,
        reference=reference,
        tests=tests,
        difficulty=difficulty,
        family=template.name,
        meta={"params": params},
    )
