"""The one rich progress-bar layout that long jobs (training, eval) show on a terminal."""

from __future__ import annotations

from typing import Any


def progress_bar(label: str, extra: str, **kw: Any):
    """A `rich.progress.Progress`: label, bar, done/total, elapsed, ETA, then `extra` (a
    column template over the task's fields, e.g. "{task.fields[stats]}"). `kw` goes to
    Progress (console=..., transient=...)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn(extra),
        **kw,
    )
