"""The RL loop: rollout -> filters -> advantages -> PPO/GRPO update -> push -> log -> checkpoint.

Read `Trainer.step` top to bottom for one training step. Everything random in a step is
seeded from (config seed, step), and the task sampler's state is one counter, so a run
resumed from a checkpoint replays exactly what the uninterrupted run would have done.

    from tirgym.trainer import train, load_config
    run_dir = train(load_config("configs/quickstart.yaml", ["steps=10"]))
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tirgym.episode import Episode, append_jsonl
from tirgym.errors import TirgymError
from tirgym.trainer import distributed as D
from tirgym.trainer.batch import Row, collate, make_rows, micro_batches
from tirgym.trainer.checkpoint import (
    latest_checkpoint,
    load_training_state,
    save_checkpoint,
    save_model,
)
from tirgym.trainer.config import (
    TrainConfig,
    advantage_config,
    build_config,
    check_envs,
    dump_config,
    load_config,
)
from tirgym.trainer.heldout import held_out_success
from tirgym.trainer.losses import LossParams, model_logprobs, policy_loss
from tirgym.trainer.metrics import MetricsLogger, episode_metrics, plot_learning_curves
from tirgym.trainer.model import (
    apply_lora,
    count_params,
    frozen_copy,
    load_model,
    load_tokenizer,
    pick_device,
    resolve_model_path,
)
from tirgym.trainer.tasks import TaskSampler, expand_mix

log = logging.getLogger(__name__)


class Callback:
    """Hooks for custom rewards, logging and eval; override what you need.

    on_episodes may change episodes in place (e.g. add a custom reward to
    `outcome_reward`) before advantages are computed, or return a new list.
    """

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_episodes(
        self, trainer: Trainer, step: int, episodes: list[Episode]
    ) -> list[Episode] | None: ...
    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None: ...
    def on_eval(self, trainer: Trainer, step: int, results: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


def _step_seed(seed: int, step: int, salt: int = 0) -> int:
    return int(np.random.default_rng([seed, step, salt]).integers(0, 2**31 - 1))


def _as_config(config: TrainConfig | dict | str | Path, overrides: list[str] | None) -> TrainConfig:
    if isinstance(config, TrainConfig):
        if overrides:
            from tirgym.trainer.config import apply_overrides

            return build_config(apply_overrides(config.model_dump(mode="json"), overrides))
        return config
    if isinstance(config, dict):
        from tirgym.trainer.config import apply_overrides

        return build_config(apply_overrides(dict(config), overrides))
    return load_config(config, overrides)


class Trainer:
    """Owns the model, optimizer, policy backend and loggers of one run."""

    def __init__(
        self,
        config: TrainConfig | dict | str | Path,
        *,
        overrides: list[str] | None = None,
        callbacks: Sequence[Callback] = (),
        resume: bool = False,
        stop_after: int | None = None,
        quiet: bool = False,
    ):
        self.cfg = _as_config(config, overrides)
        check_envs(self.cfg)
        self.callbacks = list(callbacks)
        self.resume = resume
        self.stop_after = stop_after
        self.quiet = quiet
        self.dist = D.init_distributed(self.cfg.backend.device)
        self.device = pick_device(self.cfg.backend.device, self.dist.local_rank)
        self.run_dir = self.cfg.run_dir()
        self.adv_cfg = advantage_config(self.cfg.advantage)
        self.loss_params = LossParams.from_config(self.cfg.loss, self.cfg.rollout.max_total_tokens)
        self.step_idx = 0
        self.state: dict[str, Any] = {}
        self._setup_done = False

    # ---- setup -----------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self.dist.main and not self.quiet:
            bar = getattr(self, "_bar", None)
            if bar is not None:
                bar.console.print(text, markup=False, highlight=False)
            else:
                print(text, flush=True)

    def _phase(self, name: str) -> None:
        """Show what the current step is doing (rollout, update, eval) on the progress bar."""
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.update(self._bar_task, description=f"step {self.step_idx + 1}: {name}")

    @contextlib.contextmanager
    def _progress_bar(self):
        """A rich bar with ETA and the main metrics on a terminal; plain lines elsewhere."""
        self._bar = None
        if not (
            self.dist.main and self.cfg.log.progress and not self.quiet and sys.stdout.isatty()
        ):
            yield
            return
        from tirgym.progress import progress_bar

        with progress_bar("{task.description:<22}", "{task.fields[stats]}") as bar:
            self._bar = bar
            self._bar_task = bar.add_task(
                "RL", total=self.cfg.steps, completed=self.step_idx, stats=""
            )
            try:
                yield
            finally:
                self._bar = None

    def setup(self) -> None:
        cfg, run_dir = self.cfg, self.run_dir
        if self.dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
        D.barrier(self.dist)
        ckpt = latest_checkpoint(run_dir) if self.resume else None
        if self.resume and ckpt is None:
            raise TirgymError(
                f"--resume: no checkpoint under {run_dir}/checkpoints to resume from."
            )
        if self.dist.main:
            dump_config(cfg, run_dir / "config.yaml")
            base_path = resolve_model_path(cfg, run_dir)
            _trim_episode_log(
                run_dir / "episodes.jsonl", int(ckpt.name.rsplit("_", 1)[-1]) if ckpt else 0
            )
        D.barrier(self.dist)
        base_path = resolve_model_path(cfg, run_dir)
        self.tokenizer = load_tokenizer(base_path)
        self.pad_id = int(self.tokenizer.pad_token_id)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        gc = cfg.update.gradient_checkpointing
        if ckpt is not None and cfg.lora is None:
            self.model = load_model(str(ckpt / "model"), self.device, gc)
        elif ckpt is not None and cfg.sft is not None:  # LoRA resumes on top of the SFT weights
            self.model = load_model(str(run_dir / "sft_model"), self.device, gc)
        else:
            self.model = load_model(base_path, self.device, gc)
        self.state = json.loads((ckpt / "trainer_state.json").read_text()) if ckpt else {}

        # SFT warm start (before LoRA: it trains every weight), once per run.
        if cfg.sft is not None and ckpt is None:
            from tirgym.trainer.sft import run_sft

            self.say("== SFT warm start ==")
            sft_metrics = run_sft(
                self.model, self.tokenizer, cfg, self.device, self.dist, say=self.say
            )
            self.state["sft"] = sft_metrics
            if self.dist.main:
                save_model(self.model, self.tokenizer, run_dir / "sft_model")
        if cfg.lora is not None:
            self.model = apply_lora(self.model, cfg.lora, str(ckpt / "model") if ckpt else None)
        D.broadcast_params(self.model, self.dist)

        self.ref_model = None
        if cfg.loss.kl_beta > 0 and cfg.lora is None:
            ref_path = run_dir / "sft_model" if cfg.sft is not None else Path(base_path)
            if ckpt is not None:
                self.ref_model = load_model(str(ref_path), self.device).eval()
                for p in self.ref_model.parameters():
                    p.requires_grad_(False)
            else:
                self.ref_model = frozen_copy(self.model)

        self.train_model = self.model
        if self.dist.enabled and cfg.distributed.strategy == "fsdp2":
            if self.device.type != "cuda":
                raise TirgymError("distributed.strategy=fsdp2 needs CUDA; use ddp on CPU.")
            self.train_model = D.shard_fsdp2(self.model)

        params = [p for p in self.train_model.parameters() if p.requires_grad]
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
        total = max(1, cfg.steps * cfg.update.ppo_epochs * cfg.update.minibatches)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda=lr_lambda(o, total)
        )
        self.sampler = TaskSampler(cfg.envs, cfg.seed)
        from tirgym.trainer.planning import GramBank, sentence_embedder

        pc = cfg.planning
        embed = sentence_embedder(pc.embedder) if pc.embedder else None
        self.grams = GramBank(run_dir, every=pc.refresh_every, mine=pc.mine, embed=embed)
        self.policy = self._make_policy()
        if ckpt is not None:
            self.state = load_training_state(ckpt, self.optimizer, self.scheduler, self.dist.rank)
            self.step_idx = int(self.state["step"])
            self.sampler.load_state_dict(self.state["sampler"])
            self._push_weights()
            self.say(f"resumed from {ckpt} at step {self.step_idx}")
        self.logger = MetricsLogger(
            run_dir,
            cfg.log,
            cfg.model_dump(mode="json"),
            enabled=self.dist.main,
            resume_step=self.step_idx if ckpt else 0,
        )
        total_p, train_p = count_params(self.model)
        self.say(
            f"model {cfg.model} ({total_p / 1e6:.2f}M params, {train_p / 1e6:.2f}M trainable) on {self.device}, run dir {run_dir}"
        )
        self._setup_done = True

    def _make_policy(self):
        """hf: the policy shares the trainer's module (no weight copy); vllm: a separate engine
        started on the weights the trainer starts from (base, SFT or checkpoint: the resume
        path pushes the checkpoint's weights right after)."""
        if self.cfg.backend.name == "hf":
            from tirgym.agents.hf_backend import HFPolicy

            return HFPolicy(self.model, self.tokenizer, **self.cfg.backend.options)
        from tirgym.agents.backends import load_policy

        cfg = self.cfg
        path = (
            self.run_dir / "sft_model"
            if cfg.sft is not None
            else resolve_model_path(cfg, self.run_dir)
        )
        bf16 = cfg.update.precision == "bf16" and self.device.type == "cuda"
        opts = {
            # the engine samples with the precision the trainer recomputes logprobs in
            "dtype": "bfloat16" if bf16 else "float32",
            "max_model_len": cfg.rollout.max_total_tokens,
            "seed": cfg.seed,
            **cfg.backend.options,
        }
        return load_policy(
            f"vllm:{path}", gpu_memory_utilization=cfg.backend.gpu_memory_utilization, **opts
        )

    def _engine_sleeps(self) -> bool:
        """vllm on GPU with enable_sleep_mode: free the engine's memory during the update."""
        p = self.policy
        return (
            self.cfg.backend.name == "vllm"
            and not getattr(p, "on_cpu", True)
            and bool(p.config.enable_sleep_mode)
        )

    def _push_weights(self) -> None:
        """After an update: nothing for hf (same module); for vllm, every weight the
        trainer holds now (LoRA merged in, a tied head through its embedding)."""
        if self.cfg.backend.name == "hf":
            return
        from tirgym.trainer.model import inference_weights

        model = self.model
        if self.dist.enabled and self.cfg.distributed.strategy == "fsdp2":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            named = get_model_state_dict(
                model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
            )
        else:
            named = {n: p.detach() for n, p in model.named_parameters()}
        with torch.no_grad():
            self.policy.update_weights(inference_weights(named, model))

    def close(self) -> None:
        """Stop the generation engine (vllm); the hf policy holds nothing to release."""
        close = getattr(getattr(self, "policy", None), "close", None)
        if self.cfg.backend.name == "vllm" and close is not None:
            close()

    # ---- the step ----------------------------------------------------------------------
    def _autocast(self):
        if self.cfg.update.precision == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _rollout(self, tasks, step: int, round_idx: int) -> list[Episode]:
        from tirgym.agents import RolloutLimits, SamplingParams, rollout

        r = self.cfg.rollout
        seed = _step_seed(self.cfg.seed, step, 1000 * round_idx + self.dist.rank + 1)
        torch.manual_seed(seed)
        params = SamplingParams(
            temperature=r.temperature, top_p=r.top_p, max_new_tokens=r.max_new_tokens, seed=seed
        )
        limits = RolloutLimits(
            max_turns=r.max_turns,
            max_new_tokens=r.max_new_tokens,
            max_total_tokens=r.max_total_tokens,
            episode_timeout_s=r.episode_timeout_s,
        )
        self.model.eval()
        with self._autocast(), torch.no_grad():
            return rollout(
                self.policy, tasks, group_size=r.group_size, params=params, limits=limits
            )

    def _my_share(self, tasks: list) -> list:
        return tasks[self.dist.rank :: self.dist.world]

    def collect(self, step: int) -> tuple[list[Episode], list[Episode]]:
        """Roll out this rank's share; with dynamic sampling, refill dropped groups.

        Returns (all episodes generated, episodes kept for the loss)."""
        cfg, f = self.cfg, self.cfg.filters
        want = cfg.rollout.tasks_per_step
        generated: list[Episode] = []
        kept: list[Episode] = []
        n_groups = 0
        round_idx = 0
        tasks = self.sampler.draw(want)
        while True:
            eps = self._rollout(self._my_share(tasks), step, round_idx)
            for cb in self.callbacks:
                eps = cb.on_episodes(self, step, eps) or eps
            generated += eps
            keep = [e for e in eps if e.trainable]
            if f.void_turns:
                from tirgym.trainer.advantages import filter_void_turns

                keep = filter_void_turns(keep)
            if f.dynamic_sampling:
                from tirgym.trainer.advantages import dynamic_sampling_keep

                keep = dynamic_sampling_keep(keep, self.adv_cfg.reward_source)
            kept += keep
            if not f.dynamic_sampling:
                break
            n_groups += len({e.group_id for e in keep})
            total = int(D.all_reduce_sum([n_groups], self.dist, self.device)[0])
            if total >= want or round_idx >= f.max_resample_rounds:
                break
            round_idx += 1
            tasks = self.sampler.draw(max(want - total, self.dist.world))
        return generated, kept

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        t0 = time.perf_counter()
        self._phase("rollout")
        gen0 = copy.copy(getattr(self.policy, "stats", None))
        generated, kept = self.collect(step)
        t_roll = time.perf_counter() - t0
        gen_m = _generation_metrics(gen0, getattr(self.policy, "stats", None), t_roll)

        from tirgym.trainer.advantages import compute_advantages

        grams = self.grams.observe(kept, step)
        need_tok = self.adv_cfg.hicra or not self.adv_cfg.span_weights.is_identity
        advs = compute_advantages(
            kept, self.adv_cfg, tokenizer=self.tokenizer if need_tok else None, grams=grams
        )
        rows = [r for r in make_rows(kept, advs) if r.mask.sum() > 0]

        t1 = time.perf_counter()
        sleeps = self._engine_sleeps()
        if sleeps:
            self.policy.sleep()
        try:
            self._phase("update")
            upd = self.update(rows, step)
        finally:
            if sleeps:
                self.policy.wake_up()
        t_upd = time.perf_counter() - t1
        t2 = time.perf_counter()
        self._push_weights()
        t_push = time.perf_counter() - t2

        all_eps = [e for part in D.all_gather_objects(generated, self.dist) for e in part]
        if self.dist.main and cfg.log.save_episodes:
            for e in all_eps:
                e.info["train_step"] = step
            append_jsonl(self.run_dir / "episodes.jsonl", all_eps, fsync=False)
        gen_tokens = sum(e.num_sampled_tokens for e in all_eps)
        m = {
            **episode_metrics(all_eps, self.tokenizer, grams, self.adv_cfg.hicra_scope),
            **upd,
            "episodes_kept": float(D.all_reduce_sum([len(rows)], self.dist, self.device)[0]),
            "lr": self.scheduler.get_last_lr()[0],
            "rollout_s": t_roll,
            "update_s": t_upd,
            "weight_push_s": t_push,
            "rollout_tokens_per_s": gen_tokens / max(t_roll, 1e-9),
            "update_tokens_per_s": upd["update_tokens"] / max(t_upd, 1e-9),
            "sampler_draws": float(self.sampler.draws),
            **gen_m,
        }
        return m

    def _forward(self, batch: dict[str, torch.Tensor]):
        with self._autocast():
            lp, ent = model_logprobs(
                self.train_model,
                batch["input_ids"],
                batch["attention_mask"],
                chunk=self.cfg.update.logprob_chunk,
                with_entropy=True,
                only=batch["mask"],
            )
        return lp.float(), ent.float()

    @torch.no_grad()
    def _recompute(self, rows: list[Row], model, attr: str) -> None:
        """Fill rows' old_lp/ref_lp with `model`'s logprobs (no grad)."""
        budget = self.cfg.update.micro_batch_tokens
        for idx in micro_batches([len(r) for r in rows], budget):
            b = collate([rows[i] for i in idx], self.pad_id, self.device)
            with self._autocast():
                lp, _ = model_logprobs(
                    model,
                    b["input_ids"],
                    b["attention_mask"],
                    chunk=self.cfg.update.logprob_chunk,
                    only=b["mask"],
                )
            lp = lp.float().cpu().numpy()
            for j, i in enumerate(idx):
                setattr(rows[i], attr, lp[j, : len(rows[i])])

    def update(self, rows: list[Row], step: int) -> dict[str, float]:
        """PPO epochs x minibatches over micro-batches; returns update metrics."""
        cfg, u = self.cfg, self.cfg.update
        single_pass = u.ppo_epochs == 1 and u.minibatches == 1
        if not single_pass and rows:
            self.model.eval()
            self._recompute(rows, self.train_model, "old_lp")
        if self.ref_model is not None and rows:
            self._recompute(rows, self.ref_model, "ref_lp")
        if self.ref_model is None and cfg.loss.kl_beta > 0 and cfg.lora is not None and rows:
            with self.model.disable_adapter():
                self._recompute(rows, self.train_model, "ref_lp")

        sums = {
            k: 0.0
            for k in (
                "tokens",
                "clip_frac_sum",
                "approx_kl_sum",
                "ratio_sum",
                "entropy_sum",
                "kl_ref_sum",
                "gap_sum",
                "gap_max",
                "loss",
                "grad_norm",
                "opt_steps",
                "update_tokens",
                "first_tokens",
            )
        }
        rng = np.random.default_rng([cfg.seed, step, 7])
        self.train_model.train()
        fsdp = self.dist.enabled and cfg.distributed.strategy == "fsdp2"
        for epoch in range(u.ppo_epochs):
            order = rng.permutation(len(rows)) if u.minibatches > 1 else np.arange(len(rows))
            for mb in np.array_split(order, u.minibatches):
                mb_rows = [rows[i] for i in mb]
                n_tok_local = float(sum(r.mask.sum() for r in mb_rows))
                n_seq_local = float(sum(1 for r in mb_rows if r.mask.sum() > 0))
                n_tok, n_seq = D.all_reduce_sum([n_tok_local, n_seq_local], self.dist, self.device)
                if n_tok == 0:
                    continue
                chunks = micro_batches([len(r) for r in mb_rows], u.micro_batch_tokens)
                n_chunks = (
                    D.all_reduce_max(len(chunks), self.dist, self.device) if fsdp else len(chunks)
                )
                mb_loss = 0.0
                for c in range(n_chunks):
                    if c >= len(chunks):  # FSDP2: every rank runs the same number of forwards
                        dummy = collate(mb_rows[:1] or rows[:1], self.pad_id, self.device)
                        lp, _ = self._forward(dummy)
                        (lp.sum() * 0.0).backward()
                        continue
                    b = collate([mb_rows[i] for i in chunks[c]], self.pad_id, self.device)
                    lp, ent = self._forward(b)
                    old = b["old_lp"] if "old_lp" in b else lp.detach()
                    loss, m = policy_loss(
                        lp,
                        old,
                        b["adv"],
                        b["mask"],
                        self.loss_params,
                        ref_logprobs=b.get("ref_lp"),
                        entropy=ent,
                        num_tokens=n_tok,
                        num_seqs=n_seq,
                    )
                    loss.backward()
                    mb_loss += float(loss.detach())
                    sums["update_tokens"] += float(b["attention_mask"].sum())
                    for k in (
                        "clip_frac_sum",
                        "approx_kl_sum",
                        "ratio_sum",
                        "entropy_sum",
                        "kl_ref_sum",
                    ):
                        if k in m:
                            sums[k] += float(m[k])
                    sums["tokens"] += float(m["tokens"])
                    if epoch == 0:  # trainer (before any update) vs sampler logprobs
                        mask = b["mask"].bool()
                        gap = (old - b["sampler_lp"]).abs()[mask]
                        if gap.numel():
                            sums["gap_sum"] += float(gap.sum())
                            sums["gap_max"] = max(sums["gap_max"], float(gap.max()))
                            sums["first_tokens"] += float(gap.numel())
                if not fsdp:
                    D.all_reduce_grads(self.train_model, self.dist)
                grad_norm = self._clip()
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                sums["loss"] += float(D.all_reduce_sum([mb_loss], self.dist, self.device)[0])
                sums["grad_norm"] += grad_norm
                sums["opt_steps"] += 1
        self.model.eval()
        keys = [
            "tokens",
            "clip_frac_sum",
            "approx_kl_sum",
            "ratio_sum",
            "entropy_sum",
            "kl_ref_sum",
            "gap_sum",
            "first_tokens",
            "update_tokens",
        ]
        tot = dict(
            zip(
                keys, D.all_reduce_sum([sums[k] for k in keys], self.dist, self.device), strict=True
            )
        )
        gap_max = self._max_float(sums["gap_max"])
        n = max(tot["tokens"], 1.0)
        steps = max(sums["opt_steps"], 1.0)
        out = {
            "loss": sums["loss"] / steps,
            "grad_norm": sums["grad_norm"] / steps,
            "clip_frac": tot["clip_frac_sum"] / n,
            "approx_kl": tot["approx_kl_sum"] / n,
            "ratio_mean": tot["ratio_sum"] / n,
            "token_entropy": tot["entropy_sum"] / n,
            "logprob_gap_mean": tot["gap_sum"] / max(tot["first_tokens"], 1.0),
            "logprob_gap_max": gap_max,
            "trained_tokens": tot["tokens"],
            "update_tokens": tot["update_tokens"],
            "optimizer_steps": sums["opt_steps"],
        }
        if self.loss_params.kl_beta:
            out["kl_ref"] = tot["kl_ref_sum"] / n
        return out

    def _max_float(self, v: float) -> float:
        if not self.dist.enabled:
            return v
        t = torch.tensor([v], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t.item())

    def _clip(self) -> float:
        params = [p for p in self.train_model.parameters() if p.requires_grad]
        clip = self.cfg.optim.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    # ---- eval, checkpoints, the run ---------------------------------------------------
    def evaluate(self, step: int) -> dict[str, float]:
        e = self.cfg.eval
        entries = expand_mix(e.envs or self.cfg.envs)
        self.model.eval()
        with self._autocast(), torch.no_grad():
            res = held_out_success(
                self.policy,
                entries,
                e,
                self.cfg.rollout,
                seed=self.cfg.seed,
                rank=self.dist.rank,
                world=self.dist.world,
                device=self.device,
            )
        for cb in self.callbacks:
            cb.on_eval(self, step, res)
        return res

    def checkpoint(self, step: int) -> Path:
        self.state.update({"sampler": self.sampler.state_dict()})
        model_state = None
        if self.dist.enabled and self.cfg.distributed.strategy == "fsdp2":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            model_state = get_model_state_dict(
                self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
            )
        return save_checkpoint(
            self.run_dir,
            step,
            self.model,
            self.tokenizer,
            self.optimizer,
            self.scheduler,
            {k: v for k, v in self.state.items() if k != "step"},
            keep_last=self.cfg.checkpoint.keep_last,
            rank=self.dist.rank,
            model_state=model_state,
            sharded_optimizer=self.dist.enabled and self.cfg.distributed.strategy == "fsdp2",
        )

    def run(self) -> Path:
        if not self._setup_done:
            self.setup()
        cfg = self.cfg
        for cb in self.callbacks:
            cb.on_train_start(self)
        t_start = time.perf_counter()
        if cfg.eval.before and "eval_before" not in self.state:
            self.say("== held-out eval before RL ==")
            self.state["eval_before"] = self.evaluate(0)
            self.say(f"held-out success before RL: {_pct(self.state['eval_before'])}")
            self.logger.log(0, self.state["eval_before"])
        last = cfg.steps if self.stop_after is None else min(cfg.steps, self.stop_after)
        with self._progress_bar():
            while self.step_idx < last:
                step = self.step_idx + 1
                m = self.step(step)
                self.step_idx = step
                if cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps:
                    self._phase("eval")
                    m.update(self.evaluate(step))
                if step % cfg.log.every == 0 or step == cfg.steps:
                    self.logger.log(step, m)
                for cb in self.callbacks:
                    cb.on_step_end(self, step, m)
                self._progress(step, m)
                if cfg.checkpoint.every and step % cfg.checkpoint.every == 0:
                    self._phase("checkpoint")
                    self.checkpoint(step)
        finished = self.step_idx >= cfg.steps
        if finished:
            if cfg.eval.after:
                self.say("== held-out eval after RL ==")
                self.state["eval_after"] = self.evaluate(self.step_idx)
                self.logger.log(self.step_idx, self.state["eval_after"])
            if cfg.checkpoint.final and not (
                cfg.checkpoint.every and self.step_idx % cfg.checkpoint.every == 0
            ):
                self.checkpoint(self.step_idx)
            if self.dist.main:
                save_model(self.model, self.tokenizer, self.run_dir / "final_model") if not (
                    self.dist.enabled and cfg.distributed.strategy == "fsdp2"
                ) else None
        elif self.stop_after is not None and not (
            cfg.checkpoint.every and self.step_idx % cfg.checkpoint.every == 0
        ):
            self.checkpoint(self.step_idx)
        wall = time.perf_counter() - t_start
        if self.dist.main:
            self._summary(wall, finished)
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.logger.close()
        D.barrier(self.dist)
        return self.run_dir

    def _progress(self, step: int, m: dict[str, float]) -> None:
        keys = [
            ("reward", "reward_mean"),
            ("succ", "success_rate"),
            ("len", "response_tokens_mean"),
            ("ent", "token_entropy"),
            ("clip", "clip_frac"),
            ("gap", "logprob_gap_mean"),
            ("gnorm", "grad_norm"),
        ]
        parts = [f"{name} {m[k]:.3f}" for name, k in keys if k in m]
        if "eval/success" in m:
            parts.append(f"EVAL {m['eval/success']:.3f}")
        bar = getattr(self, "_bar", None)
        if bar is not None:
            stats = "  ".join(parts[:2] + parts[-1:] if "eval/success" in m else parts[:2])
            bar.update(self._bar_task, advance=1, stats=stats, description=f"step {step}: done")
        if self.cfg.log.progress:
            self.say(
                f"step {step:>4}/{self.cfg.steps}  "
                + "  ".join(parts)
                + f"  roll {m['rollout_s']:.1f}s upd {m['update_s']:.1f}s"
            )

    def _summary(self, wall: float, finished: bool) -> None:
        before = self.state.get("eval_before", {}).get("eval/success")
        after = self.state.get("eval_after", {}).get("eval/success")
        summary = {
            "run_dir": str(self.run_dir),
            "steps": self.step_idx,
            "finished": finished,
            "wall_s_rl": wall,
            "heldout_success_before": before,
            "heldout_success_after": after,
            "eval_before": self.state.get("eval_before"),
            "eval_after": self.state.get("eval_after"),
            "sft": self.state.get("sft"),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if self.cfg.log.plot:
            png = plot_learning_curves(
                self.run_dir / "metrics.jsonl", self.run_dir / "learning_curves.png"
            )
            if png:
                self.say(f"learning curves: {png}")
        if before is not None and after is not None:
            self.say(
                f"held-out success: before RL {before:.1%} -> after RL {after:.1%} "
                f"({(after - before) * 100:+.1f} points)"
            )
        self.say(f"summary: {self.run_dir / 'summary.json'}")


def _pct(res: dict[str, float]) -> str:
    v = res.get("eval/success")
    return "n/a" if v is None else f"{v:.1%}"


def lr_lambda(o, total_steps: int):
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


def _trim_episode_log(path: Path, keep_through_step: int) -> None:
    """Keep only episodes of steps <= keep_through_step: a fresh run starts an empty log,
    and a resumed one drops the steps it is about to redo, so none appears twice."""
    if not path.exists():
        return
    if keep_through_step <= 0:
        path.unlink()
        return
    from tirgym.episode import iter_jsonl, save_jsonl

    kept = [e for e in iter_jsonl(path) if e.info.get("train_step", 0) <= keep_through_step]
    save_jsonl(path, kept)


def train(
    config: TrainConfig | dict | str | Path,
    overrides: list[str] | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    stop_after: int | None = None,
    quiet: bool = False,
) -> Path:
    """Train from a config (object, dict or YAML path); returns the run dir.

    stop_after: stop after this step (checkpointing it) without changing the schedule,
    e.g. to continue later with resume=True.
    """
    trainer = Trainer(
        config,
        overrides=overrides,
        callbacks=callbacks,
        resume=resume,
        stop_after=stop_after,
        quiet=quiet,
    )
    try:
        return trainer.run()
    finally:
        trainer.close()
        D.destroy(trainer.dist)


def _generation_metrics(before: Any, after: Any, t_roll: float) -> dict[str, float]:
    """What the hf backend's decode loop did this step (GenStats deltas): the share of the
    rollout wall time spent in model forwards (the rest is env steps and engine work) and
    the share of prompt tokens served from kept KV caches instead of prefilled again."""
    if before is None or after is None:
        return {}
    reused = after.reused_tokens - before.reused_tokens
    prefilled = after.prefill_tokens - before.prefill_tokens
    return {
        "rollout_forward_share": (after.forward_s - before.forward_s) / max(t_roll, 1e-9),
        "rollout_kv_reuse": reused / max(reused + prefilled, 1),
    }
