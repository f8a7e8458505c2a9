"""The one exception type users see.

Anything raised as `TirgymError` is a mistake in what the user (or a model) gave us: a bad
env id, a bad config field, a missing optional dependency. The CLI prints its message as a
single line and exits with code 2; everything else is a bug and keeps its traceback.
"""


class TirgymError(Exception):
    """A user-facing error: the message says what was wrong and what is allowed."""


def did_you_mean(word: str, choices: list[str] | tuple[str, ...], n: int = 3) -> str:
    """A ' Did you mean ...?' suffix with close matches, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    if not close:
        lowered = word.lower()
        close = [c for c in choices if lowered in c.lower()][:n]
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
