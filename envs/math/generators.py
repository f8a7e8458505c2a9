"""Procedural math tasks (no download) and a loader for GSM8K/MATH-format files.

Every generator is ``gen(seed, difficulty) -> MathTask`` and is deterministic: the same
(seed, difficulty) always gives the same task, on any machine (``random.Random`` seeded
with a string). Each task carries a reference python program that prints the gold answer
(used for expert demonstrations in tool-integrated reasoning); the tests run every
program and check its output against the gold with the verifier.

Families: arithmetic (big integers), linear_equation, fractions, modular, combinatorics,
countdown (make the target from given numbers; answers are checked with
``check_countdown``, since many expressions are correct).
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from tirgym.envs.choices import DIFFICULTIES, check_difficulty
from tirgym.errors import TirgymError
from tirgym.rewards.math import extract_answer


@dataclass(frozen=True)
class MathTask:
    """One math problem: the question, its gold answer and a program printing that answer."""

    question: str
    answer: str
    solution_code: str
    family: str
    difficulty: str = ""
    seed: int | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def _rng(family: str, seed: int, difficulty: str) -> random.Random:
    check_difficulty(difficulty)
    return random.Random(f"tirgym-math:{family}:{difficulty}:{int(seed)}")


def _code(src: str) -> str:
    return textwrap.dedent(src).strip() + "\n"


def _frac_text(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


# ------------------------------------------------------------------------- arithmetic
def arithmetic(seed: int, difficulty: str = "easy") -> MathTask:
    """Exact integer arithmetic with numbers too long to do reliably in one's head."""
    r = _rng("arithmetic", seed, difficulty)
    if difficulty == "easy":
        a, b = r.randint(100, 9999), r.randint(100, 9999)
        op = r.choice("+-*")
        expr = f"{a} {op} {b}"
    elif difficulty == "medium":
        a, b, c = r.randint(10**7, 10**10), r.randint(10**5, 10**8), r.randint(10**6, 10**9)
        expr = f"{a} * {b} - {c}"
    else:
        a, b, c = r.randint(10**18, 10**25), r.randint(10**15, 10**20), r.randint(2, 9)
        e = r.randint(12, 30)
        expr = f"{a} * {b} + {c}**{e}"
    value = eval(compile(ast.parse(expr, mode="eval"), "<expr>", "eval"), {"__builtins__": {}})
    shown = re.sub(r"\*\*(\d+)", r"^{\1}", expr).replace("*", "\\times")
    return MathTask(
        question=f"Compute ${shown}$ exactly.",
        answer=str(value),
        solution_code=_code(f"print({expr})"),
        family="arithmetic",
        difficulty=difficulty,
        seed=seed,
    )


# ------------------------------------------------------------------- linear equations
def _coef(k: int) -> str:
    return {1: "", -1: "-"}.get(k, str(k))


def _combo(a: int, b: int) -> str:
    """``ax + by`` without zero terms or unit coefficients."""
    terms = [f"{_coef(k)}{v}" for k, v in ((a, "x"), (b, "y")) if k]
    return " + ".join(terms).replace("+ -", "- ")


def linear_equation(seed: int, difficulty: str = "easy") -> MathTask:
    """One linear equation (easy/medium) or a 2x2 system (hard) with a unique solution."""
    r = _rng("linear_equation", seed, difficulty)
    if difficulty in ("easy", "medium"):
        a = r.choice([k for k in range(-12, 13) if k not in (0,)])
        c = r.choice([k for k in range(-12, 13) if k != a]) if difficulty == "medium" else 0
        b, d = r.randint(-50, 50), r.randint(-50, 50)
        if difficulty == "easy":
            x = r.randint(-20, 20)
            d = a * x + b
        x = Fraction(d - b, a - c)
        left = f"{_coef(a)}x {'+' if b >= 0 else '-'} {abs(b)}"
        right = f"{_coef(c)}x {'+' if d >= 0 else '-'} {abs(d)}" if c else str(d)
        question = f"Solve for $x$: ${left} = {right}$."
        code = f"""
        from fractions import Fraction
        a, b, c, d = {a}, {b}, {c}, {d}
        x = Fraction(d - b, a - c)  # ax + b = cx + d
        print(x)
        """
        return MathTask(question, _frac_text(x), _code(code), "linear_equation", difficulty, seed)
    while True:
        a, b, c, d = (r.randint(-9, 9) for _ in range(4))
        if a * d - b * c != 0:
            break
    x, y = Fraction(r.randint(-15, 15)), Fraction(r.randint(-15, 15), r.choice([1, 1, 2, 3]))
    e, f = a * x + b * y, c * x + d * y
    question = (
        f"Solve the system $\\begin{{cases}} {_combo(a, b)} = {_frac_text(e)} \\\\ "
        f"{_combo(c, d)} = {_frac_text(f)} \\end{{cases}}$ and give the answer as $(x, y)$."
    )
    code = f"""
    from fractions import Fraction as F
    a, b, e = F({a}), F({b}), F("{_frac_text(e)}")
    c, d, f = F({c}), F({d}), F("{_frac_text(f)}")
    det = a * d - b * c  # Cramer's rule
    x, y = (e * d - b * f) / det, (a * f - e * c) / det
    print(f"({{x}}, {{y}})")
    """
    answer = f"({_frac_text(x)}, {_frac_text(y)})"
    return MathTask(question, answer, _code(code), "linear_equation", difficulty, seed)


