"""Test fixture: a minimal OpenAI-compatible server over any token-level `Policy`.

Serves /v1/models, /v1/completions (prompt as text or token ids; `logprobs` and vLLM's
`return_tokens_as_token_ids`) and /v1/chat/completions. It exists so the openai backend
is tested against a real HTTP server (and against servers that return no token ids).
Production serving is vLLM's `vllm serve`; the token-capturing server is tirgym.agents.proxy.
"""

import threading
import time
import uuid
from typing import Any

from tirgym.agents.types import SamplingParams


def make_app(policy: Any, model_name: str = "tiny", *, token_ids: bool = True):
    """`token_ids=False` imitates a server that returns no token ids (plain token strings)."""
    from fastapi import FastAPI
    from pydantic import BaseModel, ConfigDict

    lock = threading.Lock()
    tok = policy.tokenizer
    app = FastAPI()

    class Common(BaseModel):
        model_config = ConfigDict(extra="allow")
        model: str = model_name
        max_tokens: int | None = 256
        max_completion_tokens: int | None = None
        """OpenAI's newer name for max_tokens (wins when both are given)."""
        temperature: float = 1.0
        top_p: float = 1.0
        stop: str | list[str] | None = None
        seed: int | None = None
        n: int = 1

        def params(self) -> SamplingParams:
            stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
            return SamplingParams(
                temperature=self.temperature,
                top_p=self.top_p,
                max_new_tokens=self.max_completion_tokens or self.max_tokens or 256,
                stop=tuple(stop),
                seed=self.seed,
                n=self.n,
            )

    class CompletionRequest(Common):
        prompt: str | list[int] | list[str] | list[list[int]]
        logprobs: int | None = None
        return_tokens_as_token_ids: bool = False

    class ChatRequest(Common):
        messages: list[dict[str, Any]]
        logprobs: bool = False

    def run(prompts: list[list[int]], params: SamplingParams):
        with lock:
            return policy.generate(prompts, params)

    def usage(prompts, comps):
        p = sum(len(x) for x in prompts)
        c = sum(len(x.token_ids) for x in comps)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    @app.get("/v1/models")
    def models():
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "owned_by": "tirgym"}],
        }

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        raw = req.prompt
        if isinstance(raw, str):
            prompts = [tok.encode(raw, add_special_tokens=False)]
        elif raw and isinstance(raw[0], int):
            prompts = [list(raw)]
        elif raw and isinstance(raw[0], str):
            prompts = [tok.encode(p, add_special_tokens=False) for p in raw]
        else:
            prompts = [list(p) for p in raw]
        comps = run(prompts, req.params())
        choices = []
        for i, c in enumerate(comps):
            lp = None
            if req.logprobs is not None:
                if token_ids and req.return_tokens_as_token_ids:
                    toks = [f"token_id:{t}" for t in c.token_ids]
                else:
                    toks = tok.convert_ids_to_tokens(c.token_ids)
                lp = {
                    "tokens": toks,
                    "token_logprobs": c.logprobs,
                    "top_logprobs": None,
                    "text_offset": None,
                }
            choices.append(
                {
                    "index": i,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "stop_reason": c.stop_str,
                    "logprobs": lp,
                }
            )
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": choices,
            "usage": usage(prompts, comps),
        }

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        text = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
        prompts = [tok.encode(text, add_special_tokens=False)]
        comps = run(prompts, req.params())
        end = tok.eos_token or ""
        choices = []
        for i, c in enumerate(comps):
            content = c.text[: -len(end)] if end and c.text.endswith(end) else c.text
            lp = None
            if req.logprobs:
                toks = tok.convert_ids_to_tokens(c.token_ids)
                lp = {
                    "content": [
                        {"token": t, "logprob": v, "top_logprobs": []}
                        for t, v in zip(toks, c.logprobs, strict=True)
                    ]
                }
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": c.finish_reason,
                    "logprobs": lp,
                }
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": choices,
            "usage": usage(prompts, comps),
        }

    return app
