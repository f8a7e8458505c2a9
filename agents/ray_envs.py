"""Env workers on Ray: env instances live in Ray actors, reached through a gymnasium.Env proxy.

`RayEnvPool(cfg).make(env_id, **kwargs)` returns a `RayEnv` with the local env's spaces,
reset/step signature and info dicts (as `RemoteEnv` does for an env server), so the rollout
engine steps it on its thread pool unchanged: each step is a blocking remote call made from a
pool thread, and generation never waits on it unless that episode's turn is due.

Placement: `num_workers` actors, each one process holding many env instances (and their
sandbox sessions) and reserving `num_cpus_per_worker` CPUs, spread over the nodes by Ray.
Calls to one actor run one at a time, so an actor is one unit of CPU-bound env work; a new env
goes to the actor hosting the fewest.

Losing an actor (node lost, OOM, `ray.kill`): the pool starts a replacement, and each env that
lived there is rebuilt on a live actor by resetting it with its seed and replaying its actions.
Envs are pure functions of (seed, actions), so when every replayed observation matches the
recorded one the episode goes on exactly as it would have; when one differs (a nondeterministic
tool) or `on_worker_loss="error"`, the step raises `EnvWorkerLost` and the rollout records the
episode with stop_reason "error". No episode is lost silently; the run goes on.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from typing import Any, ClassVar, Literal

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field

from tirgym.envs.base import text_space
from tirgym.errors import TirgymError


class EnvWorkersConfig(BaseModel):
    """Where the rollout's envs run: in the rollout process (local) or in Ray actors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: Literal["local", "ray"] = "local"
    """local: envs in the rollout process, stepped on its thread pool; ray: envs in Ray actors."""
    num_workers: int = Field(2, ge=1)
    """Ray actors hosting envs (each one process)."""
    num_cpus_per_worker: float = Field(1.0, gt=0)
    """CPUs each actor reserves from the cluster (raise it for sandboxed code)."""
    address: str | None = None
    """Ray cluster to join: "auto" (a running `ray start` cluster), ray://host:port, or None to
    start a local Ray instance in this process."""
    on_worker_loss: Literal["replay", "error"] = "replay"
    """When an actor dies: replay its envs' episodes on a live actor, or mark them errored."""


class EnvWorkerLost(RuntimeError):
    """The actor holding an env died and its episode could not be rebuilt exactly."""


