"""One policy update: PPO epochs x minibatches x micro-batch chunks, then clip and step.

`ppo_update` is the inner loop of CleanRL's PPO, over token rows instead of env frames:

    for epoch:                        # ppo_epochs
        for minibatch:                # a shuffled share of the rows; one optimizer step each
            for chunk:                # micro-batches that fit micro_batch_tokens
                loss = policy_loss(...); loss.backward()
            all-reduce grads, clip, optimizer.step(), scheduler.step()

Losses are normalised by the minibatch's global token and sequence counts, so the chunks'
gradients add up to the gradient of the whole minibatch on every rank. `UpdateStats`
sums the metrics of each chunk on this rank and reduces them over ranks once at the end.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from tirgym.trainer import distributed as D
from tirgym.trainer.batch import Row, collate, micro_batches
from tirgym.trainer.config import OptimConfig, TrainConfig
from tirgym.trainer.corrections import CorrectionConfig, CorrectionStats, correction_weights
from tirgym.trainer.losses import LossParams, model_logprobs, policy_loss

# policy_loss metric sums -> UpdateStats field
_LOSS_SUMS = {
    "tokens": "tokens",
    "clip_frac_sum": "clip_frac",
    "approx_kl_sum": "approx_kl",
    "ratio_sum": "ratio",
    "entropy_sum": "entropy",
    "kl_ref_sum": "kl_ref",
}


@dataclass
class UpdateStats:
    """Per-rank sums over the chunks of one update; `means` reduces them over ranks once."""

    tokens: float = 0.0
    """Loss tokens (mask 1) seen, over all epochs."""
    clip_frac: float = 0.0
    approx_kl: float = 0.0
    ratio: float = 0.0
    entropy: float = 0.0
    kl_ref: float = 0.0
    gap: float = 0.0
    """|trainer - sampler| logprob, summed over the first epoch's loss tokens."""
    gap_tokens: float = 0.0
    update_tokens: float = 0.0
    """Non-padding tokens through forward and backward."""
    loss: float = 0.0
    """This rank's share of each minibatch loss (shares sum to the minibatch loss)."""
    gap_max: float = 0.0
    """Reduced with max, not sum."""
    is_tokens: float = 0.0
    """Loss tokens of the first epoch, where the off-policy corrections are counted."""
    is_ratio: float = 0.0
    """Sum of pi_old / pi_sampler over those tokens."""
    is_masked: float = 0.0
    is_clipped: float = 0.0
    is_ratio_max: float = 0.0
    """Reduced with max, not sum."""
    grad_norm: float = 0.0
    """Summed over optimizer steps; the same on every rank."""
    opt_steps: float = 0.0
    """The same on every rank."""

    def add_chunk(self, loss: float, metrics: dict[str, torch.Tensor], update_tokens: float):
        self.loss += loss
        self.update_tokens += update_tokens
        for key, name in _LOSS_SUMS.items():
            if key in metrics:
                setattr(self, name, getattr(self, name) + float(metrics[key]))

    def add_gap(self, gap: torch.Tensor) -> None:
        if gap.numel():
            self.gap += float(gap.sum())
            self.gap_max = max(self.gap_max, float(gap.max()))
            self.gap_tokens += float(gap.numel())

    def add_correction(self, c: CorrectionStats) -> None:
        self.is_tokens += c.tokens
        self.is_ratio += c.ratio_sum
        self.is_masked += c.masked
        self.is_clipped += c.clipped
        self.is_ratio_max = max(self.is_ratio_max, c.ratio_max)

    def means(self, dist: D.DistInfo, device: torch.device, kl: bool) -> dict[str, float]:
        """The logged update metrics, over all ranks (one sum all-reduce, two max)."""
        same_everywhere = ("gap_max", "is_ratio_max", "grad_norm", "opt_steps")
        keys = [f.name for f in fields(self) if f.name not in same_everywhere]
        sums = D.all_reduce_sum([getattr(self, k) for k in keys], dist, device)
        tot = dict(zip(keys, sums, strict=True))
        n = max(tot["tokens"], 1.0)
        steps = max(self.opt_steps, 1.0)
        out = {
            "loss": tot["loss"] / steps,
            "grad_norm": self.grad_norm / steps,
            "clip_frac": tot["clip_frac"] / n,
            "approx_kl": tot["approx_kl"] / n,
            "ratio_mean": tot["ratio"] / n,
            "token_entropy": tot["entropy"] / n,
            "logprob_gap_mean": tot["gap"] / max(tot["gap_tokens"], 1.0),
            "logprob_gap_max": D.all_reduce_max_float(self.gap_max, dist, device),
            "is_ratio_mean": tot["is_ratio"] / max(tot["is_tokens"], 1.0),
            "is_ratio_max": D.all_reduce_max_float(self.is_ratio_max, dist, device),
            "is_masked_frac": tot["is_masked"] / max(tot["is_tokens"], 1.0),
            "is_clipped_frac": tot["is_clipped"] / max(tot["is_tokens"], 1.0),
            "trained_tokens": tot["tokens"],
            "update_tokens": tot["update_tokens"],
            "optimizer_steps": self.opt_steps,
        }
        if kl:
            out["kl_ref"] = tot["kl_ref"] / n
        return out


