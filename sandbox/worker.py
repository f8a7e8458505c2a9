"""The process that runs inside every sandbox slot (jail, docker or local).

Standalone on purpose: it is copied into the jail and the container, so it imports only the
standard library (plus pyseccomp when hardening). It pre-imports the heavy modules once and
then forks a child per cell, so a cell costs a fork instead of an interpreter start.

Protocol with the host: 4-byte big-endian length + JSON, on the fds that were stdin/stdout
at start. Requests: ping, run (stateless when no session), open, close. One request at a time.

Sessions: a holder process keeps the namespace. A cell runs in a fork of the holder (the
spare); when it finishes, it kills and reaps whatever it started, forks its own spare and
becomes the new holder, and the old one is killed, so a cell that times out, segfaults or
fork-bombs is simply discarded and the state from before it is intact. Between its turns a
session's holder and spare are stopped (SIGSTOP) and everything else of it is killed, so
nothing a cell left behind runs on another tenant's time, and a "done" a cell forged buys it
nothing. The worker takes the pids of session processes from the kernel (SCM_CREDENTIALS),
never from a message, and a stateless run's verdict from its exit status, never from the cell.

Isolation between the sessions (and stateless cells) of one slot, cfg["isolation"] (details
in the "isolation" section below): "ns" (jail) puts every session in pid, mount, IPC, network
and user namespaces of its own, under an init that outlives its holders, and stateless cells
in one more pid namespace; "uid" (docker, where namespaces are forbidden) runs every session
as a uid of its own; "none" (local) shares everything. After a stateless run the worker
removes whatever it left where stateless cells can write, so runs share nothing.

Sections, in file order (each starts with a `# ---- name` rule):
    framing         length-prefixed JSON on the protocol fds; datagrams with fds and the
                    sender's kernel-reported pid on session sockets
    forking         cheap forks of the preloaded worker (fork_cell, fork_session, huge pages)
    hardening       rlimits, the seccomp filter (compiled once), capabilities
    isolation       per-session namespaces (jail), per-session uids (docker), Landlock scopes
    cell execution  running a cell's code; the pre-forked stateless spare
    session holder  the process that keeps a session's state; a session's init (jail)
    worker (pid 1)  StatelessSpare, SessionProcs, CellState and the Worker: requests, sweeps,
                    scratch cleanup
    entry point     main(): isolation, preloading, then serve requests
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
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
from dataclasses import dataclass

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


_CREDS = struct.Struct("iII")  # struct ucred: pid, uid, gid


def _recv_creds(sock: socket.socket) -> tuple[dict | None, list[int], int | None]:
    """Receive a message, its fds, and the sender's pid as the kernel reports it in our pid
    namespace (SO_PASSCRED on our end): a cell can lie in the JSON, not about its pid."""
    anc = socket.CMSG_SPACE(8 * 4) + socket.CMSG_SPACE(_CREDS.size)
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 16, anc)
    fds: list[int] = []
    pid = None
    for level, kind, cdata in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            n = len(cdata) - len(cdata) % 4
            fds.extend(struct.unpack(f"{n // 4}i", cdata[:n]))
        elif kind == socket.SCM_CREDENTIALS and len(cdata) >= _CREDS.size:
            pid = _CREDS.unpack(cdata[: _CREDS.size])[0]
    if not data:
        return None, fds, pid
    try:
        return json.loads(data), fds, pid
    except (ValueError, RecursionError) as e:  # a cell may write anything on this socket
        for fd in fds:
            os.close(fd)
        raise ValueError("not a message") from e


# ----------------------------------------------------------------------------- forking
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
        pid = os.fork()
    else:
        pid = _libc.fork()
        if pid < 0:
            raise OSError(ctypes.get_errno(), "fork failed")
        if pid == 0:
            import random

            random.seed()  # what os.fork's hook would do: cells must not share a random stream
    if pid == 0 and _BOOSTED[0]:
        _BOOSTED[0] = False
        os.setpriority(os.PRIO_PROCESS, 0, 0)  # only the worker itself runs above the rest
    return pid


_FAST_FORK = [False]
_BOOSTED = [False]
WORKER_NICE = -20


def boost_worker() -> bool:
    """Run at nice -20 where we may (CAP_SYS_NICE: the docker backend grants it the worker).

    nice 19 has weight 15 to the worker's 1024 at nice 0, so the 500 processes of a setsid
    fork bomb out-weigh it seven to one in the container's CPU share: the worker then took
    seconds to see the timeout and to fork the freezer, and missed the host's watchdog. At
    -20 (weight 88761) it keeps over 90% of the CPU against a full process budget. What the
    worker forks starts back at 0 (fork_cell), so no cell runs above another tenant.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, 0, WORKER_NICE)
    except OSError:
        return False
    _BOOSTED[0] = True
    return True


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
    # Memory and channels outside every limit and every scratch directory: SysV IPC and POSIX
    # message queues outlive the cell (docker shares one IPC namespace between sessions), and
    # memfd pages count against no memory_mb. POSIX shm (/dev/shm) stays: a size-capped tmpfs.
    "shmget",
    "semget",
    "msgget",
    "mq_open",
    "memfd_create",
    "memfd_secret",
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


def _drop_bounding_set() -> None:
    for cap in range(64):
        if _libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # PR_CAPBSET_DROP up to the last capability the kernel knows


_CAP_HEADER = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
_CAP_NONE = (_CapData * 2)()
_CAPSET_ARGS = (ctypes.byref(_CAP_HEADER), _CAP_NONE)


def _clear_caps() -> None:
    """Empty the effective, permitted and inheritable sets (one capset call).

    The arguments are built once in the worker: building ctypes objects in a freshly forked
    cell writes to (and so copies) dozens of shared pages, ~0.3 ms per cell.
    """
    if _libc.capset(*_CAPSET_ARGS) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _drop_caps() -> None:
    _drop_bounding_set()
    _clear_caps()


# ----------------------------------------------------------------------------- isolation
# Sessions (and stateless cells) that share a slot must not reach each other. Two mechanisms,
# chosen by cfg["isolation"]:
#
# "ns" (jail): the worker enters a user namespace of its own (mapping only its uid), becomes
#   pid 1 of a pid namespace it owns, and then gives every session a fresh pid namespace
#   (the session's init is pid 1 there), mount namespace (private /tmp, /dev/shm and /proc),
#   IPC and network namespace, and a user namespace (its own process count). Stateless cells
#   live in one more pid namespace with its own /proc, each run in a mount namespace of its own
#   with a fresh /tmp and /dev/shm. The jail's /dev is read-only and every session mounts a
#   devpts of its own. A cell can only name processes of its own namespace, so it cannot
#   signal, ptrace, prlimit or even list another session's processes, nor open their files
#   through /proc/PID/root or /tmp.
# "uid" (docker, whose seccomp profile forbids namespaces): the worker runs as root with only
#   CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_CHOWN; every session gets a uid of its own and a
#   0700 scratch directory owned by it, stateless cells run as another uid. Changing to a
#   non-root uid clears every capability, so a cell can signal only its own session's
#   processes and read only its own files (/tmp itself is 0711: nothing to list).
# "none" (local): no isolation.
# Where the kernel has Landlock ABI 6 (Linux 6.12), every session and stateless cell also gets
# a Landlock domain of its own that scopes signals and abstract unix sockets to it (_harden):
# a second wall in the jail, and in docker the one that keeps sessions (which share a network
# namespace there) from connecting to each other's abstract sockets.

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
SHM = "/dev/shm"
PTS_OPTS = "newinstance,ptmxmode=0666,mode=0620"

# Filled by _ns_bootstrap/_stateless_pidns in the worker (jail): namespace fds and init pid.
_NS: dict[str, int] = {}


