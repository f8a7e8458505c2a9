"""Sandbox (a pool of warm worker slots) and Session (a notebook-like stateful context).

Thread-safe: each slot serves one request at a time; stateless runs take any idle slot, a
session is pinned to the slot that holds its state, and requests are served in arrival order
(slot_queue). Async callers use arun().
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sys
import threading
import uuid
import warnings
from typing import Any

from tirgym.errors import TirgymError
from tirgym.sandbox.backends import Backend, JailBackend, LocalBackend
from tirgym.sandbox.result import ExecResult
from tirgym.sandbox.slot import Slot, WorkerDied
from tirgym.sandbox.slot_queue import SlotQueue

WATCHDOG_GRACE_S = 10.0
BACKENDS = ("auto", "jail", "docker", "local")


def _lost(msg: str) -> ExecResult:
    return ExecResult(
        stdout="", stderr=msg + "\n", exit_code=None, status="crashed", duration_s=0.0
    )


def _not_utf8(code: str) -> ExecResult | None:
    """A str with a lone surrogate cannot be Python source (it has no UTF-8 form): say so
    here, in one line, instead of letting it fail somewhere inside the worker."""
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as e:
        msg = (
            f"SyntaxError: the code is not valid UTF-8 (lone surrogate {code[e.start]!r} "
            f"at offset {e.start})\n"
        )
        return ExecResult(stdout="", stderr=msg, exit_code=1, status="error", duration_s=0.0)
    return None


class Sandbox:
    """A pool of `workers` warm slots of one backend."""

    def __init__(
        self,
        backend: Backend,
        workers: int | None = None,
        max_runs_per_slot: int = 2000,
        default_timeout_s: float = 5.0,
        default_memory_mb: int = 512,
        default_max_output_bytes: int = 65536,
        warm: bool = False,
    ):
        self.backend = backend
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.max_runs_per_slot = max_runs_per_slot
        self.defaults = (default_timeout_s, default_memory_mb, default_max_output_bytes)
        self.queue = SlotQueue(self.workers)
        self.slots = [Slot(backend, i, self.queue.lock(i)) for i in range(self.workers)]
        self._closed = False
        if warm:
            self.warm()

    @property
    def name(self) -> str:
        return self.backend.name

    def warm(self) -> None:
        """Start every slot now (in parallel) instead of on first use."""
        threads = [threading.Thread(target=self._warm_one, args=(s,)) for s in self.slots]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _warm_one(self, slot: Slot) -> None:
        with slot.lock, contextlib.suppress(WorkerDied):
            slot.ensure()

    # ------------------------------------------------------------------ slot choice
    def _acquire_any(self) -> Slot:
        index = self.queue.acquire()
        assert index is not None
        return self.slots[index]

    def _release(self, slot: Slot) -> None:
        slot.lock.release()

    def _limits(self, timeout_s, memory_mb, max_output_bytes) -> dict:
        t, m, o = self.defaults
        timeout_s = t if timeout_s is None else float(timeout_s)
        memory_mb = m if memory_mb is None else int(memory_mb)
        max_output_bytes = o if max_output_bytes is None else int(max_output_bytes)
        if timeout_s <= 0 or memory_mb <= 0 or max_output_bytes <= 0:
            raise TirgymError(
                "sandbox limits must be positive: timeout_s, memory_mb, max_output_bytes"
            )
        return {
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
            "max_output_bytes": max_output_bytes,
        }

    def _call(self, slot: Slot, msg: dict, timeout_s: float) -> dict:
        return slot.request(msg, timeout_s + WATCHDOG_GRACE_S)

    # ------------------------------------------------------------------ public API
    def run(
        self,
        code: str,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run code in a fresh process that shares nothing with earlier runs."""
        if self._closed:
            raise TirgymError("this sandbox is closed")
        if not isinstance(code, str):
            raise TirgymError(f"code must be a str, got {type(code).__name__}")
        limits = self._limits(timeout_s, memory_mb, max_output_bytes)
        bad = _not_utf8(code)
        if bad is not None:
            return bad
        slot = self._acquire_any()
        try:
            if slot.runs >= self.max_runs_per_slot and not slot.sessions:
                slot.kill()  # recycle: a fresh worker after N runs
            try:
                reply = self._call(slot, {"op": "run", "code": code, **limits}, limits["timeout_s"])
            except WorkerDied as e:
                return _lost(f"sandbox worker died and was restarted: {e}")
            slot.runs += 1
            return ExecResult.from_dict(reply)
        finally:
            self._release(slot)

    async def arun(self, code: str, **limits: Any) -> ExecResult:
        return await asyncio.to_thread(self.run, code, **limits)

    def session(self) -> Session:
        if self._closed:
            raise TirgymError("this sandbox is closed")
        return Session(self)

    def close(self) -> None:
        self._closed = True
        for slot in self.slots:
            with slot.lock:
                slot.kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sandbox(backend={self.name!r}, workers={self.workers})"