@dataclass
class Updater:
    """What an update needs besides the rows: the model being trained and its optimizer,
    the update/loss settings, and how this process takes part in data parallelism."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_params: LossParams
    pad_id: int
    device: torch.device
    dist: D.DistInfo
    micro_batch_tokens: int
    logprob_chunk: int
    grad_clip: float | None
    autocast: Callable[[], contextlib.AbstractContextManager]
    fsdp: bool = False
    correction: CorrectionConfig | None = None
    """Off-policy corrections of the sampler -> trainer gap (trainer/corrections.py)."""

    @classmethod
    def of(cls, trainer: Any) -> Updater:
        """The update parts of a `Trainer` as they are now (its model, optimizer, config)."""
        cfg = trainer.cfg
        return cls(
            model=trainer.train_model,
            optimizer=trainer.optimizer,
            scheduler=trainer.scheduler,
            loss_params=trainer.loss_params,
            pad_id=trainer.pad_id,
            device=trainer.device,
            dist=trainer.dist,
            micro_batch_tokens=cfg.update.micro_batch_tokens,
            logprob_chunk=cfg.update.logprob_chunk,
            grad_clip=cfg.optim.grad_clip,
            autocast=lambda: autocast(cfg, trainer.device),
            fsdp=trainer.fsdp,
            correction=cfg.correction,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logprobs and entropies of the loss positions, in fp32."""
        with self.autocast():
            lp, ent = model_logprobs(
                self.model,
                batch["input_ids"],
                batch["attention_mask"],
                chunk=self.logprob_chunk,
                with_entropy=True,
                only=batch["mask"],
            )
        return lp.float(), ent.float()

    @torch.no_grad()
    def recompute(self, rows: list[Row], model: torch.nn.Module, attr: str) -> None:
        """Fill each row's `attr` (old_lp or ref_lp) with `model`'s logprobs."""
        for idx in micro_batches([len(r) for r in rows], self.micro_batch_tokens):
            b = collate([rows[i] for i in idx], self.pad_id, self.device)
            with self.autocast():
                lp, _ = model_logprobs(
                    model,
                    b["input_ids"],
                    b["attention_mask"],
                    chunk=self.logprob_chunk,
                    only=b["mask"],
                )
            lp = lp.float().cpu().numpy()
            for j, i in enumerate(idx):
                setattr(rows[i], attr, lp[j, : len(rows[i])])

    def clip_and_step(self) -> float:
        """Sum gradients over ranks (FSDP2 already did), clip, step; returns the grad norm."""
        if not self.fsdp:
            D.all_reduce_grads(self.model, self.dist)
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.grad_clip if self.grad_clip is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2
            norm = norm.full_tensor()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)


