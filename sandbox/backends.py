"""How each backend starts one worker process: local (no isolation) and jail (bubblewrap).

A backend only builds the command line of a slot's worker; the worker protocol, pooling and
sessions are shared (slot.py, core.py). The docker backend lives in docker_backend.py.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from tirgym.sandbox.runtime import WORKER_SRC, Runtime, build_runtime

SANDBOX_UID = 65534
THREAD_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "LANG": "C.UTF-8",
}


@dataclass
class Backend:
    """Base: options shared by all backends."""

    name: str = "base"
    scratch_mb: int = 256
    scratch_inodes: int = 65536  # files + dirs per scratch tmpfs (a tree of them is cheap to make)
    preload: tuple[str, ...] = ("math", "numpy", "sympy")
    nproc: int = 512
    fsize_mb: int = 64
    slot_memory_mb: int = 4096  # cgroup cap for a whole slot (all its sessions)
    use_cgroup: bool = True

    def unavailable_reason(self) -> str | None:
        return None

    def worker_cfg(self) -> dict:
        return {
            "keep_stderr": bool(os.environ.get("TIRGYM_SANDBOX_DEBUG")),
            "preload": list(self.preload),
            "nproc": self.nproc,
            "fsize_mb": self.fsize_mb,
            "harden": False,
        }

    def command(self, slot: int) -> tuple[list[str], dict[str, str] | None]:
        raise NotImplementedError

    def cleanup_slot(self, slot: int) -> None:
        """Hook for backends with per-slot resources outside the process tree."""


@dataclass
class LocalBackend(Backend):
    """No isolation at all: the worker runs as this user on this host. Trusted code only."""

    name: str = "local"
    _scratch: str = field(default="", repr=False)

    def command(self, slot: int) -> tuple[list[str], dict[str, str] | None]:
        if not self._scratch:
            self._scratch = tempfile.mkdtemp(prefix="tirgym-sandbox-local-")
        cfg = {**self.worker_cfg(), "scratch": self._scratch}
        env = {**os.environ, **THREAD_ENV}
        return [sys.executable, "-B", str(WORKER_SRC), json.dumps(cfg)], env


def _host_root_links() -> list[str]:
    """Bind /usr read-only and recreate /lib, /lib64, /bin, /sbin as they are on the host."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


@functools.lru_cache(maxsize=1)
def _bwrap_probe() -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    cmd = [bwrap, "--unshare-all", "--die-with-parent", *_host_root_links(), "--", "/bin/true"]
    if os.getuid() == 0:
        if shutil.which("setpriv") is None:
            return "setpriv (util-linux) is needed to start bwrap as an unprivileged uid"
        cmd = [*_setpriv(), *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap failed to start: {e}"
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        return f"bwrap cannot create namespaces here ({err}); unprivileged user namespaces must be enabled"
    # The worker gives every session namespaces of its own, nested inside the jail's.
    unshare = shutil.which("unshare")
    if unshare:
        jail = cmd[: len(cmd) - cmd[::-1].index("--")]  # everything up to bwrap's "--"
        nested = [*jail, unshare, "--user", "--pid", "--mount", "--fork"]
        try:
            proc = subprocess.run([*nested, "/bin/true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"bwrap failed to start: {e}"
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            return (
                f"namespaces cannot be nested inside bwrap here ({err}); the jail needs them "
                "to keep sessions apart (user.max_user_namespaces > 0, no LSM blocking it)"
            )
    return None


def _setpriv() -> list[str]:
    return [
        "setpriv",
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_UID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


@dataclass
class JailBackend(Backend):
    """bubblewrap jail: new user/pid/net/ipc/uts/mount namespaces, read-only runtime, tmpfs scratch."""

    name: str = "jail"
    runtime_root: str | None = None
    _runtime: Runtime | None = field(default=None, repr=False)

    def unavailable_reason(self) -> str | None:
        reason = _bwrap_probe()
        if reason:
            return reason
        try:
            import pyseccomp  # noqa: F401
        except ImportError:
            return (
                "pyseccomp is not installed (a dependency of tirgym: reinstall tirgym, or "
                "pip install pyseccomp; it needs libseccomp2)"
            )
        return None

    def runtime(self) -> Runtime:
        if self._runtime is None:
            root = self.runtime_root or os.environ.get("TIRGYM_SANDBOX_RUNTIME")
            self._runtime = build_runtime(root) if root else build_runtime()
        return self._runtime

    def command(self, slot: int) -> tuple[list[str], dict[str, str] | None]:
        rt = self.runtime()
        cfg = {
            **self.worker_cfg(),
            "harden": True,
            "scratch": "/tmp",
            "site": [rt.site],
            "isolation": "ns",  # sessions in namespaces of their own (see worker.py)
            "scratch_mb": self.scratch_mb,
            "scratch_inodes": self.scratch_inodes,
        }
        env_args: list[str] = ["--clearenv"]  # must come before --setenv (applied in order)
        for k, v in {**THREAD_ENV, "PATH": "/usr/bin:/bin", "HOME": "/tmp"}.items():
            env_args += ["--setenv", k, v]
        argv = [
            "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "sandbox",
            *_host_root_links(),
            "--ro-bind",
            str(rt.host_prefix),
            rt.prefix,
            "--ro-bind",
            str(rt.host_site),
            rt.site,
            "--ro-bind",
            str(rt.host_worker),
            rt.worker,
            "--proc",
            "/proc",
            # A minimal /dev, read-only: only /dev/shm (size-capped, cleared after every
            # stateless run, private per session) and /dev/pts (per session) are mounts below.
            "--dev",
            "/dev",
            "--size",
            str(self.scratch_mb * 1024 * 1024),
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            str(self.scratch_mb * 1024 * 1024),
            "--perms",
            "0700",
            "--tmpfs",
            "/tmp",
            "--remount-ro",
            "/",
            "--chdir",
            "/tmp",
            *env_args,
            "--",
            rt.python,
            "-I",
            "-B",
            rt.worker,
            json.dumps(cfg),
        ]
        if os.getuid() == 0:
            argv = [*_setpriv(), *argv]
        return argv, {"PATH": "/usr/bin:/bin"}
