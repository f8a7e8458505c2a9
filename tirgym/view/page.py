"""The viewer page: one self-contained HTML file (styles, script and data inline).

No CDN and no request after load: the file opens offline, from disk or from `serve`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from tirgym.view.data import PageData, dumps

_STATIC = files("tirgym.view") / "static"


def _asset(name: str) -> str:
    return (_STATIC / name).read_text(encoding="utf-8")


def render_page(data: PageData, title: str) -> str:
    """The HTML text; the details and search blobs go in as one line per episode.

    The script comes before those two blobs: the list shows as soon as the index is parsed,
    while the browser is still reading the episodes (opened ones wait for them)."""
    html = _asset("view.html")
    parts = {
        "{{TITLE}}": _escape(title),
        "{{STYLE}}": _asset("view.css"),
        "{{META}}": dumps(data.meta),
        "{{INDEX}}": dumps(data.index),
        "{{SCRIPT}}": _asset("view.js"),
        "{{DETAILS}}": "\n".join(data.details),
        "{{SEARCH}}": "\n".join(data.search),
    }
    out = []
    rest = html
    # one pass in template order, so a placeholder-like string inside the data is left alone
    while True:
        hits = [(rest.find(k), k) for k in parts if rest.find(k) >= 0]
        if not hits:
            out.append(rest)
            return "".join(out)
        pos, key = min(hits)
        out.append(rest[:pos])
        out.append(parts.pop(key))
        rest = rest[pos + len(key) :]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_page(html: str, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