def ppo_update(
    up: Updater, rows: list[Row], *, epochs: int, minibatches: int, rng: np.random.Generator
) -> UpdateStats:
    """Run the update over `rows` (old_lp/ref_lp already filled where needed)."""
    stats = UpdateStats()
    up.model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(rows)) if minibatches > 1 else np.arange(len(rows))
        for mb in np.array_split(order, minibatches):
            mb_rows = [rows[i] for i in mb]
            tokens = float(sum(r.mask.sum() for r in mb_rows))
            seqs = float(sum(r.mask.sum() > 0 for r in mb_rows))
            # the loss divides by the whole minibatch's counts, over all ranks
            n_tok, n_seq = D.all_reduce_sum([tokens, seqs], up.dist, up.device)
            if n_tok == 0:
                continue
            chunks = micro_batches([len(r) for r in mb_rows], up.micro_batch_tokens)
            # FSDP2: every rank must run the same number of forwards (padding with empty ones)
            n_chunks = D.all_reduce_max(len(chunks), up.dist, up.device) if up.fsdp else len(chunks)
            for c in range(n_chunks):
                if c >= len(chunks):
                    lp, _ = up.forward(collate(mb_rows[:1] or rows[:1], up.pad_id, up.device))
                    (lp.sum() * 0.0).backward()
                    continue
                b = collate([mb_rows[i] for i in chunks[c]], up.pad_id, up.device)
                lp, ent = up.forward(b)
                old = b["old_lp"] if "old_lp" in b else lp.detach()
                weights, corr = correction_weights(old, b["sampler_lp"], b["mask"], up.correction)
                loss, m = policy_loss(
                    lp,
                    old,
                    b["adv"],
                    b["mask"],
                    up.loss_params,
                    ref_logprobs=b.get("ref_lp"),
                    entropy=ent,
                    num_tokens=n_tok,
                    num_seqs=n_seq,
                    weights=weights,
                )
                loss.backward()
                stats.add_chunk(float(loss.detach()), m, float(b["attention_mask"].sum()))
                if epoch == 0:  # the trainer (before any update) vs the sampler's logprobs
                    stats.add_gap((old - b["sampler_lp"]).abs()[b["mask"].bool()])
                    stats.add_correction(corr)
            stats.grad_norm += up.clip_and_step()
            stats.opt_steps += 1
    return stats


def autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPU when update.precision is bf16 (master weights stay fp32)."""
    if cfg.update.precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig):
    """AdamW over the trainable parameters and its LR schedule (counted in optimizer steps)."""
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
    )
    total = max(1, cfg.steps * cfg.update.ppo_epochs * cfg.update.minibatches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lr_lambda(o, total))
    return optimizer, scheduler


def apply_optim_config(optimizer, scheduler, cfg: TrainConfig) -> None:
    """Make the config's optimizer settings current after a checkpoint restored older ones
    (a resume with a changed lr, betas, eps or weight decay; the schedule's function is
    never saved, so `make_optimizer` already built it from the new config)."""
    o = cfg.optim
    scheduler.base_lrs = [o.lr] * len(optimizer.param_groups)
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for g in optimizer.param_groups:
        g.update(lr=o.lr * factor, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def lr_lambda(o: OptimConfig, total_steps: int):
    """Linear warmup, then constant / linear / cosine decay to min_lr_ratio."""

    def f(i: int) -> float:
        if o.warmup_steps and i < o.warmup_steps:
            return (i + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        span = max(1, total_steps - o.warmup_steps)
        frac = min(1.0, (i - o.warmup_steps) / span)
        if o.schedule == "linear":
            decay = 1.0 - frac
        else:
            decay = 0.5 * (1.0 + math.cos(math.pi * frac))
        return o.min_lr_ratio + (1.0 - o.min_lr_ratio) * decay

    return f
