"""Mathematical comparison of two parsed answers under a VerifyPolicy.

Numbers: exact when both sides are exact (Fractions; irrationals at 60 digits with a
relative tolerance of 1e-40, never a fixed number of decimals, so 1/2^99 != 1/2^98). A
decimal literal is exact at the digits written: 0.3333333 != 1/3 unless
``allow_rounded_decimals``. Expressions in variables: equal at several deterministic
positive test points and, where both sides are real there, at points with negative and
mixed signs too, since letters stand for any real number (``\\sqrt{x^2}`` != ``x``, while
``\\sqrt{x^3}`` == ``x\\sqrt{x}``, both non-real for x < 0). Inequalities, intervals and
unions: solved to sympy sets and compared as sets.
Lists of solutions and sets: unordered; tuples, vectors and matrices: ordered.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from tirgym.rewards.math.evaluate import (
    Evaluator,
    RealEvaluator,
    canonical,
    free_symbols,
    mp,
    symbol_value,
)
from tirgym.rewards.math.limits import Deadline, Huge, Undefined, VerifyError

REL_TOL = 1e-40
ABS_TOL = 1e-55
SYMBOLIC_TOL = 1e-25
TEST_POINTS = 4
SIGNED_POINTS = 3
MAX_ITEMS = 64


@dataclass(frozen=True)
class VerifyPolicy:
    """Comparison options (keyword arguments of ``math_equal``).

    allow_rounded_decimals: a decimal equals an exact value it rounds or truncates to at the
        digits written (0.333 == 1/3). Default False.
    percent_as_fraction: ``50%`` also equals 0.5 (it always equals 50). Default True.
    degrees_equal_radians: ``30^\\circ`` also equals pi/6 (it always equals 30). Default True.
    tuple_equals_vector: ``(1, 2)`` equals a column or row vector/matrix. Default True.
    case_sensitive_symbols: ``x`` and ``X`` are different variables. Default True.
    """

    allow_rounded_decimals: bool = False
    percent_as_fraction: bool = True
    degrees_equal_radians: bool = True
    tuple_equals_vector: bool = True
    case_sensitive_symbols: bool = True


INEQ_OPS = ("<", ">", "<=", ">=", "!=")
FUNCTION_NAMES = {"f", "g", "h", "p", "q", "F", "G", "H", "P", "Q"}


def _is_symbol(node: tuple) -> bool:
    return node[0] == "s"


def _is_function_head(node: tuple) -> bool:
    """``f(x)`` on the left of ``f(x) = 2x`` names a function, it is not ``f*x``."""
    return (
        node[0] == "*"
        and len(node[1]) == 2
        and node[1][0][0] == "s"
        and node[1][0][1] in FUNCTION_NAMES
    )


def expand_pm(node: tuple) -> list[tuple]:
    """``a \\pm b`` -> [a+b, a-b]; recursive through arithmetic nodes."""
    kind = node[0]
    if kind == "pm":
        out = []
        for a in expand_pm(node[1]):
            for b in expand_pm(node[2]):
                out.append(("+", (a, b)))
                out.append(("+", (a, ("neg", b))))
        return out
    if kind in ("+", "*"):
        combos: list[tuple] = [()]
        for item in node[1]:
            combos = [c + (x,) for c in combos for x in expand_pm(item)]
            if len(combos) > MAX_ITEMS:
                raise Undefined("too many \\pm branches")
        return [(kind, c) for c in combos]
    if kind in ("neg", "/", "^", "!", "%", "deg"):
        parts = [expand_pm(x) for x in node[1:]]
        if all(len(p) == 1 for p in parts):
            return [node]
        if len(parts) == 1:
            return [(kind, x) for x in parts[0]]
        return [(kind, a, b) for a in parts[0] for b in parts[1]]
    return [node]


def _has_pm(node: tuple) -> bool:
    return "'pm'" in repr(node) if len(node) > 1 else False


# --------------------------------------------------------------------------- values
def to_value(node: tuple) -> tuple:
    """Classify an AST into a comparable value."""
    kind = node[0]
    if kind == "empty":
        return ("coll", ())
    if kind == "set":
        return ("coll", tuple(_flatten_items(node[1])))
    if kind == "list":
        items = node[1]
        if any(it[0] == "rel" and any(op in INEQ_OPS for op in it[1][1::2]) for it in items):
            return ("realset", node)
        names = [_assigned_name(it) for it in items]
        if all(names) and len(set(names)) == len(names):
            return ("assign", tuple((n, it[1][2]) for n, it in zip(names, items, strict=True)))
        return ("coll", tuple(_flatten_items(items)))
    if kind == "rel":
        parts = node[1]
        ops = parts[1::2]
        if len(parts) == 3 and ops[0] == "in" and _is_symbol(parts[0]):
            return to_value(parts[2])
        if all(op == "=" for op in ops):
            named = _named_tuple(parts[0], parts[2]) if len(parts) == 3 else None
            if named is not None:
                return ("assign", named)
            if len(parts) == 3 and _is_symbol(parts[0]):
                return ("eqsym", parts[0][1], parts[2])
            if len(parts) == 3 and _is_function_head(parts[0]):
                return ("eqsym", parts[0][1][0][1], parts[2])
            if len(parts) == 3:
                return ("eqn", parts[0], parts[2])
            return ("eqsym", "", parts[-1]) if all(_is_symbol(p) for p in parts[:-1]) else ("bad",)
        return ("realset", node)
    if kind == "union" and all(it[0] in ("set", "empty") for it in node[1]):
        return ("coll", tuple(x for it in node[1] for x in to_value(it)[1]))
    if kind in ("interval", "union", "reals"):
        return ("realset", node)
    if kind == "pair":
        return ("pair", node[1], node[2])
    if kind == "tuple":
        return ("tuple", node[1])
    if kind == "matrix":
        return ("matrix", node[1])
    scaled = _scaled_matrix(node)
    if scaled is not None:
        return ("matrix", scaled)
    if _has_pm(node):
        return ("coll", tuple(expand_pm(node)))
    return ("expr", node)


def _scaled_matrix(node: tuple) -> tuple | None:
    """Rows of ``2\\begin{pmatrix}..\\end{pmatrix}`` (or ``-M``) with the scalar applied to
    every entry; None unless the node is scalars times exactly one matrix."""
    if node[0] == "neg" and node[1][0] == "matrix":
        return tuple(tuple(("neg", x) for x in row) for row in node[1][1])
    if node[0] != "*":
        return None
    matrices = [f for f in node[1] if f[0] == "matrix"]
    if len(matrices) != 1 or any(f[0] in _NOT_SCALAR for f in node[1] if f is not matrices[0]):
        return None
    scalars = tuple(f for f in node[1] if f is not matrices[0])
    return tuple(tuple(("*", (*scalars, x)) for x in row) for row in matrices[0][1])


_NOT_SCALAR = {"list", "set", "tuple", "pair", "interval", "union", "rel", "reals", "empty"}


def _mentions_number(node: tuple) -> bool:
    return "('n'," in repr(node)


def _names_a_value(left: tuple, right: tuple) -> bool:
    """``a+b = 7``: a quantity written in letters only, equal to a constant, names that
    constant (like ``x = 7``); ``2a = 7`` or ``a = b + 1`` do not."""
    return not _mentions_number(left) and bool(free_symbols(left)) and not free_symbols(right)


def _sequence_items(node: tuple) -> tuple | None:
    if node[0] == "pair":
        return (node[1], node[2])
    if node[0] == "tuple":
        return node[1]
    return None


def _named_tuple(left: tuple, right: tuple) -> tuple | None:
    """``(x, y) = (1, 2)`` names each coordinate, like ``x = 1, y = 2`` (else None)."""
    names, values = _sequence_items(left), _sequence_items(right)
    if names is None or values is None or len(names) != len(values):
        return None
    if not all(_is_symbol(n) for n in names) or len({n[1] for n in names}) != len(names):
        return None
    return tuple((n[1], v) for n, v in zip(names, values, strict=True))


def _assigned_name(node: tuple) -> str | None:
    """``x`` for an item ``x = value``."""
    if node[0] == "rel" and len(node[1]) == 3 and node[1][1] == "=" and _is_symbol(node[1][0]):
        return node[1][0][1]
    return None


def _flatten_items(items: tuple) -> list[tuple]:
    out: list[tuple] = []
    for it in items:
        if it[0] == "rel" and len(it[1]) == 3 and it[1][1] == "=" and _is_symbol(it[1][0]):
            it = it[1][2]
        if _has_pm(it):
            out.extend(expand_pm(it))
        else:
            out.append(it)
        if len(out) > MAX_ITEMS:
            raise Undefined("too many items")
    return out


class Comparer:
    def __init__(self, policy: VerifyPolicy, deadline: Deadline):
        self.policy = policy
        self.deadline = deadline

    # -- entry ---------------------------------------------------------------------
    def nodes_equal(self, p: tuple, g: tuple) -> bool:
        if p == g:
            return True
        return self.values_equal(to_value(p), to_value(g))

    def values_equal(self, pv: tuple, gv: tuple) -> bool:
        self.deadline.check()
        pk, gk = pv[0], gv[0]
        if pk == "bad" or gk == "bad":
            return False
        if pk == "assign" or gk == "assign":
            return self._assignments_equal(pv, gv)
        if pk == "eqsym" and gk == "eqsym":
            if pv[1] == gv[1] or not pv[1] or not gv[1]:
                return self.values_equal(to_value(pv[2]), to_value(gv[2]))
            return self._equations_equal(("s", pv[1]), pv[2], ("s", gv[1]), gv[2])
        if pk in ("eqsym", "eqn") and gk in ("eqsym", "eqn"):
            lp = ("s", pv[1]) if pk == "eqsym" else pv[1]
            lg = ("s", gv[1]) if gk == "eqsym" else gv[1]
            return self._equations_equal(lp, pv[2], lg, gv[2])
        if pk == "eqsym":
            return self.values_equal(to_value(pv[2]), gv)
        if gk == "eqsym":
            return self.values_equal(pv, to_value(gv[2]))
        if pk == "eqn" and _names_a_value(pv[1], pv[2]):
            return self.values_equal(to_value(pv[2]), gv)
        if pk == "eqn" or gk == "eqn":
            return False
        if pk == "coll" or gk == "coll":
            return self._collections_equal(pv, gv)
        if pk == "realset" or gk == "realset":
            return self._realsets_equal(pv, gv)
        if pk in ("pair", "tuple", "matrix") or gk in ("pair", "tuple", "matrix"):
            return self._sequences_equal(pv, gv)
        return self.exprs_equal(pv[1], gv[1])

    def _assignments_equal(self, pv: tuple, gv: tuple) -> bool:
        """``x=2, y=3``: by name against another assignment, in written order otherwise."""
        if pv[0] == "assign" and gv[0] == "assign":
            p_map, g_map = dict(pv[1]), dict(gv[1])
            if set(p_map) != set(g_map):
                return False
            return all(self.nodes_equal(p_map[n], g_map[n]) for n in p_map)
        assign, other = (pv, gv) if pv[0] == "assign" else (gv, pv)
        values = tuple(value for _, value in assign[1])
        if other[0] == "coll":
            return self._collections_equal(("coll", values), other)
        as_tuple = ("tuple", values)
        return (
            self._sequences_equal(as_tuple, other)
            if pv is assign
            else self._sequences_equal(other, as_tuple)
        )

    # -- collections -------------------------------------------------------------------
    def _collections_equal(self, pv: tuple, gv: tuple) -> bool:
        if pv[0] == "realset" or gv[0] == "realset":
            other = gv if pv[0] == "coll" else pv
            coll = pv if pv[0] == "coll" else gv
            if not coll[1]:
                return self._realset_is_empty(other)
            return False
        p_items = pv[1] if pv[0] == "coll" else (self._node_of(pv),)
        g_items = gv[1] if gv[0] == "coll" else (self._node_of(gv),)
        p_items = _dedupe(p_items)
        g_items = _dedupe(g_items)
        if len(p_items) != len(g_items):
            return False
        return _perfect_matching(p_items, g_items, self.nodes_equal)

    @staticmethod
    def _node_of(value: tuple) -> tuple:
        kind = value[0]
        if kind == "expr":
            return value[1]
        if kind == "pair":
            return ("pair", value[1], value[2])
        if kind == "tuple":
            return ("tuple", value[1])
        if kind == "matrix":
            return ("matrix", value[1])
        if kind == "eqsym":
            return value[2]
        return ("bad",)

    # -- sequences -------------------------------------------------------------------------
    def _as_sequence(self, value: tuple) -> tuple | None:
        kind = value[0]
        if kind == "pair":
            return (value[1], value[2])
        if kind == "tuple":
            return value[1]
        if kind == "matrix" and self.policy.tuple_equals_vector:
            rows = value[1]
            if len(rows) == 1:
                return rows[0]
            if all(len(r) == 1 for r in rows):
                return tuple(r[0] for r in rows)
        return None

    def _sequences_equal(self, pv: tuple, gv: tuple) -> bool:
        if pv[0] == "matrix" and gv[0] == "matrix":
            if [len(r) for r in pv[1]] != [len(r) for r in gv[1]]:
                return False
            return all(
                self.nodes_equal(a, b)
                for rp, rg in zip(pv[1], gv[1], strict=True)
                for a, b in zip(rp, rg, strict=True)
            )
        if "matrix" in (pv[0], gv[0]) and not self.policy.tuple_equals_vector:
            return False
        ps, gs = self._as_sequence(pv), self._as_sequence(gv)
        if ps is None or gs is None or len(ps) != len(gs):
            return False
        return all(self.nodes_equal(a, b) for a, b in zip(ps, gs, strict=True))

    # -- equations --------------------------------------------------------------------------
    def _equations_equal(self, lp: tuple, rp: tuple, lg: tuple, rg: tuple) -> bool:
        """Same solution set for polynomial-like equations: lhs-rhs proportional."""
        fp = ("+", (lp, ("neg", rp)))
        fg = ("+", (lg, ("neg", rg)))
        names = free_symbols(fp) | free_symbols(fg)
        if not names:
            return canonical(fp) == canonical(fg)
        ev = Evaluator(self.deadline)
        ratios = []
        for k in range(TEST_POINTS + 2):
            env = {n: symbol_value(n, k) for n in names}
            try:
                a, b = ev.num(fp, env), ev.num(fg, env)
            except (Undefined, Huge):
                continue
            if b == 0 or a == 0:
                if a == b:
                    continue
                return False
            ratios.append(a / b)
        if len(ratios) < 2:
            return False
        r0 = ratios[0]
        if not all(_close(r, r0) for r in ratios[1:]):
            return False
        for a, b in self._signed_values(fp, fg, names):
            if (a == 0) != (b == 0) or (b != 0 and not _close(a / b, r0)):
                return False
        return True

    def _signed_values(self, p: tuple, g: tuple, names: set[str]):
        """Both sides at points with negative and mixed signs, where both are real.

        The main test points are positive, which would make ``|x|`` and ``x`` agree. A
        point where a side or any part of it is not real (``\\sqrt{x}`` at x < 0) is
        outside the real domain and says nothing, so ``\\sqrt{x^3}`` still equals
        ``x\\sqrt{x}`` and ``\\sqrt{x}\\sqrt{y}`` equals ``\\sqrt{xy}``.
        """
        ev = RealEvaluator(self.deadline)
        ctx = mp()
        order = sorted(names)
        for k in range(SIGNED_POINTS):
            env = {}
            for index, name in enumerate(order):
                value = symbol_value(name, TEST_POINTS + 2 + k)
                # k=0: every letter negative; then alternating signs, both ways round
                env[name] = -value if k == 0 or (index + k) % 2 == 1 else value
            try:
                a, b = ev.num(p, env), ev.num(g, env)
            except (Undefined, Huge):
                continue
            if not (ctx.isinf(a) or ctx.isinf(b) or ctx.isnan(a) or ctx.isnan(b)):
                yield a, b

    # -- real sets -----------------------------------------------------------------------------
    def _realsets_equal(self, pv: tuple, gv: tuple) -> bool:
        from tirgym.rewards.math.realsets import to_realset  # sympy only when needed

        a = to_realset(pv, self.deadline)
        b = to_realset(gv, self.deadline)
        if a is None or b is None:
            return False
        if a == b:
            return True
        try:
            return bool(a.symmetric_difference(b).is_empty)
        except Exception:
            return False

    def _realset_is_empty(self, value: tuple) -> bool:
        from tirgym.rewards.math.realsets import to_realset

        s = to_realset(value, self.deadline)
        return s is not None and bool(s.is_empty)

    # -- scalars ---------------------------------------------------------------------------------
    def exprs_equal(self, p: tuple, g: tuple) -> bool:
        if p == g:
            return True
        p_inner, p_pct, p_deg = _strip_marks(p)
        g_inner, g_pct, g_deg = _strip_marks(g)
        if self.scalars_equal(p_inner, g_inner):
            return True
        pc = self._alternatives(p_inner, p_pct, p_deg)
        gc = self._alternatives(g_inner, g_pct, g_deg)
        return any(
            self.scalars_equal(a, b)
            for a in [p_inner, *pc]
            for b in [g_inner, *gc]
            if not (a is p_inner and b is g_inner)
        )

    def _alternatives(self, node: tuple, pct: bool, deg: bool) -> list[tuple]:
        out = []
        if pct and self.policy.percent_as_fraction:
            out.append(("/", node, ("n", Fraction(100), None)))
        if deg and self.policy.degrees_equal_radians:
            out.append(("/", ("*", (node, ("c", "pi"))), ("n", Fraction(180), None)))
        return out

    def scalars_equal(self, p: tuple, g: tuple) -> bool:
        if p == g:
            return True
        names = free_symbols(p) | free_symbols(g)
        if names:
            return self._symbolic_equal(p, g, names)
        ev = Evaluator(self.deadline)
        try:
            ep, eg = ev.exact(p), ev.exact(g)
        except Undefined:
            return False
        p_ulp, g_ulp = _literal_ulp(p), _literal_ulp(g)
        rounded = self.policy.allow_rounded_decimals
        if ep is not None and eg is not None:
            if ep == eg:
                return True
            if rounded and p_ulp is not None and rounds_to(ep, eg, p_ulp):
                return True
            return bool(rounded and g_ulp is not None and rounds_to(eg, ep, g_ulp))
        ctx = mp()
        try:
            a, b = ev.num(p), ev.num(g)
        except Huge:
            return canonical(p) == canonical(g)
        except Undefined:
            return False
        if ctx.isinf(a) or ctx.isinf(b) or ctx.isnan(a) or ctx.isnan(b):
            return _same_infinity(a, b)
        diff = abs(a - b)
        if p_ulp is not None and eg is None:
            return bool(rounded and rounds_to(a, b, p_ulp))
        if g_ulp is not None and ep is None and not ev.big:
            # the gold is a rounded decimal and the prediction the exact (irrational) value
            return bool(diff <= g_ulp / 2 * (1 + 1e-12))
        close = diff <= REL_TOL * max(abs(a), abs(b)) + ABS_TOL
        if close and ev.big:
            return canonical(p) == canonical(g)
        return bool(close)

    def _symbolic_equal(self, p: tuple, g: tuple, names: set[str]) -> bool:
        ev = Evaluator(self.deadline)
        ctx = mp()
        agree = 0
        for k in range(TEST_POINTS + 2):
            env = {n: symbol_value(n, k) for n in names}
            try:
                a, b = ev.num(p, env), ev.num(g, env)
            except Huge:
                return canonical(p) == canonical(g)
            except Undefined:
                continue
            if ctx.isinf(a) or ctx.isinf(b):
                if not _same_infinity(a, b):
                    return False
                continue
            if abs(a - b) > SYMBOLIC_TOL * max(abs(a), abs(b), ctx.mpf(1)):
                return False
            agree += 1
            if agree >= TEST_POINTS:
                break
        if agree >= 2 and ev.big:
            # a huge power swamps small differences at every test point
            return canonical(p) == canonical(g)
        if agree < 2:
            return False
        return all(_close(a, b) for a, b in self._signed_values(p, g, names))


def _close(a, b) -> bool:
    return bool(abs(a - b) <= SYMBOLIC_TOL * max(abs(a), abs(b), mp().mpf(1)))


def rounds_to(approx, exact, ulp) -> bool:
    """Whether ``approx`` is ``exact`` rounded or truncated at the written place ``ulp``."""
    if abs(approx - exact) <= ulp / 2:
        return True
    # truncation toward zero: same sign, |approx| below |exact| by less than one ulp
    return bool(approx * exact >= 0 and abs(approx) <= abs(exact) < abs(approx) + ulp)


def _same_infinity(a, b) -> bool:
    ctx = mp()
    if ctx.isnan(a) or ctx.isnan(b):
        return False
    if not (ctx.isinf(a) and ctx.isinf(b)):
        return False
    return bool(ctx.sign(ctx.re(a)) == ctx.sign(ctx.re(b)))


def _strip_marks(node: tuple) -> tuple[tuple, bool, bool]:
    pct = deg = False
    while node[0] in ("%", "deg"):
        if node[0] == "%":
            pct = True
        else:
            deg = True
        node = node[1]
    return node, pct, deg


def _literal_ulp(node: tuple) -> Fraction | None:
    """The unit in the last written place of a bare decimal literal (or None)."""
    if node[0] == "neg":
        node = node[1]
    if node[0] == "n":
        return node[2]
    return None


def _dedupe(items: tuple) -> tuple:
    seen, out = set(), []
    for it in items:
        key = canonical(it)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return tuple(out)


def _perfect_matching(left: tuple, right: tuple, eq) -> bool:
    """Bipartite matching (Kuhn) so that lists compare in any order."""
    n = len(left)
    adj = [[j for j in range(n) if eq(left[i], right[j])] for i in range(n)]
    match_r = [-1] * n

    def augment(i: int, seen: list[bool]) -> bool:
        for j in adj[i]:
            if not seen[j]:
                seen[j] = True
                if match_r[j] < 0 or augment(match_r[j], seen):
                    match_r[j] = i
                    return True
        return False

    return all(augment(i, [False] * n) for i in range(n))


__all__ = ["Comparer", "VerifyPolicy", "VerifyError", "to_value"]
