"""Model and tokenizer for training: resolve `tiny`, load fp32 master weights, LoRA, devices."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch

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
    """`tiny` builds a random Qwen2 model + tokenizer into the run dir (once); else the path/hub id."""
    if cfg.model != "tiny":
        return cfg.model
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
