"""A small hand-written LaTeX/plain-text math parser producing a tuple AST.

Why not sympy's ANTLR LaTeX parser: it is slow to load and run, raises on much of what
models write (``\\text{}`` units, ``\\pm``, intervals, ``3e5``), and evaluates eagerly, so
``9^{9^9}`` blocks. This recursive-descent parser builds inert tuples; evaluation is a
separate, bounded step (see ``evaluate.py``).

AST nodes (all tuples, hashable, so parsed golds can be memoised):
``("n", Fraction, ulp|None)`` number (ulp set for decimal literals), ``("s", name)``,
``("c", "pi"|"e"|"i"|"oo")``, ``("+", items)``, ``("*", items)``, ``("/", a, b)``,
``("neg", a)``, ``("^", a, b)``, ``("!", a)``, ``("f", name, args)``, ``("%", a)``,
``("deg", a)``, ``("pm", a, b)``, and the structures ``("list", items, seps)``,
``("set", items)``, ``("tuple", items)``, ``("pair", a, b)`` (round brackets, a point or an
open interval), ``("interval", a, b, left_closed, right_closed)``, ``("union", items)``,
``("rel", parts)``, ``("matrix", rows)``, ``("reals",)``, ``("empty",)``.
"""

from __future__ import annotations

import re
from fractions import Fraction

from tirgym.rewards.math.limits import Deadline, ParseError

_TOKEN_RE = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<rep>\d*\.\d*\\overline\s*\{\d+\}|\d*\.\d*\\dot\s*\{?\d\}?)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+(?![A-Za-z\d]))?)"
    r"|(?P<cmd>\\[A-Za-z]+|\\[{}%,;|\\])"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op>[-+*/^_!()\[\]{},=<>|;&:'])"
    r"|(?P<other>.)"
)

FUNCS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "log", "ln", "exp", "lg", "sqrt", "abs", "floor", "ceil", "gcd", "lcm", "max", "min",
    "arcsec", "arccsc", "arccot",
}  # fmt: skip
GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Sigma",
    "Phi", "Psi", "Omega",
}  # fmt: skip
RELOPS = {
    "=": "=", "<": "<", ">": ">", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "\\ge": ">=",
    "\\geq": ">=", "\\geqslant": ">=", "\\lt": "<", "\\gt": ">", "\\ne": "!=", "\\neq": "!=",
    "\\in": "in",
}  # fmt: skip
LIST_SEPS = {",", ";", "or", "and", "\\text{or}", "\\lor", "\\land", "\\wedge", "\\vee"}
MUL_OPS = {"*", "\\cdot", "\\times", "\\ast"}
DIV_OPS = {"/", "\\div", "\\over"}
CONST_WORDS = {"pi": "pi", "e": "e", "i": "i", "oo": "oo", "inf": "oo", "infinity": "oo"}
ANSWER_WORDS = {"yes", "no", "odd", "even", "true", "false", "all", "both", "neither", "not"}
MAX_TOKENS = 1500
ZERO = ("n", Fraction(0), None)
ONE = ("n", Fraction(1), None)


def _number(text: str) -> tuple:
    mant, _, exp = text.lower().partition("e")
    exp10 = int(exp) if exp else 0
    if abs(exp10) > 400:
        raise ParseError("exponent too large in literal")
    whole, dot, frac = mant.partition(".")
    digits = (whole or "0") + frac
    value = Fraction(int(digits), 10 ** len(frac)) * Fraction(10) ** exp10
    if frac or (exp and exp10 < 0):
        return ("n", value, Fraction(1, 10 ** len(frac)) * Fraction(10) ** exp10)
    return ("n", value, None)


def _repeating(text: str) -> tuple:
    m = re.match(r"(\d*)\.(\d*)\\(?:overline|dot)\s*\{?(\d+)\}?", text)
    if m is None:
        raise ParseError("bad repeating decimal")
    whole, fixed, rep = m.group(1) or "0", m.group(2), m.group(3)
    base = Fraction(int(whole + fixed), 10 ** len(fixed))
    rep_value = Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
    return ("n", base + rep_value, None)


def tokenize(s: str, deadline: Deadline) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for m in _TOKEN_RE.finditer(s):
        kind = m.lastgroup
        if kind == "ws":
            continue
        if len(out) > MAX_TOKENS:
            raise ParseError("too many tokens")
        text = m.group(0)
        if kind == "cmd" and text in ("\\text", "\\mathrm"):
            continue
        if kind == "word" and text in ("or", "and"):
            kind = "sep"
        out.append((kind, text))
    deadline.check()
    return out


