"""The async generator in a process of its own (`async.generator: process`, hf backend).

A thread generator shares the trainer's GIL: the hf decode loop holds it between ops, so
generation and update barely overlap on CPU. Here the generator is a spawned process with
its own copy of the model, optionally pinned to its own cores (`async.generator_cores`),
and the same schedule as the thread (trainer/async_rl.py): batch s is sampled with the
weights after step max(s0, s-1-k), episodes carry `policy_version`, the trainer adopts each
batch's sampler state and drops too-stale episodes.

Weights travel as shared-memory tensors: a publish copies the trainer's state into fresh
shared memory (the trainer's only cost) and sends the handles with the version through a
queue; the generator loads a version between batches. Batches (or the generator's error)
come back through a second queue.

Shutdown: the generator never exits on its own; after its last batch or an error it waits
for the trainer's stop message, and it ignores SIGINT/SIGTERM (a Ctrl-C reaches the whole
process group; the trainer finishes its step, which may need the next batch, then stops
it). `close()` sends the stop message, then kills the process if it does not exit in time. If the trainer's process dies (even SIGKILL), the generator
gets SIGKILL from the kernel (PR_SET_PDEATHSIG) and, as a fallback, a watchdog thread
exits once its parent is gone, so no generator outlives its trainer.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import torch
import torch.multiprocessing as mp

from tirgym.episode import Episode
from tirgym.errors import TirgymError
from tirgym.trainer.async_rl import AsyncGenerator, produce

if TYPE_CHECKING:
    from tirgym.trainer.loop import Trainer

STOP = "stop"
PR_SET_PDEATHSIG = 1


def shared_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's state in shared memory (one copy per tensor)."""
    out = {}
    for name, t in model.state_dict().items():
        buf = torch.empty(t.shape, dtype=t.dtype).share_memory_()
        buf.copy_(t.detach())
        out[name] = buf
    return out


class ProcessGenerator(AsyncGenerator):
    """AsyncGenerator whose rollouts run in a spawned process (see the module docstring)."""

    join_timeout_s = 10.0

    def __init__(self, trainer: Trainer, k: int):
        if not trainer.cfg.backend.shares_module:
            raise TirgymError(
                "async.generator=process runs a copy of the hf model in its own process; "
                f"backend {trainer.cfg.backend.name!r} takes async.generator=thread"
            )
        super().__init__(trainer, k)
        self.proc: Any = None
        self.last_step = 0
        ctx = mp.get_context("spawn")
        self._ctx = ctx
        self._weights: Any = ctx.Queue()
        self._batches: Any = ctx.Queue()

    def start(self, start_step: int, last_step: int) -> None:
        tr = self.trainer
        callbacks = tr.callbacks
        try:
            pickle.dumps(callbacks)
        except Exception as e:
            raise TirgymError(
                f"async.generator=process sends the callbacks to the generator process, "
                f"but they cannot be pickled ({type(e).__name__}: {e}); "
                f"use async.generator=thread"
            ) from None
        model = copy.deepcopy(tr.model).to("cpu").eval()
        for p in model.parameters():
            p.requires_grad_(False)
        cores = tr.cfg.async_.generator_cores
        threads = len(cores) if cores else torch.get_num_threads()
        self.start_version, self.last_step = start_step, last_step
        self.proc = self._ctx.Process(
            target=generator_main,
            args=(
                tr.cfg,
                callbacks,
                model,
                tr.tokenizer,
                copy.deepcopy(tr.sampler),
                (start_step, last_step, self.k),
                self._weights,
                self._batches,
                (cores, threads, os.getpid()),
            ),
            daemon=True,
            name="tirgym-generator",
        )
        self.proc.start()

    def publish(self, version: int) -> None:
        """Send the weights after update `version`, unless no batch left samples with them."""
        if self.proc is not None and version <= self.last_step - 1 - self.k:
            self._weights.put((version, shared_state(self.trainer.model)))

    def take(self, step: int) -> tuple[list[Episode], list[Episode], dict[str, float]]:
        if self.proc is None:
            self.start(step - 1, self.trainer.cfg.steps)
        assert self.proc is not None
        t0 = time.perf_counter()
        while True:
            try:
                got = self._batches.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.proc.is_alive():
                    raise TirgymError(
                        f"the async generator process exited (code {self.proc.exitcode}) "
                        f"before it delivered the batch of step {step}"
                    ) from None
        return self.accept(got, step, time.perf_counter() - t0)

    def close(self) -> None:
        """Stop the generator process; kill it if it does not exit in time."""
        p = self.proc
        if p is not None and p.is_alive():
            with contextlib.suppress(Exception):
                self._weights.put(STOP)
            p.join(self.join_timeout_s)
            if p.is_alive():  # it ignores SIGTERM (see generator_main)
                p.kill()
                p.join(5)
        self._weights.cancel_join_thread()  # a dead reader must not block our exit
        self._weights.close()
        self._batches.close()


