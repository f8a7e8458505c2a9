"""Env server: tirgym envs over HTTP, so trainers in other processes, languages or machines
can step them (`tirgym serve-env`, and `tirgym.make(id, remote=URL)` as the client).

One session holds one live env. The request and response bodies follow OpenEnv's shapes
(`ResetRequest {seed, episode_id}`, `StepRequest {action, timeout_s, request_id}`, replies
`{observation, reward, done, metadata}`); the routes are per session because one server
runs many envs at once:

    GET    /health                      {"status": "healthy"}  (no token needed)
    GET    /envs                        the env ids this server runs
    GET    /schema                      JSON schemas of action, observation and state
    POST   /sessions                    {env_id, kwargs} -> {session_id, env_id, num_tasks}
    POST   /sessions/{id}/reset         {seed, episode_id, options} -> observation
    POST   /sessions/{id}/step          {action: {text}, timeout_s, request_id} -> observation
    GET    /sessions/{id}/state         {episode_id, step_count, env_id, seed, done}
    DELETE /sessions/{id}

Sessions idle for longer than the TTL are closed by a reaper thread, so a client that
disconnects mid-episode costs nothing after it. Bad input (unknown env or kwarg, a
non-string or oversized action, a step before reset or after the end) is answered with a
4xx and `{"detail": "<one line>"}`, and so is an env raising TirgymError (it refused the
input; the session stays). An env that raises anything else or hangs is answered with a
5xx and its session is dropped; the server keeps serving every other session.
"""

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tirgym.envs.base import MAX_TEXT_CHARS
from tirgym.errors import TirgymError

log = logging.getLogger(__name__)


# ---- request bodies (OpenEnv's field names) ------------------------------------------


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env_id: str = Field(max_length=200)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    episode_id: str | None = Field(default=None, max_length=255)
    options: dict[str, Any] | None = None


class TextAction(BaseModel):
    """A tirgym action is the model's whole turn as text."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(max_length=MAX_TEXT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: TextAction
    timeout_s: float | None = Field(default=None, gt=0)
    """Shortens the server's step timeout for this step (it never lengthens it)."""
    request_id: str | None = Field(default=None, max_length=255)


class TextObservation(BaseModel):
    text: str
    """The env's reply (the task prompt after reset)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The env's info dict (system prompt, tools, reward components, success, ...)."""


class EnvState(BaseModel):
    episode_id: str | None = None
    step_count: int = 0
    env_id: str
    seed: int | None = None
    done: bool = False


# ---- sessions ------------------------------------------------------------------------


