"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, then stop.

Stopping mid-step would leave the weights half-updated, so the first signal only asks
the loop to stop after the current step; a second one acts as the signal always does
(Ctrl-C raises KeyboardInterrupt at once, SIGTERM ends the process). Under torchrun every
rank gets the signal, and the ranks agree on stopping through one all-reduce per step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import torch

from tirgym.trainer import distributed as D

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on a signal after saving `checkpoint` (resume with --resume)."""

    def __init__(self, signum: int, checkpoint: Path):
        super().__init__(f"{signal.Signals(signum).name}: stopped; checkpoint {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


class StopOnSignal:
    """Context manager: while active, SIGINT/SIGTERM set `signum` instead of stopping."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        signal.signal(signum, self._previous.pop(signum))  # a second signal acts at once
        again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
        self.say(
            f"{signal.Signals(signum).name}: finishing this step, then saving a checkpoint "
            f"({again} again stops at once, without one)"
        )

    def requested(self, dist: D.DistInfo, device: torch.device) -> bool:
        """True once any rank got a signal (a collective under torchrun)."""
        got = self.signum if self.signum is not None else 0
        if dist.enabled:
            got = D.all_reduce_max(got, dist, device)
            if got and self.signum is None:
                self.signum = got
        return got != 0