# ------------------------------------------------------------------------- fractions
def fractions(seed: int, difficulty: str = "easy") -> MathTask:
    """Arithmetic on fractions; the answer is a reduced fraction."""
    r = _rng("fractions", seed, difficulty)
    terms = {"easy": 2, "medium": 3, "hard": 5}[difficulty]
    top = {"easy": 9, "medium": 20, "hard": 60}[difficulty]
    ops = "+-" if difficulty == "easy" else "+-*/"
    n, d = r.randint(1, top), r.randint(2, top)
    expr_py = [f"F({n}, {d})"]
    expr_tex = [f"\\frac{{{n}}}{{{d}}}"]
    for _ in range(terms - 1):
        op = r.choice(ops)
        n, d = r.randint(1, top), r.randint(2, top)
        expr_py += [op, f"F({n}, {d})"]
        expr_tex += [{"*": "\\times", "/": "\\div"}.get(op, op), f"\\frac{{{n}}}{{{d}}}"]
    py = " ".join(expr_py)
    value = eval(py, {"__builtins__": {}, "F": Fraction})
    code = f"""
    from fractions import Fraction as F
    print({py})
    """
    question = f"Compute ${' '.join(expr_tex)}$. Give the answer as a fraction in lowest terms."
    return MathTask(question, _frac_text(value), _code(code), "fractions", difficulty, seed)


# --------------------------------------------------------------------------- modular
def modular(seed: int, difficulty: str = "easy") -> MathTask:
    """Remainders, modular powers and the Chinese remainder theorem."""
    r = _rng("modular", seed, difficulty)
    if difficulty == "easy":
        a, m = r.randint(10**3, 10**6), r.randint(3, 97)
        question = f"What is the remainder when ${a}$ is divided by ${m}$?"
        code = f"print({a} % {m})"
        answer = a % m
    elif difficulty == "medium":
        a, e, m = r.randint(2, 999), r.randint(10**3, 10**7), r.randint(10**3, 10**5)
        question = f"Compute ${a}^{{{e}}} \\bmod {m}$."
        code = f"print(pow({a}, {e}, {m}))"
        answer = pow(a, e, m)
    else:
        while True:
            m1, m2, m3 = r.randint(5, 60), r.randint(5, 60), r.randint(5, 60)
            if math.gcd(m1, m2) == math.gcd(m1, m3) == math.gcd(m2, m3) == 1:
                break
        a1, a2, a3 = r.randrange(m1), r.randrange(m2), r.randrange(m3)
        mod = m1 * m2 * m3
        answer = next(x for x in range(mod) if x % m1 == a1 and x % m2 == a2 and x % m3 == a3)
        question = (
            f"Find the smallest non-negative integer $x$ with $x \\equiv {a1} \\pmod{{{m1}}}$, "
            f"$x \\equiv {a2} \\pmod{{{m2}}}$ and $x \\equiv {a3} \\pmod{{{m3}}}$."
        )
        code = f"""
        residues = [({a1}, {m1}), ({a2}, {m2}), ({a3}, {m3})]
        x, mod = 0, 1
        for a, m in residues:  # Chinese remainder theorem, one congruence at a time
            while x % m != a:
                x += mod
            mod *= m
        print(x)
        """
    return MathTask(question, str(answer), _code(code), "modular", difficulty, seed)


# ---------------------------------------------------------------------- combinatorics
_WORDS = ["BANANA", "MISSISSIPPI", "BOOKKEEPER", "STATISTICS", "COMMITTEE", "LETTER", "APPLE",
          "ASSESSMENT", "PEPPER", "BALLOON", "PARALLEL", "GRAMMAR"]  # fmt: skip