# ---- the generator process ----------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    """SIGKILL from the kernel when the parent goes, and a watchdog for the same."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _picklable(e: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        tb = "".join(traceback.format_exception(e))
        return RuntimeError(f"async generator failed: {e!r}\n{tb}")


def generator_main(
    cfg: Any,
    callbacks: list,
    model: torch.nn.Module,
    tokenizer: Any,
    sampler: Any,
    steps: tuple[int, int, int],
    weights: Any,
    batches: Any,
    placement: tuple[list[int] | None, int, int],
) -> None:
    """The process's entry: pin, build a Trainer view around the model copy, produce."""
    cores, threads, parent = placement
    _die_with_parent(parent)
    # Ctrl-C and SIGTERM reach the whole process group; the trainer finishes its step
    # (which may need this process's batch), checkpoints, then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if cores:
        os.sched_setaffinity(0, set(cores))
    torch.set_num_threads(threads)
    start, last, k = steps
    view: Any = None
    stopped = False
    try:
        from tirgym.agents.hf_backend import HFPolicy
        from tirgym.trainer.loop import Trainer

        view = Trainer(cfg, callbacks=callbacks, quiet=True)
        view.model = model.to(view.device)
        view.tokenizer = tokenizer
        view.pad_id = int(tokenizer.pad_token_id)
        view.policy = HFPolicy(view.model, tokenizer, **cfg.backend.options)
        view.sampler = sampler
        held: dict[int, dict[str, torch.Tensor]] = {}

        def receive(msg: Any) -> None:
            nonlocal stopped
            if msg == STOP:
                stopped = True
            else:
                held[msg[0]] = msg[1]

        def take_weights(version: int) -> dict[str, torch.Tensor] | None:
            """The snapshot of `version` ({} for the start weights the copy holds)."""
            while version != start and version not in held and not stopped:
                receive(weights.get())
            if stopped:
                return None
            for v in [v for v in held if v < version]:
                del held[v]
            return held.pop(version, {})

        def poll_weights(after: int) -> tuple[int, dict[str, torch.Tensor]] | None:
            """Partial rollouts: the newest snapshot above `after` received so far."""
            with contextlib.suppress(queue.Empty):
                while not stopped:
                    receive(weights.get_nowait())
            newer = [v for v in held if v > after]
            if not newer:
                return None
            for v in [v for v in held if v < max(newer)]:
                del held[v]
            return max(newer), held.pop(max(newer))

        poll = poll_weights if cfg.async_.partial_rollouts else None
        produce(view, take_weights, batches.put, start + 1, last, start, start, k, poll)
    except BaseException as e:  # the trainer raises it when it takes the batch
        batches.put(_picklable(e))
    if not stopped:  # wait for the trainer: exiting now could lose what is still queued
        while weights.get() != STOP:
            pass
    batches.cancel_join_thread()
    if getattr(view, "env_pool", None) is not None:
        view.env_pool.close()
