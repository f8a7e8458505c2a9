"""The difficulty levels every env family shares, and the one check of a choice kwarg."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from tirgym.errors import TirgymError

DIFFICULTIES = ("easy", "medium", "hard")
Difficulty = Literal["easy", "medium", "hard"]

T = TypeVar("T")


def check_choice(name: str, value: T, allowed: tuple[Any, ...], where: str = "") -> T:
    """`value` if it is one of `allowed`, else a one-line TirgymError naming the choices."""
    if value not in allowed:
        prefix = f"{where}: " if where else ""
        raise TirgymError(
            f"{prefix}{name} must be one of {', '.join(map(str, allowed))}; got {value!r}."
        )
    return value


def check_difficulty(value: Any, where: str = "") -> Difficulty:
    return check_choice("difficulty", value, DIFFICULTIES, where)
