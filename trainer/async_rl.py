"""Asynchronous RL: a generator thread rolls out the next batches while the trainer updates.

With `async.max_staleness: k` the batch of step s is sampled with the weights published
after step v = max(s0, s-1-k), where s0 is the step the run started (or resumed) from:

    trainer:   update 1 | update 2 | update 3 | ...      publishes version s after update s
    generator: batch 1 | batch 2 | batch 3 | ...         batch s waits for version s-1-k

Pinning the version (instead of "whatever is newest") keeps a run reproducible from its
seeds and bounds the staleness by construction: every episode records `policy_version`,
and the trainer still checks `step-1 - policy_version <= k` when it takes a batch (too old
episodes are dropped and counted). With k = 0 the generator waits for the weights of the
previous update, so the loop does exactly what the synchronous one does.

The generator owns a deep copy of the trainer's model (hf backend) and a copy of the task
sampler. A publish copies the trainer's weights into a snapshot (the only time the trainer
spends on it); the generator loads a snapshot between batches, never during one. Each
batch carries the sampler state after its draws, which the trainer adopts when it takes
the batch, so a checkpoint names exactly the tasks trained so far: a run that dies with
batches generated ahead resumes by generating them again, and the episode log only
receives episodes of batches the trainer took (nothing lost, nothing twice).

Callbacks' `on_episodes` run on the generator thread and receive a shallow copy of the
Trainer whose `model`, `policy` and `sampler` are the generator's.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tirgym.episode import Episode
from tirgym.errors import TirgymError

if TYPE_CHECKING:
    from tirgym.trainer.loop import Trainer


class AsyncConfig(BaseModel):
    """Bounded staleness between the weights that sampled a batch and the trainer's."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_staleness: int = Field(0, ge=0)
    """k: the batch of step s is sampled with the weights after step s-1-k (the start
    weights while s-1-k is before the run's first step), on a generator thread with its
    own model copy, while the trainer updates. 0: the synchronous loop."""

    generator: Literal["thread", "process"] = "thread"
    """Where the generator runs (hf backend): a thread of the trainer's process (callbacks'
    state is shared, but the decode loop and the update share one GIL), or a process of its
    own (true overlap; callbacks must be picklable and `on_episodes` runs on their copies)."""

    generator_cores: list[int] | None = None
    """process: the CPU cores the generator process is pinned to (torch uses that many
    threads); None: the trainer's cores and thread count."""

    partial_rollouts: bool = False
    """Episodes in flight take newer weights between turns: a batch starts on its pinned
    version and loads each version the trainer publishes meanwhile at the next moment no
    turn is being generated; every Turn records the version that sampled it and the
    episode's `policy_version` is its oldest turn's. Less stale samples, but a run is no
    longer a pure function of its seeds (when an update lands decides which turns see it)."""

    @model_validator(mode="after")
    def _partial_needs_async(self) -> AsyncConfig:
        if self.partial_rollouts and self.max_staleness == 0:
            raise ValueError(
                "async.partial_rollouts needs async.max_staleness >= 1 (with 0 no update "
                "lands while a batch is generated)"
            )
        return self


def sampling_version(step: int, start: int, k: int) -> int:
    """The weight version (steps trained) that samples the batch of `step`."""
    return max(start, step - 1 - k)


def split_stale(
    episodes: list[Episode], trainer_version: int, k: int
) -> tuple[list[Episode], list[Episode]]:
    """(episodes sampled within k versions of the trainer's, the older ones). An episode
    without a recorded version counts as sampled by the current weights."""
    fresh, stale = [], []
    for e in episodes:
        old = e.policy_version is not None and trainer_version - e.policy_version > k
        (stale if old else fresh).append(e)
    return fresh, stale