def combinatorics(seed: int, difficulty: str = "easy") -> MathTask:
    """Binomials, word arrangements, bounded stars and bars."""
    r = _rng("combinatorics", seed, difficulty)
    if difficulty == "easy":
        n = r.randint(6, 20)
        k = r.randint(2, n - 2)
        question = f"In how many ways can a committee of {k} people be chosen from {n} people?"
        code = f"import math\nprint(math.comb({n}, {k}))"
        answer = math.comb(n, k)
    elif difficulty == "medium":
        word = r.choice(_WORDS)
        counts = {ch: word.count(ch) for ch in sorted(set(word))}
        answer = math.factorial(len(word))
        for c in counts.values():
            answer //= math.factorial(c)
        question = f"How many distinct arrangements of the letters of the word {word} are there?"
        code = f"""
        import math
        from collections import Counter
        word = "{word}"
        total = math.factorial(len(word))
        for c in Counter(word).values():
            total //= math.factorial(c)
        print(total)
        """
    else:
        k, cap = r.randint(3, 5), r.randint(4, 9)
        n = r.randint(cap + 2, k * cap - 1)
        answer = sum(
            (-1) ** j * math.comb(k, j) * math.comb(n - j * (cap + 1) + k - 1, k - 1)
            for j in range(k + 1)
            if n - j * (cap + 1) >= 0
        )
        question = (
            f"How many solutions in integers does $x_1 + \\dots + x_{{{k}}} = {n}$ have "
            f"with $0 \\le x_i \\le {cap}$ for every $i$?"
        )
        code = f"""
        k, n, cap = {k}, {n}, {cap}
        # count by dynamic programming over the variables
        ways = [1] + [0] * n
        for _ in range(k):
            ways = [sum(ways[s - v] for v in range(0, min(cap, s) + 1)) for s in range(n + 1)]
        print(ways[n])
        """
    return MathTask(question, str(answer), _code(code), "combinatorics", difficulty, seed)


# ------------------------------------------------------------------------- countdown
_COUNTDOWN_SOLVER = """
from fractions import Fraction

def solve(items, target, seen):
    # items: list of (value, expression); combine two at a time, exact arithmetic
    key = tuple(sorted(value for value, _ in items))
    if key in seen:
        return None
    seen.add(key)
    for value, text in items:
        if value == target:
            return text
    n = len(items)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(n) if k not in (i, j)]
            options = [(a - b, f"({ea} - {eb})"), (a * b, f"({ea} * {eb})") if i < j else None,
                       (a + b, f"({ea} + {eb})") if i < j else None,
                       (a / b, f"({ea} / {eb})") if b != 0 else None]
            for option in options:
                if option is not None:
                    found = solve(rest + [option], target, seen)
                    if found:
                        return found
    return None

numbers = NUMBERS
print(solve([(Fraction(x), str(x)) for x in numbers], TARGET, set()))
"""


def countdown(seed: int, difficulty: str = "easy") -> MathTask:
    """Reach a target with + - * / using each given number at most once."""
    r = _rng("countdown", seed, difficulty)
    count = {"easy": 3, "medium": 4, "hard": 5}[difficulty]
    while True:
        numbers = [r.randint(1, 10) for _ in range(count)]
        if difficulty == "hard":
            numbers[-1] = r.choice([25, 50, 75, 100])
        items = [(Fraction(x), str(x)) for x in numbers]
        r.shuffle(items)
        while len(items) > 1:
            (a, ea), (b, eb) = items.pop(), items.pop()
            op = r.choice("+-*/" if difficulty != "easy" else "+-*")
            if op == "-" and a < b:
                (a, ea), (b, eb) = (b, eb), (a, ea)
            if op == "/" and (b == 0 or a % b != 0):
                op = "+"
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op]
            items.append((value, f"({ea} {op} {eb})"))
        target, expr = items[0]
        if target.denominator == 1 and 10 <= target <= 1000 and target not in numbers:
            break
    expr = expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr
    nums = ", ".join(str(x) for x in numbers)
    question = (
        f"Using the numbers {nums} (each at most once) and the operations +, -, \\times, \\div, "
        f"write an expression equal to {int(target)}."
    )
    code = _code(
        _COUNTDOWN_SOLVER.replace("NUMBERS", repr(numbers)).replace("TARGET", str(int(target)))
    )
    meta = {"numbers": list(numbers), "target": int(target)}
    return MathTask(question, expr, code, "countdown", difficulty, seed, meta)