class _EnvHost:
    """A Ray actor's body: env instances by key, built with `tirgym.make` in the worker."""

    def __init__(self) -> None:
        self.envs: dict[int, Any] = {}

    def make(self, key: int, env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        import tirgym

        env = tirgym.make(env_id, **kwargs)
        self.envs[key] = env
        return {"num_tasks": getattr(env, "num_tasks", None)}

    def reset(self, key: int, seed: int, options: dict | None):
        return self.envs[key].reset(seed=seed, options=options)

    def step(self, key: int, action: str):
        return self.envs[key].step(action)

    def close(self, key: int) -> None:
        env = self.envs.pop(key, None)
        if env is not None:
            env.close()

    def ping(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def actor_lost(e: BaseException) -> bool:
    """Whether a Ray call failed because its actor died (not because the call raised)."""
    import ray.exceptions as rx

    return isinstance(e, rx.RayActorError | rx.ActorDiedError | rx.ActorUnavailableError)


def connect(address: str | None, section: str) -> Any:
    """The ray module, initialised: joined to the cluster at `address`, or a local instance
    (None); `section` names the config section in errors."""
    try:
        import ray
    except ImportError:
        raise TirgymError(
            f"{section}.backend=ray needs the ray package: pip install 'tirgym[ray]'"
        ) from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as e:
            raise TirgymError(
                f"no Ray cluster at {section}.address={address!r}: {e} "
                "(start one with `ray start --head`, or leave address unset for a local one)"
            ) from None
    return ray


class RayEnvPool:
    """`num_workers` env-hosting actors and the `make` that places envs on them."""

    def __init__(self, cfg: EnvWorkersConfig):
        self.cfg = cfg
        self._ray = ray = connect(cfg.address, "env_workers")
        self._cls = ray.remote(
            num_cpus=cfg.num_cpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD"
        )(_EnvHost)
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self.actors: list[Any] = [self._cls.remote() for _ in range(cfg.num_workers)]
        self._load: dict[int, int] = {i: 0 for i in range(cfg.num_workers)}
        self.replaced = 0
        """Actors started to replace dead ones."""
        self.replayed = 0
        """Envs rebuilt on a live actor after theirs died."""
        ray.get([a.ping.remote() for a in self.actors])

    def make(self, env_id: str, **kwargs: Any) -> RayEnv:
        """A proxy for `tirgym.make(env_id, **kwargs)` built in one of the pool's actors."""
        return RayEnv(self, env_id, kwargs)

    def _place(self) -> tuple[int, Any]:
        with self._lock:
            slot = min(self._load, key=lambda i: self._load[i])
            self._load[slot] += 1
            return slot, self.actors[slot]

    def _release(self, slot: int) -> None:
        with self._lock:
            self._load[slot] = max(0, self._load[slot] - 1)

    def _replace(self, slot: int, dead: Any) -> None:
        """Start a new actor in `slot` unless another thread already replaced `dead`."""
        with self._lock:
            if self.actors[slot] is dead:
                self._ray.kill(dead, no_restart=True)
                self.actors[slot] = self._cls.remote()
                self.replaced += 1

    def call(self, actor: Any, method: str, *args: Any) -> Any:
        return self._ray.get(getattr(actor, method).remote(*args))

    def close(self) -> None:
        for a in self.actors:
            self._ray.kill(a, no_restart=True)
        self.actors = []


class RayEnv(gym.Env[str, str]):
    """One env instance in a pool actor; reset/step are remote calls."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, pool: RayEnvPool, env_id: str, kwargs: dict[str, Any]):
        self.pool = pool
        self.env_id = env_id
        self.kwargs = dict(kwargs)
        self.render_mode = self.kwargs.get("render_mode")
        self.observation_space = text_space()
        self.action_space = text_space()
        self.key = next(pool._keys)
        self._seed: int | None = None
        self._options: dict | None = None
        self._history: list[tuple[str, str]] = []
        """(action, observation) of every step since reset: what a replay must reproduce."""
        self._reset_obs = ""
        self.transcript: list[tuple[str, str]] = []
        self.slot, self.actor = -1, None
        self.num_tasks: int | None = None
        self._build(first=True)

    # ---- placement ----------------------------------------------------------------------
    def _build(self, first: bool = False) -> None:
        """Create the env on the least-loaded actor, replacing actors found dead."""
        for _ in range(len(self.pool.actors) + 1):
            self.slot, self.actor = self.pool._place()
            try:
                made = self.pool.call(self.actor, "make", self.key, self.env_id, self.kwargs)
            except Exception as e:
                self.pool._release(self.slot)
                if not actor_lost(e):
                    raise
                self.pool._replace(self.slot, self.actor)
                continue
            if first:
                self.num_tasks = made["num_tasks"]
            return
        raise EnvWorkerLost(f"no live Ray env worker could build {self.env_id}")

    def _remote(self, method: str, *args: Any) -> Any:
        """Call the actor; on actor loss, rebuild this env elsewhere and replay, then retry."""
        try:
            return self.pool.call(self.actor, method, self.key, *args)
        except Exception as e:
            if not actor_lost(e):
                raise
            lost = e
        self.pool._release(self.slot)
        self.pool._replace(self.slot, self.actor)
        if self._seed is not None and self.pool.cfg.on_worker_loss == "error":
            raise EnvWorkerLost(f"Ray env worker died mid-episode: {lost}") from None
        self._build()
        if self._seed is not None:
            self._replay()
        return self.pool.call(self.actor, method, self.key, *args)

    def _replay(self) -> None:
        obs, _ = self.pool.call(self.actor, "reset", self.key, self._seed, self._options)
        if obs != self._reset_obs:
            raise EnvWorkerLost(
                f"{self.env_id} reset differently when rebuilt after its worker died"
            )
        for i, (action, want) in enumerate(self._history):
            got = self.pool.call(self.actor, "step", self.key, action)[0]
            if got != want:
                raise EnvWorkerLost(
                    f"{self.env_id} replied differently at step {i} when replayed after its "
                    "worker died (a nondeterministic env cannot be rebuilt)"
                )
        self.pool.replayed += 1

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:  # drawn here, as a local env would, so a seeded proxy replays
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self._seed, self._options, self._history = None, options, []
        obs, info = self._remote("reset", int(seed), options)
        self._seed, self._reset_obs = int(seed), obs
        self.transcript = [("user", obs)]
        return obs, info

    def step(self, action: str):
        if not isinstance(action, str):
            raise TypeError(f"RayEnv actions are strings, got {type(action).__name__}")
        if self._seed is None:
            raise TirgymError(f"step() before reset() on {self.env_id}")
        obs, reward, terminated, truncated, info = self._remote("step", action)
        self._history.append((action, obs))
        self.transcript += [("assistant", action), (info.get("role", "user"), obs)]
        return obs, reward, terminated, truncated, info

    def render(self) -> str | None:
        return "\n\n".join(f"[{role}]\n{content}" for role, content in self.transcript)

    def close(self) -> None:
        if self.actor is not None:
            with contextlib.suppress(Exception):  # a dead actor took the env with it
                self.pool.call(self.actor, "close", self.key)
            self.pool._release(self.slot)
            self.actor = None
        super().close()


def make_env_pool(cfg: EnvWorkersConfig) -> RayEnvPool | None:
    """The pool for `cfg` (None for local envs)."""
    return RayEnvPool(cfg) if cfg.backend == "ray" else None
