"""What keyword arguments an env constructor takes, read off its signature.

An env's constructor is the spec of its kwargs: each class in the MRO adds the parameters
of its own `__init__` until one takes no `**kwargs` (TextEnv ends every built-in chain).
A class may also list dataclasses in `option_kwargs` whose fields its constructor takes
out of `**kwargs` (the python-tool options; one with a `__post_init__` checks its own
values, so only their names are checked here). The most derived default wins; a `Literal`
annotation anywhere in the chain gives the allowed values, so a base class can declare
the choices once while subclasses only change the default.

Checking here, before the constructor runs, turns a typo into "did you mean" and a wrong
type into a one-line error, in the CLI and when a config loads, instead of a TypeError
raised somewhere inside the env.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from tirgym.errors import TirgymError, did_you_mean

_EMPTY = inspect.Parameter.empty
_UNIONS = (typing.Union, types.UnionType)


@dataclass(frozen=True)
class KwargSpec:
    """One constructor kwarg: its default (`required` when it has none), type and choices."""

    name: str
    default: Any = None
    required: bool = False
    annotation: Any = Any
    choices: tuple[Any, ...] = ()
    check_type: bool = True
    """False where an options dataclass validates the value itself (its own message wins)."""

    @property
    def type_name(self) -> str:
        if self.annotation is Any:
            return "any"
        if self.choices:  # Literal["a", "b"]: the values are listed apart
            names = dict.fromkeys(type(c).__name__ for c in self.choices if c is not None)
            return " | ".join([*names, *(["None"] if None in self.choices else [])])
        text = getattr(self.annotation, "__name__", None) or repr(self.annotation)
        return text.replace("typing.", "")


@dataclass(frozen=True)
class KwargsSpec:
    """Every kwarg an env takes; `open` when the chain ends in a bare `**kwargs` whose
    names cannot be known (then unknown names are passed through unchecked)."""

    params: dict[str, KwargSpec]
    open: bool = False


def _hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # an annotation that does not resolve: check nothing for it
        return {}


def _choices(annotation: Any) -> tuple[Any, ...]:
    """Allowed values of a Literal, also inside a union (`Literal["a", "b"] | None`)."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    args = typing.get_args(annotation) if typing.get_origin(annotation) in _UNIONS else ()
    found = tuple(c for arg in args for c in _choices(arg))
    return found + (None,) if found and type(None) in args else found


def _merge(params: dict[str, KwargSpec], new: KwargSpec) -> None:
    old = params.get(new.name)
    if old is None:
        params[new.name] = new
    elif new.choices and not old.choices:  # a base declares the choices, the subclass the default
        params[new.name] = dataclasses.replace(old, annotation=new.annotation, choices=new.choices)


def _add_signature(params: dict[str, KwargSpec], func: Any) -> bool:
    """Add a callable's named parameters; True when it also takes **kwargs."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return True
    hints = _hints(func)
    var_kw = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
            ann = hints.get(p.name, Any)
            _merge(
                params,
                KwargSpec(
                    p.name,
                    None if p.default is _EMPTY else p.default,
                    p.default is _EMPTY,
                    ann,
                    _choices(ann),
                ),
            )
    return var_kw


def _add_options(params: dict[str, KwargSpec], cls: type) -> None:
    for options in getattr(cls, "option_kwargs", ()):
        hints = _hints(options)
        own_check = hasattr(options, "__post_init__")
        for f in dataclasses.fields(options):
            ann = hints.get(f.name, Any)
            default = f.default if f.default is not dataclasses.MISSING else None
            _merge(params, KwargSpec(f.name, default, False, ann, _choices(ann), not own_check))


@functools.cache
def kwargs_spec(creator: Any) -> KwargsSpec:
    """The kwargs an env class (or factory function) accepts."""
    params: dict[str, KwargSpec] = {}
    if not isinstance(creator, type):
        return KwargsSpec(params, open=_add_signature(params, creator))
    for cls in creator.__mro__:
        init = cls.__dict__.get("__init__")
        if cls is object:  # the chain's last **kwargs was consumed, not passed on
            return KwargsSpec(params, open=creator.__init__ is not object.__init__)
        if init is None:
            continue
        _add_options(params, cls)
        if not _add_signature(params, init):
            return KwargsSpec(params)
    return KwargsSpec(params, open=True)


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation)


def _type_ok(spec: KwargSpec, value: Any) -> bool:
    """Scalars must have the exact type (no "5" for an int, a float for an int or a bool for
    either); JSON/YAML containers are checked leniently, since they cannot spell a tuple."""
    if spec.annotation is Any:
        return True
    try:
        adapter = _adapter(spec.annotation)
        for strict in (True, False):
            try:
                adapter.validate_python(value, strict=strict)
                return True
            except ValidationError:
                if not isinstance(value, list | dict):
                    return False
    except Exception:  # a type pydantic cannot check (an arbitrary class): let the env judge
        return True
    return False


def check_kwargs(env_id: str, spec: KwargsSpec, kwargs: dict[str, Any]) -> None:
    """Raise a one-line TirgymError on an unknown name, a value outside its choices or of
    the wrong type; nothing is coerced (the env gets exactly what was given)."""
    for name, value in kwargs.items():
        p = spec.params.get(name)
        if p is None:
            if spec.open:
                continue
            known = ", ".join(sorted(spec.params)) or "none"
            raise TirgymError(
                f"{env_id} has no kwarg {name!r}.{did_you_mean(name, list(spec.params))} "
                f"Its kwargs: {known} (`tirgym info {env_id}` lists them with defaults)."
            )
        if p.choices and value not in p.choices:
            allowed = ", ".join(repr(c) for c in p.choices)
            hint = (
                did_you_mean(value, [c for c in p.choices if isinstance(c, str)])
                if isinstance(value, str)
                else ""
            )
            raise TirgymError(
                f"{env_id}: {name}={value!r} is not allowed.{hint} Choose one of {allowed}."
            )
        if p.check_type and not _type_ok(p, value):
            raise TirgymError(
                f"{env_id}: {name}={value!r} has type {type(value).__name__}; "
                f"{name} takes {p.type_name} (default {p.default!r})."
            )
