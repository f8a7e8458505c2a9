"""Best-effort per-slot cgroup (memory + pids, and cpu) so one slot cannot eat the machine.

Supports cgroup v1 (separate memory/pids hierarchies) and v2 (unified) where the controllers
are available and writable; otherwise the slot runs without one and rlimits still apply.

The cpu controller matters beyond its share: the scheduler's autogroups (on by default on
most distributions) give every process that calls setsid() a group of its own, weighted as
much as the worker's, so a setsid fork bomb's 500 processes each got as much CPU as the
worker at nice -20 and it missed the host's watchdog. Tasks outside the root cpu group have
no autogroup: in the slot's own cpu cgroup, nice weighs again (worker -20, cells' forks 19).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                paths[c] = path
    return paths


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


class SlotCgroup:
    """Directories that hold one slot's processes, with the limits written in."""

    def __init__(self, name: str, memory_mb: int, pids: int):
        self.dirs: list[Path] = []
        own = _own_paths()
        v1 = {c: ROOT / c / own.get(c, "/").lstrip("/") for c in ("memory", "pids")}
        if all(_writable(p) for p in v1.values()):
            limits = {
                "memory": {"memory.limit_in_bytes": str(memory_mb * 1024 * 1024)},
                "pids": {"pids.max": str(pids)},
            }
            for c, parent in v1.items():
                self._make(parent / name, limits[c])
            cpu = ROOT / "cpu" / own.get("cpu", "/").lstrip("/")
            if _writable(cpu):  # optional: see the module docstring
                self._make(cpu / name, {})
            return
        unified = ROOT / own.get("", "/").lstrip("/")
        ctrl = unified / "cgroup.subtree_control"
        with contextlib.suppress(OSError):
            enabled = ctrl.read_text().split()
            if {"memory", "pids"} <= set(enabled) and _writable(unified):
                self._make(
                    unified / name,
                    {"memory.max": str(memory_mb * 1024 * 1024), "pids.max": str(pids)},
                )

    def _make(self, path: Path, files: dict[str, str]) -> None:
        try:
            path.mkdir(exist_ok=True)
            for fname, value in files.items():
                (path / fname).write_text(value)
            if "memory.limit_in_bytes" in files:
                with contextlib.suppress(OSError):
                    (path / "memory.swappiness").write_text("0")
            self.dirs.append(path)
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()

    @property
    def active(self) -> bool:
        return bool(self.dirs)

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def kill_all(self) -> None:
        """SIGKILL every task in the slot's cgroup (whatever process group it moved to)."""
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the directories (a cgroup with tasks cannot go)."""
        for _ in range(100):
            self.kill_all()
            left = []
            for d in self.dirs:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(d)
            self.dirs = left
            if not left:
                return
            time.sleep(0.02)


def describe() -> str:
    own = _own_paths()
    v1 = [c for c in ("memory", "pids", "cpu") if _writable(ROOT / c / own.get(c, "/").lstrip("/"))]
    if {"memory", "pids"} <= set(v1):
        return f"cgroup v1 {'+'.join(v1)} writable"
    ctrl = ROOT / own.get("", "/").lstrip("/") / "cgroup.subtree_control"
    with contextlib.suppress(OSError):
        enabled = ctrl.read_text().split()
        if {"memory", "pids"} <= set(enabled):
            return f"cgroup v2 memory+pids{'+cpu' if 'cpu' in enabled else ''} writable"
    return "no writable memory+pids cgroup (rlimits only)"