class ServeError(Exception):
    """An answer other than 200: the status code and one line for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Session:
    id: str
    env_id: str
    env: Any
    created: float
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    seed: int | None = None
    episode_id: str | None = None
    step_count: int = 0
    needs_reset: bool = True
    done: bool = False


@dataclass
class ServeSettings:
    env_ids: tuple[str, ...] | None = None
    """Env ids this server makes; None: every registered env."""
    token: str | None = None
    """Bearer token every route but /health needs; None: no auth."""
    session_ttl_s: float = 600.0
    """A session idle this long is closed."""
    max_sessions: int = 256
    step_timeout_s: float = 300.0
    """A reset or step running longer is answered 504 and its session dropped."""
    reap_every_s: float | None = None
    """Reaper period; default: a quarter of the TTL, at most 10 s."""


class SessionStore:
    """Live sessions; every env call runs on a worker pool under a timeout."""

    def __init__(self, settings: ServeSettings, make_env: Callable[..., Any]):
        self.settings = settings
        self.make_env = make_env
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=max(8, settings.max_sessions), thread_name_prefix="tirgym-serve"
        )
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- lifecycle --
    def start(self) -> None:
        period = self.settings.reap_every_s or min(10.0, self.settings.session_ttl_s / 4)
        self._reaper = threading.Thread(
            target=self._reap_loop, args=(period,), daemon=True, name="tirgym-reaper"
        )
        self._reaper.start()

    def shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            _close_env(s.env)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _reap_loop(self, period: float) -> None:
        while not self._stop.wait(period):
            self.reap()

    def reap(self, now: float | None = None) -> int:
        """Close sessions idle past the TTL (a busy session is never reaped)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [
                s
                for s in self._sessions.values()
                if now - s.last_used > self.settings.session_ttl_s and not s.lock.locked()
            ]
            for s in stale:
                del self._sessions[s.id]
        for s in stale:
            log.info("reaped idle session %s (%s)", s.id, s.env_id)
            _close_env(s.env)
        return len(stale)

    def __len__(self) -> int:
        return len(self._sessions)

    # -- sessions --
    def create(self, env_id: str, kwargs: dict[str, Any]) -> Session:
        served = self.settings.env_ids
        if served is not None and env_id not in served:
            raise ServeError(404, f"env {env_id!r} is not served here; served: {', '.join(served)}")
        if "remote" in kwargs:
            raise ServeError(400, "kwarg 'remote' is the client's, not the env's")
        with self._lock:
            if len(self._sessions) >= self.settings.max_sessions:
                raise ServeError(
                    503,
                    f"server full: {len(self._sessions)} sessions open (max "
                    f"{self.settings.max_sessions}); close sessions or retry later",
                )
        try:
            env = self._call(lambda: self.make_env(env_id, **kwargs), self.settings.step_timeout_s)
        except TirgymError as e:
            raise ServeError(400, str(e)) from None
        except ServeError:
            raise
        except Exception as e:  # the constructor refused these kwargs
            raise ServeError(400, f"{env_id} could not be made: {type(e).__name__}: {e}") from None
        now = time.monotonic()
        session = Session(uuid.uuid4().hex, env_id, env, now, now)
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise ServeError(
                404, f"unknown or expired session {session_id[:64]!r}; create a new one"
            )
        return session

    def close(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            raise ServeError(404, f"unknown or expired session {session_id[:64]!r}")
        _close_env(session.env)

    def drop(self, session: Session, env_running: Any = None) -> None:
        """Forget a session whose env failed; close the env once any running call returns."""
        with self._lock:
            self._sessions.pop(session.id, None)
        if env_running is None:
            _close_env(session.env)
        else:
            env_running.add_done_callback(lambda _f: _close_env(session.env))

    def run(self, session: Session, what: str, fn: Callable[[], Any], timeout_s: float | None):
        """Run one env call for a session: one at a time, under the step timeout."""
        if not session.lock.acquire(blocking=False):
            raise ServeError(409, "session busy: send one request at a time per session")
        try:
            limit = self.settings.step_timeout_s
            if timeout_s is not None:
                limit = min(limit, timeout_s)
            fut = self._pool.submit(fn)
            try:
                return fut.result(timeout=limit)
            except FutureTimeout:
                self.drop(session, env_running=fut)
                raise ServeError(
                    504, f"env {what} ran past {limit:g}s; the session was closed"
                ) from None
            except ServeError:
                raise
            except TirgymError as e:  # the env refused the input (bad options, ...)
                raise ServeError(400, str(e)) from None
            except Exception as e:
                log.warning("env %s failed in session %s: %r", what, session.id, e)
                self.drop(session)
                raise ServeError(
                    500, f"env {what} failed: {type(e).__name__}: {e}; the session was closed"
                ) from None
        finally:
            session.last_used = time.monotonic()
            session.lock.release()

    def _call(self, fn: Callable[[], Any], timeout_s: float) -> Any:
        fut = self._pool.submit(fn)
        try:
            return fut.result(timeout=timeout_s)
        except FutureTimeout:
            raise ServeError(504, f"making the env ran past {timeout_s:g}s") from None


def _close_env(env: Any) -> None:
    try:
        env.close()
    except Exception as e:
        log.debug("env.close failed: %s", e)


def jsonable(obj: Any) -> Any:
    """Info dicts as JSON: numpy scalars become numbers, anything else unknown its repr."""

    def default(o: Any) -> Any:
        if hasattr(o, "item") and callable(o.item):
            return o.item()
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        if hasattr(o, "tolist"):
            return o.tolist()
        return repr(o)

    return json.loads(json.dumps(obj, default=default, allow_nan=False))


def _reply(obs: str, reward: float | None, done: bool, info: dict, **meta: Any) -> dict:
    return {
        "observation": {"text": obs, "metadata": jsonable(info)},
        "reward": reward,
        "done": done,
        "metadata": meta,
    }


# ---- app -----------------------------------------------------------------------------


def make_env_app(settings: ServeSettings | None = None, make_env: Callable[..., Any] | None = None):
    """The FastAPI app. `make_env(env_id, **kwargs)` defaults to `tirgym.make`."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    class AsciiJSON(JSONResponse):
        """JSON with non-ASCII escaped: a lone surrogate in an action or reply (which UTF-8
        cannot encode) then travels as \\udXXX instead of failing the response."""

        def render(self, content: Any) -> bytes:
            return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")

    if make_env is None:
        from tirgym.registry import make as make_env
    settings = settings or ServeSettings()
    store = SessionStore(settings, make_env)

    @asynccontextmanager
    async def lifespan(_app):
        store.start()
        try:
            yield
        finally:
            store.shutdown()

    def authorized(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value, settings.token):
            raise ServeError(
                401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')"
            )

    app = FastAPI(title="tirgym env server", lifespan=lifespan, default_response_class=AsciiJSON)
    app.state.store = store
    auth = [Depends(authorized)]

    @app.exception_handler(ServeError)
    async def _serve_error(_request, exc: ServeError):
        return AsciiJSON({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        return AsciiJSON({"detail": f"{loc}: {err.get('msg')}"}, status_code=422)

    @app.get("/health")
    def health():
        return {"status": "healthy", "sessions": len(store)}

    @app.get("/envs", dependencies=auth)
    def envs():
        if settings.env_ids is not None:
            return {"envs": list(settings.env_ids)}
        from tirgym.registry import env_ids

        return {"envs": env_ids()}

    @app.get("/schema", dependencies=auth)
    def schema():
        return {
            "action": TextAction.model_json_schema(),
            "observation": TextObservation.model_json_schema(),
            "state": EnvState.model_json_schema(),
        }

    @app.post("/sessions", dependencies=auth)
    def create(req: CreateSessionRequest):
        session = store.create(req.env_id, req.kwargs)
        num_tasks = getattr(session.env.unwrapped, "num_tasks", None)
        return {"session_id": session.id, "env_id": session.env_id, "num_tasks": num_tasks}

    @app.post("/sessions/{session_id}/reset", dependencies=auth)
    def reset(session_id: str, req: ResetRequest | None = None):
        req = req or ResetRequest()
        session = store.get(session_id)
        obs, info = store.run(
            session, "reset", lambda: session.env.reset(seed=req.seed, options=req.options), None
        )
        session.seed = info.get("seed", req.seed)
        session.episode_id = req.episode_id or uuid.uuid4().hex
        session.step_count, session.needs_reset, session.done = 0, False, False
        return _reply(obs, None, False, info, episode_id=session.episode_id)

    @app.post("/sessions/{session_id}/step", dependencies=auth)
    def step(session_id: str, req: StepRequest):
        session = store.get(session_id)
        if session.needs_reset:
            raise ServeError(409, "reset the session before stepping it")
        if session.done:
            raise ServeError(409, "the episode is over; reset the session to start another")
        text = req.action.text
        obs, reward, terminated, truncated, info = store.run(
            session, "step", lambda: session.env.step(text), req.timeout_s
        )
        session.step_count += 1
        session.done = bool(terminated or truncated)
        return _reply(
            obs,
            float(reward),
            session.done,
            info,
            terminated=bool(terminated),
            truncated=bool(truncated),
            episode_id=session.episode_id,
            step_count=session.step_count,
            request_id=req.request_id,
        )

    @app.get("/sessions/{session_id}/state", dependencies=auth)
    def state(session_id: str):
        s = store.get(session_id)
        return EnvState(
            episode_id=s.episode_id,
            step_count=s.step_count,
            env_id=s.env_id,
            seed=s.seed,
            done=s.done,
        ).model_dump()

    @app.delete("/sessions/{session_id}", dependencies=auth)
    def close(session_id: str):
        store.close(session_id)
        return {"closed": session_id}

    return app


def serve_env(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Run the env server until interrupted (`tirgym serve-env`)."""
    import uvicorn

    uvicorn.run(make_env_app(settings), host=host, port=port, log_level="info")
