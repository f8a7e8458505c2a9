"""String clean-up of a LaTeX or plain-text answer before tokenising.

Everything here is a cheap textual rewrite: delimiters, spacing macros, thousands
separators, ``\\text{}`` wrappers, units, degree and percent spellings, unicode symbols.
"""

from __future__ import annotations

import re

UNIT_WORDS = {
    "cm", "mm", "km", "m", "meter", "meters", "metre", "metres", "centimeter", "centimeters",
    "kilometer", "kilometers", "millimeter", "millimeters", "inch", "inches", "in", "ft", "feet",
    "foot", "yd", "yard", "yards", "mile", "miles", "mi", "mph", "kph", "units", "unit", "sq",
    "square", "cubic", "dollars", "dollar", "usd", "cents", "cent", "euros", "euro", "pounds",
    "pound", "lb", "lbs", "oz", "ounces", "ounce", "kg", "g", "gram", "grams", "kilograms",
    "mg", "l", "liter", "liters", "litre", "litres", "ml", "gallons", "gallon", "hours", "hour",
    "hr", "hrs", "h", "minutes", "minute", "min", "mins", "seconds", "second", "sec", "secs", "s",
    "days", "day", "weeks", "week", "months", "month", "years", "year", "yr", "people", "persons",
    "students", "times", "ways", "items", "marbles", "apples", "pages", "points", "cups",
    "boxes", "books", "tickets", "coins", "games", "miles/hour", "steps", "numbers", "integers",
    "elements", "terms", "digits", "rows", "columns", "questions", "sides", "edges", "vertices",
    "faces", "radians", "radian", "rad", "cookies", "candies", "eggs", "hats", "balls", "cars", "dogs", "cats", "trees",
}  # fmt: skip
RESERVED_WORDS = {
    "or", "and", "sin", "cos", "tan", "sec", "csc", "cot", "log", "ln", "exp", "sqrt", "pi",
    "infinity", "inf", "oo", "none", "i", "e", "x", "y", "z", "n", "k", "a", "b", "c", "t",
}  # fmt: skip

_UNICODE = {
    "−": "-", "–": "-", "—": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/", "∞": "\\infty ",
    "π": "\\pi ", "√": "\\sqrt", "°": "^\\circ", "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ",
    "∪": "\\cup ", "∩": "\\cap ", "∅": "\\emptyset ", "\u2009": " ", "\u00a0": " ", "\u202f": " ",
    "⁻": "-", "²": "^2", "³": "^3", "∈": "\\in ", "θ": "\\theta ", "α": "\\alpha ", "β": "\\beta ",
}  # fmt: skip
_UNICODE_RE = re.compile("|".join(re.escape(k) for k in _UNICODE))

_WRAPPERS_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|texttt|textsf|mathrm|mathbf|mathit|mathsf|mathtt|mbox|"
    r"operatorname\*?|boldsymbol|bm|hbox|emph|textnormal|mathnormal)\s*\{"
)
_DROP_RE = re.compile(
    r"\\(?:displaystyle|textstyle|scriptstyle|left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|"
    r"bigg|Bigg|limits|nolimits|middle)(?![A-Za-z])|\\[!;:>]|\$|\\\(|\\\)|\\\[|\\\]|\\ensuremath"
)
_SPACE_RE = re.compile(
    r"\\(?:quad|qquad|enspace|thinspace|medspace|thickspace)(?![A-Za-z])|~|(?<!\\)\\ "
)
_PLAIN_MIXED = re.compile(r"^(-?)\s*(\d+)\s+(\d+)\s*/\s*(\d+)$")
_FRAC_ALIASES = re.compile(r"\\(?:dfrac|tfrac|cfrac)(?![A-Za-z])")
_BINOM_ALIASES = re.compile(r"\\(?:dbinom|tbinom)(?![A-Za-z])")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_SHORT2 = re.compile(r"\\frac\s*\{([^{}]*)\}\s*(\d)")
_FRAC_SHORT3 = re.compile(r"\\frac\s*(\d)\s*\{")
_THOUSANDS_RES = [
    re.compile(r"(?<![\d.])(\d{1,3})((?:\\,\d{3})+)(?![\d])"),
    re.compile(r"(?<![\d.])(\d{1,3})((?:\{,\}\d{3})+)(?![\d])"),
    re.compile(r"(?<![\d.,])(\d{1,3})((?: \d{3})+)(?![\d/])"),
]
_COMMA_THOUSANDS = re.compile(r"^\s*-?\s*(\d{1,3})((?:,\d{3})+)(\.\d+)?\s*$")
_DEGREE_RE = re.compile(
    r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\s*(?:degrees|degree|deg)\b\.?", re.I
)
_PERCENT_RE = re.compile(r"\\%|\s*\bpercent\b|%", re.I)
_EMPTY_RE = re.compile(
    r"^(?:no\s+(?:real\s+)?(?:solutions?|roots?|values?)|none|no\s+such\s+\w+|\\emptyset|"
    r"\\varnothing|\\\{\s*\\\}|\{\s*\}|empty\s+set|the\s+empty\s+set|\\O)$",
    re.I,
)
_UNIT_POWER_RE = re.compile(r"\s*\^\s*\{?[23]\}?$")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z/]*\.?")
_VALUE_END_RE = re.compile(r"[\dA-Za-z}.)\]|!]$")
_PLAIN_NUMBER_RE = re.compile(r"(?:[-+\d\s.,/{}]|\\frac)*")
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_LETTER_RE = re.compile(r"[A-Za-z]")


