"""RemoteEnv: a gymnasium.Env whose env runs on a `tirgym serve-env` server.

`tirgym.make("tirgym/Sokoban-v0", remote="http://host:8700")` returns one; it has the
local env's spaces, reset/step signature and info dicts, so the rollout engine, eval and
the trainer use it unchanged. Each RemoteEnv holds one server session, closed by `close()`
(or reaped by the server when the client goes away).

An unseeded reset draws the task seed from the client's own `np_random`, so a seeded
client reproduces its episodes whatever server it talks to.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, ClassVar

import gymnasium as gym

from tirgym.envs.base import text_space
from tirgym.errors import TirgymError

TOKEN_ENV_VAR = "TIRGYM_ENV_TOKEN"
"""Bearer token for the server when none is passed (the server's --token)."""


class RemoteEnv(gym.Env[str, str]):
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        base_url: str,
        env_id: str,
        kwargs: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout_s: float = 330.0,
        render_mode: str | None = None,
    ):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.env_id = env_id
        self.render_mode = render_mode
        self.observation_space = text_space()
        self.action_space = text_space()
        token = token if token is not None else os.environ.get(TOKEN_ENV_VAR)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self.session_id: str | None = None
        self.transcript: list[tuple[str, str]] = []
        created = self._call("POST", "/sessions", {"env_id": env_id, "kwargs": dict(kwargs or {})})
        self.session_id = created["session_id"]
        self.num_tasks: int | None = created.get("num_tasks")
        """The env's dataset row count (None for generated tasks), as a local env has it."""

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx

        # ensure_ascii: a lone surrogate in an action travels as \udXXX (UTF-8 cannot hold it)
        content = None if body is None else json.dumps(body, ensure_ascii=True).encode()
        try:
            r = self._http.request(
                method, path, content=content, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as e:
            raise TirgymError(
                f"env server {self.base_url} unreachable: {type(e).__name__}: {e}"
            ) from None
        if r.status_code != 200:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text[:200]
            raise TirgymError(
                f"env server {self.base_url} ({self.env_id}): {r.status_code} {detail}"
            )
        return r.json()

    def _path(self, verb: str) -> str:
        if self.session_id is None:
            raise TirgymError(f"RemoteEnv for {self.env_id} is closed")
        return f"/sessions/{self.session_id}/{verb}"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        out = self._call("POST", self._path("reset"), {"seed": int(seed), "options": options})
        obs = out["observation"]
        self.transcript = [("user", obs["text"])]
        return obs["text"], obs["metadata"]

    def step(self, action: str):
        if not isinstance(action, str):
            raise TypeError(f"RemoteEnv actions are strings, got {type(action).__name__}")
        out = self._call("POST", self._path("step"), {"action": {"text": action}})
        obs, meta = out["observation"], out["metadata"]
        info = obs["metadata"]
        self.transcript += [("assistant", action), (info.get("role", "user"), obs["text"])]
        return obs["text"], float(out["reward"]), meta["terminated"], meta["truncated"], info

    def render(self) -> str | None:
        return "\n\n".join(f"[{role}]\n{content}" for role, content in self.transcript)

    def close(self) -> None:
        if self.session_id is not None:
            # a server that is gone reaps the session itself
            with contextlib.suppress(Exception):
                self._http.delete(f"/sessions/{self.session_id}")
            self.session_id = None
        self._http.close()
        super().close()