def _sys(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _sys(
        _libc.mount(
            src.encode() if src else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _enter_userns() -> None:
    """unshare(CLONE_NEWUSER) mapping only our own uid and gid.

    The full capability set this grants covers only namespaces created from here on, never
    the jail's own mounts, network or the host.
    """
    uid, gid = os.getuid(), os.getgid()
    _prctl(4, 1)  # the map files of a non-dumpable process are not ours to write
    _sys(_libc.unshare(CLONE_NEWUSER), "unshare(user)")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _prctl(4, 0)


def _mount_proc() -> None:
    """A /proc that shows only our pid namespace (read-only where bwrap made it so)."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for sub in ("sys", "sysrq-trigger", "irq", "bus"):
        path = f"/proc/{sub}"
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _setns(fd: int, nstype: int) -> None:
    _sys(_libc.setns(fd, nstype), "setns")


def _default_signals() -> dict:
    """SIG_DFL for every signal; returns the previous Python-level handlers.

    A namespace's init gets only the signals it has a handler for from inside its namespace:
    with none (not even Python's SIGINT handler) no cell can make it exit.
    """
    saved = {}
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            saved[sig] = signal.signal(sig, signal.SIG_DFL)
    return saved


def _restore_signals(saved: dict) -> None:
    for sig, handler in saved.items():
        if handler is not None and handler != signal.SIG_DFL:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.signal(sig, handler)


def _ns_bootstrap() -> None:
    """Jail: become pid 1 of a pid namespace owned by a user namespace of our own.

    Our capabilities there let us (and only us) create namespaces for sessions and switch the
    pid namespace our next child is born in. The original process stays behind as the jail's
    pid 1 and only waits; the protocol fds go with the new worker.
    """
    _enter_userns()
    _sys(_libc.unshare(CLONE_NEWPID), "unshare(pid)")
    pid = os.fork()
    if pid != 0:
        os.closerange(0, 1 << 16)
        _default_signals()
        while True:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                os._exit(1)
            except InterruptedError:
                continue
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    _sys(_libc.unshare(CLONE_NEWNS), "unshare(mnt)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount_proc()
    _NS["own_pid"] = os.open("/proc/self/ns/pid", os.O_RDONLY)


def _stateless_pidns() -> None:
    """Jail: a pid namespace (and a /proc showing only it) for stateless cells.

    Its init only sleeps; stateless cells are forked into it by the worker, so they cannot see
    or signal session processes (which live in their own namespaces beside this one).
    """
    _sys(_libc.unshare(CLONE_NEWPID), "unshare(pid)")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            _close_fds_except({theirs.fileno()})
            _sys(_libc.unshare(CLONE_NEWNS), "unshare(mnt)")
            _mount_proc()
            fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)
            socket.send_fds(theirs, [b"ok"], [fd])
            os.close(fd)
            theirs.close()
            _drop_caps()
            _default_signals()
            _prctl(4, 0)
        except BaseException as e:
            with contextlib.suppress(OSError):
                theirs.send(f"stateless namespace setup failed: {e}".encode())
            os._exit(71)
        while True:
            signal.pause()
    theirs.close()
    msg, fds, _flags, _addr = socket.recv_fds(mine, 4096, 1)
    mine.close()
    if msg != b"ok" or len(fds) != 1:
        raise OSError(errno.EPERM, msg.decode(errors="replace") or "stateless init died")
    # Our children are born in this namespace from now on: stateless cells need no switch.
    _NS["pid_s"] = os.open("/proc/self/ns/pid_for_children", os.O_RDONLY)
    _NS["mnt_s"] = fds[0]
    _NS["init_s"] = pid


def _fork_session_init() -> int:
    """Fork a child born as pid 1 of a fresh pid namespace (a session's init).

    Our next child is born in the stateless namespace by default (so a stateless cell costs
    no namespace switch); a new namespace can only be made from our own, so switch there and
    back around this fork.
    """
    _setns(_NS["own_pid"], CLONE_NEWPID)
    try:
        _sys(_libc.unshare(CLONE_NEWPID), "unshare(pid)")
        pid = fork_cell()
    except BaseException:
        _setns(_NS["pid_s"], CLONE_NEWPID)
        raise
    if pid != 0:
        _setns(_NS["pid_s"], CLONE_NEWPID)
    return pid


def _become_uid(uid: int) -> None:
    """Docker: drop root for good (clears every capability), as uid:uid.

    The worker has already dropped its supplementary groups and set umask 077 (files a cell
    makes where every uid can write, /dev/shm, are its own alone); cells inherit both.
    """
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # raises if it fails: then no cell runs


def _stop_all_of(uid: int) -> None:
    """kill(-1, SIGSTOP) as uid, from the worker itself: every process of uid, in one pass.

    A helper forked to send it under a fork bomb waited seconds for a CPU (the bomb holds
    the container's CPU quota), so the worker takes uid for the one call, keeping saved uid
    0 to come back. Only pid 1 may: the kernel drops the signals a namespace's init gets
    from inside it unless it handles them, and SIGINT, its only handler, is ignored for the
    moment, so uid's processes cannot reach the worker while it shares their uid.
    """
    if os.getpid() != 1:
        raise OSError(errno.EPERM, "only the namespace's init may take a tenant's uid")
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setresuid(uid, uid, 0)
        try:
            os.kill(-1, signal.SIGSTOP)  # every process of uid but this one (and pid 1)
        finally:
            os.setresuid(0, 0, 0)
    finally:
        signal.signal(signal.SIGINT, handler)


def _session_uid_range() -> tuple[int, int]:
    """(first uid, how many) for per-session uids in docker.

    Without a remapped user namespace any uid exists: take 2^20 of them at a random place
    high up, so that two containers rarely share one (a uid's process count is host-wide).
    Under userns-remap or rootless docker only the mapped uids exist (often 0-65535).
    """
    try:
        with open("/proc/self/uid_map") as f:
            ranges = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    except (OSError, ValueError):
        ranges = []
    if not ranges or any(start == 0 and count >= 1 << 31 for start, _, count in ranges):
        return (1 << 24) + (int.from_bytes(os.urandom(2), "big") << 12), 1 << 20
    start, _outside, count = max(ranges, key=lambda r: r[2])
    low = start + min(10000, count // 4)  # above system and login uids
    high = min(start + count, 65534) if start < 65534 else start + count  # below nobody
    if high - low < 16:
        raise OSError(errno.ERANGE, f"too few uids mapped for per-session uids: {ranges}")
    return low, high - low


def _proc_uid(pid: int) -> int | None:
    """The real uid of pid (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _set_fsuid(uid: int) -> None:
    _libc.setfsgid(uid)
    _libc.setfsuid(uid)


def _private_scratch(cfg: dict) -> None:
    """Fresh tmpfs on /tmp and /dev/shm, capped in bytes and in inodes, for this mount
    namespace alone. The kernel frees them with the namespace, in the context of its last
    process: no one walks millions of files a cell made, least of all on another's clock."""
    uid, gid = os.getuid(), os.getgid()
    opts = (
        f"size={cfg.get('scratch_mb', 256) * MB},nr_inodes={cfg.get('scratch_inodes', 65536)},"
        f"mode=0700,uid={uid},gid={gid}"
    )
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts)
    if os.path.isdir(SHM):
        _mount("tmpfs", SHM, "tmpfs", MS_NOSUID | MS_NODEV, opts)


def _session_private_ns(cfg: dict) -> None:
    """In a session's init (pid 1 of its own pid namespace): everything the session owns.

    New mount, IPC and network namespaces; a private tmpfs on /tmp and /dev/shm and a devpts of
    its own (the jail's /dev is read-only); a /proc of this pid namespace only; then a user
    namespace of its own (so its process count is its own) and no capabilities at all.
    """
    flags = CLONE_NEWNS | CLONE_NEWIPC | (CLONE_NEWNET if cfg.get("session_netns", True) else 0)
    _sys(_libc.unshare(flags), "unshare(mnt|ipc|net)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _private_scratch(cfg)
    if os.path.isdir("/dev/pts"):
        try:  # ptys that no other session (nor a stateless run) can open
            _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, PTS_OPTS)
        except OSError:  # no devpts here: no ptys rather than shared ones
            _mount("tmpfs", "/dev/pts", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    _mount_proc()
    _enter_userns()
    _drop_caps()


class _LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_RESTRICT_SELF = 444, 446  # same on every arch
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, LANDLOCK_SCOPE_SIGNAL = 0x1, 0x2
_LANDLOCK_ABI = [0]  # probed once in the worker; scopes need ABI 6 (Linux 6.12)


_LANDLOCK_ATTR = _LandlockRulesetAttr(
    0, 0, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL
)
# Built once in the worker (see _clear_caps): create_ruleset(attr, size, 0); restrict_self(fd, 0)
_LANDLOCK_CREATE = (
    ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
    ctypes.byref(_LANDLOCK_ATTR),
    ctypes.c_size_t(ctypes.sizeof(_LANDLOCK_ATTR)),
    ctypes.c_uint32(0),
)
_LANDLOCK_RESTRICT = ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF)


def _probe_landlock() -> None:
    abi = _libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1)
    )
    _LANDLOCK_ABI[0] = max(abi, 0)


def _landlock_scope() -> None:
    """Enter a Landlock domain of our own that scopes abstract unix sockets and signals.

    Every session (and every stateless cell) gets its own domain, inherited by all it forks:
    it can then connect only to abstract sockets and signal only processes of its own domain.
    In the jail the namespaces already do this; in docker, where sessions share one network
    namespace, it is what keeps one session from connecting to another's abstract socket.
    """
    if _LANDLOCK_ABI[0] < 6:
        return
    fd = _libc.syscall(*_LANDLOCK_CREATE)
    ok = fd >= 0 and _libc.syscall(_LANDLOCK_RESTRICT, fd, 0) == 0
    err = ctypes.get_errno()
    if fd >= 0:
        os.close(fd)
    if not ok:  # the kernel said it can, so fail closed
        os.write(2, f"sandbox: could not enter a Landlock domain (errno {err})\n".encode())
        os._exit(70)


def _harden(cfg: dict, allow_fork: bool, landlock: bool = True) -> None:
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: other processes of this uid cannot read our /proc/PID/*
    _base_limits(cfg)
    if cfg.get("harden"):
        _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS
        if landlock:
            _landlock_scope()
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


def _install_stdio(out_fd: int, err_fd: int) -> None:
    """Make fds 0, 1, 2 the null device and the cell's pipes, whatever fds they arrived on.

    A session cell may have closed 0-2 (os.close(1)); the pipes of the next cell then arrive on
    those numbers, and a naive dup2/close sequence would close the very fd it just installed.
    """
    devnull = os.open(os.devnull, os.O_RDONLY)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (devnull, out_fd, err_fd)]
    for fd in {devnull, out_fd, err_fd}:
        os.close(fd)
    for target, fd in enumerate(high):
        os.dup2(fd, target)
        os.close(fd)


def _fresh_text_streams() -> None:
    """Give a session cell working sys.stdout/stderr even if an earlier cell closed them."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        try:
            usable = stream is not None and not stream.closed and stream.fileno() == fd
        except (AttributeError, ValueError, OSError):
            usable = False
        if not usable:
            errors = "backslashreplace" if fd == 2 else "strict"
            setattr(sys, name, open(fd, "w", encoding="utf-8", errors=errors, closefd=False))  # noqa: SIM115


_IN_CELL = [False]  # True while user code runs in this process (see _lowest_priority)


def _lowest_priority() -> None:
    """At fork, in the child: processes a cell starts run at the lowest priority (nice 19).

    A fork bomb is hundreds of runnable processes; at the worker's own priority they would
    starve the very worker that has to kill them (and every other tenant's turn)."""
    if _IN_CELL[0]:
        with contextlib.suppress(OSError):
            os.nice(19)


os.register_at_fork(after_in_child=_lowest_priority)


def _into_cell(out_fd: int, err_fd: int, timeout_s: float, memory_mb: int) -> None:
    _IN_CELL[0] = True
    os.setpgid(0, 0)
    _install_stdio(out_fd, err_fd)
    _fresh_text_streams()
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    _cell_limits(timeout_s, memory_mb)


def _stateless_spare(
    cfg: dict, req_r: int, out_w: int, err_w: int, ctl_w: int, cwd: str, keep: set[int]
) -> None:
    """A pre-forked, already hardened cell process that waits for its code.

    Everything that does not depend on the request (fds, process group, seccomp, cwd) is done
    before the request arrives, so a run costs only the wake-up and the code itself.
    """
    code = 1
    try:
        mnt = _NS.get("mnt_s")
        _close_fds_except(keep)
        try:
            if mnt is not None:
                # Jail: the stateless namespace's /proc; a mount namespace of this run's own
                # with a fresh /tmp and /dev/shm (nothing to clean up after it); no capabilities.
                _setns(mnt, CLONE_NEWNS)
                os.close(mnt)
                _sys(_libc.unshare(CLONE_NEWNS), "unshare(mnt)")
                _private_scratch(cfg)
                _clear_caps()
            elif cfg.get("isolation") == "uid":
                _become_uid(cfg["stateless_uid"])
        except OSError as e:
            os.write(err_w, f"sandbox: could not isolate the cell: {e}\n".encode())
            raise
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (devnull, out_w, err_w):
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        # Jail: stateless cells have no network namespace or pid in common with any session,
        # so the per-cell Landlock domain would only cost time; docker needs it.
        _harden(cfg, allow_fork=False, landlock=cfg.get("isolation") != "ns")
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
FD_HEADROOM = 8  # free fds a holder needs to receive a cell (code, stdout, stderr) and fork


def _children() -> list[int]:
    """Pids of this process's children (any thread's), from /proc."""
    out: list[int] = []
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/self/task/{tid}/children") as f:
            out.extend(int(p) for p in f.read().split())
    return out


def _end_children() -> bool:
    """Kill and reap every child the cell left (running or zombie); True if there were any.

    Nothing a cell started may run once it has returned, and zombies it never waited for
    would count against the session's process budget for the rest of its life.
    """
    had = False
    for _ in range(100):
        kids = _children()
        if not kids:
            break
        had = True
        for pid in kids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, _status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
    return had


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _run_session_cell(sock: socket.socket, ns: dict, msg: dict, fds: list[int]) -> dict:
    """In the spare: run one cell; return its "done" record if its state is to be kept.

    A failed cell that left processes behind (a fork bomb that ended in EAGAIN, say), or a
    cell that leaves too few free fds for the next one to arrive, is discarded like a timeout:
    this process exits and the holder keeps the state from before it.
    """
    code_fd, out_w, err_w = fds
    _sock_send(sock, {"started": os.getpid(), "cell": msg["cell"]})
    with os.fdopen(code_fd, "r", encoding="utf-8", errors="surrogatepass") as f:
        code = f.read()
    _into_cell(out_w, err_w, msg["timeout_s"], msg["memory_mb"])
    exit_code, kind = _exec_code(code, ns, display_last=True)
    _IN_CELL[0] = False
    left = _end_children()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    reason = ""
    if nofile != resource.RLIM_INFINITY and _open_fds() > nofile - FD_HEADROOM:
        reason = f"sandbox: the cell left too many files open (limit {nofile}); its changes were discarded\n"
        exit_code, kind = 1, "error"
    if reason:
        with contextlib.suppress(OSError):
            os.write(2, reason.encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    if devnull > 2:
        os.close(devnull)
    done = {"done": os.getpid(), "exit": exit_code, "kind": kind, "cell": msg["cell"]}
    if reason or (kind != "ok" and left):
        _sock_send(sock, {**done, "discard": True})
        os._exit(1)
    _relax_cell_limits()
    return done


def _await_run(sock: socket.socket) -> tuple[dict, list[int]]:
    """In a spare: wait for the worker's run request (anything else is ignored)."""
    while True:
        msg, fds = _sock_recv(sock)
        if msg is None:
            os._exit(0)
        if msg.get("op") == "run" and len(fds) == 3:
            return msg, fds
        for fd in fds:
            os.close(fd)


def _session_holder(sock: socket.socket, cfg: dict, cwd: str, harden: bool = True) -> None:
    """Keep a session's state; every cell runs in a fork of it (the spare).

    The holder forks a spare (a copy of the state, waiting for code) when the worker says
    "spawn". When a cell finishes and its state is kept, the spare that ran it becomes the
    holder: it forks its own spare first and only then reports "done", so that when the worker
    hears "done" the next spare exists and the worker can stop both (SIGSTOP) until the
    session's next turn. When a cell fails, the old holder stays and reports "reaped".
    The worker learns every sender's pid from the kernel (SCM_CREDENTIALS), not from us.
    """
    os.chdir(cwd)
    if harden:
        _harden(cfg, allow_fork=True)
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    _sock_send(sock, {"ready": os.getpid()})
    done: dict | None = None
    while True:
        if done is None:  # wait for the worker's go-ahead before forking a spare
            msg, fds = _sock_recv(sock)
            if msg is None:
                os._exit(0)
            for fd in fds:
                os.close(fd)
            if msg.get("op") != "spawn":
                continue
        try:
            pid = fork_session()
        except OSError as e:
            if done is not None:
                _sock_send(sock, done)
                done = None
            _sock_send(sock, {"spawn_failed": e.errno})
            continue
        if pid == 0:
            done = _run_session_cell(sock, ns, *_await_run(sock))
            continue  # we are the holder now: fork our spare, then report
        if done is not None:
            _sock_send(sock, done)
            done = None
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


def _session_init(sock: socket.socket, cfg: dict) -> None:
    """Jail: pid 1 of one session's own pid namespace; the holder chain lives below it.

    Holders come and go (each committed cell becomes the next holder), so the namespace's init
    must be a process that stays: it sets the namespaces up, forks the first holder and then
    only reaps. It has no signal handlers, so nothing inside the namespace can make it exit;
    when the worker kills it, the kernel kills the whole session with it.
    """
    try:
        _session_private_ns(cfg)
    except BaseException as e:
        with contextlib.suppress(OSError):
            _sock_send(sock, {"error": f"could not give the session its own namespaces: {e}"})
        os._exit(71)
    saved = _default_signals()
    _harden(cfg, allow_fork=True)
    pid = fork_cell()
    if pid == 0:
        _restore_signals(saved)
        _session_holder(sock, cfg, "/tmp", harden=False)
        os._exit(0)
    sock.close()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            os._exit(0)


def _remove_tree(top: str, keep_top: bool = False) -> None:
    """Remove a directory tree without recursion (a cell may nest directories very deep)
    and without giving up on a directory a cell made unreadable (mode 0000)."""
    stack, dirs = [top], []
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except PermissionError:
            try:
                os.chmod(d, 0o700)
                it = os.scandir(d)
            except OSError:
                continue
        except OSError:
            continue
        dirs.append(d)
        with it:
            for entry in it:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir:
                    stack.append(entry.path)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
    for d in reversed(dirs[1:] if keep_top else dirs):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _silent_failure(exit_code: int | None, status: str) -> str:
    """The one line a failed cell that printed nothing gets, so no failure is mute."""
    if exit_code is not None and exit_code < 0:
        with contextlib.suppress(ValueError):
            return f"sandbox: the cell was killed by {signal.Signals(-exit_code).name}\n"
    if exit_code is None:
        return f"sandbox: the cell ended without reporting an exit status ({status})\n"
    return f"sandbox: the cell exited with code {exit_code}\n"


# ----------------------------------------------------------------------------- worker (pid 1)
def _scratch_used(mounts: tuple[str, ...]) -> tuple[int, int]:
    """(bytes, inodes) in use on the given tmpfs mounts, from statvfs (O(1))."""
    used_b = used_i = 0
    for m in mounts:
        st = os.statvfs(m)
        used_b += (st.f_blocks - st.f_bfree) * st.f_frsize
        used_i += st.f_files - st.f_ffree
    return used_b, used_i


class ScratchMeter:
    """uid isolation: what each tenant's files take on the tmpfs mounts all tenants share.

    Docker tenants write to /tmp (each in a 0700 dir of its own) and /dev/shm, and tmpfs has
    no per-uid quota here, so one tenant could fill both and leave every other one ENOSPC.
    The worker counts instead: while a cell runs nothing else writes there (other sessions
    are stopped between their turns, background cleaners are paused), so the change in the
    mounts' usage is that cell's own. A tenant past its budget (scratch_mb, scratch_inodes:
    what the jail gives each session in a tmpfs of its own) is stopped: a stateless cell
    fails, a session's cell is discarded as on a timeout (the session keeps its state from
    before the cell, and the files it holds count on). Nobody else sees ENOSPC.
    """

    MOUNTS = ("/tmp", "/dev/shm")

    def __init__(self, max_bytes: int, max_inodes: int):
        self.limit = (max_bytes, max_inodes)
        self.base = (0, 0)
        self.prior = (0, 0)

    def start(self, prior: tuple[int, int] = (0, 0)) -> None:
        """A cell of a tenant that already holds `prior` (bytes, inodes) begins."""
        self.prior, self.base = prior, _scratch_used(self.MOUNTS)

    def held(self) -> tuple[int, int]:
        """The tenant's (bytes, inodes) now: what it held before plus the cell's change."""
        now = _scratch_used(self.MOUNTS)
        return tuple(max(p + n - b, 0) for p, n, b in zip(self.prior, now, self.base, strict=True))

    def over(self, held: tuple[int, int] | None = None) -> bool:
        """Whether the tenant passed its budget in bytes or entries during this cell (one
        that starts above it, by the last cell's overshoot, may still run and delete)."""
        held = self.held() if held is None else held
        return any(h > max(lim, p) for h, lim, p in zip(held, self.limit, self.prior, strict=True))

    def room(self) -> bool:
        """Whether every mount has a tenant's budget free (else cleaners must not pause)."""
        for m in self.MOUNTS:
            st = os.statvfs(m)
            if st.f_bavail * st.f_frsize <= self.limit[0] or st.f_favail <= self.limit[1]:
                return False
        return True

    def message(self, held: tuple[int, int]) -> str:
        return (
            f"sandbox: the cell's files in its directory and /dev/shm passed the scratch limit "
            f"({held[0] // MB} MB in {held[1]} files and directories; the limit is "
            f"{self.limit[0] // MB} MB, {self.limit[1]} entries: scratch_mb, scratch_inodes)\n"
        )


@dataclass
class StatelessSpare:
    """A pre-forked stateless cell process and the worker's ends of its pipes."""

    pid: int
    req_w: int  # the request goes in here
    out_r: int
    err_r: int
    ctl_r: int  # the cell's own record (only tells a MemoryError from another error)
    cwd: str
    uid: int | None


@dataclass
class SessionProcs:
    """One session as the worker sees it: its socket to the holder and the pids it owns.

    pid is the first process forked for it (jail: its init; docker: its first holder); holder
    and spare change with every committed cell and are learnt from the kernel, never a message.
    """

    sock: socket.socket
    pid: int
    init: int | None  # jail: pid 1 of the session's own pid namespace
    dir: str | None  # its scratch directory (none in the jail: a tmpfs of its own)
    uid: int | None  # docker: the uid it runs as
    holder: int | None = None
    spare: int | None = None
    scratch: tuple[int, int] = (0, 0)  # uid isolation: (bytes, inodes) its files hold


@dataclass
class CellState:
    """What the worker has heard about one session cell so far."""

    started: int | None = None  # the cell's pid as we see it (from the kernel)
    local: int | None = None  # its pid as it sees itself (its own pid namespace)
    done: dict | None = None  # its "done" record, once credible
    unconfirmed: dict | None = None  # a "done" without a spare: credible once its fork fails
    reaped: int | None = None  # the wait status the holder reported for it
    gone: bool = False  # the session's processes are all gone

    @property
    def finished(self) -> bool:
        return self.done is not None or self.reaped is not None or self.gone


class Worker:
    def __init__(self, cfg: dict, proto_in: int, proto_out: int):
        self.cfg = cfg
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.scratch = cfg["scratch"]
        self.isolation = cfg.get("isolation", "none")
        self.sessions: dict[str, SessionProcs] = {}
        self.sweep = bool(cfg.get("harden")) and os.getpid() == 1
        self.spare: StatelessSpare | None = None
        self.spare_session: SessionProcs | None = None
        # killed by us, not yet gone: pid -> a pidfd of that very process (a reused pid is not)
        self.dying: dict[int, int] = {}
        # scratch dirs of finished runs (path, owner uid), removed off the request path
        self.trash: list[tuple[str, int | None]] = []
        self.cleaners: set[int] = set()  # children removing big scratch dirs in the background
        self.reserve: list[str] = []  # empty scratch dirs made ahead of time (see _mkdir)
        self.reserve_size = 4 if self.isolation == "uid" else 0
        self.stateless_uid = cfg.get("stateless_uid", 65534)
        self.uid_base, self.uid_span = _session_uid_range() if self.isolation == "uid" else (0, 1)
        self.uid_next = 0
        self.meter = None
        if self.isolation == "uid" and self.sweep:
            self.meter = ScratchMeter(
                cfg.get("scratch_mb", 256) * MB, cfg.get("scratch_inodes", 65536)
            )

    # -- helpers
    def _mkdir(self, prefix: str, uid: int | None = None) -> str:
        """A fresh 0700 scratch dir for one run or session, owned by its uid.

        It comes from a small reserve made ahead of time where one is kept (uid isolation:
        tenants share one tmpfs there, so a cell that used up its inodes would otherwise leave
        none for the next tenant's directory while its own tree is being removed).
        """
        if self.reserve:
            path = self.reserve.pop()
        else:
            path = os.path.join(self.scratch, f"{prefix}-{os.urandom(12).hex()}")
            os.mkdir(path, 0o700)
        if uid is not None:
            os.chown(path, uid, uid)
        return path

    def _refill_reserve(self) -> None:
        while len(self.reserve) < self.reserve_size:
            path = os.path.join(self.scratch, f"dir-{os.urandom(12).hex()}")
            try:
                os.mkdir(path, 0o700)
            except OSError:
                return  # full for now: the cleaners are at work
            self.reserve.append(path)

    def _rmtree(self, path: str, uid: int | None = None) -> None:
        """Remove a scratch dir; in uid mode as its owner (we have no CAP_DAC_OVERRIDE)."""
        if uid is None:
            _remove_tree(path)
            return
        _set_fsuid(uid)
        try:
            _remove_tree(path, keep_top=True)
        finally:
            _set_fsuid(0)
        with contextlib.suppress(OSError):
            os.rmdir(path)  # /tmp is root's

    def _is_small(self, path: str, uid: int | None) -> bool:
        """A few plain files at most: cheaper to remove now than to fork a cleaner."""
        if uid is not None:
            _set_fsuid(uid)
        try:
            with os.scandir(path) as it:
                for i, entry in enumerate(it):
                    if i >= 64 or entry.is_dir(follow_symlinks=False):
                        return False
            return True
        except OSError:
            return False
        finally:
            if uid is not None:
                _set_fsuid(0)

    def _remove_later(self, path: str, uid: int | None = None) -> None:
        """Remove a scratch dir without making anyone wait: a cell may have left millions of
        entries there, and walking them must not delay the next request (another tenant's).
        Big trees go to a child process of ours (low priority) that the sweep leaves alone."""
        if not self.sweep or self._is_small(path, uid):
            self._rmtree(path, uid)
            return
        try:
            pid = fork_cell()
        except OSError:
            self._rmtree(path, uid)
            return
        if pid == 0:
            try:
                _close_fds_except(set())
                os.nice(15)
                self._rmtree(path, uid)
            finally:
                os._exit(0)
        self.cleaners.add(pid)

    def _session_uid(self) -> int:
        in_use = {s.uid for s in self.sessions.values()}
        while True:
            self.uid_next += 1
            uid = self.uid_base + self.uid_next % self.uid_span
            if uid not in in_use:
                return uid

    def _clear(self, top: str, keep: set[str] = frozenset(), uid: int | None = None) -> None:
        """Remove the entries of top (all, or those owned by uid), but not the names in keep."""
        try:
            entries = list(os.scandir(top))
        except OSError:
            return
        for entry in entries:
            if entry.name in keep:
                continue
            try:
                if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                self._rmtree(entry.path, uid)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _stateless_cleanup(self) -> None:
        """After a stateless run, nothing it wrote may reach a later one (they share a uid).

        Jail: nothing to do, every run has a /tmp and /dev/shm of its own (_private_scratch).
        Docker: /tmp is 0711, but /dev/shm is shared with sessions: remove what the stateless
        uid owns there.
        """
        if self.isolation == "uid":
            self._clear(SHM, uid=self.stateless_uid)

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._forget(pid)

    def _forget(self, pid: int) -> None:
        self.cleaners.discard(pid)
        fd = self.dying.pop(pid, None)
        if fd is not None:
            os.close(fd)

    def _kill(self, pid: int | None) -> None:
        """SIGKILL pid and remember it as dying, so sweeps do not wait for its teardown."""
        if not pid:
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone already, or no pidfds here: kill it untracked
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            return
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            os.close(fd)
            return
        self._forget(pid)
        self.dying[pid] = fd

    def _await_dying(self, deadline: float) -> None:
        """Wait (until deadline) for the processes we killed to be reaped.

        A killed fork bomb's processes hold the session's process budget until they are
        reaped (by us, or by the session's init in the jail): the next cell's fork of its
        spare would fail if they were still there when it runs.
        """
        while self.dying and time.monotonic() < deadline:
            self._reap()
            self._alive()  # forgets the ones that are gone
            if self.dying:
                time.sleep(0.002)

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

    def _alive(self) -> list[int]:
        """Pids in our namespace, less the ones we killed that are still tearing down."""
        pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
        if not self.dying:
            return pids
        listed = set(pids)
        for pid in [p for p in self.dying if p not in listed]:
            self._forget(pid)  # gone
        out = []
        for pid in pids:
            fd = self.dying.get(pid)
            if fd is not None:
                try:
                    signal.pidfd_send_signal(fd, 0)
                    continue  # still the process we killed, tearing down
                except OSError:
                    self._forget(pid)  # gone, and the pid was reused
            out.append(pid)
        return out

    def _sweep(self) -> None:
        """Kill every process in our pid namespace that has no business being alive.

        Only used as pid 1 of a private pid namespace (jail, docker). Alive may be: the worker,
        the stateless spare, each session's holder, spare and (jail) init, the init of the
        stateless namespace, and the not yet opened spare session. Everything else was left
        behind by a cell, even if it changed its process group. Cheap when nothing is left
        behind: the count tells.
        """
        self._reap()
        if not self.sweep:
            return
        legit = {os.getpid(), *self.cleaners}
        for sess in self.sessions.values():
            legit |= {sess.holder, sess.spare, sess.init}
        spare_parents: set[int] = set()
        if "init_s" in _NS:
            legit.add(_NS["init_s"])
        if self.spare is not None:
            legit.add(self.spare.pid)
        if self.spare_session is not None:
            legit.add(self.spare_session.pid)
            if self.spare_session.init:
                spare_parents.add(self.spare_session.init)  # its first holder
        legit.discard(None)
        if len(self._alive()) <= len(legit) + len(spare_parents):
            return
        resume = self._freeze_stray_uids(legit, spare_parents) if self.isolation == "uid" else []
        try:
            self._stop_strays(legit, spare_parents)
            for _ in range(200):
                pids = self._alive()
                if len(pids) <= len(legit) + len(spare_parents):
                    return
                stray = self._strays(pids, legit, spare_parents)
                if not stray:
                    return
                for pid in stray:
                    self._kill(pid)  # dying from now on: no need to wait for its teardown
                time.sleep(0.001)
                self._reap()
        finally:
            for pid in resume:
                self._signal(pid, signal.SIGCONT)

    def _strays(self, pids: list[int], legit: set[int], spare_parents: set[int]) -> list[int]:
        return [
            p
            for p in pids
            if p not in legit and not (spare_parents and self._ppid(p) in spare_parents)
        ]

    def _freeze_stray_uids(self, legit: set[int], spare_parents: set[int]) -> list[int]:
        """uid isolation: stop every process of each uid that owns a stray, all at once.

        A setsid fork bomb's members fork faster than a listing of /proc reaches them, so
        stopping them one pid at a time can lose the race. kill(-1, SIGSTOP) sent as the
        bomb's own uid reaches every process of that uid in one pass of the kernel's task
        list, which forks cannot join meanwhile (a fork with a signal pending is cancelled).
        The uid's legit processes (its session's holder and spare) are stopped too; those
        that were running are returned, to be resumed once the strays are dead.
        """
        uids: set[int] = set()
        for pid in self._strays(self._alive(), legit, spare_parents):
            uid = _proc_uid(pid)
            if uid is not None and uid != 0:
                uids.add(uid)
        resume = [p for p in legit if _proc_uid(p) in uids and self._stat(p, 0) != b"T"]
        for uid in uids:
            with contextlib.suppress(OSError):
                _stop_all_of(uid)
        return resume

    def _stop_strays(self, legit: set[int], spare_parents: set[int]) -> None:
        """Stop every stray (SIGSTOP) before any is killed, then kill them all.

        Killing a fork bomb one process at a time frees a pid for every kill, and the bomb's
        survivors fork again into it: on an idle machine that race outlasted the watchdog. A
        process with a stop pending cannot fork (the kernel cancels a fork when a signal is
        pending), and a stopped one keeps its pid, so once every stray seen has been stopped
        the bomb cannot grow, and a few listings reach its last members.
        """
        stopped: dict[int, int] = {}  # pid -> a pidfd of that very process
        try:
            for _ in range(200):
                pids = self._alive()
                if len(pids) <= len(legit) + len(spare_parents) + len(stopped):
                    return
                stray = [p for p in self._strays(pids, legit, spare_parents) if p not in stopped]
                if not stray:
                    return
                for pid in stray:
                    try:
                        fd = os.pidfd_open(pid)
                    except OSError:
                        continue
                    try:
                        signal.pidfd_send_signal(fd, signal.SIGSTOP)
                    except OSError:
                        os.close(fd)
                        continue
                    stopped[pid] = fd
        finally:
            for pid, fd in stopped.items():
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                except OSError:
                    os.close(fd)
                    continue
                self._forget(pid)
                self.dying[pid] = fd

    @staticmethod
    def _stat(pid: int, index: int) -> bytes | None:
        """Field index of /proc/pid/stat after the command (0: state, 1: ppid)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            return data[data.rindex(b")") + 2 :].split()[index]
        except (OSError, ValueError, IndexError):
            return None

    @classmethod
    def _ppid(cls, pid: int) -> int:
        ppid = cls._stat(pid, 1)
        return int(ppid) if ppid is not None else -1

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
            left, reason = self._left(deadline)
            if reason:
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

    def _left(self, deadline: float) -> tuple[float, str | None]:
        """(seconds to wait before looking again, why the cell must stop now or None): its
        timeout, or its files past the scratch limit (looked at every 20 ms when metered)."""
        left = deadline - time.monotonic()
        if left <= 0:
            return 0.0, "timeout"
        if self.meter is None:
            return left, None
        if self.meter.over():
            return 0.0, "memory"
        return min(left, 0.02), None

    def _wait_exit(self, pid: int, deadline: float) -> str | None:
        """Wait until pid exits (None) or must stop (why): a cell may close its pipes and
        spin."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        try:
            while True:
                left, reason = self._left(deadline)
                if reason:
                    return reason
                if select.select([pidfd], [], [], left)[0]:
                    return None
        finally:
            os.close(pidfd)

    # -- the scratch meter (uid isolation)
    def _meter_start(self, prior: tuple[int, int] = (0, 0)) -> None:
        """A cell begins: pause the cleaners (unless space is short) and take the base."""
        if self.meter is None:
            return
        if self.meter.room():
            for pid in self.cleaners:
                self._signal(pid, signal.SIGSTOP)
        self.meter.start(prior)

    def _meter_stop(self) -> tuple[int, int] | None:
        """A cell is over: what its tenant's files hold now; the cleaners go on."""
        if self.meter is None:
            return None
        held = self.meter.held()
        for pid in self.cleaners:
            self._signal(pid, signal.SIGCONT)
        return held

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
        uid = self.stateless_uid if self.isolation == "uid" else None
        # jail: the run's own fresh /tmp; elsewhere a directory of its own in the scratch
        cwd = self.scratch if self.isolation == "ns" else self._mkdir("run", uid)
        keep = {req_r, out_w, err_w, ctl_w, *([_NS["mnt_s"]] if "mnt_s" in _NS else [])}
        pid = fork_cell()  # jail: born in the stateless pid namespace
        if pid == 0:
            _stateless_spare(self.cfg, req_r, out_w, err_w, ctl_w, cwd, keep)
        for fd in (req_r, out_w, err_w, ctl_w):
            os.close(fd)
        self.spare = StatelessSpare(pid, req_w, out_r, err_r, ctl_r, cwd, uid)

    def drop_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                os.kill(spare.pid, signal.SIGKILL)
            for key in ("req_w", "out_r", "err_r", "ctl_r"):
                os.close(spare[key])
            self._reap()
            if self.isolation != "ns":  # (the jail's stateless cwd is the run's own tmpfs)
                self._remove_later(spare.cwd, spare.uid)

    def run_stateless(self, req: dict) -> dict:
        t0 = time.monotonic()
        self.make_spare()
        sp, self.spare = self.spare, None
        pid, out_r, err_r, ctl_r = sp.pid, sp.out_r, sp.err_r, sp.ctl_r
        with contextlib.suppress(OSError):  # the spare died: reported below from its wait status
            write_frame(sp.req_w, req)
        os.close(sp.req_w)
        deadline = t0 + req["timeout_s"]
        limit = req["max_output_bytes"]
        self._meter_start()
        out, err, reason, _open = self._collect(out_r, err_r, None, deadline, limit, None)
        if not reason:
            reason = self._wait_exit(pid, deadline)  # it may close its pipes and run on
        if reason:
            self._kill_group(pid)
        held = self._meter_stop()
        if held is not None and self.meter.over(held):
            reason = "memory"
            err = bytes(err) + self.meter.message(held).encode()
        # The verdict is the exit status the kernel gives us; the cell's own record on ctl
        # (which it could forge) only tells a MemoryError from another error with that status.
        _, status = os.waitpid(pid, 0)
        exit_code, kind = self._status_from_wait(status)
        if kind == "error" and select.select([ctl_r], [], [], 0)[0]:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                info = json.loads(os.read(ctl_r, 4096))
                if info.get("exit") == exit_code and info.get("kind") == "memory":
                    kind = "memory"
        for fd in (out_r, err_r, ctl_r):
            os.close(fd)
        if self.isolation != "ns":  # (the jail's cleanup clears all of /tmp)
            self.trash.append((sp.cwd, sp.uid))  # removed after the reply is sent
        if reason:
            exit_code, kind = None, reason
        return self._result(out, err, exit_code, kind, t0)

    @staticmethod
    def _result(out, err, exit_code, status, t0) -> dict:
        err = bytes(err)
        if status in ("error", "crashed", "killed_by_signal") and not err.strip():
            err += _silent_failure(exit_code, status).encode()
        return {
            "stdout": bytes(out).decode("utf-8", "replace"),
            "stderr": err.decode("utf-8", "replace"),
            "exit_code": exit_code,
            "status": status,
            "duration_s": time.monotonic() - t0,
        }

    def start_session(self) -> SessionProcs:
        """Fork a new session: its holder (jail: inside the session's own namespaces, under
        their init; docker: as the session's own uid). Not waited for: see open_session."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        uid = self._session_uid() if self.isolation == "uid" else None
        cwd = None if self.isolation == "ns" else self._mkdir("sess", uid)
        try:
            pid = _fork_session_init() if self.isolation == "ns" else fork_cell()
        except BaseException:
            mine.close()
            theirs.close()
            raise
        if pid == 0:
            try:
                _close_fds_except({theirs.fileno()})
                if self.isolation == "ns":
                    _session_init(theirs, self.cfg)
                else:
                    if uid is not None:
                        _become_uid(uid)
                    _session_holder(theirs, self.cfg, cwd)
            finally:
                os._exit(1)
        theirs.close()
        init = pid if self.isolation == "ns" else None
        return SessionProcs(sock=mine, pid=pid, init=init, dir=cwd, uid=uid)

    def make_spare_session(self) -> None:
        """Start the next session ahead of time (off the request path), once sessions are used
        at all: setting up its namespaces costs two forks and a dozen mounts."""
        if self.spare_session is None:
            self.spare_session = self.start_session()

    def _discard_session(self, sess: SessionProcs) -> None:
        for pid in (sess.pid, sess.init, sess.holder, sess.spare):
            self._kill(pid)
        sess.sock.close()
        self._sweep()
        if sess.dir is not None:
            self._remove_later(sess.dir, sess.uid)

    def open_session(self, sid: str) -> dict:
        if sid in self.sessions:
            return {"ok": True}
        for attempt in range(2):  # a spare made long ago may have died: one fresh try
            sess, self.spare_session = self.spare_session, None
            fresh = sess is None
            if sess is None:
                sess = self.start_session()
            got, holder = self._await_ready(sess.sock, time.monotonic() + 10.0)
            if holder is not None:
                sess.holder = holder
                self.sessions[sid] = sess
                if self._settle(sess):
                    return {"ok": True}
                self.sessions.pop(sid)
                got = {"error": "the session holder could not fork its first cell"}
            self._discard_session(sess)
            if fresh or attempt:
                why = (got or {}).get("error") or "the session holder did not start"
                return {"ok": False, "error": str(why)}
        return {"ok": False, "error": "the session holder did not start"}

    @staticmethod
    def _await_ready(sock: socket.socket, deadline: float) -> tuple[dict | None, int | None]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, None
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                continue
            try:
                got, fds, pid = _recv_creds(sock)
            except (OSError, ValueError):
                return None, None
            for fd in fds:
                os.close(fd)
            if not isinstance(got, dict) or "error" in got:
                return got if isinstance(got, dict) else None, None
            if "ready" in got and pid:
                return got, pid

    # -- a session's processes run only during its own turns
    @staticmethod
    def _signal(pid: int | None, sig: int) -> None:
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def _live_children(self, pid: int) -> list[int]:
        """Children of pid that are neither zombies nor processes we already killed."""
        kids: list[int] = []
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return kids
        for tid in tids:
            path = f"/proc/{pid}/task/{tid}/children"
            with contextlib.suppress(OSError, ValueError), open(path) as f:
                kids.extend(int(k) for k in f.read().split())
        return [k for k in kids if k not in self.dying and self._stat(k, 0) not in (b"Z", b"X")]

    def _settle(self, sess: SessionProcs, wait_s: float = 3.0) -> bool:
        """End of a session's turn: it has a spare, and every process of it is stopped.

        Between its turns a session's holder and spare are stopped (SIGSTOP) and everything
        else it started is killed, so nothing a cell left behind (a thread, a process forked
        after a sweep, a cell that faked its "done") runs on another tenant's time. If the
        spare is missing (the cell failed, or it never forked one), the holder is resumed to
        fork one; False when it does not within wait_s (the session cannot run cells).
        """
        holder, sock = sess.holder, sess.sock
        spare = sess.spare
        if spare is None or spare not in self._live_children(holder):
            spare = sess.spare = None
            # What the cell left (a fork bomb, say) goes first: it holds the process budget
            # the holder needs for its fork.
            self._sweep()
            self._signal(holder, signal.SIGCONT)
            with contextlib.suppress(OSError):
                _sock_send(sock, {"op": "spawn"})
            end = time.monotonic() + wait_s
            while spare is None and time.monotonic() < end:
                kids = self._live_children(holder)
                if len(kids) == 1:
                    spare = kids[0]
                    break
                r, _, _ = select.select([sock], [], [], 0.002)
                if not r:
                    continue
                got, fds, sender = None, [], None
                with contextlib.suppress(OSError, ValueError):
                    got, fds, sender = _recv_creds(sock)
                for fd in fds:
                    os.close(fd)
                if isinstance(got, dict) and "spawn_failed" in got and sender == holder:
                    self._sweep()  # its fork failed (no pids left yet): clear and ask again
                    time.sleep(0.01)
                    with contextlib.suppress(OSError):
                        _sock_send(sock, {"op": "spawn"})
            sess.spare = spare
        self._signal(holder, signal.SIGSTOP)
        self._signal(spare, signal.SIGSTOP)
        self._sweep()
        return spare is not None

    def close_session(self, sid: str) -> dict:
        sess = self.sessions.pop(sid, None)
        if sess is None:
            return {"ok": True}
        sess.sock.close()
        for pid in (sess.holder, sess.spare, sess.init):
            self._kill(pid)  # a pid namespace dies with its init: the whole session
        self._sweep()
        if sess.dir is not None:
            self._remove_later(sess.dir, sess.uid)
        if sess.uid is not None:
            self._clear(SHM, uid=sess.uid)
        return {"ok": True}

    def run_session(self, req: dict) -> dict:
        t0 = time.monotonic()
        sess = self.sessions.get(req["session"])
        if sess is None:
            return {
                **self._result(b"", b"session is not open\n", None, "crashed", t0),
                "session_lost": True,
            }
        if sess.spare is None and not self._settle(sess):
            msg = b"sandbox: the session cannot start a cell (its holder does not fork); state is gone\n"
            self.close_session(req["session"])
            return {**self._result(b"", msg, None, "crashed", t0), "session_lost": True}
        self._meter_start(sess.scratch)
        try:
            resp = self._session_turn(req, sess, t0)
        finally:
            held = self._meter_stop()
        if held is None or req["session"] not in self.sessions:
            return resp
        if self.meter.over(held):
            resp["stderr"] += self.meter.message(held)
            resp.update(status="memory", exit_code=None)
        sess.scratch = held
        return resp

    def _session_turn(self, req: dict, sess: SessionProcs, t0: float) -> dict:
        """One cell of a session, from waking its spare to settling the session again."""
        sock: socket.socket = sess.sock
        spare = sess.spare
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
        self._signal(spare, signal.SIGCONT)
        try:
            _sock_send(sock, msg, [code_fd, out_w, err_w])
        except OSError:
            for fd in (code_fd, out_w, err_w, out_r, err_r):
                os.close(fd)
            return self._session_lost(req["session"], b"", b"", t0)
        for fd in (code_fd, out_w, err_w):
            os.close(fd)
        state = CellState()

        def on_msg() -> bool:
            try:
                got, fds, sender = _recv_creds(sock)
            except OSError:
                got, fds, sender = None, [], None
            except ValueError:  # garbage written by the cell itself: ignore it
                return finished()
            for fd in fds:
                os.close(fd)
            if not isinstance(got, dict) and got is not None:
                return finished()
            if got is None:
                try:  # EOF, or an empty packet forged by the cell? The holder tells.
                    os.kill(sess.holder, 0)
                    r, _, _ = select.select([sock], [], [], 0)
                    if not r:
                        return finished()
                    peek = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    if peek:
                        return finished()
                except OSError:
                    pass
                state.gone = True
                return True
            if not sender:
                return finished()  # a sender we cannot see is none of ours
            if (
                got.get("cell") == cell
                and "started" in got
                and state.started is None
                and sender == spare
            ):
                state.started, state.local = sender, got["started"]
            elif (
                got.get("cell") == cell
                and "done" in got
                and sender == state.started
                and got["done"] == state.local
            ):
                # Stop it at once. A finished cell has forked its spare before saying so (and
                # killed everything else it started); without one the record is not credible:
                # the cell is still running, so let it run on to its real end or its timeout.
                self._signal(sender, signal.SIGSTOP)
                if len(self._live_children(sender)) == 1:
                    state.done = got
                else:
                    state.unconfirmed = got
                    self._signal(sender, signal.SIGCONT)
            elif "spawn_failed" in got and sender == state.started and state.unconfirmed:
                # A finished cell whose spare fork failed (the session's process budget still
                # held by what a previous cell left, say): it is done; _settle forks the spare.
                self._signal(sender, signal.SIGSTOP)
                state.done = state.unconfirmed
            elif (
                "reaped" in got
                and state.local is not None
                and sender == sess.holder
                and got.get("pid") == state.local
            ):
                state.reaped = got["reaped"]
            # anything else is stale (an idle spare that died) or forged by a cell's children
            return finished()

        def finished() -> bool:
            return state.finished

        deadline = t0 + req["timeout_s"]
        limit = req["max_output_bytes"]
        out, err, reason, open_fds = self._collect(
            out_r, err_r, sock.fileno(), deadline, limit, on_msg
        )
        try:
            spare_fd = os.pidfd_open(spare)
        except OSError:
            spare_fd = None
        while not reason and not finished():
            # Both pipes closed (the cell died, or closed them): wait for the verdict. If the
            # cell's process died, the holder (stopped between turns) must wake to reap it.
            left, reason = self._left(deadline)
            if reason:
                break
            watch = [sock] if spare_fd is None else [sock, spare_fd]
            r, _, _ = select.select(watch, [], [], left)
            if spare_fd is not None and spare_fd in r:
                self._signal(sess.holder, signal.SIGCONT)
                os.close(spare_fd)
                spare_fd = None
            if sock in r:
                on_msg()
        if spare_fd is not None:
            os.close(spare_fd)
        bufs = {out_r: out, err_r: err}
        if not reason:
            self._drain(open_fds, bufs, limit - len(out) - len(err), 0.05)
        for fd in (out_r, err_r):
            os.close(fd)
        if state.gone:
            return self._session_lost(req["session"], out, err, t0)
        done = state.done
        if reason or (done is not None and done.get("discard")):
            # Timed out, flooded, or failed leaving processes behind (then it exited itself):
            # the holder keeps the state from before the cell.
            return self._abort_cell(req["session"], sess, state, on_msg, out, err, reason, t0)
        if done is not None:
            # Commit: the cell process becomes the holder (it forked its spare before saying
            # "done"); the old holder goes away.
            old, sess.holder = sess.holder, state.started
            kids = self._live_children(sess.holder)
            sess.spare = kids[0] if len(kids) == 1 else None
            self._kill(old)
        else:
            sess.spare = None  # the spare died running the cell: the holder forks another
        if not self._settle(sess):
            return self._session_lost(req["session"], out, err, t0)
        if done is not None:
            return self._result(out, err, done["exit"], done["kind"], t0)
        exit_code, kind = self._status_from_wait(state.reaped)
        return self._result(out, err, exit_code, kind, t0)

    def _session_lost(self, sid: str, out, err, t0) -> dict:
        """Its processes are all gone (killed from outside): drop it; the host reopens it."""
        self.close_session(sid)
        msg = b"\nsandbox session was lost (its processes were killed); state is gone\n"
        return {**self._result(out, err + msg, None, "crashed", t0), "session_lost": True}

    def _abort_cell(
        self, sid: str, sess: SessionProcs, state: CellState, on_msg, out, err, reason, t0
    ) -> dict:
        sock = sess.sock
        self._signal(sess.holder, signal.SIGCONT)  # it reaps the cell and forks a spare
        end = time.monotonic() + 2.0
        while state.started is None and not state.gone and time.monotonic() < end:
            r, _, _ = select.select([sock], [], [], 0.1)
            if r:
                on_msg()
        if state.started is not None:
            self._kill_group(state.started)
            self._sweep()  # and whatever it started, in any process group
            end = time.monotonic() + 2.0
            while state.reaped is None and not state.gone and time.monotonic() < end:
                r, _, _ = select.select([sock], [], [], 0.1)
                if r:
                    on_msg()
            self._await_dying(time.monotonic() + 1.0)
        sess.spare = None
        if state.gone or not self._settle(sess):
            return self._session_lost(sid, out, err, t0)
        if reason:
            return self._result(out, err, None, reason, t0)
        done = state.done
        return self._result(out, err, done["exit"], done["kind"], t0)

    def _pending(self) -> bool:
        """Whether the next request is already waiting (then it goes first)."""
        r, _, _ = select.select([self.proto_in], [], [], 0)
        return bool(r)

    def serve(self) -> None:
        self._refill_reserve()
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
            if op == "run" and not req.get("session"):
                self._stateless_cleanup()
            while self.trash:
                self._remove_later(*self.trash.pop())
            self._refill_reserve()
            self._reap()
            if op == "run" and not req.get("session"):
                with contextlib.suppress(OSError):
                    self.make_spare()
            elif op in ("run", "close") and not self._pending():
                # After a session's turn or close, not right after an open: its first cell
                # is on its way then.
                with contextlib.suppress(OSError):
                    self.make_spare_session()


# ----------------------------------------------------------------------------- entry point
def _isolate_worker(cfg: dict) -> None:
    isolation = cfg.get("isolation", "none")
    if isolation == "ns":
        _ns_bootstrap()
        _stateless_pidns()
    elif isolation == "uid":
        if os.getuid() != 0:
            raise OSError(errno.EPERM, "isolation 'uid' needs a worker started as root")
        os.chmod(cfg["scratch"], 0o711)  # docker makes a tmpfs 1777 whatever its mode= says
        if os.path.isdir(SHM):  # shared by every uid here: each may make files, none may list
            os.chmod(SHM, 0o1733)
        os.setgroups([])  # once here, so every cell starts without supplementary groups
        os.umask(0o077)
        boost_worker()
    elif isolation != "none":
        raise ValueError(f"unknown isolation {isolation!r}")


def main() -> None:
    _BOOSTED[0] = os.getpriority(os.PRIO_PROCESS, 0) < 0  # started above 0 (jail, by the host)
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    cfg.setdefault("scratch", "/tmp")
    for path in cfg.get("site", []):
        sys.path.insert(0, path)
    try:
        _isolate_worker(cfg)
    except Exception as e:
        write_frame(1, {"ready": False, "error": f"sandbox isolation setup failed: {e}"})
        os._exit(70)
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
        _probe_landlock()
    if cfg.get("isolation") == "ns":
        _drop_bounding_set()  # cells start with none; we keep what namespaces need
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