def unwrap_text_macros(s: str) -> str:
    """Replace ``\\text{...}`` style wrappers by their content padded with spaces."""
    for _ in range(50):
        m = _WRAPPERS_RE.search(s)
        if m is None:
            return s
        depth, k = 1, m.end()
        while k < len(s) and depth:
            if s[k] == "{":
                depth += 1
            elif s[k] == "}":
                depth -= 1
            k += 1
        inner = s[m.end() : k - 1] if depth == 0 else s[m.end() :]
        s = s[: m.start()] + " " + inner + " " + s[k:]
    return s


def _is_unit(word: str) -> bool:
    """A unit word, or a rate of unit words: ``cm``, ``m/s``, ``km/h``."""
    return word in UNIT_WORDS or ("/" in word and all(w in UNIT_WORDS for w in word.split("/")))


def _strip_units(s: str) -> str:
    """Drop trailing unit words after a value: ``5 cm`` -> ``5``, ``36\\pi cm^2`` -> ``36\\pi``.

    What the value contains does not matter (a number, ``\\pi``, a radical, a variable);
    what the words are does. After a plain number any word of four or more letters is a
    unit ("12 apples"); shorter unknown words are letter products (``2xy``). After any
    other value only known unit words count, and a one-letter unit (m, s, h, g, l) only
    when the value has no variables: in ``\\pi r^2 h`` the ``h`` is a height.

    Written as a scan from the end rather than one regex: nested quantifiers over words
    backtrack exponentially on adversarial input.
    """
    body = _UNIT_POWER_RE.sub("", s)
    glued = re.search(r"(?<=\d)[A-Za-z]+$", body)
    if glued:
        words, prefix = [glued.group(0)], body[: glued.start()]
    else:
        parts = body.split(" ")
        k = len(parts)
        while k > 0 and _WORD_RE.fullmatch(parts[k - 1]):
            k -= 1
        words, prefix = parts[k:], " ".join(parts[:k])
    if not words or not prefix or not _VALUE_END_RE.search(prefix):
        return s
    words = [w.strip(".").lower() for w in words]
    if any(w in RESERVED_WORDS for w in words):
        return s
    if _PLAIN_NUMBER_RE.fullmatch(prefix):
        units = all(_is_unit(w) or len(w) >= 4 for w in words)
    else:
        one_letter = any(len(w) == 1 for w in words)
        has_variable = _LETTER_RE.search(_COMMAND_RE.sub(" ", prefix)) is not None
        units = all(_is_unit(w) for w in words) and not (one_letter and has_variable)
    return prefix.strip() if units else s


def normalize(s: str) -> str:
    """Canonical text for tokenising; also the basis of the string fast path."""
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    s = s.replace("\\$", " ").replace("\\#", " ")
    s = _DROP_RE.sub("", s)
    s = s.replace("\\{", " \\{ ").replace("\\}", " \\} ")
    s = _SPACE_RE.sub(" ", s)
    s = _FRAC_ALIASES.sub(r"\\frac", s)
    s = _BINOM_ALIASES.sub(r"\\binom", s)
    for regex in _THOUSANDS_RES:
        s = regex.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), s)
    s = s.replace("\\,", " ")
    s = unwrap_text_macros(s)
    s = _PERCENT_RE.sub(lambda m: " \\%", s)
    s = _DEGREE_RE.sub(lambda m: "^\\circ", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_SHORT2.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_SHORT3.sub(r"\\frac{\1}{", s)
    s = " ".join(s.split()).strip().rstrip(".,;").strip()
    s = _strip_units(s)
    s = _PLAIN_MIXED.sub(r"\1\2\\frac{\3}{\4}", s)
    m = _COMMA_THOUSANDS.match(s)
    if m:
        s = s.replace(",", "")
    return s.strip()


def is_empty_set_phrase(s: str) -> bool:
    return _EMPTY_RE.match(s.strip()) is not None