class Parser:
    def __init__(self, tokens: list[tuple[str, str]], deadline: Deadline, *, j_imag: bool):
        self.toks = tokens
        self.pos = 0
        self.deadline = deadline
        self.j_imag = j_imag
        self.steps = 0

    # -- token helpers -------------------------------------------------------------
    def peek(self, offset: int = 0) -> tuple[str, str]:
        k = self.pos + offset
        return self.toks[k] if k < len(self.toks) else ("eof", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.pos += 1
        self.steps += 1
        if self.steps % 64 == 0:
            self.deadline.check()
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok[1] != text:
            raise ParseError(f"expected {text!r}, got {tok[1]!r}")

    def at(self, *texts: str) -> bool:
        return self.peek()[1] in texts

    # -- grammar -------------------------------------------------------------------
    def parse_all(self) -> tuple:
        if not self.toks:
            raise ParseError("empty")
        node = self.parse_list()
        if self.pos != len(self.toks):
            raise ParseError(f"unexpected {self.peek()[1]!r}")
        return node

    def parse_list(self) -> tuple:
        items = [self.parse_item()]
        seps: list[str] = []
        while self.peek()[0] == "sep" or self.at(",", ";", "\\lor", "\\vee", "\\land", "\\wedge"):
            seps.append(self.take()[1])
            if self.at(")", "]", "}", "\\}", "\\rangle") or self.peek()[0] == "eof":
                break
            items.append(self.parse_item())
        if len(items) == 1:
            return items[0]
        return ("list", tuple(items), tuple(seps))

    def parse_item(self) -> tuple:
        parts: list = [self.parse_union()]
        while self.peek()[1] in RELOPS:
            parts.append(RELOPS[self.take()[1]])
            parts.append(self.parse_union())
        if len(parts) == 1:
            return parts[0]
        return ("rel", tuple(parts))

    def parse_union(self) -> tuple:
        items = [self.parse_expr()]
        while self.at("\\cup") or (self.at("U") and items[-1][0] in ("pair", "interval")):
            self.take()
            items.append(self.parse_expr())
        return items[0] if len(items) == 1 else ("union", tuple(items))

    def parse_expr(self) -> tuple:
        terms = [self.parse_term()]
        while True:
            op = self.peek()[1]
            if op == "+":
                self.take()
                terms.append(self.parse_term())
            elif op == "-":
                self.take()
                terms.append(("neg", self.parse_term()))
            elif op in ("\\pm", "\\mp"):
                self.take()
                left = terms[0] if len(terms) == 1 else ("+", tuple(terms))
                terms = [("pm", left, self.parse_term())]
            else:
                break
        return terms[0] if len(terms) == 1 else ("+", tuple(terms))

    def _starts_primary(self) -> bool:
        kind, text = self.peek()
        if kind in ("num", "rep"):
            return True
        if kind in ("word", "letters"):
            return True
        if kind == "cmd":
            return text in _PRIMARY_CMDS or text[1:] in FUNCS or text[1:] in GREEK
        return text == "("

    def parse_term(self) -> tuple:
        left = self.parse_unary()
        while True:
            op = self.peek()[1]
            if op in MUL_OPS:
                self.take()
                left = _mul(left, self.parse_unary())
            elif op in DIV_OPS:
                self.take()
                left = ("/", left, self.parse_unary())
            elif self._starts_primary() and not (self.at("U") and left[0] in ("pair", "interval")):
                right = self.parse_power()
                mixed = _mixed(left, right)
                left = mixed if mixed is not None else _mul(left, right)
            else:
                return left

    def parse_unary(self) -> tuple:
        op = self.peek()[1]
        if op == "-":
            self.take()
            return ("neg", self.parse_unary())
        if op == "+":
            self.take()
            return self.parse_unary()
        if op in ("\\pm", "\\mp"):
            self.take()
            return ("pm", ZERO, self.parse_unary())
        return self.parse_power()

    def parse_power(self) -> tuple:
        base = self.parse_primary()
        while True:
            op = self.peek()[1]
            if op == "^":
                self.take()
                if self.at("\\circ"):
                    self.take()
                    base = ("deg", base)
                    continue
                base = ("^", base, self.parse_exponent())
            elif op == "!":
                self.take()
                base = ("!", base)
            elif op == "\\%":
                self.take()
                base = ("%", base)
            elif op == "_" and base[0] == "s":
                self.take()
                sub = self.parse_group_raw()
                base = ("s", base[1] + "_" + sub)
            elif op == "'":
                self.take()
                base = ("s", base[1] + "'") if base[0] == "s" else base
            else:
                return base

    def parse_exponent(self) -> tuple:
        if self.at("{"):
            self.take()
            node = self.parse_list()
            self.expect("}")
            return node
        if self.at("-"):
            self.take()
            return ("neg", self.parse_exponent())
        return self.parse_primary()

    def parse_group(self) -> tuple:
        """A LaTeX argument: ``{...}`` or a single primary."""
        if self.at("{"):
            self.take()
            node = self.parse_list()
            self.expect("}")
            return node
        return self.parse_primary()

    def parse_group_raw(self) -> str:
        if self.at("{"):
            self.take()
            depth, parts = 1, []
            while depth:
                kind, text = self.take()
                if kind == "eof":
                    raise ParseError("unbalanced braces")
                depth += text == "{"
                depth -= text == "}"
                if depth:
                    parts.append(text)
            return "".join(parts)
        return self.take()[1]

    def parse_bracketed(self, open_text: str) -> tuple:
        closers = {"(": (")", "]"), "[": ("]", ")"), "{": ("}",), "\\{": ("\\}",)}[open_text]
        if self.at(*closers):
            close = self.take()[1]
            if open_text == "\\{":
                return ("empty",)
            raise ParseError("empty brackets")
        inner = self.parse_list()
        close = self.take()[1]
        if close not in closers:
            raise ParseError(f"unclosed {open_text!r}")
        items = inner[1] if inner[0] == "list" and all(s == "," for s in inner[2]) else None
        if open_text == "\\{":
            return ("set", items if items is not None else (inner,))
        if open_text == "{":
            return inner
        if items is None:
            if open_text == "(" and close == ")" or open_text == "[" and close == "]":
                return inner
            raise ParseError("mismatched brackets")
        if len(items) == 2:
            if open_text == "(" and close == ")":
                return ("pair", items[0], items[1])
            return ("interval", items[0], items[1], open_text == "[", close == "]")
        if close != {"(": ")", "[": "]"}[open_text]:
            raise ParseError("mismatched brackets")
        return ("tuple", items)

    def parse_matrix(self) -> tuple:
        env = self.parse_group_raw()
        if env == "array" and self.at("{"):
            self.parse_group_raw()
        rows, row = [], []
        while True:
            if self.at("\\end"):
                self.take()
                self.parse_group_raw()
                break
            if self.peek()[0] == "eof":
                raise ParseError("unterminated environment")
            if self.at("&"):
                self.take()
                continue
            if self.at("\\\\"):
                self.take()
                if row:
                    rows.append(tuple(row))
                row = []
                continue
            row.append(self.parse_item())
        if row:
            rows.append(tuple(row))
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseError("ragged matrix")
        return ("matrix", tuple(rows))

    def parse_function(self, name: str) -> tuple:
        power = None
        base = None
        if self.at("^"):
            self.take()
            power = self.parse_exponent()
        if self.at("_") and name in ("log",):
            self.take()
            base = self.parse_group()
        if self.at("("):
            self.take()
            arg = self.parse_list()
            self.expect(")")
        elif self.at("{"):
            arg = self.parse_group()
        else:
            arg = self.parse_power()
            while self._starts_primary() and not (
                self.peek()[0] == "cmd" and self.peek()[1][1:] in FUNCS
            ):
                arg = _mul(arg, self.parse_power())
        args = arg[1] if arg[0] == "list" else (arg,)
        if name == "lg":
            name, base = "log", ("n", Fraction(10), None)
        node = ("f", name, args if base is None else (*args, base))
        if power is not None:
            if power == ("neg", ONE) and name in ("sin", "cos", "tan"):
                return ("f", "arc" + name, args)
            node = ("^", node, power)
        return node

    def parse_primary(self) -> tuple:
        kind, text = self.take()
        if kind == "num":
            return _number(text)
        if kind == "rep":
            return _repeating(text)
        if text == "\\{" and self.peek()[0] == "word" and self.peek(1)[1] in ("\\mid", "|", ":"):
            # set-builder {x | condition}: the condition describes the set
            self.take()
            self.take()
            cond = self.parse_list()
            self.expect("\\}")
            return cond
        if text in ("(", "[", "{", "\\{"):
            return self.parse_bracketed(text)
        if text == "\\langle":
            inner = self.parse_list()
            self.expect("\\rangle")
            return ("tuple", inner[1] if inner[0] == "list" else (inner,))
        if text in ("|", "\\vert", "\\lvert", "\\mid"):
            inner = self.parse_expr()
            if self.take()[1] not in ("|", "\\vert", "\\rvert", "\\mid"):
                raise ParseError("unclosed |")
            return ("f", "abs", (inner,))
        if text in ("\\lfloor", "\\lceil"):
            inner = self.parse_expr()
            if self.take()[1] not in ("\\rfloor", "\\rceil"):
                raise ParseError("unclosed floor")
            return ("f", "floor" if text == "\\lfloor" else "ceil", (inner,))
        if kind == "cmd":
            return self.parse_command(text)
        if kind == "word":
            return self.parse_word(text)
        if kind == "letters":
            return self._first_letter(text)
        raise ParseError(f"unexpected {text!r}")

    def parse_command(self, text: str) -> tuple:
        name = text[1:]
        if name == "frac":
            num = self.parse_group()
            den = self.parse_group()
            return ("/", num, den)
        if name == "sqrt":
            if self.at("["):
                self.take()
                index = self.parse_expr()
                self.expect("]")
                return ("f", "root", (self.parse_group(), index))
            return ("f", "sqrt", (self.parse_group(),))
        if name in ("binom", "choose"):
            return ("f", "binom", (self.parse_group(), self.parse_group()))
        if name == "pi":
            return ("c", "pi")
        if name == "infty":
            return ("c", "oo")
        if name in ("imath", "jmath"):
            return ("c", "i")
        if name in ("emptyset", "varnothing"):
            return ("empty",)
        if name == "mathbb":
            letter = self.parse_group_raw()
            if letter == "R":
                return ("reals",)
            raise ParseError("unsupported number set")
        if name == "begin":
            return self.parse_matrix()
        if name in ("angle", "measuredangle"):
            # ``\angle ABC`` names one quantity; the letters are vertices, not a product
            if self.peek()[0] not in ("word", "num") and not self.at("{"):
                raise ParseError("angle without a name")
            return ("s", "\\angle " + self.parse_group_raw())
        if name in FUNCS:
            return self.parse_function(name)
        if name in GREEK:
            return ("s", name)
        raise ParseError(f"unsupported command {text}")

    def parse_word(self, text: str) -> tuple:
        low = text.lower()
        if low in ("sqrt",) or low in FUNCS:
            return self.parse_function(low)
        if text in CONST_WORDS or low in ("infinity", "inf", "pi"):
            return ("c", CONST_WORDS[low if low in ("infinity", "inf", "pi") else text])
        if text in ("I", "j") and self.j_imag:
            return ("c", "i")
        if low in ANSWER_WORDS:
            raise ParseError(f"word {text!r}")
        if text == "m" and self.at("\\angle", "\\measuredangle"):
            return self.parse_primary()  # ``m\angle A``: the measure of the angle
        if len(text) == 1:
            return ("s", text)
        if len(text) <= 3:
            # ``ab`` written without spaces is a product of letters, not a name.
            return self._first_letter(text)
        raise ParseError(f"word {text!r}")

    def _first_letter(self, letters: str) -> tuple:
        """One letter of a run such as ``xy``; the rest goes back as the next token.

        A power binds to the single atom before it, so ``xy^2`` is ``x*y^2``, never
        ``(xy)^2``: returning the letters one at a time lets ``parse_power`` see each.
        """
        if len(letters) > 1:
            self.pos -= 1
            self.toks[self.pos] = ("letters", letters[1:])
        return self._letter(letters[0])

    def _letter(self, ch: str) -> tuple:
        if ch in ("e", "i"):
            return ("c", ch)
        if ch == "j" and self.j_imag:
            return ("c", "i")
        return ("s", ch)


_PRIMARY_CMDS = {
    "\\frac", "\\sqrt", "\\binom", "\\pi", "\\infty", "\\imath", "\\lfloor", "\\lceil",
    "\\langle", "\\mathbb", "\\choose", "\\angle", "\\measuredangle", "\\begin",
}  # fmt: skip


def _mul(a: tuple, b: tuple) -> tuple:
    items = (a[1] if a[0] == "*" else (a,)) + (b[1] if b[0] == "*" else (b,))
    return ("*", items)


def _is_int_literal(node: tuple) -> bool:
    return node[0] == "n" and node[2] is None and node[1].denominator == 1


def _mixed(left: tuple, right: tuple) -> tuple | None:
    """``2\\frac{1}{2}`` is two and a half, not one."""
    if right[0] == "%":
        inner = _mixed(left, right[1])
        return None if inner is None else ("%", inner)
    if right[0] != "/" or not (_is_int_literal(right[1]) and _is_int_literal(right[2])):
        return None
    if right[1][1] >= right[2][1]:
        return None
    if _is_int_literal(left):
        return ("+", (left, right))
    if left[0] == "neg" and _is_int_literal(left[1]):
        return ("neg", ("+", (left[1], right)))
    return None


def parse_expression(text: str, deadline: Deadline, *, j_imag: bool = False) -> tuple:
    """Parse normalised text to an AST; raises ParseError on anything it cannot read."""
    tokens = tokenize(text, deadline)
    return Parser(tokens, deadline, j_imag=j_imag).parse_all()
