"""Trajectory viewer: a self-contained HTML page for a run dir, an eval dir or episodes.

`build_view(path)` reads the source and returns the page's HTML; `serve` shows it on
127.0.0.1. The CLI verb is `tirgym view`.
"""

from __future__ import annotations

from pathlib import Path

from tirgym.view.data import (
    TOKEN_ADVANTAGES,
    PageData,
    Source,
    build_data,
    find_source,
    load_tokenizer,
)
from tirgym.view.page import render_page, write_page
from tirgym.view.serve import make_server, serve


def build_view(path: str | Path, tokenizer: str | None = None) -> tuple[str, PageData]:
    """The page for `path` (see find_source) and the data it embeds."""
    source = find_source(path, tokenizer)
    tok = load_tokenizer(source.tokenizer) if source.tokenizer else None
    data = build_data(source, tok)
    title = f"tirgym view: {source.path.name or source.path}"
    return render_page(data, title), data


def default_out(path: str | Path) -> Path:
    """Where `tirgym view` writes the page: view.html in a dir, NAME.view.html beside a file."""
    p = Path(path)
    return p / "view.html" if p.is_dir() else p.with_name(p.stem + ".view.html")


__all__ = [
    "TOKEN_ADVANTAGES",
    "PageData",
    "Source",
    "build_data",
    "build_view",
    "default_out",
    "find_source",
    "make_server",
    "render_page",
    "serve",
    "write_page",
]
