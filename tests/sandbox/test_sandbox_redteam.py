"""Hostile snippets, each with the contained outcome we expect, in stateless and session mode.

Runs against every isolating backend available (jail; docker when an engine is reachable).
After every snippet the backend must still serve the next run, and a session's earlier state
must be intact. `local` is not isolating and is deliberately not tested here.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_FILE = str(Path(__file__).resolve())

BLOCKED = "print('BLOCKED')"


@dataclass
class Attack:
    name: str
    code: str
    statuses: set[str]
    stdout_has: str | None = None
    stdout_lacks: str | None = None
    timeout_s: float = 3.0
    kw: dict = field(default_factory=dict)


def _must_fail(stmt: str) -> str:
    """Code that prints BLOCKED when stmt raises, and ESCAPED when it works."""
    body = "\n".join("    " + line for line in stmt.splitlines())
    return f"try:\n{body}\nexcept BaseException as e:\n    print('BLOCKED', type(e).__name__)\nelse:\n    print('ESCAPED')"


def _libc_must_fail(call: str) -> str:
    return (
        "import ctypes, ctypes.util\nlibc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
        f"r = {call}\nprint('BLOCKED' if r != 0 else 'ESCAPED', r, ctypes.get_errno())"
    )


def _ok_blocked(name: str, stmt: str) -> Attack:
    return Attack(name, _must_fail(stmt), {"ok"}, stdout_has="BLOCKED", stdout_lacks="ESCAPED")


ABSTRACT_NAME = f"tirgym-redteam-{os.getpid()}"

ATTACKS: list[Attack] = [
    # network egress
    _ok_blocked("tcp", "import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)"),
    _ok_blocked(
        "tcp_loopback", "import socket; socket.create_connection(('127.0.0.1', 22), timeout=2)"
    ),
    _ok_blocked(
        "udp",
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))",
    ),
    _ok_blocked("ipv6", "import socket; socket.socket(socket.AF_INET6).connect(('::1', 80))"),
    _ok_blocked("dns", "import socket; socket.getaddrinfo('example.com', 80)"),
    _ok_blocked(
        "http", "import urllib.request; urllib.request.urlopen('http://example.com', timeout=2)"
    ),
    _ok_blocked(
        "raw_socket",
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
    ),
    _ok_blocked("netlink", "import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)"),
    _ok_blocked("packet", "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)"),
    _ok_blocked(
        "host_abstract_unix",
        f"import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0{ABSTRACT_NAME}')",
    ),
    _ok_blocked(
        "engine_sockets",
        "import socket\nfor p in ('/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock'):\n"
        "    s = socket.socket(socket.AF_UNIX)\n    try:\n        s.connect(p)\n        raise SystemExit('ESCAPED ' + p)\n"
        "    except OSError:\n        pass\nraise OSError('none reachable')",
    ),
    # host files
    _ok_blocked("etc_shadow", "open('/etc/shadow').read()"),
    _ok_blocked("repo_file", f"open({REPO_FILE!r}).read()"),
    _ok_blocked(
        "home_secrets",
        "import os\nfor p in ('/root/.ssh/id_rsa', '/root/.bash_history', '/home'):\n    os.stat(p)",
    ),
    _ok_blocked("proc1_root_escape", "import os; os.listdir('/proc/1/root/work')"),
    # writes outside scratch
    _ok_blocked("write_usr", "open('/usr/lib/evil', 'w').write('x')"),
    _ok_blocked("write_root", "open('/evil', 'w').write('x')"),
    _ok_blocked(
        "write_runtime",
        "import sys, os; open(os.path.join(os.path.dirname(os.__file__), 'evil.py'), 'w')",
    ),
    _ok_blocked(
        "symlink_to_secret", "import os; os.symlink('/etc/shadow', 'link'); open('link').read()"
    ),
    # privilege
    _ok_blocked("setuid_root", "import os; os.setuid(0)"),
    Attack(
        "no_capabilities",
        "caps = {l.split(':')[0]: int(l.split()[1], 16) for l in open('/proc/self/status') if l.startswith('Cap')}\n"
        "print('BLOCKED' if caps['CapEff'] == 0 and caps['CapPrm'] == 0 else 'ESCAPED', caps)",
        {"ok"},
        stdout_has="BLOCKED",
    ),
    Attack(
        "user_namespace", _libc_must_fail("libc.unshare(0x10000000)"), {"ok"}, stdout_has="BLOCKED"
    ),
    Attack(
        "mount",
        _libc_must_fail("libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)"),
        {"ok"},
        stdout_has="BLOCKED",
    ),
    Attack(
        "ptrace_worker", _libc_must_fail("libc.ptrace(16, 1, 0, 0)"), {"ok"}, stdout_has="BLOCKED"
    ),
    _ok_blocked("proc_mem_worker", "f = open('/proc/1/mem', 'rb'); f.seek(0x400000); f.read(16)"),
    _ok_blocked("proc_mem_parent", "import os; open(f'/proc/{os.getppid()}/mem', 'rb').read(1)"),
    # exec
    _ok_blocked("subprocess", "import subprocess; subprocess.run(['id'], check=True)"),
    Attack(
        "os_system",
        "import os\nr = os.system('echo ESCAPED')\nprint('BLOCKED', r)",
        {"ok"},
        stdout_lacks="ESCAPED",
    ),
    _ok_blocked("execv", "import os; os.execv('/bin/sh', ['sh', '-c', 'echo ESCAPED'])"),
    Attack(
        "ctypes_execve",
        _libc_must_fail("libc.execve(b'/bin/sh', None, None)"),
        {"ok"},
        stdout_has="BLOCKED",
    ),
    # resources
    Attack(
        "fork_bomb", "import os\nwhile True:\n    os.fork()", {"error", "timeout"}, timeout_s=1.5
    ),
    Attack(
        "thread_bomb",
        "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(100,), daemon=True).start()",
        {"error", "timeout", "memory"},
        timeout_s=2,
    ),
    Attack("big_alloc", "x = bytearray(16 * 1024**3)", {"memory"}),
    Attack(
        "incremental_alloc",
        "xs = []\nwhile True:\n    xs.append(bytearray(16 * 1024**2))",
        {"memory", "killed_by_signal"},
        timeout_s=10,
    ),
    Attack("cpu_spin", "while True:\n    pass", {"timeout"}, timeout_s=1),
    Attack("sleep", "import time; time.sleep(1000)", {"timeout"}, timeout_s=1),
    Attack(
        "signal_ignoring_loop",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass",
        {"timeout"},
        timeout_s=1,
    ),
    Attack(
        "output_flood",
        "while True:\n    print('A' * 4096)",
        {"output_limit"},
        kw={"max_output_bytes": 100_000},
    ),
    Attack(
        "stderr_flood",
        "import sys\nwhile True:\n    sys.stderr.write('E' * 4096)",
        {"output_limit"},
        kw={"max_output_bytes": 100_000},
    ),
    Attack(
        "huge_file",
        "open('big', 'wb').write(b'0' * (512 * 1024**2))",
        {"error", "killed_by_signal", "memory"},
        timeout_s=10,
    ),
    Attack(
        "fill_tmpfs",
        "import os\nfor i in range(100):\n    with open(f'fill{i}', 'wb') as f:\n        f.write(b'0' * (32 * 1024**2))",
        {"error", "killed_by_signal", "memory"},  # ENOSPC (jail), the scratch meter (docker)
        timeout_s=10,
    ),
    Attack("segfault", "import ctypes; ctypes.string_at(0)", {"crashed"}),
    Attack("deep_recursion", "def f(n):\n    return f(n + 1)\nf(0)", {"error"}),
    Attack(
        "deep_recursion_c_stack",
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)",
        {"crashed", "error", "timeout"},
    ),
    Attack(
        "kill_worker",
        "import os, signal\nfor pid in (1, os.getppid()):\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\nprint('tried')",
        {"ok", "killed_by_signal", "crashed"},
    ),
    _ok_blocked("kill_everything", "import os, signal; os.kill(-1, signal.SIGKILL)"),
    Attack(
        "kernel_info",
        _must_fail("open('/proc/kallsyms').read(); open('/sys/kernel/debug/x')"),
        {"ok"},
        stdout_has="BLOCKED",
    ),
    Attack(
        "dmesg",
        _libc_must_fail("libc.klogctl(3, ctypes.create_string_buffer(4096), 4096) < 0 and 1"),
        {"ok"},
        stdout_has="BLOCKED",
    ),
    Attack(
        "read_stdin",
        "import sys; data = sys.stdin.read(); print('BLOCKED' if data == '' else 'ESCAPED')",
        {"ok"},
        stdout_has="BLOCKED",
    ),
    Attack(
        "stdin_raw_fd",
        "import os; print('BLOCKED' if os.read(0, 100) == b'' else 'ESCAPED')",
        {"ok"},
        stdout_has="BLOCKED",
    ),
    Attack(
        "protocol_fds",
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'\\x00\\x00\\x00\\x02{}')\n    except OSError:\n        pass\nprint('tried')",
        {"ok"},
    ),
]


@pytest.fixture(scope="module")
def abstract_listener():
    """A host abstract unix socket that a sandboxed cell must not be able to reach."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind("\0" + ABSTRACT_NAME)
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    hits: list[int] = []

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                hits.append(1)
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield hits
    stop.set()
    t.join()
    srv.close()