class Session:
    """Variables, imports and files persist across run() calls until close().

    A failed cell (timeout, crash, fork bomb, output flood) is discarded: the next cell sees the
    state from before it. If the whole worker had to be restarted the state is lost; the next
    run reports that once (status "crashed") and continues in a fresh session.
    """

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.id = uuid.uuid4().hex
        self.slot: Slot | None = None
        self.generation = -1
        self.closed = False
        self._lock = threading.Lock()

    def _open(self) -> None:
        slots = self.sandbox.slots
        slot = min(slots, key=lambda s: (len(s.sessions), s.lock.locked()))
        with slot.lock:
            slot.ensure()
            reply = slot.request({"op": "open", "session": self.id}, 15.0)
            if not reply.get("ok"):
                raise WorkerDied(str(reply.get("error") or reply))
            slot.sessions.add(self.id)
            self.slot, self.generation = slot, slot.generation

    def run(
        self,
        code: str,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        if self.closed:
            raise TirgymError(
                "this sandbox session is closed; open a new one with sandbox.session()"
            )
        if not isinstance(code, str):
            raise TirgymError(f"code must be a str, got {type(code).__name__}")
        limits = self.sandbox._limits(timeout_s, memory_mb, max_output_bytes)
        bad = _not_utf8(code)
        if bad is not None:
            return bad
        with self._lock:
            lost = None
            if self.slot is not None and self.slot.generation != self.generation:
                lost = "sandbox worker was restarted; session state was lost"
                self.slot = None
            if self.slot is None:
                try:
                    self._open()
                except WorkerDied as e:
                    return _lost(f"could not open a sandbox session: {e}")
                if lost:
                    return _lost(lost + " (a fresh session is ready)")
            slot = self.slot
            assert slot is not None
            with slot.lock:
                if slot.generation != self.generation:
                    self.slot = None
                    return _lost("sandbox worker was restarted; session state was lost")
                try:
                    reply = slot.request(
                        {"op": "run", "session": self.id, "code": code, **limits},
                        limits["timeout_s"] + WATCHDOG_GRACE_S,
                        restart=False,
                    )
                except WorkerDied as e:
                    self.slot = None
                    return _lost(
                        f"sandbox worker died; session state was lost ({e}); the next run starts a fresh session"
                    )
                slot.runs += 1
                if reply.get("session_lost"):
                    slot.sessions.discard(self.id)
                    self.slot = None  # the next run opens a fresh session
            return ExecResult.from_dict(reply)

    async def arun(self, code: str, **limits: Any) -> ExecResult:
        return await asyncio.to_thread(self.run, code, **limits)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            slot, self.slot = self.slot, None
            if slot is None:
                return
            with slot.lock:
                slot.sessions.discard(self.id)
                if slot.generation == self.generation and slot.alive:
                    with contextlib.suppress(WorkerDied):
                        slot.request({"op": "close", "session": self.id}, 10.0)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A forgotten session would keep a holder process alive in its slot: close it, but
        # never block here (the garbage collector may run while a lock is held).
        with contextlib.suppress(Exception):
            slot = self.slot
            if self.closed or slot is None or not self._lock.acquire(blocking=False):
                return
            try:
                if slot.lock.acquire(blocking=False):
                    try:
                        slot.sessions.discard(self.id)
                        if slot.generation == self.generation and slot.alive:
                            slot.request({"op": "close", "session": self.id}, 10.0, restart=False)
                    finally:
                        slot.lock.release()
            finally:
                self.closed = True
                self._lock.release()


# ---------------------------------------------------------------------- factory
_CACHE: dict[tuple, Sandbox] = {}
_CACHE_LOCK = threading.Lock()
BACKEND_OPTIONS = {
    "scratch_mb",
    "scratch_inodes",
    "preload",
    "nproc",
    "fsize_mb",
    "slot_memory_mb",
    "use_cgroup",
}


def make_backend(name: str, **options: Any) -> Backend:
    """Build a backend by name; 'auto' picks the jail, then docker, and never local.

    The jail goes first because it is the faster of the two wherever both work (no container
    round trip: ~2x lower latency per run in benchmarks/bench_sandbox.py); `tirgym sandbox
    doctor` measures both on the machine at hand and says which auto picks and why.
    """
    if name not in BACKENDS:
        raise TirgymError(f"unknown sandbox backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "local":
        return LocalBackend(**options)
    from tirgym.sandbox.docker_backend import DockerBackend

    if name in ("jail", "docker"):
        cls = JailBackend if name == "jail" else DockerBackend
        backend: Backend = cls(**options)
        reason = backend.unavailable_reason()
        if reason:
            raise TirgymError(f"sandbox backend {name!r} is not available: {reason}")
        return backend
    jail = JailBackend(**{k: v for k, v in options.items() if not k.startswith("docker")})
    jail_reason = jail.unavailable_reason()
    if jail_reason is None:
        return jail
    docker_opts = {
        k: v for k, v in options.items() if k in BACKEND_OPTIONS or k.startswith("docker")
    }
    docker = DockerBackend(**docker_opts)
    docker_reason = docker.unavailable_reason()
    if docker_reason is None:
        return docker
    raise TirgymError(
        "no sandbox backend is available (auto never runs code unsandboxed): "
        f"jail: {jail_reason}; docker: {docker_reason}. "
        "Install bubblewrap (apt-get install bubblewrap; pyseccomp comes with tirgym) "
        "or start a Docker engine; use backend='local' only for trusted code."
    )


def get_sandbox(backend: str = "auto", **options: Any) -> Sandbox:
    """A process-wide shared Sandbox per (backend, options).

    Options: workers, max_runs_per_slot, default_timeout_s, default_memory_mb,
    default_max_output_bytes, warm, plus backend options (scratch_mb, scratch_inodes, preload, nproc,
    fsize_mb,
    slot_memory_mb, use_cgroup, and docker_* for the docker backend).
    """
    key = (backend, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _CACHE_LOCK:
        sb = _CACHE.get(key)
        if sb is not None and not sb._closed:
            return sb
        pool_keys = {
            "workers",
            "max_runs_per_slot",
            "default_timeout_s",
            "default_memory_mb",
            "default_max_output_bytes",
            "warm",
        }
        pool_opts = {k: v for k, v in options.items() if k in pool_keys}
        backend_opts = {k: v for k, v in options.items() if k not in pool_keys}
        if "preload" in backend_opts:
            backend_opts["preload"] = tuple(backend_opts["preload"])
        try:
            be = make_backend(backend, **backend_opts)
        except TypeError as e:
            raise TirgymError(f"bad sandbox option: {e}") from None
        if be.name == "local":
            msg = "tirgym sandbox backend 'local' runs code WITHOUT isolation; use it only for trusted code"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            print(f"WARNING: {msg}", file=sys.stderr)
        sb = Sandbox(be, **pool_opts)
        _CACHE[key] = sb
        return sb


@atexit.register
def _close_all() -> None:
    for sb in list(_CACHE.values()):
        with contextlib.suppress(Exception):
            sb.close()
