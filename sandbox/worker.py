"""The process that runs inside every sandbox slot (jail, docker or local).

Standalone on purpose: it is copied into the jail and the container, so it imports only the
standard library (plus pyseccomp when hardening). It pre-imports the heavy modules once and
then forks a child per cell, so a cell costs a fork instead of an interpreter start.

Protocol with the host: 4-byte big-endian length + JSON, on the fds that were stdin/stdout
at start. Requests: ping, run (stateless when no session), open, close. One request at a time.

Sessions: a holder process keeps the namespace. A cell runs in a fork of the holder; when it
finishes, the fork becomes the new holder and the old one is killed, so a cell that times out,
segfaults or fork-bombs is simply discarded and the state from before it is intact.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import traceback

MB = 1024 * 1024
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}
CPU_SIGNALS = {signal.SIGXCPU}
_HDR = struct.Struct(">I")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


# ----------------------------------------------------------------------------- framing
def write_frame(fd: int, obj: dict) -> None:
    data = json.dumps(obj).encode()
    buf = _HDR.pack(len(data)) + data
    view = memoryview(buf)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict | None:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, _HDR.unpack(head)[0])
    return None if body is None else json.loads(body)


def _sock_send(sock: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def _sock_recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 8)
    if not data:
        return None, list(fds)
    try:
        return json.loads(data), list(fds)
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def fork_cell() -> int:
    """Fork the worker for a cell, skipping Python's at-fork hooks when that is safe.

    os.fork() runs interpreter and module hooks in the child (thread bookkeeping, lock
    re-initialisation, logging, random) that touch ~200 pages, i.e. ~0.5 ms of copy-on-write
    faults per cell. The worker never runs user code and is single-threaded (checked at start),
    so a plain fork(2) is safe there; the child only needs a fresh random seed.
    """
    if not _FAST_FORK[0]:
        return os.fork()
    pid = _libc.fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork failed")
    if pid == 0:
        import random

        random.seed()  # what os.fork's hook would do: cells must not share a random stream
    return pid


_FAST_FORK = [False]


def collapse_hugepages() -> int:
    """Back the worker's anonymous memory with transparent huge pages (best effort).

    fork() copies one page-table entry per 4 KiB page: with numpy and sympy loaded that is
    ~15k entries and most of a fork's cost, paid again when the cell exits. With 2 MiB pages
    there are 512x fewer; a cell that writes to one still copies only 4 KiB (the kernel splits
    the huge page on copy-on-write). MADV_COLLAPSE needs Linux 6.1; elsewhere nothing happens.
    Returns the number of regions collapsed.
    """
    madvise = _libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    huge = 1 << 21
    done = 0
    try:
        with open("/proc/self/maps") as f:
            lines = f.readlines()
    except OSError:
        return 0
    for line in lines:
        parts = line.split()
        path = parts[5] if len(parts) > 5 else ""
        if not parts[1].startswith("rw") or path not in ("", "[heap]"):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        start, end = (lo + huge - 1) & ~(huge - 1), hi & ~(huge - 1)
        if end > start:
            madvise(start, end - start, 14)  # MADV_HUGEPAGE
            done += madvise(start, end - start, 25) == 0  # MADV_COLLAPSE
    return done


def fork_session() -> int:
    """Fork a session holder for its next cell, keeping the state exactly (random included).

    os.fork() reseeds `random` in the child, which would break `random.seed(0)` in one cell
    and `random.random()` in the next; a plain fork(2) keeps it, and is cheaper. Cells may
    leave threads behind in the holder, and then only os.fork is safe: restore the state.
    """
    if _single_threaded():
        pid = _libc.fork()
        if pid < 0:
            raise OSError(ctypes.get_errno(), "fork failed")
        return pid
    import random

    state = random.getstate()
    pid = os.fork()
    if pid == 0:
        random.setstate(state)
    return pid


# ----------------------------------------------------------------------------- hardening
def _prctl(option: int, arg: int) -> None:
    _libc.prctl(option, arg, 0, 0, 0)


def _close_fds_except(keep: set[int]) -> None:
    """Close every fd above 2 not in keep, with close_range (no allocation, no /proc read).

    Allocating in a freshly forked cell copies pages (copy-on-write), which is most of what
    a cell costs, so the per-cell code paths avoid it where they can.
    """
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _set_soft(res: int, soft: int) -> None:
    _cur_soft, hard = resource.getrlimit(res)
    if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
        soft = hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(res, (soft, hard))


def _base_limits(cfg: dict) -> None:
    """Limits that hold for the whole life of a cell process or session holder."""
    for res, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, cfg.get("nofile", 256)),
        (resource.RLIMIT_FSIZE, cfg.get("fsize_mb", 64) * MB),
        (resource.RLIMIT_NPROC, cfg.get("nproc", 512)),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))


_BASE_VM = [0]  # the worker's address-space size, measured once before the first fork


def _cell_limits(timeout_s: float, memory_mb: int) -> None:
    cpu = int(timeout_s) + 1
    _set_soft(resource.RLIMIT_CPU, cpu)
    # Address space: what the pre-imported worker already maps, plus the cell's budget, plus
    # room for thread stacks (RLIMIT_AS counts virtual memory, and each thread reserves some).
    base = _BASE_VM[0] or _vm_bytes()
    _set_soft(resource.RLIMIT_AS, base + memory_mb * MB + 512 * MB)


def _relax_cell_limits() -> None:
    """A finished session cell becomes the holder: give it back an unlimited CPU/AS soft limit."""
    _set_soft(resource.RLIMIT_CPU, resource.RLIM_INFINITY)
    _set_soft(resource.RLIMIT_AS, resource.RLIM_INFINITY)


DENY_ALWAYS = [
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "unshare",
    "setns",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "perf_event_open",
    "userfaultfd",
    "pivot_root",
    "chroot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "name_to_handle_at",
    "open_by_handle_at",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
    "fspick",
    "mount_setattr",
    "quotactl",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "lookup_dcookie",
]
CLONE_NS_FLAGS = (
    0x10000000,
    0x00020000,
    0x20000000,
    0x04000000,
    0x08000000,
    0x40000000,
    0x02000000,
    0x00000080,
)
CLONE_THREAD = 0x00010000


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_BPF: dict[bool, tuple] = {}  # allow_fork -> (buffer, sock_fprog), built once in the worker


def _patch_find_library() -> None:
    """ctypes.util.find_library needs ldconfig or gcc, which a minimal image lacks."""
    import ctypes.util as cu

    original = cu.find_library

    def find_library(name: str):
        found = original(name)
        if found:
            return found
        for version in ("2", "6", "1", "0"):
            candidate = f"lib{name}.so.{version}"
            try:
                ctypes.CDLL(candidate)
            except OSError:
                continue
            return candidate
        return None

    cu.find_library = find_library


def prepare_seccomp() -> None:
    """Compile both filters once, in the worker; a cell then only makes one prctl call.

    Building a filter with libseccomp inside every forked cell costs ~9 ms of CPU here (it
    touches and so copies hundreds of pages); loading a prebuilt BPF program costs nothing.
    """
    import tempfile

    _patch_find_library()
    for allow_fork in (False, True):
        f = _build_seccomp(allow_fork)
        with tempfile.TemporaryFile() as fh:
            f.export_bpf(fh)
            fh.seek(0)
            bpf = fh.read()
        buf = ctypes.create_string_buffer(bpf, len(bpf))
        _BPF[allow_fork] = (buf, _SockFprog(len(bpf) // 8, ctypes.addressof(buf)))


def _load_seccomp(allow_fork: bool) -> None:
    if allow_fork not in _BPF:
        prepare_seccomp()
    _buf, prog = _BPF[allow_fork]
    # PR_SET_SECCOMP=22, SECCOMP_MODE_FILTER=2; fail closed if the kernel refuses.
    if _libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        os.write(2, f"sandbox: could not install the seccomp filter (errno {err})\n".encode())
        os._exit(70)


def _build_seccomp(allow_fork: bool):
    import pyseccomp as sc

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENY_ALWAYS:
        with contextlib.suppress(Exception):
            f.add_rule(eperm, name)
    # clone3 passes flags in memory where a filter cannot read them: make libc fall back to clone.
    with contextlib.suppress(Exception):
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_NS_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # kill(-1, sig) would hit every process of the slot (other sessions' state).
    f.add_rule(eperm, "kill", sc.Arg(0, sc.MASKED_EQ, 0xFFFFFFFF, 0xFFFFFFFF))
    for name in ("socket", "socketpair"):
        f.add_rule(sc.ERRNO(errno.EACCES), name, sc.Arg(0, sc.NE, socket.AF_UNIX))
    if not allow_fork:
        f.add_rule(eperm, "fork")
        f.add_rule(eperm, "vfork")
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    return f


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_caps() -> None:
    for cap in range(64):
        if _libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # PR_CAPBSET_DROP up to the last capability the kernel knows
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def private_scratch(size_mb: int) -> bool:
    """Give this session its own /tmp: a new user+mount namespace with a fresh tmpfs.

    Sessions in one slot share a uid, so without this they could read each other's files.
    The capabilities the new namespace grants are dropped before any cell runs. Returns
    False (and changes nothing) where nested namespaces are not allowed (e.g. docker).
    """
    uid, gid = os.getuid(), os.getgid()
    _prctl(4, 1)  # /proc/self/*_map must be ours to write; _harden makes us non-dumpable again
    if _libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
        return False
    try:
        for path, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            with open(f"/proc/self/{path}", "w") as f:
                f.write(text)
        opts = f"size={size_mb * MB},mode=0700,uid={uid},gid={gid}".encode()
        # MS_REC|MS_PRIVATE on /, then a fresh tmpfs (MS_NOSUID|MS_NODEV) on /tmp
        if _libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0:
            raise OSError(ctypes.get_errno(), "make-private failed")
        if _libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0x2 | 0x4, opts) != 0:
            raise OSError(ctypes.get_errno(), "tmpfs mount failed")
        _drop_caps()
    except OSError:
        os._exit(71)  # half-made namespace: do not run cells in it
    return True


def _harden(cfg: dict, allow_fork: bool) -> None:
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: other processes of this uid cannot read our /proc/PID/*
    _base_limits(cfg)
    if cfg.get("harden"):
        _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS
        _load_seccomp(allow_fork)


# ----------------------------------------------------------------------------- cell execution
def _print_exc(exc: BaseException) -> None:
    tb = exc.__traceback__
    # Drop the frames that belong to this worker so the model sees only its own code.
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))


def _exec_code(code: str, ns: dict, display_last: bool) -> tuple[int, str]:
    """Run code in ns; return (exit_code, kind) with kind in ok|error|memory.

    A process the cell forked must never come back into the worker's code: it exits here.
    """
    owner = os.getpid()
    try:
        return _exec_inner(code, ns, display_last)
    finally:
        if os.getpid() != owner:
            os._exit(0)


def _exec_inner(code: str, ns: dict, display_last: bool) -> tuple[int, str]:
    owner = os.getpid()
    try:
        last = None
        if display_last:
            tree = ast.parse(code, "<cell>", "exec")
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            compiled = compile(tree, "<cell>", "exec")
        else:
            compiled = compile(code, "<cell>", "exec")  # no Python-level AST: fewer page copies
        exec(compiled, ns)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), ns)
            if value is not None:
                print(repr(value))
        return 0, "ok"
    except SystemExit as e:
        if e.code is None:
            return 0, "ok"
        if isinstance(e.code, int):
            return e.code, "ok" if e.code == 0 else "error"
        sys.stderr.write(f"{e.code}\n")
        return 1, "error"
    except MemoryError as e:
        if os.getpid() == owner:
            _print_exc(e)
        return 1, "memory"
    except BaseException as e:
        if os.getpid() == owner:
            _print_exc(e)
        return 1, "error"
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()


def _into_cell(out_fd: int, err_fd: int, timeout_s: float, memory_mb: int) -> None:
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    _cell_limits(timeout_s, memory_mb)


def _stateless_spare(cfg: dict, req_r: int, out_w: int, err_w: int, ctl_w: int, cwd: str) -> None:
    """A pre-forked, already hardened cell process that waits for its code.

    Everything that does not depend on the request (fds, process group, seccomp, cwd) is done
    before the request arrives, so a run costs only the wake-up and the code itself.
    """
    code = 1
    try:
        _close_fds_except({req_r, out_w, err_w, ctl_w})
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (devnull, out_w, err_w):
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        _harden(cfg, allow_fork=False)
        req = read_frame(req_r)
        os.close(req_r)
        if req is None:
            os._exit(0)
        _cell_limits(req["timeout_s"], req["memory_mb"])
        ns = {"__name__": "__main__", "__builtins__": builtins}
        code, kind = _exec_code(req["code"], ns, display_last=False)
        with contextlib.suppress(OSError):
            os.write(ctl_w, json.dumps({"exit": code, "kind": kind}).encode())
        # Close our ends before exiting: tearing down the address space takes milliseconds and
        # the worker need not wait for it.
        for fd in (1, 2, ctl_w):
            with contextlib.suppress(OSError):
                os.close(fd)
    finally:
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


# ----------------------------------------------------------------------------- session holder
def _run_session_cell(sock: socket.socket, ns: dict, msg: dict, fds: list[int]) -> None:
    """In the cell process: run one cell, report, and stay alive as the next holder."""
    code_fd, out_w, err_w = fds
    _sock_send(sock, {"started": os.getpid(), "cell": msg["cell"]})
    with os.fdopen(code_fd, "r", encoding="utf-8") as f:
        code = f.read()
    _into_cell(out_w, err_w, msg["timeout_s"], msg["memory_mb"])
    os.close(out_w)
    os.close(err_w)
    exit_code, kind = _exec_code(code, ns, display_last=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    done = {"done": os.getpid(), "exit": exit_code, "kind": kind, "cell": msg["cell"]}
    if kind != "ok" and _left_children():
        # A failed cell that left processes behind (a fork bomb that ended in EAGAIN, say)
        # is discarded like a timeout: the old holder keeps the state from before it.
        _sock_send(sock, {**done, "discard": True})
        os.killpg(0, signal.SIGKILL)
    _relax_cell_limits()
    _sock_send(sock, done)


def _left_children() -> bool:
    """Whether this process has (or just had) children: processes a cell forked."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def _session_holder(sock: socket.socket, cfg: dict, cwd: str) -> None:
    """Keep a session's namespace; every cell runs in a fork of it.

    The holder forks a spare (a copy of the state, waiting for code) when the worker says
    "spawn", so the fork is off the request path. When a cell finishes, the spare that ran it
    becomes the holder and the worker kills the old one; when a cell fails, the holder stays.
    """
    if cfg.get("session_ns") and private_scratch(cfg.get("session_scratch_mb", 256)):
        cwd = "/tmp"
    os.chdir(cwd)
    _harden(cfg, allow_fork=True)
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    while True:  # holder loop: we own the state and wait for the worker
        msg, fds = _sock_recv(sock)
        if msg is None:
            os._exit(0)
        if msg.get("op") not in ("spawn", "run"):
            for fd in fds:
                os.close(fd)
            continue
        pid = fork_session()
        if pid == 0:
            if msg["op"] == "spawn":  # spare: wait for the code
                msg, fds = _sock_recv(sock)
                while msg is not None and msg.get("op") != "run":
                    for fd in fds:
                        os.close(fd)
                    msg, fds = _sock_recv(sock)
                if msg is None:
                    os._exit(0)
            _run_session_cell(sock, ns, msg, fds)
            continue  # we are the holder now (the worker kills our parent)
        for fd in fds:
            os.close(fd)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except ChildProcessError:
                status = 0
                break
            except InterruptedError:
                continue
        _sock_send(sock, {"reaped": status, "pid": pid})


