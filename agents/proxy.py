"""Token-capturing proxy: train an agent program you cannot change (any framework that
talks to the OpenAI chat-completions API) by pointing its `base_url` at this server.

`tirgym proxy --policy hf:PATH` serves /v1/chat/completions (tools included) from a tirgym
policy and records, per session, every call's prompt token ids, sampled ids and sampler
logprobs. `Capture.episodes(session)` turns a session into trainable Episodes: one flat
token sequence, loss mask 1 exactly on sampled tokens, logprobs beside them.

Token exactness by construction: a call whose messages extend the previous call's messages
plus the reply the proxy gave (the usual agent loop) is prompted with the previous call's
tokens, its sampled ids as sampled, and the chat-template delta of the new messages (as
the rollout engine does), so what the trainer sees is exactly what the model saw. A call
that does not continue the previous one (the agent edited, dropped or summarised history)
is prompted with a fresh rendering and starts a new segment: the session then yields one
Episode per segment, each marked (`info["segment"]`, `info["segments"]`,
`info["split_reason"]`), never one sequence with a mask that lies.

Sessions: the path prefix `/s/{session}/v1` (set `base_url=f"{proxy}/s/{session}/v1"`), or
the `X-Session-Id` header; calls without either go to session "default".
"""

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tirgym.agents.chat import ChatRenderer
from tirgym.agents.rollout import _end_strings
from tirgym.agents.types import SamplingParams
from tirgym.episode import Episode, Span, Turn
from tirgym.errors import TirgymError
from tirgym.protocol import TurnFormat, parse_turn


@dataclass
class CallRecord:
    """One chat-completions call as the model saw it."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str
    continued: bool
    """The prompt extended the previous call's tokens (same segment)."""
    segment: int


@dataclass
class _Segment:
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    split_reason: str = ""

    def add(
        self, ids: list[int], role: str, logprobs: list[float] | None = None
    ) -> tuple[int, int]:
        a = len(self.token_ids)
        self.token_ids += ids
        self.loss_mask += [1 if logprobs is not None else 0] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(ids)
        if ids:
            self.spans.append(Span(a, len(self.token_ids), role))
        return a, len(self.token_ids)


def _norm_message(m: dict[str, Any]) -> tuple:
    """What decides whether a message is the same one again (client libraries add fields,
    e.g. refusal=None, and re-serialise tool-call arguments)."""
    calls = []
    for c in m.get("tool_calls") or []:
        fn = c.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):
            with contextlib.suppress(ValueError):  # not JSON: compare the string itself
                args = json.loads(args)
        calls.append((fn.get("name"), json.dumps(args, sort_keys=True)))
    content = m.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return (m.get("role"), content or "", tuple(calls))


class CaptureSession:
    def __init__(self, session_id: str):
        self.id = session_id
        self.calls: list[CallRecord] = []
        self.segments: list[_Segment] = []
        self.lock = threading.Lock()
        self._expect: list[tuple] = []
        """Normalised messages a continuing call starts with (the last call's + its reply)."""
        self._tools_key = ""
        self._sampled_end = ""
        self.last_used = time.monotonic()


