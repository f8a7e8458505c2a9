"""Model and tokenizer for training: resolve `tiny`, load fp32 master weights, LoRA, devices."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch

from tirgym.agents.attention import use_gqa_sdpa
from tirgym.errors import TirgymError

log = logging.getLogger(__name__)


def pick_device(spec: str, local_rank: int = 0) -> torch.device:
    """auto -> cuda:<local rank> when CUDA is available, else cpu."""
    if spec == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise TirgymError(f"backend.device={spec!r} but CUDA is not available; use cpu or auto.")
    if spec == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(spec)


def resolve_model_path(cfg, run_dir: Path) -> str:
    """`tiny` builds a random Qwen2 model + tokenizer into the run dir (once); a `.gguf` file
    or `smollm2` becomes a converted dir in the cache; else the local path or hub id."""
    if cfg.model != "tiny":
        from tirgym.agents.backends import resolve_model

        return resolve_model(cfg.model)
    path = Path(run_dir) / "tiny_model"
    if not (path / "config.json").exists():
        from tirgym.agents.models import build_tiny_model

        build_tiny_model(path, seed=cfg.seed, **cfg.tiny.kwargs())
    return str(path)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise TirgymError(f"Cannot load a tokenizer from {path!r}: {e}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, device: torch.device, gradient_checkpointing: bool = False):
    """fp32 master weights (bf16 runs use autocast); dropout stays off for RL."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except OSError as e:
        raise TirgymError(f"Cannot load a model from {path!r}: {e}") from None
    use_gqa_sdpa(model)
    model.to(device)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def apply_lora(model, lora_cfg, adapter_path: str | None = None):
    """Wrap with peft LoRA adapters (trainable), or reload saved ones on resume."""
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError:
        raise TirgymError(
            "lora is configured but peft is not installed: pip install peft"
        ) from None
    if adapter_path is not None:
        return PeftModel.from_pretrained(model, adapter_path, is_trainable=True)
    pc = LoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=lora_cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, pc)


def load_start_model(cfg, ckpt: Path | None, base_path: str, device: torch.device):
    """The weights a run starts from: the checkpoint's (LoRA runs: the model under the
    adapter, i.e. the SFT weights or the base), else the base model."""
    gc = cfg.update.gradient_checkpointing
    if ckpt is not None and cfg.lora is None:
        return load_model(str(ckpt / "model"), device, gc)
    if ckpt is not None and cfg.sft is not None:
        return load_model(str(Path(cfg.run_dir()) / "sft_model"), device, gc)
    return load_model(base_path, device, gc)


def reference_model(cfg, ckpt: Path | None, base_path: str, model, device: torch.device):
    """The frozen KL reference (the start model: SFT weights or the base), or None when
    there is no KL term or LoRA is on (then the base under the adapter is the reference)."""
    if not (cfg.loss.kl_beta > 0 and cfg.lora is None):
        return None
    if ckpt is None:
        return frozen_copy(model)
    ref_path = Path(cfg.run_dir()) / "sft_model" if cfg.sft is not None else Path(base_path)
    ref = load_model(str(ref_path), device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def frozen_copy(model) -> Any:
    """A no-grad copy for the KL reference policy."""
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref.eval()


def count_params(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def param_counts(model) -> str:
    total, trainable = count_params(model)
    return f"{total / 1e6:.2f}M params, {trainable / 1e6:.2f}M trainable"


def inference_weights(named: dict[str, torch.Tensor], model) -> list[tuple[str, torch.Tensor]]:
    """The policy's weights under the plain HF names an inference engine loads.

    `named` is a state dict (or dict of named_parameters) of `model`. Without LoRA it is
    returned as is. With peft LoRA, each adapted Linear's weight comes back merged
    (W + scaling * B @ A for every active adapter), computed on the side so the
    trainer's module is left untouched (merge/unmerge in place would drift in fp32),
    and peft's prefixes and adapter tensors are dropped.
    """
    try:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return list(named.items())
    if not isinstance(model, PeftModel):
        return list(named.items())
    out = dict(named)
    for mod_name, mod in model.named_modules():
        if not isinstance(mod, LoraLayer):
            continue
        key = f"{mod_name}.base_layer.weight"
        if key not in out:
            continue
        w = out[key].detach()
        for a in mod.active_adapters:
            if a not in mod.lora_A:
                continue
            if getattr(mod, "use_dora", {}).get(a, False):
                raise TirgymError("vllm backend with DoRA adapters is not supported; use lora.")
            lo_a = out[f"{mod_name}.lora_A.{a}.weight"].to(w.device, torch.float32)
            lo_b = out[f"{mod_name}.lora_B.{a}.weight"].to(w.device, torch.float32)
            delta = (lo_b @ lo_a) * float(mod.scaling[a])
            if getattr(mod, "fan_in_fan_out", False):
                delta = delta.T
            w = (w.float() + delta).to(w.dtype)
        out[key] = w
    result = []
    for name, t in out.items():
        if ".lora_" in name or ".original_module." in name:
            if ".lora_A." in name or ".lora_B." in name or ".original_module." in name:
                continue
            raise TirgymError(
                f"cannot merge adapter tensor {name!r} for the vllm backend; "
                "only LoRA on Linear layers is supported."
            )
        name = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        if ".modules_to_save." in name:
            head, _, rest = name.partition(".modules_to_save.")
            name = f"{head}.{rest.partition('.')[2]}"
        result.append((name, t.detach()))
    return result