def check_countdown(expression: str, numbers: list[int], target: int) -> bool:
    """Whether ``expression`` uses only + - * / on the given numbers (each at most once)
    and evaluates exactly to ``target``. Never raises."""
    text = (
        expression.replace("\\times", "*").replace("\\div", "/").replace("×", "*").replace("÷", "/")
    )
    text = text.replace("\\left", "").replace("\\right", "").strip().strip("$")
    if "=" in text:
        text = text.split("=")[0]
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return False
    used: list[int] = []

    def value(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if b == 0:
                raise ZeroDivisionError
            return a / b
        raise ValueError("only numbers and + - * / are allowed")

    try:
        result = value(tree)
    except (ValueError, ZeroDivisionError, RecursionError):
        return False
    pool = list(numbers)
    for n in used:
        if n not in pool:
            return False
        pool.remove(n)
    return result == target


GENERATORS: dict[str, Callable[[int, str], MathTask]] = {
    "arithmetic": arithmetic,
    "linear_equation": linear_equation,
    "fractions": fractions,
    "modular": modular,
    "combinatorics": combinatorics,
    "countdown": countdown,
}


def generate(family: str, seed: int, difficulty: str = "easy") -> MathTask:
    """The task of ``family`` for (seed, difficulty)."""
    gen = GENERATORS.get(family)
    if gen is None:
        raise TirgymError(f"unknown math family {family!r}; choose one of {', '.join(GENERATORS)}")
    return gen(seed, difficulty)


def generate_mixed(seed: int, difficulty: str = "easy") -> MathTask:
    """A task from a family picked by the seed (round robin over the families)."""
    family = list(GENERATORS)[int(seed) % len(GENERATORS)]
    return generate(family, int(seed) // len(GENERATORS), difficulty)


# ----------------------------------------------------------------------------- loader
def _gsm8k_gold(answer: str) -> str:
    if "####" in answer:
        return answer.rsplit("####", 1)[1].strip().replace(",", "")
    return extract_answer(answer) or answer.strip()


def _row_to_task(row: dict, index: int) -> MathTask | None:
    if "question" in row and "answer" in row:
        question, gold, family = row["question"], _gsm8k_gold(str(row["answer"])), "gsm8k"
    elif "problem" in row and ("solution" in row or "answer" in row):
        question = row["problem"]
        gold = str(row["answer"]) if row.get("answer") not in (None, "") else None
        if gold is None:
            gold = extract_answer(str(row["solution"]))
        family = str(row.get("type") or row.get("subject") or "math")
        if gold is None:
            return None
    else:
        raise TirgymError(
            f"row {index} has fields {sorted(row)}; expected question/answer (GSM8K) "
            "or problem/solution (MATH)"
        )
    meta = {k: v for k, v in row.items() if k in ("level", "unique_id", "id", "type", "subject")}
    code = _code(f"print({gold!r})")  # datasets ship no programs: the trivial reference
    return MathTask(question, gold, code, family, str(row.get("level", "")), index, meta)


def _read_rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".json":
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, list) else data.get("data", [])
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise TirgymError("reading parquet needs pyarrow: pip install pyarrow") from None
        return pq.read_table(path).to_pylist()
    raise TirgymError(f"{path} is not .jsonl, .json or .parquet")


def load_math_dataset(path_or_hf_id: str | Path, split: str | None = None) -> list[MathTask]:
    """Tasks from a JSONL/JSON/parquet file (or a folder holding ``<split>.*``) in GSM8K
    (question, answer with ``#### x``) or MATH (problem, solution with ``\\boxed{}``)
    format, or from a Hugging Face dataset id (needs ``datasets``). Rows whose solution
    states no final answer are skipped."""
    path = Path(path_or_hf_id)
    if path.is_dir():
        wanted = split or "test"
        hits = sorted(
            p for p in path.iterdir() if p.stem == wanted or p.stem.startswith(f"{wanted}-")
        )
        if not hits:
            raise TirgymError(f"no {wanted}.jsonl/.json/.parquet in {path}")
        rows = [row for p in hits for row in _read_rows(p)]
    elif path.exists():
        rows = _read_rows(path)
    elif path.suffix or path.is_absolute():  # a file name, not a hub id
        raise TirgymError(f"no such dataset file: {path}")
    else:
        try:
            import datasets
        except ImportError:
            raise TirgymError(
                f"{path_or_hf_id!r} is not a file; loading a Hugging Face dataset needs "
                "`pip install datasets`"
            ) from None
        try:
            rows = list(datasets.load_dataset(str(path_or_hf_id), split=split or "test"))
        except Exception as e:  # the hub's many failure types, in one line
            raise TirgymError(f"could not load dataset {path_or_hf_id!r}: {e}") from None
    tasks = [_row_to_task(dict(row), k) for k, row in enumerate(rows)]
    return [t for t in tasks if t is not None]


__all__ = [
    "DIFFICULTIES",
    "GENERATORS",
    "MathTask",
    "check_countdown",
    "generate",
    "generate_mixed",
    "load_math_dataset",
]
