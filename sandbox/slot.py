"""One warm worker process and the host side of its protocol, with a watchdog.

The watchdog is a deadline on every reply: a worker that does not answer within the cell's
timeout plus a grace period is killed as a whole (its process group, and with it the jail
or container) and restarted on next use.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tirgym.sandbox.backends import Backend
from tirgym.sandbox.cgroups import SlotCgroup

_HDR = struct.Struct(">I")
START_TIMEOUT_S = 60.0


def _boost() -> None:
    """In the jail's child before exec: start the worker at nice -20 where the host may (root).

    The jail's worker cannot raise its own priority from inside its user namespace; without
    it a fork bomb's hundreds of nice-19 processes out-weigh it (see worker.boost_worker).
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -20)


# bwrap --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that forked it exits, so
# every worker is started from this one long-lived thread, never from a short-lived caller.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tirgym-sandbox-spawn")


class WorkerDied(Exception):
    """The worker exited, or stopped answering and was killed."""


class Slot:
    def __init__(self, backend: Backend, index: int, lock=None):
        self.backend = backend
        self.index = index
        self.lock = lock if lock is not None else threading.Lock()  # the pool's SlotLock
        self.proc: subprocess.Popen | None = None
        self.generation = 0  # bumped on every (re)start; sessions check it
        self.runs = 0
        self.sessions: set[str] = set()
        self.cgroup: SlotCgroup | None = None
        self._buf = b""

    # ------------------------------------------------------------------ lifecycle
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        argv, env = self.backend.command(self.index)
        if self.backend.use_cgroup:
            self.cgroup = SlotCgroup(
                f"tirgym-{os.getpid()}-{self.index}-{self.generation}",
                self.backend.slot_memory_mb,
                self.backend.nproc * 2,
            )
            if self.cgroup.active:
                files = self.cgroup.procs_files()
                script = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n-1)); done; exec "$@"'
                argv = ["/bin/sh", "-c", script, "sh", str(len(files)), *files, *argv]
        self.proc = _SPAWNER.submit(
            subprocess.Popen,
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("TIRGYM_SANDBOX_DEBUG") else subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            bufsize=0,
            preexec_fn=_boost if self.backend.name == "jail" else None,
        ).result()
        self._buf = b""
        self.generation += 1
        self.runs = 0
        self.sessions.clear()
        try:
            hello = self._read(time.monotonic() + START_TIMEOUT_S)
        except WorkerDied as e:
            self.kill()
            raise WorkerDied(f"{self.backend.name} worker failed to start: {e}") from None
        if not hello.get("ready"):
            self.kill()
            raise WorkerDied(f"{self.backend.name} worker sent {hello!r} instead of ready")

    def ensure(self) -> None:
        if not self.alive:
            if self.proc is not None:
                self.kill()
            self.start()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            for f in (proc.stdin, proc.stdout):
                with contextlib.suppress(Exception):
                    f.close()
        self.backend.cleanup_slot(self.index)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        self.sessions.clear()

    # ------------------------------------------------------------------ protocol
    def _read(self, deadline: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            if len(self._buf) >= 4:
                (n,) = _HDR.unpack(self._buf[:4])
                if len(self._buf) >= 4 + n:
                    body, self._buf = self._buf[4 : 4 + n], self._buf[4 + n :]
                    return json.loads(body)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerDied("worker stopped answering (watchdog)")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerDied("worker exited")
            self._buf += chunk

    def request(self, msg: dict, reply_within_s: float, restart: bool = True) -> dict:
        """Send one request and wait for its reply; kill the slot if it misses the deadline.

        restart=False (session requests): a dead worker is an error, not silently replaced,
        because the session's state died with it.
        """
        if not restart and not self.alive:
            self.kill()
            raise WorkerDied("worker is gone")
        self.ensure()
        assert self.proc is not None and self.proc.stdin is not None
        data = json.dumps(msg).encode()
        try:
            self.proc.stdin.write(_HDR.pack(len(data)) + data)
            return self._read(time.monotonic() + reply_within_s)
        except (WorkerDied, OSError, ValueError) as e:
            self.kill()
            raise WorkerDied(str(e)) from None
