"""First come, first served access to a pool's slots.

A request waits either for one slot (a session's: its state lives there) or for any slot (a
stateless run). A freed slot goes to the longest-waiting request that can use it. With plain
locks a slot went to whichever thread grabbed it first after a release, usually the one that
had just released it: under load a waiting session sat out whole seconds-long streaks of
other tenants' cells (innocent p99 21 s in the 48-thread load test of bench_sandbox.py).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass


@dataclass
class _Waiter:
    ticket: int
    want: int | None  # a slot index, or None for any slot
    granted: int | None = None


class SlotQueue:
    def __init__(self, n: int):
        self._cond = threading.Condition()
        self._busy = [False] * n
        self._waiting: list[_Waiter] = []  # in arrival order
        self._tickets = itertools.count()
        self._next_any = 0  # where a search for any free slot starts: spreads runs round robin

    def acquire(self, want: int | None = None, blocking: bool = True) -> int | None:
        """The index of the slot now held (want, or any free one); None if not blocking and
        the request would have to wait."""
        with self._cond:
            me = _Waiter(next(self._tickets), want)
            self._waiting.append(me)
            self._grant()
            while me.granted is None:
                if not blocking:
                    self._waiting.remove(me)
                    return None
                self._cond.wait()
            return me.granted

    def release(self, index: int) -> None:
        with self._cond:
            if not self._busy[index]:
                raise RuntimeError(f"slot {index} released but not held")
            self._busy[index] = False
            self._grant()

    def locked(self, index: int) -> bool:
        return self._busy[index]

    def lock(self, index: int) -> SlotLock:
        return SlotLock(self, index)

    def _grant(self) -> None:
        """Hand free slots to waiters in arrival order (called with the condition held)."""
        n = len(self._busy)
        free = [i for i in range(n) if not self._busy[i]]
        if not free or not self._waiting:
            return
        granted = False
        for w in list(self._waiting):
            if w.want is None:
                pick = min(free, key=lambda i: (i - self._next_any) % n)
                self._next_any = (pick + 1) % n
            elif w.want in free:
                pick = w.want
            else:
                continue
            w.granted = pick
            self._busy[pick] = True
            self._waiting.remove(w)
            free.remove(pick)
            granted = True
            if not free:
                break
        if granted:
            self._cond.notify_all()


class SlotLock:
    """One slot's place in the queue, with a lock's interface (acquire, release, with)."""

    def __init__(self, queue: SlotQueue, index: int):
        self.queue = queue
        self.index = index

    def acquire(self, blocking: bool = True) -> bool:
        return self.queue.acquire(self.index, blocking) is not None

    def release(self) -> None:
        self.queue.release(self.index)

    def locked(self) -> bool:
        return self.queue.locked(self.index)

    def __enter__(self) -> SlotLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
