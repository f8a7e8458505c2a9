"""Bounded evaluation of parsed ASTs: exact (Fractions) and numeric (mpmath, 60 digits).

Sizes are checked *before* work is done: an integer power is only built exactly when the
result has at most MAX_EXACT_BITS bits, a factorial when n <= MAX_EXACT_FACTORIAL, and a
numeric power only when its binary logarithm stays below MAX_NUMERIC_LOG2; anything
larger raises ``Huge`` and the caller falls back to comparing structure. mpmath keeps a
per-thread context because its functions bump the working precision temporarily.
"""

from __future__ import annotations

import math
import threading
import zlib
from fractions import Fraction

from mpmath.ctx_mp import MPContext

from tirgym.rewards.math.limits import (
    MAX_EXACT_BITS,
    MAX_EXACT_FACTORIAL,
    MAX_FACTORIAL_NUMERIC,
    MAX_NUMERIC_LOG2,
    Deadline,
    Huge,
    Undefined,
)

DPS = 60
_local = threading.local()


def mp() -> MPContext:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = MPContext()
        ctx.dps = DPS
        _local.ctx = ctx
    return ctx


def free_symbols(node: tuple, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if node[0] == "s":
        out.add(node[1])
        return out
    for child in node[1:]:
        if isinstance(child, tuple):
            if child and isinstance(child[0], str):
                free_symbols(child, out)
            else:
                for sub in child:
                    if isinstance(sub, tuple) and sub and isinstance(sub[0], str):
                        free_symbols(sub, out)
    return out


def canonical(node: tuple) -> str:
    """A structural key that ignores the order of sums and products."""
    kind = node[0]
    if kind == "n":
        return str(node[1])
    if kind in ("s", "c"):
        return f"{kind}:{node[1]}"
    if kind in ("+", "*"):
        return kind + "(" + ",".join(sorted(canonical(x) for x in node[1])) + ")"
    parts = []
    for child in node[1:]:
        if isinstance(child, tuple) and child and isinstance(child[0], str):
            parts.append(canonical(child))
        elif isinstance(child, tuple):
            parts.append("[" + ",".join(canonical(x) for x in child if isinstance(x, tuple)) + "]")
        else:
            parts.append(str(child))
    return kind + "(" + ",".join(parts) + ")"


def symbol_value(name: str, k: int):
    """Deterministic 'random' test point k for a symbol (positive, away from integers)."""
    ctx = mp()
    h = zlib.crc32(f"{name}:{k}".encode())
    return ctx.mpf(1.15 + (h % 1_000_003) / 1_000_003 * 1.7) + ctx.sqrt(2) / 10**7


class Evaluator:
    def __init__(self, deadline: Deadline):
        self.deadline = deadline
        self.big = False  # set when an exact value was skipped for size
        self.steps = 0

    def _tick(self) -> None:
        self.steps += 1
        if self.steps % 32 == 0:
            self.deadline.check()

    # -- exact -----------------------------------------------------------------------
    def exact(self, node: tuple) -> Fraction | None:
        self._tick()
        kind = node[0]
        if kind == "n":
            return node[1]
        if kind == "neg":
            v = self.exact(node[1])
            return None if v is None else -v
        if kind in ("+", "*"):
            vals = [self.exact(x) for x in node[1]]
            if any(v is None for v in vals):
                return None
            if kind == "+":
                return sum(vals, Fraction(0))
            total = Fraction(1)
            for v in vals:
                total *= v
                if (
                    total.numerator.bit_length() + total.denominator.bit_length()
                    > 2 * MAX_EXACT_BITS
                ):
                    self.big = True
                    return None
            return total
        if kind == "/":
            a, b = self.exact(node[1]), self.exact(node[2])
            if b == 0:
                raise Undefined("division by zero")
            return None if a is None or b is None else a / b
        if kind == "^":
            return self._exact_pow(node)
        if kind == "!":
            n = self.exact(node[1])
            if n is None or n.denominator != 1 or n < 0:
                return None
            if n > MAX_EXACT_FACTORIAL:
                self.big = True
                return None
            return Fraction(math.factorial(int(n)))
        if kind == "%":
            v = self.exact(node[1])
            return None if v is None else v / 100
        if kind == "f":
            return self._exact_func(node[1], node[2])
        return None

    def _exact_pow(self, node: tuple) -> Fraction | None:
        base = self.exact(node[1])
        if base is None:
            # still look at the exponent so that a huge tower is flagged as big
            self.exact(node[2])
            return None
        exp = self.exact(node[2])
        if exp is None:
            return None
        if exp.denominator != 1:
            return _rational_root(base, exp)
        e = int(exp)
        if base == 0:
            if e < 0:
                raise Undefined("zero to a negative power")
            return Fraction(1) if e == 0 else Fraction(0)
        if abs(base) == 1:
            return base ** (e % 2) if base < 0 else Fraction(1)
        bits = max(base.numerator.bit_length(), base.denominator.bit_length())
        if abs(e) * bits > MAX_EXACT_BITS:
            self.big = True
            return None
        return base**e

    def _exact_func(self, name: str, args: tuple) -> Fraction | None:
        if name in ("abs", "floor", "ceil") and len(args) == 1:
            v = self.exact(args[0])
            if v is None:
                return None
            if name == "abs":
                return abs(v)
            return Fraction(math.floor(v) if name == "floor" else math.ceil(v))
        if name == "binom" and len(args) == 2:
            n, k = self.exact(args[0]), self.exact(args[1])
            if n is None or k is None or n.denominator != 1 or k.denominator != 1:
                return None
            if abs(n) > MAX_EXACT_FACTORIAL or k < 0:
                return None
            return Fraction(math.comb(int(n), int(k))) if n >= 0 else None
        if name in ("gcd", "lcm", "max", "min") and args:
            vals = [self.exact(a) for a in args]
            if any(v is None for v in vals):
                return None
            if name in ("max", "min"):
                return max(vals) if name == "max" else min(vals)
            if any(v.denominator != 1 for v in vals):
                return None
            ints = [int(v) for v in vals]
            return Fraction(math.gcd(*ints) if name == "gcd" else math.lcm(*ints))
        if name in ("sqrt", "root"):
            v = self.exact(args[0])
            n = Fraction(2) if name == "sqrt" else self.exact(args[1]) if len(args) > 1 else None
            if v is None or n is None or n == 0:
                return None
            return _rational_root(v, 1 / n)
        return None

    # -- numeric -----------------------------------------------------------------------
    def num(self, node: tuple, env: dict | None = None):
        self._tick()
        ctx = mp()
        kind = node[0]
        if kind == "n":
            q = node[1]
            return ctx.mpf(q.numerator) / q.denominator
        if kind == "c":
            name = node[1]
            if name == "pi":
                return +ctx.pi
            if name == "e":
                return +ctx.e
            if name == "i":
                return ctx.mpc(0, 1)
            return ctx.inf
        if kind == "s":
            if env is None or node[1] not in env:
                raise Undefined(f"free symbol {node[1]}")
            return env[node[1]]
        if kind == "neg":
            return -self.num(node[1], env)
        if kind == "+":
            total = ctx.mpf(0)
            for x in node[1]:
                total += self.num(x, env)
            return total
        if kind == "*":
            total = ctx.mpf(1)
            for x in node[1]:
                total *= self.num(x, env)
            return total
        if kind == "/":
            a, b = self.num(node[1], env), self.num(node[2], env)
            if b == 0:
                raise Undefined("division by zero")
            return a / b
        if kind == "^":
            return self._num_pow(node, env)
        if kind == "!":
            n = self.num(node[1], env)
            if ctx.im(n) != 0:
                raise Undefined("complex factorial")
            n = ctx.re(n)
            if n > MAX_FACTORIAL_NUMERIC:
                raise Huge("factorial too large")
            if ctx.isint(n) and 0 <= n <= MAX_EXACT_FACTORIAL:
                return ctx.mpf(math.factorial(int(n)))
            if n > MAX_EXACT_FACTORIAL:
                self.big = True
            try:
                return ctx.factorial(n)
            except (ValueError, ZeroDivisionError):
                raise Undefined("factorial pole") from None
        if kind == "%":
            return self.num(node[1], env) / 100
        if kind == "deg":
            return self.num(node[1], env) * ctx.pi / 180
        if kind == "f":
            return self._num_func(node[1], node[2], env)
        raise Undefined(f"not a scalar: {kind}")

    def _num_pow(self, node: tuple, env):
        base = self.num(node[1], env)
        exp = self.num(node[2], env)
        return self._pow(base, exp)

    def _pow(self, base, exp):
        ctx = mp()
        if base == 0:
            if ctx.re(exp) < 0:
                raise Undefined("zero to a negative power")
            return ctx.mpf(0) if exp != 0 else ctx.mpf(1)
        if ctx.isinf(base) or ctx.isinf(exp):
            raise Undefined("infinite power")
        size = abs(exp) * abs(ctx.log(abs(base), 2))
        if size > MAX_NUMERIC_LOG2:
            raise Huge("power too large")
        if size > MAX_EXACT_BITS:
            self.big = True
        if ctx.im(base) == 0 and ctx.im(exp) == 0:
            base, exp = ctx.re(base), ctx.re(exp)
            if base < 0 and not ctx.isint(exp):
                return ctx.power(ctx.mpc(base), exp)
        return ctx.power(base, exp)

    def _num_func(self, name: str, args: tuple, env):
        return self._apply(name, [self.num(a, env) for a in args])

    def _apply(self, name: str, vals: list):
        ctx = mp()
        if name in _PERIODIC and vals and abs(vals[0]) > 10**40:
            raise Undefined("argument too large for an accurate periodic function")
        if name in ("exp", "sinh", "cosh", "tanh") and vals and abs(ctx.re(vals[0])) > 10**9:
            raise Huge("exponential too large")
        try:
            if name == "sqrt":
                return ctx.sqrt(vals[0])
            if name == "root":
                x, n = vals[0], vals[1]
                if ctx.im(x) == 0 and ctx.re(x) < 0 and ctx.isint(n) and int(ctx.re(n)) % 2 == 1:
                    return -ctx.root(-ctx.re(x), int(ctx.re(n)))
                return ctx.power(x, 1 / n)
            if name in ("log", "ln"):
                if vals[0] == 0:
                    raise Undefined("log of zero")
                if len(vals) == 2:
                    return ctx.log(vals[0]) / ctx.log(vals[1])
                return ctx.log(vals[0])
            if name == "abs":
                return abs(vals[0])
            if name == "binom":
                return ctx.binomial(vals[0], vals[1])
            if name in ("floor", "ceil"):
                return (ctx.floor if name == "floor" else ctx.ceil)(ctx.re(vals[0]))
            if name in ("max", "min"):
                reals = [ctx.re(v) for v in vals]
                return max(reals) if name == "max" else min(reals)
            if name in ("gcd", "lcm"):
                ints = [int(ctx.nint(ctx.re(v))) for v in vals]
                return ctx.mpf(math.gcd(*ints) if name == "gcd" else math.lcm(*ints))
            if name in ("sec", "csc", "cot"):
                inner = {"sec": ctx.cos, "csc": ctx.sin, "cot": ctx.tan}[name](vals[0])
                if inner == 0:
                    raise Undefined("pole")
                return 1 / inner
            if name in ("arcsec", "arccsc", "arccot"):
                inner = {"arcsec": ctx.acos, "arccsc": ctx.asin, "arccot": ctx.atan}[name]
                return inner(1 / vals[0])
            fn = _MP_FUNCS.get(name)
            if fn is None:
                raise Undefined(f"unknown function {name}")
            return getattr(ctx, fn)(*vals)
        except (ZeroDivisionError, ValueError, OverflowError) as exc:
            raise Undefined(str(exc)) from None


class RealEvaluator(Evaluator):
    """Numeric evaluation where letters are real numbers (possibly negative).

    A power or function that turns real inputs into a non-real value (``\\sqrt{x}`` or
    ``\\ln x`` at x < 0) is outside the real domain there: Undefined, so the point is
    skipped. Otherwise ``\\sqrt{x}\\sqrt{y}`` at x, y < 0 would evaluate, through complex
    intermediates, to ``-\\sqrt{xy}``. Values that are complex because the answer is
    (``x + i``) evaluate as usual.
    """

    def _pow(self, base, exp):
        return _stay_real(super()._pow(base, exp), (base, exp))

    def _apply(self, name: str, vals: list):
        return _stay_real(super()._apply(name, vals), vals)


def _stay_real(value, inputs):
    ctx = mp()
    if ctx.im(value) != 0 and all(ctx.im(v) == 0 for v in inputs):
        raise Undefined("outside the real domain")
    return value


_PERIODIC = {"sin", "cos", "tan", "sec", "csc", "cot"}
_MP_FUNCS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "asin", "arccos": "acos",
    "arctan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "exp": "exp",
}  # fmt: skip


def _rational_root(base: Fraction, exp: Fraction) -> Fraction | None:
    """``base**exp`` for a rational exponent when the result is rational (4^{3/2} = 8)."""
    q = exp.denominator
    if q > 12 or base < 0 or abs(exp.numerator) > 64:
        return None
    num = _int_root(base.numerator, q)
    den = _int_root(base.denominator, q)
    if num is None or den is None:
        return None
    if num == 0 and exp < 0:
        raise Undefined("zero to a negative power")
    return Fraction(num, den) ** exp.numerator


def _int_root(n: int, q: int) -> int | None:
    if n.bit_length() > 4096:
        return None
    r = round(n ** (1.0 / q)) if n.bit_length() < 1000 else math.isqrt(n) if q == 2 else None
    if r is None:
        return None
    for cand in (r - 1, r, r + 1):
        if cand >= 0 and cand**q == n:
            return cand
    return None