# ----------------------------------------------------------------------------- worker (pid 1)
class Worker:
    def __init__(self, cfg: dict, proto_in: int, proto_out: int):
        self.cfg = cfg
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.scratch = cfg["scratch"]
        self.sessions: dict[str, dict] = {}
        self.sweep = bool(cfg.get("harden")) and os.getpid() == 1
        self.spare: dict | None = None
        self.dying: set[int] = set()  # killed by us, not yet reaped: nothing left to do
        self.trash: list[str] = []  # scratch dirs of finished runs, removed off the request path

    # -- helpers
    def _mkdir(self, prefix: str) -> str:
        path = os.path.join(self.scratch, f"{prefix}-{os.urandom(12).hex()}")
        os.mkdir(path, 0o700)
        return path

    def _rmtree(self, path: str) -> None:
        import shutil

        shutil.rmtree(path, ignore_errors=True)

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.dying.discard(pid)

    def _kill_group(self, pgid: int) -> None:
        with contextlib.suppress(OSError):
            os.kill(pgid, signal.SIGKILL)  # the cell may not have made its group yet
        for _ in range(20):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            time.sleep(0.001)

    def _sweep(self, current_holder: int | None = None) -> None:
        """Kill every process in our pid namespace that has no business being alive.

        Only used as pid 1 of a private pid namespace (jail, docker). Alive may be: the worker,
        the stateless spare, session holders, and idle spares (children of holders other than
        the one whose cell just ran). Everything else was left behind by a cell, even if it
        changed its process group. Cheap when nothing is left behind: the count tells.
        """
        self._reap()
        if not self.sweep:
            return
        holders = {s["holder"] for s in self.sessions.values()}
        spare_parents = holders - {current_holder}
        legit = {os.getpid()} | holders
        if self.spare is not None:
            legit.add(self.spare["pid"])
        for _ in range(200):
            pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
            pids = [p for p in pids if p not in self.dying]
            if len(pids) <= len(legit) + len(spare_parents):
                return
            stray = [p for p in pids if p not in legit and self._ppid(p) not in spare_parents]
            if not stray:
                return
            for pid in stray:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)
            self._reap()

    @staticmethod
    def _ppid(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            return int(data[data.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            return -1

    def _collect(
        self, out_r: int, err_r: int, extra: int | None, deadline: float, limit: int, on_extra
    ):
        """Read cell output until both pipes close or on_extra says stop; enforce limits."""
        bufs = {out_r: bytearray(), err_r: bytearray()}
        open_fds = {out_r, err_r}
        total = 0
        reason = None
        stop = False
        poller = select.poll()
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        if extra is not None:
            poller.register(extra, select.POLLIN)
        while open_fds and not stop:
            left = deadline - time.monotonic()
            if left <= 0:
                reason = "timeout"
                break
            for fd, _ev in poller.poll(left * 1000):
                if fd == extra:
                    stop = on_extra()
                    if stop:
                        break
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                    poller.unregister(fd)
                    continue
                room = limit - total
                bufs[fd] += chunk[: max(room, 0)]
                total += len(chunk)
                if total > limit:
                    reason = "output_limit"
                    break
            if reason:
                break
        return bufs[out_r], bufs[err_r], reason, open_fds

    @staticmethod
    def _wait_exit(pid: int, deadline: float) -> bool:
        """Wait until pid exits or the deadline passes (a cell may close its pipes and spin)."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return True
        try:
            left = max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select([pidfd], [], [], left)
            return bool(ready)
        finally:
            os.close(pidfd)

    @staticmethod
    def _drain(fds: set[int], bufs: dict, limit_left: int, wait_s: float) -> None:
        end = time.monotonic() + wait_s
        while fds and limit_left > 0:
            left = end - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(list(fds), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    fds.discard(fd)
                    continue
                bufs[fd] += chunk[:limit_left]
                limit_left -= len(chunk)

    @staticmethod
    def _status_from_wait(status: int) -> tuple[int, str]:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in CRASH_SIGNALS:
                return -sig, "crashed"
            if sig in CPU_SIGNALS:
                return -sig, "timeout"
            return -sig, "killed_by_signal"
        code = os.WEXITSTATUS(status)
        return code, "ok" if code == 0 else "error"

    # -- requests
    def make_spare(self) -> None:
        """Fork the next stateless cell process ahead of time (off the request path)."""
        if self.spare is not None:
            return
        req_r, req_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        cwd = self._mkdir("run")
        pid = fork_cell()
        if pid == 0:
            _stateless_spare(self.cfg, req_r, out_w, err_w, ctl_w, cwd)
        for fd in (req_r, out_w, err_w, ctl_w):
            os.close(fd)
        self.spare = {
            "pid": pid,
            "req_w": req_w,
            "out_r": out_r,
            "err_r": err_r,
            "ctl_r": ctl_r,
            "cwd": cwd,
        }

    def drop_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                os.kill(spare["pid"], signal.SIGKILL)
            for key in ("req_w", "out_r", "err_r", "ctl_r"):
                os.close(spare[key])
            self._rmtree(spare["cwd"])
            self._reap()

    def run_stateless(self, req: dict) -> dict:
        t0 = time.monotonic()
        self.make_spare()
        sp, self.spare = self.spare, None
        pid, out_r, err_r, ctl_r = sp["pid"], sp["out_r"], sp["err_r"], sp["ctl_r"]
        with contextlib.suppress(OSError):  # the spare died: reported below from its wait status
            write_frame(sp["req_w"], req)
        os.close(sp["req_w"])
        deadline = t0 + req["timeout_s"]
        limit = req["max_output_bytes"]
        out, err, reason, _open = self._collect(out_r, err_r, None, deadline, limit, None)
        ctl = b""
        if not reason:
            # Pipes closed: the verdict is on ctl (or the process died without one).
            r, _, _ = select.select([ctl_r], [], [], max(deadline - time.monotonic(), 0.0))
            if r:
                with contextlib.suppress(OSError):
                    ctl = os.read(ctl_r, 4096)
            else:
                reason = "timeout"
        info = None
        if ctl and not reason:
            with contextlib.suppress(ValueError):
                info = json.loads(ctl)
        if reason:
            self._kill_group(pid)
        if info is None:
            _, status = os.waitpid(pid, 0)
            exit_code, kind = self._status_from_wait(status)
        else:
            exit_code, kind = int(info.get("exit", 1)), str(info.get("kind", "error"))
        for fd in (out_r, err_r, ctl_r):
            os.close(fd)
        self.trash.append(sp["cwd"])  # removed after the reply is sent
        if reason:
            exit_code, kind = None, reason
        return self._result(out, err, exit_code, kind, t0)

    @staticmethod
    def _result(out, err, exit_code, status, t0) -> dict:
        return {
            "stdout": bytes(out).decode("utf-8", "replace"),
            "stderr": bytes(err).decode("utf-8", "replace"),
            "exit_code": exit_code,
            "status": status,
            "duration_s": time.monotonic() - t0,
        }

    def open_session(self, sid: str) -> dict:
        if sid in self.sessions:
            return {"ok": True}
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cwd = self._mkdir("sess")
        pid = os.fork()
        if pid == 0:
            try:
                _close_fds_except({theirs.fileno()})
                _session_holder(theirs, self.cfg, cwd)
            finally:
                os._exit(1)
        theirs.close()
        self.sessions[sid] = {"sock": mine, "holder": pid, "dir": cwd}
        self._spawn(self.sessions[sid])
        return {"ok": True}

    @staticmethod
    def _spawn(sess: dict) -> None:
        with contextlib.suppress(OSError):
            _sock_send(sess["sock"], {"op": "spawn"})

    def close_session(self, sid: str) -> dict:
        sess = self.sessions.pop(sid, None)
        if sess is None:
            return {"ok": True}
        sess["sock"].close()
        with contextlib.suppress(OSError):
            os.kill(sess["holder"], signal.SIGKILL)
        self._sweep()  # its spare, now without a holder to vouch for it, goes too
        self._rmtree(sess["dir"])
        return {"ok": True}

    def run_session(self, req: dict) -> dict:
        t0 = time.monotonic()
        sess = self.sessions.get(req["session"])
        if sess is None:
            return {
                **self._result(b"", b"session is not open\n", None, "crashed", t0),
                "session_lost": True,
            }
        sock: socket.socket = sess["sock"]
        cell = os.urandom(8).hex()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        code_fd = os.memfd_create("cell", 0)
        os.write(code_fd, req["code"].encode("utf-8", "surrogatepass"))
        os.lseek(code_fd, 0, os.SEEK_SET)
        msg = {
            "op": "run",
            "timeout_s": req["timeout_s"],
            "memory_mb": req["memory_mb"],
            "cell": cell,
        }
        try:
            _sock_send(sock, msg, [code_fd, out_w, err_w])
        except OSError:
            for fd in (code_fd, out_w, err_w, out_r, err_r):
                os.close(fd)
            return self._session_lost(req["session"], b"", b"", t0)
        for fd in (code_fd, out_w, err_w):
            os.close(fd)
        state: dict = {"started": None, "done": None, "reaped": None, "gone": False}

        def on_msg() -> bool:
            try:
                got, fds = _sock_recv(sock)
            except OSError:
                got, fds = None, []
            except ValueError:  # garbage written by the cell itself: ignore it
                return finished()
            for fd in fds:
                os.close(fd)
            if not isinstance(got, dict) and got is not None:
                return finished()
            if got is None:
                try:  # EOF, or an empty packet forged by the cell? The holder tells.
                    os.kill(sess["holder"], 0)
                    r, _, _ = select.select([sock], [], [], 0)
                    if not r:
                        return finished()
                    peek = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    if peek:
                        return finished()
                except OSError:
                    pass
                state["gone"] = True
                return True
            if got.get("cell") == cell and "started" in got and state["started"] is None:
                state["started"] = got["started"]
            elif got.get("cell") == cell and "done" in got and got["done"] == state["started"]:
                state["done"] = got
            elif (
                "reaped" in got
                and state["started"] is not None
                and got.get("pid") == state["started"]
            ):
                state["reaped"] = got["reaped"]
            # anything else is stale (an idle spare that died) or forged by a cell's children
            return finished()

        def finished() -> bool:
            return state["done"] is not None or state["reaped"] is not None or state["gone"]

        deadline = t0 + req["timeout_s"]
        limit = req["max_output_bytes"]
        out, err, reason, open_fds = self._collect(
            out_r, err_r, sock.fileno(), deadline, limit, on_msg
        )
        while not reason and not finished():
            # Both pipes closed (the cell died, or closed them): wait for the verdict.
            left = deadline - time.monotonic()
            if left <= 0:
                reason = "timeout"
                break
            r, _, _ = select.select([sock], [], [], left)
            if r:
                on_msg()
        bufs = {out_r: out, err_r: err}
        if not reason:
            self._drain(open_fds, bufs, limit - len(out) - len(err), 0.05)
        for fd in (out_r, err_r):
            os.close(fd)
        if state["gone"]:
            return self._session_lost(req["session"], out, err, t0)
        if reason:
            return self._abort_cell(sess, state, on_msg, out, err, reason, t0)
        if state["done"] is not None and state["done"].get("discard"):
            # The cell failed and left processes behind: it killed itself, the holder stays.
            self._sweep(current_holder=sess["holder"])
            self._spawn(sess)
            return self._result(out, err, state["done"]["exit"], state["done"]["kind"], t0)
        if state["done"] is not None:
            # Commit: the cell process becomes the holder; the old holder goes away.
            old, sess["holder"] = sess["holder"], state["done"]["done"]
            with contextlib.suppress(OSError):
                os.kill(old, signal.SIGKILL)
                self.dying.add(old)
            self._sweep(current_holder=sess["holder"])
            self._spawn(sess)
            return self._result(out, err, state["done"]["exit"], state["done"]["kind"], t0)
        self._sweep(current_holder=sess["holder"])
        self._spawn(sess)
        exit_code, kind = self._status_from_wait(state["reaped"])
        return self._result(out, err, exit_code, kind, t0)

    def _session_lost(self, sid: str, out, err, t0) -> dict:
        """Its processes are all gone (killed from outside): drop it; the host reopens it."""
        self.close_session(sid)
        msg = b"\nsandbox session was lost (its processes were killed); state is gone\n"
        return {**self._result(out, err + msg, None, "crashed", t0), "session_lost": True}

    def _abort_cell(self, sess, state, on_msg, out, err, reason, t0) -> dict:
        sock = sess["sock"]
        end = time.monotonic() + 2.0
        while state["started"] is None and not state["gone"] and time.monotonic() < end:
            r, _, _ = select.select([sock], [], [], 0.1)
            if r:
                on_msg()
        if state["started"] is not None:
            self._kill_group(state["started"])
            end = time.monotonic() + 2.0
            while state["reaped"] is None and not state["gone"] and time.monotonic() < end:
                r, _, _ = select.select([sock], [], [], 0.1)
                if r:
                    on_msg()
        self._sweep(current_holder=sess["holder"])
        self._spawn(sess)
        return self._result(out, err, None, reason, t0)

    def serve(self) -> None:
        write_frame(self.proto_out, {"ready": True, "pid": os.getpid()})
        while True:
            req = read_frame(self.proto_in)
            if req is None:
                return
            op = req.get("op")
            try:
                if op == "run" and req.get("session"):
                    resp = self.run_session(req)
                elif op == "run":
                    resp = self.run_stateless(req)
                elif op == "open":
                    resp = self.open_session(req["session"])
                elif op == "close":
                    resp = self.close_session(req["session"])
                elif op == "ping":
                    resp = {"ok": True, "sessions": len(self.sessions)}
                else:
                    resp = {"error": f"unknown op {op!r}"}
            except Exception as e:  # keep serving: report the worker-side failure
                resp = {
                    "stdout": "",
                    "stderr": f"sandbox worker error: {type(e).__name__}: {e}\n",
                    "exit_code": None,
                    "status": "crashed",
                    "duration_s": 0.0,
                }
            write_frame(self.proto_out, resp)
            while self.trash:
                self._rmtree(self.trash.pop())
            self._reap()
            if op == "run" and not req.get("session"):
                with contextlib.suppress(OSError):
                    self.make_spare()


def main() -> None:
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    cfg.setdefault("scratch", "/tmp")
    for path in cfg.get("site", []):
        sys.path.insert(0, path)
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    with contextlib.suppress(Exception):
        _libc.mallopt(-8, 2)  # M_ARENA_MAX: fewer per-thread arenas keeps RLIMIT_AS usable
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: cells (same uid) cannot open /proc/<worker>/mem
    if os.getpid() != 1:
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphaned cells come back to us to be reaped
    for name in cfg.get("preload", ["math", "numpy", "sympy"]):
        with contextlib.suppress(Exception):
            __import__(name)
    if cfg.get("harden"):
        prepare_seccomp()
    import gc

    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) preloaded objects in cells
    if cfg.get("hugepages", True):
        collapse_hugepages()
    _BASE_VM[0] = _vm_bytes()
    _FAST_FORK[0] = _single_threaded() and not os.environ.get("TIRGYM_SANDBOX_OS_FORK")
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if not cfg.get("keep_stderr"):
        os.dup2(devnull, 2)
    os.close(devnull)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    Worker(cfg, proto_in, proto_out).serve()


if __name__ == "__main__":
    main()