class WeightStore:
    """Versioned weight snapshots: the trainer publishes, the generator waits for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.closed = False

    def publish(self, version: int, state: dict[str, torch.Tensor]) -> None:
        """Make `state` (a copy the caller gave up) the weights of `version`."""
        with self._cond:
            self._snapshots[version] = state
            self._cond.notify_all()

    def poll(self, after: int) -> tuple[int, dict[str, torch.Tensor]] | None:
        """The newest version above `after` if one is published (never blocks)."""
        with self._cond:
            newer = [v for v in self._snapshots if v > after]
            if not newer:
                return None
            for v in [v for v in self._snapshots if v < max(newer)]:
                del self._snapshots[v]
            return max(newer), self._snapshots[max(newer)]

    def take(self, version: int) -> dict[str, torch.Tensor] | None:
        """Block until `version` is published (None once closed); forgets older versions."""
        with self._cond:
            self._cond.wait_for(lambda: version in self._snapshots or self.closed)
            if self.closed:
                return None
            for v in [v for v in self._snapshots if v < version]:
                del self._snapshots[v]
            return self._snapshots[version]

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass
class Batch:
    step: int
    version: int
    generated: list[Episode]
    kept: list[Episode]
    sampler_state: dict[str, int]
    generate_s: float
    gen_metrics: dict[str, float] = field(default_factory=dict)


class AsyncGenerator:
    """Rolls out the batches of steps start+1 .. last on its own thread and model copy."""

    def __init__(self, trainer: Trainer, k: int):
        backend = trainer.cfg.backend.name
        if backend not in ("hf", "vllm"):
            raise TirgymError(
                "async.max_staleness > 0 runs the generator on a copy of the hf model or on "
                f"the vllm engine; backend {backend!r} is not supported (use hf or vllm)"
            )
        if not trainer.cfg.backend.shares_module and trainer.cfg.eval.every:
            raise TirgymError(
                f"async.max_staleness > 0 on {_engines(trainer)}: the generator thread owns "
                "them, so a periodic held-out eval (eval.every) cannot share them; set "
                "eval.every=0 (the evals before and after RL still run)"
            )
        if trainer.dist.enabled:
            raise TirgymError(
                "async.max_staleness > 0 runs in a single process; set it to 0 under torchrun"
            )
        self.trainer, self.k = trainer, k
        self.weights = WeightStore()
        self.batches: queue.Queue[Batch | BaseException] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.start_version = 0
        self.dropped = 0

    # ---- trainer side -----------------------------------------------------------------
    def start(self, start_step: int, last_step: int) -> None:
        """Copy the model and the sampler as they are now (after any resume) and begin."""
        from tirgym.agents.hf_backend import HFPolicy

        tr = self.trainer
        view = copy.copy(tr)  # collect() reads model, policy and sampler from here
        if tr.cfg.backend.shares_module:
            model = copy.deepcopy(tr.model).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            view.model = model
            view.policy = HFPolicy(model, tr.tokenizer, **tr.cfg.backend.options)
        # engines (vllm, Ray): the generator's from now on (the trainer publishes, never pushes)
        view.sampler = copy.deepcopy(tr.sampler)
        self.start_version = start_step
        self.weights.publish(start_step, {})  # the weights the generator holds already
        self.thread = threading.Thread(
            target=self._run, args=(view, start_step + 1, last_step), daemon=True
        )
        self.thread.start()

    def publish(self, version: int) -> None:
        """The trainer's weights after update `version` (a copy; generation goes on)."""
        if self.thread is not None:
            self.weights.publish(version, snapshot(self.trainer))

    def take(self, step: int) -> tuple[list[Episode], list[Episode], dict[str, float]]:
        """The batch of `step` (waiting for it if needed), with too-stale episodes dropped."""
        if self.thread is None:
            self.start(step - 1, self.trainer.cfg.steps)
        t0 = time.perf_counter()
        got = self.batches.get()
        return self.accept(got, step, time.perf_counter() - t0)

    def accept(
        self, got: Batch | BaseException, step: int, wait: float
    ) -> tuple[list[Episode], list[Episode], dict[str, float]]:
        """The trainer's side of taking a batch: re-raise the generator's error, adopt the
        sampler state after its draws, drop too-stale episodes (counted)."""
        if isinstance(got, BaseException):
            raise got
        if got.step != step:
            raise RuntimeError(f"async generator out of order: batch {got.step} for step {step}")
        self.trainer.sampler.load_state_dict(got.sampler_state)
        kept, stale = split_stale(got.kept, step - 1, self.k)
        self.dropped += len(stale)
        return (
            got.generated,
            kept,
            {
                **got.gen_metrics,
                "async_wait_s": wait,
                "async_generate_s": got.generate_s,
                "async_staleness": float(step - 1 - got.version),
                "async_dropped_episodes": float(len(stale)),
                "async_dropped_total": float(self.dropped),
            },
        )

    def close(self) -> None:
        self.weights.close()
        if self.thread is not None:
            self.thread.join(timeout=60)

    # ---- generator thread -------------------------------------------------------------
    def _run(self, view: Any, first: int, last: int) -> None:
        partial = self.trainer.cfg.async_.partial_rollouts
        try:
            produce(
                view,
                self.weights.take,
                self.batches.put,
                first,
                last,
                self.start_version,  # the generator's copy holds the start weights already
                self.start_version,
                self.k,
                poll_weights=self.weights.poll if partial else None,
            )
        except BaseException as e:  # the trainer re-raises it when it takes the batch
            self.batches.put(e)


def snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    """A copy of the weights the generator needs: the model's state (hf), or the inference
    weights, LoRA merged in, under the engine's names (vllm, engines on Ray)."""
    model = trainer.model
    if not trainer.cfg.backend.shares_module:
        from tirgym.trainer.model import inference_weights

        named = {n: p.detach() for n, p in model.named_parameters()}
        return {n: t.detach().clone() for n, t in inference_weights(named, model)}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_weights(view: Any, state: dict[str, torch.Tensor]) -> None:
    """Load a snapshot into the generator's model copy (hf) or engines (vllm, Ray)."""
    with torch.no_grad():
        if not view.cfg.backend.shares_module:
            view.policy.update_weights(state.items())
        else:
            view.model.load_state_dict(state)


class MidBatchWeights:
    """Partial rollouts: the generator's view of newer weights, loaded between turns
    (agents.rollout.LiveWeights)."""

    def __init__(self, view: Any, poll: Callable[[int], Any], version: int):
        self.view, self.poll, self.version = view, poll, version
        self.loads = 0
        self._next: tuple[int, dict[str, torch.Tensor]] | None = None

    def pending(self) -> bool:
        if self._next is None:
            self._next = self.poll(self.version)
        return self._next is not None

    def load(self) -> None:
        if self._next is None:
            return
        (self.version, state), self._next = self._next, None
        load_weights(self.view, state)
        self.loads += 1


def produce(
    view: Any,
    take_weights: Callable[[int], dict[str, torch.Tensor] | None],
    put: Callable[[Batch], None],
    first: int,
    last: int,
    loaded: int,
    start: int,
    k: int,
    poll_weights: Callable[[int], tuple[int, dict[str, torch.Tensor]] | None] | None = None,
) -> None:
    """The generator's loop: for steps first..last, load the pinned weight version (between
    batches, never during one), roll out with `view.collect` and `put` the batch. `loaded`
    is the version `view.model` holds already; returns early once `take_weights` gives None.
    poll_weights (partial rollouts): newer versions are also loaded between turns, and a
    batch never starts on weights older than those the generator holds."""
    from tirgym.trainer.loop import _generation_metrics

    for step in range(first, last + 1):
        version = sampling_version(step, start, k)
        if poll_weights is None or version > loaded:
            state = take_weights(version)
            if state is None:
                return
            if version != loaded:
                load_weights(view, state)
                loaded = version
            del state
        version = loaded
        live = None
        if poll_weights is not None:
            live = view.live_weights = MidBatchWeights(view, poll_weights, loaded)
        t0, c0 = time.perf_counter(), time.thread_time()
        stats0 = copy.copy(getattr(view.policy, "stats", None))
        generated, kept = view.collect(step)
        dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
        partial: dict[str, float] = {}
        if live is not None:
            loaded = live.version
            turns = [t for e in generated for t in e.turns]
            newer = sum(t.policy_version is not None and t.policy_version > version for t in turns)
            partial = {
                "async_mid_batch_loads": float(live.loads),
                "async_newer_turn_share": newer / max(1, len(turns)),
            }
        for e in generated:
            seen = [t.policy_version for t in e.turns if t.policy_version is not None]
            e.policy_version = min(seen, default=version)
        put(
            Batch(
                step=step,
                version=version,
                generated=generated,
                kept=kept,
                sampler_state=view.sampler.state_dict(),
                generate_s=dt,
                gen_metrics={
                    **_generation_metrics(stats0, getattr(view.policy, "stats", None), dt),
                    # below 1 with one torch thread: the generator waited for a core
                    "async_generate_cpu_share": cpu / max(dt, 1e-9),
                    **partial,
                },
            )
        )


def _engines(trainer: Trainer) -> str:
    b = trainer.cfg.backend
    return f"{b.name} engines on Ray" if b.engines.backend == "ray" else b.name


def async_generator(trainer: Trainer) -> AsyncGenerator | None:
    """The generator for `async.max_staleness` > 0 (on a thread or in a process, per
    `async.generator`), else None (the synchronous loop)."""
    a = trainer.cfg.async_
    if a.max_staleness == 0:
        return None
    if a.generator == "process":
        from tirgym.trainer.async_process import ProcessGenerator

        return ProcessGenerator(trainer, a.max_staleness)
    return AsyncGenerator(trainer, a.max_staleness)