def test_suite_is_big_enough():
    assert len(ATTACKS) >= 30
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)


def _check(a: Attack, r) -> None:
    assert r.status in a.statuses, f"{a.name}: {r.status} {r.stdout[-300:]!r} {r.stderr[-500:]!r}"
    if a.stdout_has:
        assert a.stdout_has in r.stdout, f"{a.name}: {r.stdout[-300:]!r} {r.stderr[-300:]!r}"
    if a.stdout_lacks:
        assert a.stdout_lacks not in r.stdout, f"{a.name}: {r.stdout[-300:]!r}"


def _run_all(isolating_sb, mode: str) -> list[str]:
    failures: list[str] = []
    lock = threading.Lock()

    def one(a: Attack) -> None:
        try:
            if mode == "stateless":
                r = isolating_sb.run(a.code, timeout_s=a.timeout_s, **a.kw)
                _check(a, r)
                after = isolating_sb.run("print(6 * 7)")
                assert after.stdout == "42\n", f"{a.name}: backend broken after attack: {after}"
            else:
                with isolating_sb.session() as s:
                    assert s.run(f"marker = {a.name!r}\nimport math").ok
                    r = s.run(a.code, timeout_s=a.timeout_s, **a.kw)
                    _check(a, r)
                    after = s.run("print(marker, math.pi > 3)")
                    assert after.stdout == f"{a.name} True\n", (
                        f"{a.name}: session state lost: {after}"
                    )
        except AssertionError as e:
            with lock:
                failures.append(str(e))

    # Two attacks at a time (the pool has two slots), heavy ones included.
    threads: list[threading.Thread] = []
    for a in ATTACKS:
        t = threading.Thread(target=one, args=(a,))
        t.start()
        threads.append(t)
        if len(threads) >= 2:
            threads.pop(0).join()
    for t in threads:
        t.join()
    return failures


@pytest.mark.parametrize("mode", ["stateless", "session"])
def test_red_team(isolating_sb, mode, abstract_listener):
    failures = _run_all(isolating_sb, mode)
    assert not failures, "\n".join(failures)
    assert not abstract_listener, "a cell reached a host abstract unix socket"
    assert isolating_sb.run("print('still serving')").stdout == "still serving\n"
