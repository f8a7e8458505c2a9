"""The RL loop: rollout -> filters -> advantages -> PPO/GRPO update -> push -> log -> checkpoint.

Read `Trainer.step` top to bottom for one training step. Everything random in a step is
seeded from (config seed, step), and the task sampler's state is one counter, so a run
resumed from a checkpoint replays exactly what the uninterrupted run would have done.

    from tirgym.trainer import train, load_config
    run_dir = train(load_config("configs/quickstart.yaml", ["steps=10"]))
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tirgym.episode import Episode, append_jsonl
from tirgym.rewards.length import apply_length_rewards
from tirgym.trainer import distributed as D
from tirgym.trainer.advantages import compute_advantages, dynamic_sampling_keep, filter_void_turns
from tirgym.trainer.async_rl import AsyncGenerator, async_generator
from tirgym.trainer.batch import Row, make_rows
from tirgym.trainer.checkpoint import load_training_state, save_checkpoint, save_model, save_policy
from tirgym.trainer.config import (
    TrainConfig,
    advantage_config,
    build_config,
    check_envs,
    load_config,
)
from tirgym.trainer.heldout import held_out_success
from tirgym.trainer.losses import LossParams
from tirgym.trainer.metrics import MetricsLogger, check_loggers, episode_metrics
from tirgym.trainer.model import (
    apply_lora,
    load_start_model,
    load_tokenizer,
    param_counts,
    pick_device,
    reference_model,
    resolve_model_path,
)
from tirgym.trainer.run_dir import prepare_run_dir, record_changes
from tirgym.trainer.run_log import RunLog, pct
from tirgym.trainer.signals import StopOnSignal, TrainingStopped
from tirgym.trainer.tasks import TaskSampler, expand_mix
from tirgym.trainer.update import (
    Updater,
    apply_optim_config,
    autocast,
    make_optimizer,
    ppo_update,
)

if TYPE_CHECKING:
    from tirgym.agents.rollout import LiveWeights

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


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


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
        overwrite: bool = False,
        stop_after: int | None = None,
        quiet: bool = False,
    ):
        self.cfg = _as_config(config, overrides)
        check_envs(self.cfg)
        self.callbacks = list(callbacks)
        self.resume, self.overwrite = resume, overwrite
        self.stop_after = stop_after
        self.dist = D.init_distributed(self.cfg.backend.device)
        self.device = pick_device(self.cfg.backend.device, self.dist.local_rank)
        self.run_dir = self.cfg.run_dir()
        self.adv_cfg = advantage_config(self.cfg.advantage)
        self.loss_params = LossParams.from_config(self.cfg.loss, self.cfg.rollout.max_total_tokens)
        speak = self.dist.main and not quiet
        self.out = RunLog(speak=speak, bar=self.cfg.log.progress, total_steps=self.cfg.steps)
        self.step_idx = 0
        self.state: dict[str, Any] = {}
        self.generator: AsyncGenerator | None = None
        self.live_weights: LiveWeights | None = None  # the generator's (partial rollouts)
        self._setup_done = False

    @property
    def fsdp(self) -> bool:
        """Parameters sharded over ranks (FSDP2): gathers and saves are collectives."""
        return self.dist.enabled and self.cfg.distributed.strategy == "fsdp2"

    def say(self, text: str) -> None:
        self.out.say(text)

    # ---- setup -----------------------------------------------------------------------
    def setup(self) -> None:
        cfg, run_dir = self.cfg, self.run_dir
        notes = check_loggers(cfg.log)  # a missing W&B fails now, not after SFT
        start = prepare_run_dir(cfg, self.dist, resume=self.resume, overwrite=self.overwrite)
        self._setup_done, self.finished_before, ckpt = True, start.finished, start.ckpt
        if start.finished:
            return
        base_path = resolve_model_path(cfg, run_dir)
        self.tokenizer = load_tokenizer(base_path)
        self.pad_id = int(self.tokenizer.pad_token_id)
        _seed_everything(cfg.seed)
        self.model = load_start_model(cfg, ckpt, base_path, self.device)
        if cfg.sft is not None and ckpt is None:  # once per run, before LoRA (it trains all)
            from tirgym.trainer.sft import run_sft

            self.say("== SFT warm start ==")
            self.state["sft"] = run_sft(
                self.model, self.tokenizer, cfg, self.device, self.dist, say=self.say
            )
            if self.dist.main:
                save_model(self.model, self.tokenizer, run_dir / "sft_model")
        if cfg.lora is not None:
            self.model = apply_lora(self.model, cfg.lora, str(ckpt / "model") if ckpt else None)
        D.broadcast_params(self.model, self.dist)
        self.ref_model = reference_model(cfg, ckpt, base_path, self.model, self.device)
        self.train_model = self.model
        if self.fsdp:
            self.train_model = D.shard_fsdp2(self.model)
        self.optimizer, self.scheduler = make_optimizer(self.train_model, cfg)
        self.sampler = TaskSampler(cfg.envs, cfg.seed)
        self.grams = gram_bank(cfg, run_dir)
        self.policy = rollout_policy(cfg, self.model, self.tokenizer, self.device, run_dir)
        if cfg.backend.engines.backend == "ray":
            self._push_weights()  # hf engines start from the base model; vllm: a no-op copy
        self.generator = async_generator(self)  # async.max_staleness > 0
        if ckpt is not None:
            self.state = load_training_state(ckpt, self.optimizer, self.scheduler, self.dist.rank)
            self.step_idx = int(self.state["step"])
            self.sampler.load_state_dict(self.state["sampler"])
            self._push_weights()
            self.say(f"resumed from {ckpt} at step {self.step_idx}")
            if start.changes:  # warn, record (summary.json shows it), apply the new optim
                record_changes(self.state, self.step_idx, start.changes, self.say)
                apply_optim_config(self.optimizer, self.scheduler, cfg)
        self.logger = MetricsLogger(
            run_dir,
            cfg.log,
            cfg.model_dump(mode="json"),
            enabled=self.dist.main,
            resume_step=self.step_idx,
        )
        self.say(f"model {cfg.model} ({param_counts(self.model)}) on {self.device}, run {run_dir}")
        for note in notes:
            self.say(note)

    def _full_state(self) -> dict[str, torch.Tensor] | None:
        """The gathered weights under FSDP2 (every rank must call this), else None."""
        return D.full_state_dict(self.model) if self.fsdp else None

    def _push_weights(self) -> None:
        """After an update: nothing for hf (same module); for vllm and engines on Ray,
        every weight the trainer holds now (LoRA merged in, a tied head through its
        embedding)."""
        if self.cfg.backend.shares_module:
            return
        from tirgym.trainer.model import inference_weights

        named = self._full_state() or {n: p.detach() for n, p in self.model.named_parameters()}
        with torch.no_grad():
            self.policy.update_weights(inference_weights(named, self.model))

    def _stop_generator(self) -> None:
        """After the last step: stop the async generator and give the policy the trainer's
        weights (vllm: the engine was the generator's, holding weights up to k steps old)."""
        if self.generator is not None:
            self.generator.close()
            self.generator = None
            self._push_weights()

    def close(self) -> None:
        """Stop the generation engines (vllm, Ray) and the async generator thread."""
        if self.generator is not None:
            self.generator.close()
        if getattr(self, "env_pool", None) is not None:
            self.env_pool.close()
            self.env_pool = None
        close = getattr(getattr(self, "policy", None), "close", None)
        if not self.cfg.backend.shares_module and close is not None:
            close()

    # ---- the step ----------------------------------------------------------------------
    def _rollout(self, tasks, step: int, round_idx: int) -> list[Episode]:
        from tirgym.agents import rollout

        r = self.cfg.rollout
        seed = _step_seed(self.cfg.seed, step, 1000 * round_idx + self.dist.rank + 1)
        torch.manual_seed(seed)
        self.model.eval()
        with autocast(self.cfg, self.device), torch.no_grad():
            make_env = self._env_pool().make if r.env_workers.backend == "ray" else None
            return rollout(
                self.policy,
                tasks,
                r.group_size,
                *r.engine_args(seed),
                make_env=make_env,
                live_weights=self.live_weights,
            )

    def _env_pool(self):
        """The Ray env workers (rollout.env_workers.backend=ray), started on first use."""
        if getattr(self, "env_pool", None) is None:
            from tirgym.agents.ray_envs import RayEnvPool

            self.env_pool = RayEnvPool(self.cfg.rollout.env_workers)
        return self.env_pool

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
            eps = self._rollout(tasks[self.dist.rank :: self.dist.world], step, round_idx)
            for cb in self.callbacks:
                got = cb.on_episodes(self, step, eps)
                eps = eps if got is None else got
            eps = apply_length_rewards(eps, cfg.length)
            generated += eps
            keep = [e for e in eps if e.trainable]
            if f.void_turns:
                keep = filter_void_turns(keep)
            if f.dynamic_sampling:
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
        """One RL step: roll out, score (advantages), update, push weights, log episodes."""
        t0 = time.perf_counter()
        self.out.phase(step, "rollout")
        if self.generator is not None:  # generated ahead, on the generator's thread
            generated, kept, gen_m = self.generator.take(step)
            t_roll = time.perf_counter() - t0
        else:
            gen0 = copy.copy(getattr(self.policy, "stats", None))
            generated, kept = self.collect(step)
            t_roll = time.perf_counter() - t0
            gen_m = _generation_metrics(gen0, getattr(self.policy, "stats", None), t_roll)

        grams = self.grams.observe(kept, step)
        need_tok = self.adv_cfg.hicra or not self.adv_cfg.span_weights.is_identity
        advs = compute_advantages(
            kept, self.adv_cfg, tokenizer=self.tokenizer if need_tok else None, grams=grams
        )
        if self.cfg.log.token_advantages:  # the credit the update uses, for `tirgym view`
            for e, a in zip(kept, advs, strict=True):
                e.info["token_advantages"] = np.round(a, 5).tolist()
        rows = [r for r in make_rows(kept, advs) if r.mask.sum() > 0]

        t1 = time.perf_counter()
        sleeps = engine_sleeps(self.cfg, self.policy)
        if sleeps:
            self.policy.sleep()
        try:
            self.out.phase(step, "update")
            upd = self.update(rows, step)
        finally:
            if sleeps:
                self.policy.wake_up()
        t_upd = time.perf_counter() - t1
        t2 = time.perf_counter()
        if self.generator is None:
            self._push_weights()
        else:  # it loads them between its batches (vllm: the engine is its own)
            self.generator.publish(step)
        t_push = time.perf_counter() - t2

        all_eps = [e for part in D.all_gather_objects(generated, self.dist) for e in part]
        if self.dist.main and self.cfg.log.save_episodes:
            for e in all_eps:
                e.info["train_step"] = step
            append_jsonl(self.run_dir / "episodes.jsonl", all_eps, fsync=False)
        gen_tokens = sum(e.num_sampled_tokens for e in all_eps)
        return {
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

    def update(self, rows: list[Row], step: int) -> dict[str, float]:
        """Fill the old/reference logprobs the loss needs, then `ppo_update`; returns its metrics."""
        cfg, u = self.cfg, self.cfg.update
        up = Updater.of(self)
        if rows and not (u.ppo_epochs == 1 and u.minibatches == 1):
            # several passes: the ratio needs the logprobs from before any step
            if u.old_logprobs == "sampler":
                for r in rows:
                    r.old_lp = r.sampler_lp
            else:
                self.model.eval()
                up.recompute(rows, self.train_model, "old_lp")
        if rows and self.ref_model is not None:
            up.recompute(rows, self.ref_model, "ref_lp")
        if rows and self.ref_model is None and cfg.loss.kl_beta > 0 and cfg.lora is not None:
            with self.model.disable_adapter():  # LoRA: the reference is the base model
                up.recompute(rows, self.train_model, "ref_lp")
        rng = np.random.default_rng([cfg.seed, step, 7])
        stats = ppo_update(up, rows, epochs=u.ppo_epochs, minibatches=u.minibatches, rng=rng)
        self.model.eval()
        return stats.means(self.dist, self.device, kl=bool(self.loss_params.kl_beta))

    # ---- eval, checkpoints, the run ---------------------------------------------------
    def evaluate(self, step: int) -> dict[str, float]:
        e = self.cfg.eval
        entries = expand_mix(e.envs or self.cfg.envs)
        self.model.eval()
        with autocast(self.cfg, self.device), torch.no_grad():
            res = held_out_success(
                self.policy, entries, e, self.cfg.rollout, seed=self.cfg.seed, dist=self.dist
            )
        for cb in self.callbacks:
            cb.on_eval(self, step, res)
        return res

    def checkpoint(self, step: int) -> Path:
        self.state.update({"sampler": self.sampler.state_dict()})
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
            model_state=self._full_state(),
            sharded_optimizer=self.fsdp,
        )

    def run(self) -> Path:
        if not self._setup_done:
            self.setup()
        cfg = self.cfg
        if self.finished_before:
            self.say(f"{self.run_dir}: all {cfg.steps} steps done already; nothing to do.")
            return self.run_dir
        for cb in self.callbacks:
            cb.on_train_start(self)
        t_start = time.perf_counter()
        last = cfg.steps if self.stop_after is None else min(cfg.steps, self.stop_after)
        with StopOnSignal(self.say) as stop:
            if cfg.eval.before and "eval_before" not in self.state:
                self.say("== held-out eval before RL ==")
                self.state["eval_before"] = self.evaluate(0)
                self.say(f"held-out success before RL: {pct(self.state['eval_before'])}")
                self.logger.log(0, self.state["eval_before"])
            with self.out.progress(self.step_idx):
                while self.step_idx < last and not stop.requested(self.dist, self.device):
                    self._train_step(self.step_idx + 1)
            self._stop_generator()
        if stop.signum is not None:
            ckpt = self.checkpoint(self.step_idx)
            self.say(f"stopped after step {self.step_idx}; checkpoint: {ckpt} (continue: --resume)")
            self._end(time.perf_counter() - t_start, finished=False)
            raise TrainingStopped(stop.signum, ckpt)
        finished = self.step_idx >= cfg.steps
        saved = cfg.checkpoint.every and self.step_idx % cfg.checkpoint.every == 0
        if finished:
            if cfg.eval.after:
                self.say("== held-out eval after RL ==")
                self.state["eval_after"] = self.evaluate(self.step_idx)
                self.logger.log(self.step_idx, self.state["eval_after"])
            if cfg.checkpoint.final and not saved:
                self.checkpoint(self.step_idx)
            state = self._full_state()  # every rank takes part in the FSDP2 gather
            if self.dist.main:
                save_policy(self.model, self.tokenizer, self.run_dir / "final_model", state)
        elif self.stop_after is not None and not saved:
            self.checkpoint(self.step_idx)
        self._end(time.perf_counter() - t_start, finished)
        return self.run_dir

    def _train_step(self, step: int) -> None:
        """A step, then its periodic eval, logging, callbacks and checkpoint."""
        cfg = self.cfg
        m = self.step(step)
        self.step_idx = step
        if cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps:
            self.out.phase(step, "eval")
            m.update(self.evaluate(step))
        if step % cfg.log.every == 0 or step == cfg.steps:
            self.logger.log(step, m)
        for cb in self.callbacks:
            cb.on_step_end(self, step, m)
        self.out.step_done(step, m)
        if cfg.checkpoint.every and step % cfg.checkpoint.every == 0:
            self.out.phase(step, "checkpoint")
            self.checkpoint(step)

    def _end(self, wall: float, finished: bool) -> None:
        if self.dist.main:
            self.out.summary(
                self.run_dir, self.state, self.step_idx, finished, wall, self.cfg.log.plot
            )
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.logger.close()
        D.barrier(self.dist)


def engine_sleeps(cfg: TrainConfig, policy) -> bool:
    """vllm on GPU with enable_sleep_mode: free the engine's memory during the update."""
    return (
        cfg.backend.name == "vllm"
        and not getattr(policy, "on_cpu", True)
        and bool(policy.config.enable_sleep_mode)
    )


def gram_bank(cfg: TrainConfig, run_dir: Path):
    """Strategic grams for HICRA and the planning metrics (mined from the run when asked)."""
    from tirgym.trainer.planning import GramBank, sentence_embedder

    pc = cfg.planning
    embed = sentence_embedder(pc.embedder) if pc.embedder else None
    return GramBank(run_dir, every=pc.refresh_every, mine=pc.mine, embed=embed)


def rollout_policy(cfg: TrainConfig, model, tokenizer, device: torch.device, run_dir: Path):
    """hf: the policy shares the trainer's module (no weight copy); vllm: a separate engine
    started on the weights the trainer starts from (base, SFT or checkpoint: the resume
    path pushes the checkpoint's weights right after)."""
    if cfg.backend.shares_module:
        from tirgym.agents.hf_backend import HFPolicy

        return HFPolicy(model, tokenizer, **cfg.backend.options)
    path = run_dir / "sft_model" if cfg.sft is not None else resolve_model_path(cfg, run_dir)
    if cfg.backend.name == "hf":  # engines on Ray: the trainer pushes its weights at setup
        from tirgym.agents.ray_engines import RayEnginePool

        opts = {"device": "cuda" if cfg.backend.engines.num_gpus_per_engine else "cpu"}
        return RayEnginePool(
            cfg.backend.engines, "hf", resolve_model_path(cfg, run_dir), opts | cfg.backend.options
        )
    bf16 = cfg.update.precision == "bf16" and device.type == "cuda"
    opts = {
        # the engine samples with the precision the trainer recomputes logprobs in
        "dtype": "bfloat16" if bf16 else "float32",
        "max_model_len": cfg.rollout.max_total_tokens,
        "seed": cfg.seed,
        **cfg.backend.options,
    }
    opts["gpu_memory_utilization"] = cfg.backend.gpu_memory_utilization
    if cfg.backend.engines.backend == "ray":
        from tirgym.agents.ray_engines import RayEnginePool

        return RayEnginePool(cfg.backend.engines, "vllm", str(path), opts)
    from tirgym.agents.backends import load_policy

    return load_policy(f"vllm:{path}", **opts)


def train(
    config: TrainConfig | dict | str | Path,
    overrides: list[str] | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    overwrite: bool = False,
    stop_after: int | None = None,
    quiet: bool = False,
) -> Path:
    """Train from a config (object, dict or YAML path); returns the run dir.

    A run dir that holds a previous run is refused unless `resume` (continue from its last
    checkpoint) or `overwrite` (remove that run's files first). stop_after: stop after
    this step (checkpointing it) without changing the schedule, e.g. to continue later
    with resume=True. On Ctrl-C or SIGTERM the current step finishes, a checkpoint is saved
    and `TrainingStopped` (a KeyboardInterrupt) is raised.
    """
    trainer = Trainer(
        config,
        overrides=overrides,
        callbacks=callbacks,
        resume=resume,
        overwrite=overwrite,
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
    rollout wall time spent in model forwards (the rest is env steps and engine work), the
    share of prompt tokens served from kept KV caches instead of prefilled again, and the
    share served from the batch's shared prefix (system prompt) computed once."""
    if before is None or after is None:
        return {}
    reused = after.reused_tokens - before.reused_tokens
    shared = after.shared_tokens - before.shared_tokens
    prefilled = after.prefill_tokens - before.prefill_tokens
    total = max(reused + shared + prefilled, 1)
    return {
        "rollout_forward_share": (after.forward_s - before.forward_s) / max(t_roll, 1e-9),
        "rollout_kv_reuse": reused / total,
        "rollout_prefix_share": shared / total,
    }
