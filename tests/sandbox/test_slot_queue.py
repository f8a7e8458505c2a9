"""The pool's queue: a freed slot goes to the longest-waiting request that can use it."""

from __future__ import annotations

import threading
import time

import pytest

from tirgym.sandbox.slot_queue import SlotQueue


def _waiter(q: SlotQueue, want, order: list, name: str) -> threading.Thread:
    """Start a thread that queues for `want`, notes its name once served, and releases."""

    def run() -> None:
        got = q.acquire(want)
        order.append((name, got))
        q.release(got)

    queued = len(q._waiting)
    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 5
    while len(q._waiting) == queued:  # in the queue before the next one arrives
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.001)
    return t


def test_requests_are_served_in_arrival_order():
    q = SlotQueue(1)
    assert q.acquire() == 0
    order: list = []
    threads = [
        _waiter(q, 0, order, "session-1"),
        _waiter(q, None, order, "stateless"),
        _waiter(q, 0, order, "session-2"),
    ]
    q.release(0)
    for t in threads:
        t.join(5)
    assert order == [("session-1", 0), ("stateless", 0), ("session-2", 0)]


def test_a_request_for_any_slot_is_not_held_up_by_a_session_waiting_for_another():
    q = SlotQueue(2)
    assert q.acquire() == 0 and q.acquire() == 1
    order: list = []
    session = _waiter(q, 0, order, "session")
    stateless = _waiter(q, None, order, "stateless")
    q.release(1)  # the session cannot use slot 1: the later stateless run takes it
    stateless.join(5)
    assert order == [("stateless", 1)]
    q.release(0)
    session.join(5)
    assert order == [("stateless", 1), ("session", 0)]


def test_stateless_requests_spread_over_free_slots():
    q = SlotQueue(3)
    got = [q.acquire() for _ in range(3)]
    assert got == [0, 1, 2]
    q.release(1)
    q.release(0)
    assert q.acquire() == 0  # round robin goes on after slot 2, from slot 0


def test_non_blocking_acquire_of_a_held_slot_leaves_no_waiter():
    q = SlotQueue(1)
    lock = q.lock(0)
    assert lock.acquire(blocking=False)
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    assert q._waiting == []
    lock.release()
    assert not lock.locked()
    with lock:
        assert lock.locked()
    with pytest.raises(RuntimeError, match="not held"):
        lock.release()