class Capture:
    """Every session's calls, and the Episodes built from them."""

    def __init__(self, policy: Any, session_ttl_s: float = 3600.0):
        """session_ttl_s: a session no call has touched for this long (its agent never
        finished it) is dropped, so a long-running proxy does not grow without bound."""
        if getattr(policy, "tokenizer", None) is None or not hasattr(policy, "generate"):
            raise TirgymError("the proxy needs a token-level policy (hf:PATH or vllm:PATH).")
        self.policy = policy
        self.tokenizer = policy.tokenizer
        self.end_strings = _end_strings(self.tokenizer)
        self.sessions: dict[str, CaptureSession] = {}
        self._renderers: dict[str, ChatRenderer] = {}
        self._lock = threading.Lock()
        self._gen_lock = threading.Lock()
        self.session_ttl_s = session_ttl_s

    def session(self, session_id: str) -> CaptureSession:
        now = time.monotonic()
        with self._lock:
            stale = [
                k
                for k, v in self.sessions.items()
                if now - v.last_used > self.session_ttl_s and not v.lock.locked()
            ]
            for k in stale:
                del self.sessions[k]
            if session_id not in self.sessions:
                self.sessions[session_id] = CaptureSession(session_id)
            s = self.sessions[session_id]
            s.last_used = now
            return s

    def pop(self, session_id: str) -> CaptureSession | None:
        with self._lock:
            return self.sessions.pop(session_id, None)

    def _renderer(self, tools: list[dict] | None) -> ChatRenderer:
        key = json.dumps(tools, sort_keys=True)
        if key not in self._renderers:
            self._renderers[key] = ChatRenderer(self.tokenizer, tools)
        return self._renderers[key]

    # ---- one call ----------------------------------------------------------------------
    def complete(
        self,
        session_id: str,
        messages: list[dict[str, Any]],
        tools: list[dict] | None,
        params: SamplingParams,
    ) -> dict[str, Any]:
        """Sample one assistant message for `messages`, record it, return the OpenAI message
        (content, tool_calls), finish reason and token counts."""
        if not messages:
            raise TirgymError("messages must not be empty")
        s = self.session(session_id)
        fn_tools = [t.get("function", t) for t in tools] if tools else None
        renderer = self._renderer(fn_tools)
        tools_key = json.dumps(fn_tools, sort_keys=True)
        with s.lock:
            norm = [_norm_message(m) for m in messages]
            n = len(s._expect)
            continues = (
                bool(s.segments)
                and tools_key == s._tools_key
                and len(norm) > n
                and norm[:n] == s._expect
            )
            if continues:
                seg = s.segments[-1]
                new = messages[n:]
                delta = renderer.reply_ids([], "", s._sampled_end, new)
                seg.add(delta, new[0].get("role", "user"))
                seg.messages += new
            else:
                seg = _Segment(messages=list(messages))
                if s.segments:
                    seg.split_reason = (
                        "tools changed" if tools_key != s._tools_key else "history rewritten"
                    )
                ids, spans = renderer.prompt(messages)
                seg.token_ids = ids
                seg.loss_mask = [0] * len(ids)
                seg.logprobs = [0.0] * len(ids)
                seg.spans = [Span(a, b, role) for a, b, role in spans]
                s.segments.append(seg)
            prompt = list(seg.token_ids)
            with self._gen_lock:
                comp = self.policy.generate([prompt], params.replace(n=1))[0]
            ids, lps = list(comp.token_ids), list(comp.logprobs)
            if len(lps) != len(ids):
                raise TirgymError("the policy returned no logprobs; the proxy cannot capture it")
            start, end = seg.add(ids, "assistant", lps)
            content, sampled_end = comp.text, ""
            for e in self.end_strings:
                if content.endswith(e):
                    content, sampled_end = content[: -len(e)], e
                    break
            message = self._message(content, fn_tools)
            parsed = parse_turn(content, TurnFormat())
            seg.turns.append(
                Turn(
                    start=start,
                    end=end,
                    text=comp.text,
                    action=parsed.action,
                    tool_calls=len(message.get("tool_calls") or []),
                    finish_reason=comp.finish_reason,
                    format_errors=list(parsed.errors),
                )
            )
            seg.messages.append(message)
            s.calls.append(
                CallRecord(
                    prompt, ids, lps, comp.text, comp.finish_reason, continues, len(s.segments) - 1
                )
            )
            s._expect = norm + [_norm_message(message)]
            s._tools_key = tools_key
            s._sampled_end = sampled_end
            s.last_used = time.monotonic()
        finish = comp.finish_reason
        if message.get("tool_calls"):
            finish = "tool_calls"
        return {
            "message": message,
            "finish_reason": finish,
            "prompt_tokens": len(prompt),
            "completion_tokens": len(ids),
            "logprobs": lps,
            "token_ids": ids,
        }

    def _message(self, content: str, tools: list[dict] | None) -> dict[str, Any]:
        """The assistant message: tool calls (tirgym's <tool_call> JSON) become OpenAI
        tool_calls when the request offered tools."""
        if tools:
            names = tuple(t["name"] for t in tools if "name" in t)
            parsed = parse_turn(content, TurnFormat(tools=names, allow_answer=True))
            if parsed.tool_calls:
                return {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": [
                        {
                            "id": f"call_{uuid.uuid4().hex[:24]}",
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in parsed.tool_calls
                    ],
                }
        return {"role": "assistant", "content": content}

    # ---- episodes ----------------------------------------------------------------------
    def episodes(
        self,
        session_id: str,
        *,
        env_id: str = "proxy",
        seed: int = 0,
        reward: float = 0.0,
        success: bool = False,
        group_id: str = "",
    ) -> list[Episode]:
        """The session's Episodes, one per segment, each carrying the episode's outcome
        reward (the caller knows it: the env scored the agent, not the proxy)."""
        s = self.sessions.get(session_id)
        if s is None:
            raise TirgymError(f"no proxy session {session_id!r}")
        out = []
        with s.lock:
            for k, seg in enumerate(s.segments):
                ep = Episode(
                    env_id=env_id,
                    seed=seed,
                    group_id=group_id or f"{env_id}#{seed}",
                    token_ids=list(seg.token_ids),
                    loss_mask=list(seg.loss_mask),
                    logprobs=list(seg.logprobs),
                    spans=list(seg.spans),
                    turns=[Turn(**vars(t)) for t in seg.turns],
                    outcome_reward=float(reward),
                    success=bool(success),
                    terminated=True,
                    stop_reason="env_done",
                    trainable=True,
                    messages=[dict(m) for m in seg.messages],
                    info={"proxy_session": s.id, "segment": k, "segments": len(s.segments)},
                )
                if seg.split_reason:
                    ep.info["split_reason"] = seg.split_reason
                out.append(ep)
        return out


