"""Env registry and suites.

Registration goes through gymnasium's registry, so `gymnasium.make("tirgym/X-v0")` works
as well as `tirgym.make`. tirgym keeps the extra metadata (tags, description, default
turn limit) beside it. Built-in envs register on `import tirgym`; third-party packages
register through the entry-point group `tirgym.envs`, loaded on `import tirgym`.

Suites are named lists of env ids with weights and eval settings. Built-in suites are
YAML files in configs/suites/, so users add their own without code.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.resources
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from gymnasium.envs.registration import load_env_creator
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tirgym.env_kwargs import KwargsSpec, check_kwargs, kwargs_spec
from tirgym.env_spec import EnvSpec
from tirgym.errors import TirgymError, did_you_mean

log = logging.getLogger(__name__)

HELDOUT_SEED_BASE = 1_000_000_000
"""Eval seeds start here by default; training seeds stay below it, so they never meet."""


@dataclass
class EnvMeta:
    id: str
    entry_point: str
    tags: tuple[str, ...] = ()
    description: str = ""
    max_turns: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


_ENVS: dict[str, EnvMeta] = {}
_SUITES: dict[str, Suite] = {}
_ALL_ENV_SUITES: set[str] = set()
"""Suites declared with `envs: all`: their entries are re-listed from the registry on each get_suite."""
_plugins_loaded = False
_plugins_loading = False
_plugins_lock = threading.RLock()


def register(
    id: str,
    entry_point: str,
    kwargs: dict[str, Any] | None = None,
    *,
    tags: list[str] | tuple[str, ...] = (),
    max_turns: int | None = None,
    description: str = "",
    override: bool = False,
) -> None:
    """Register a TextEnv under `namespace/Name-vN`, for tirgym.make and gymnasium.make."""
    if id in _ENVS and not override:
        if _ENVS[id].entry_point == entry_point:
            return  # re-import of the same module
        raise TirgymError(f"Env id {id!r} is already registered (by {_ENVS[id].entry_point}).")
    kwargs = dict(kwargs or {})
    if max_turns is not None:
        kwargs["max_turns"] = max_turns
    gym.register(id=id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=True)
    _ENVS[id] = EnvMeta(id, entry_point, tuple(tags), description, max_turns, kwargs)


def load_plugins() -> None:
    """Import every distribution's `tirgym.envs` entry point once (they call register).

    Runs on `import tirgym`, so `gymnasium.make` finds plugin envs too. Threads that look
    an env up while another thread loads wait for it (the flag is set only once every
    plugin is in); a plugin calling back into the registry while it loads (same thread,
    the lock is reentrant) sees what is registered so far.
    """
    global _plugins_loaded, _plugins_loading
    if _plugins_loaded:
        return
    with _plugins_lock:
        if _plugins_loaded or _plugins_loading:
            return
        _plugins_loading = True
        try:
            for ep in importlib.metadata.entry_points(group="tirgym.envs"):
                try:
                    obj = ep.load()
                    if callable(obj):
                        obj()
                except Exception as e:  # a broken plugin must not take tirgym down
                    log.warning("tirgym plugin %s failed to load: %s", ep.name, e)
            _plugins_loaded = True
        finally:
            _plugins_loading = False


def env_ids(tag: str | None = None) -> list[str]:
    load_plugins()
    return sorted(i for i, m in _ENVS.items() if tag is None or tag in m.tags)


def list_envs(tag: str | None = None) -> list[EnvMeta]:
    return [_ENVS[i] for i in env_ids(tag)]


def env_meta(id: str) -> EnvMeta:
    load_plugins()
    if id not in _ENVS:
        raise TirgymError(
            f"Unknown env id {id!r}.{did_you_mean(id, list(_ENVS))} "
            "Run `tirgym list` to see the registered envs."
        )
    return _ENVS[id]


def make(id: str, *, remote: str | None = None, **kwargs: Any) -> gym.Env:
    """Make a registered env; an unknown id or a bad kwarg fails with one clear line.

    Kwargs are checked against the constructor before it runs, so an error raised inside
    the constructor (a TypeError included) is the env's own and propagates unchanged.
    remote: URL of a `tirgym serve-env` server: the env runs there and a RemoteEnv client
    is returned (the server checks the kwargs).
    """
    if remote is not None:
        from tirgym.envs.remote import RemoteEnv

        return RemoteEnv(remote, id, kwargs)
    validate_env_kwargs(id, {k: v for k, v in kwargs.items() if k not in _GYM_MAKE_ARGS})
    return gym.make(id, **kwargs)


_GYM_MAKE_ARGS = ("max_episode_steps", "disable_env_checker")
"""Arguments of gymnasium.make itself, not of the env."""


def env_kwargs(id: str) -> KwargsSpec:
    """The kwargs env `id` takes (names, defaults, types, allowed values), with the
    defaults it was registered with."""
    meta = env_meta(id)
    cached = _KWARGS_SPECS.get(id)
    if cached is not None and cached[0] is meta:  # same registration: make() stays cheap
        return cached[1]
    entry = gym.spec(id).entry_point
    try:
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
    except (ImportError, AttributeError) as e:
        raise TirgymError(f"Env {id!r} cannot be imported from {entry!r}: {e}") from None
    spec = kwargs_spec(creator)
    if meta.kwargs:
        params = dict(spec.params)
        for name, value in meta.kwargs.items():
            if name in params:
                params[name] = dataclasses.replace(params[name], default=value, required=False)
        spec = KwargsSpec(params, spec.open)
    _KWARGS_SPECS[id] = (meta, spec)
    return spec


_KWARGS_SPECS: dict[str, tuple[EnvMeta, KwargsSpec]] = {}


def validate_env_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    """Check env kwargs without building the env: unknown id or kwarg names (with close
    matches), values outside a kwarg's allowed choices, wrong types. Raises TirgymError.
    `remote` (make's own: the env server URL) may sit beside them, so a suite entry's
    kwargs can run the env remotely."""
    if not isinstance(kwargs, dict):
        raise TirgymError(f"kwargs for {env_id} must be a mapping, got {type(kwargs).__name__}.")
    if "remote" in kwargs:  # make's own argument: the env server the env runs on
        if not isinstance(kwargs["remote"], str) or not kwargs["remote"].startswith(("http://", "https://")):
            raise TirgymError(f"{env_id}: remote must be an env server URL (http://host:port).")
        kwargs = {k: v for k, v in kwargs.items() if k != "remote"}
    spec = env_kwargs(env_id)
    check_kwargs(env_id, spec, kwargs)
    missing = [p.name for p in spec.params.values() if p.required and p.name not in kwargs]
    if missing:
        raise TirgymError(f"{env_id} needs the kwarg(s) {', '.join(missing)}.")


# ---- suites ------------------------------------------------------------------------


class SuiteEntry(EnvSpec):
    """A suite's env, with its share of the suite's weight in a training mix."""

    weight: float = Field(1.0, gt=0)


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_seeds: int = Field(20, ge=1)
    samples: int = Field(1, ge=1)
    seed_start: int = HELDOUT_SEED_BASE
    temperature: float = 0.0
    max_turns: int | None = None


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    envs: list[SuiteEntry]
    eval: EvalSettings = Field(default_factory=EvalSettings)


def register_suite(
    name: str,
    envs: list[str | dict[str, Any] | SuiteEntry],
    *,
    description: str = "",
    eval: dict[str, Any] | EvalSettings | None = None,
    override: bool = False,
) -> Suite:
    entries = [SuiteEntry(id=e) if isinstance(e, str) else SuiteEntry.model_validate(e) for e in envs]
    settings = EvalSettings.model_validate(eval or {})
    suite = Suite(name=name, description=description, envs=entries, eval=settings)
    if name in _SUITES and not override:
        raise TirgymError(f"Suite {name!r} is already registered.")
    _SUITES[name] = suite
    return suite


def load_suite_file(path: str | Path) -> Suite:
    """Load (and register) a suite from a YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TirgymError(f"Suite file not found: {path}") from None
    except yaml.YAMLError as e:
        raise TirgymError(f"Suite file {path} is not valid YAML: {e}") from None
    every_env = isinstance(data, dict) and data.get("envs") == "all"
    if every_env:
        data = {**data, "envs": [{"id": i} for i in env_ids()]}
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise TirgymError(f"Suite file {path}: field {loc!r}: {err['msg']}") from None
    _SUITES[suite.name] = suite
    (_ALL_ENV_SUITES.add if every_env else _ALL_ENV_SUITES.discard)(suite.name)
    return suite


def _load_builtin_suites() -> None:
    try:
        folder = importlib.resources.files("tirgym.configs") / "suites"
    except ModuleNotFoundError:
        return
    if not folder.is_dir():
        return
    for f in sorted(folder.iterdir(), key=lambda p: p.name):
        if f.name.endswith((".yaml", ".yml")):
            stem = f.name.rsplit(".", 1)[0]
            if stem not in _SUITES:
                load_suite_file(Path(str(f)))


def suite_names() -> list[str]:
    _load_builtin_suites()
    return sorted(_SUITES)


def get_suite(name: str) -> Suite:
    """A suite by name, or from a YAML path."""
    if name.endswith((".yaml", ".yml")) and Path(name).exists():
        return _checked(load_suite_file(name))
    _load_builtin_suites()
    if name not in _SUITES:
        raise TirgymError(
            f"Unknown suite {name!r}.{did_you_mean(name, list(_SUITES))} "
            f"Known suites: {', '.join(sorted(_SUITES)) or 'none'}."
        )
    suite = _SUITES[name]
    if name in _ALL_ENV_SUITES:  # envs registered after the file was read count too
        suite = _SUITES[name] = suite.model_copy(
            update={"envs": [SuiteEntry(id=i) for i in env_ids()]}
        )
    return _checked(suite)


def _checked(suite: Suite) -> Suite:
    """Fail early, naming the suite entry with a bad env id or kwarg."""
    for entry in suite.envs:
        try:
            validate_env_kwargs(entry.id, entry.kwargs)
        except TirgymError as e:
            raise TirgymError(f"suite {suite.name!r}, entry {entry.label!r}: {e}") from None
    return suite