# ---- the OpenAI server ----------------------------------------------------------------


def make_proxy_app(
    policy: Any,
    model_name: str = "tirgym",
    *,
    out: str | None = None,
    session_ttl_s: float = 3600.0,
):
    """FastAPI app: /v1/models, /v1/chat/completions (also under /s/{session}/v1), and
    /tirgym/sessions/{session}[/finish] to read a session's calls and close it as Episodes
    (appended to the JSONL file `out` when given)."""
    from fastapi import FastAPI, Header, HTTPException
    from pydantic import BaseModel, ConfigDict, Field

    capture = Capture(policy, session_ttl_s=session_ttl_s)
    app = FastAPI(title="tirgym proxy")
    app.state.capture = capture

    class ChatRequest(BaseModel):
        model_config = ConfigDict(extra="allow")
        model: str = model_name
        messages: list[dict[str, Any]] = Field(min_length=1)
        tools: list[dict[str, Any]] | None = None
        max_tokens: int | None = Field(default=None, ge=1)
        max_completion_tokens: int | None = Field(default=None, ge=1)
        temperature: float = Field(default=1.0, ge=0)
        top_p: float = Field(default=1.0, gt=0, le=1)
        stop: str | list[str] | None = None
        seed: int | None = None
        n: int = Field(default=1, ge=1, le=1)
        logprobs: bool = False

    class FinishRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        reward: float = 0.0
        success: bool = False
        env_id: str = "proxy"
        seed: int = 0

    def chat(req: ChatRequest, session: str) -> dict[str, Any]:
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        params = SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            max_new_tokens=req.max_completion_tokens or req.max_tokens or 256,
            stop=tuple(stop),
            seed=req.seed,
        )
        try:
            r = capture.complete(session, req.messages, req.tools, params)
        except TirgymError as e:
            raise HTTPException(400, str(e)) from None
        lp = None
        if req.logprobs:
            toks = capture.tokenizer.convert_ids_to_tokens(r["token_ids"])
            lp = {
                "content": [
                    {"token": t, "logprob": v, "top_logprobs": []}
                    for t, v in zip(toks, r["logprobs"], strict=True)
                ]
            }
        usage = {
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "total_tokens": r["prompt_tokens"] + r["completion_tokens"],
        }
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": r["message"],
                    "finish_reason": r["finish_reason"],
                    "logprobs": lp,
                }
            ],
            "usage": usage,
        }

    @app.get("/v1/models")
    @app.get("/s/{session}/v1/models")
    def models(session: str = "default"):
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "owned_by": "tirgym"}],
        }

    @app.post("/v1/chat/completions")
    def chat_default(req: ChatRequest, x_session_id: str | None = Header(default=None)):
        return chat(req, x_session_id or "default")

    @app.post("/s/{session}/v1/chat/completions")
    def chat_session(session: str, req: ChatRequest):
        return chat(req, session)

    @app.get("/tirgym/sessions/{session}")
    def show(session: str):
        s = capture.sessions.get(session)
        if s is None:
            raise HTTPException(404, f"no proxy session {session!r}")
        return {
            "session": session,
            "calls": [vars(c) for c in s.calls],
            "segments": len(s.segments),
        }

    @app.post("/tirgym/sessions/{session}/finish")
    def finish(session: str, req: FinishRequest):
        try:
            eps = capture.episodes(session, **req.model_dump())
        except TirgymError as e:
            raise HTTPException(404, str(e)) from None
        capture.pop(session)
        if out:
            from tirgym.episode import append_jsonl

            append_jsonl(out, eps)
        return {"episodes": [ep.to_dict() for ep in eps]}

    return app


def serve_proxy(
    policy_spec: str, host: str, port: int, out: str | None = None, session_ttl_s: float = 3600.0
) -> None:
    """Run the proxy until interrupted (`tirgym proxy`)."""
    import uvicorn

    from tirgym.agents.backends import load_policy

    policy = load_policy(policy_spec)
    app = make_proxy_app(policy, out=out, session_ttl_s=session_ttl_s)
    uvicorn.run(app, host=host, port=port, log_level="info")
