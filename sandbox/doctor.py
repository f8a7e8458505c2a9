"""`tirgym sandbox doctor`: which backends work on this machine, why not, and a self-test."""

from __future__ import annotations

import contextlib
import os
import shutil
import time

from tirgym.sandbox.backends import JailBackend, LocalBackend
from tirgym.sandbox.cgroups import describe as describe_cgroups

SELF_TEST = [
    ("print", "print(6 * 7)", "ok", "42"),
    (
        "numpy+sympy",
        "import numpy, sympy; print(int(numpy.arange(4).sum()), sympy.isprime(97))",
        "ok",
        "6 True",
    ),
    (
        "network blocked",
        "import socket; socket.create_connection(('1.1.1.1', 80), timeout=1)",
        "error",
        None,
    ),
    ("exec blocked", "import subprocess; subprocess.run(['true'])", "error", None),
    ("timeout", "while True: pass", "timeout", None),
    ("segfault", "import ctypes; ctypes.string_at(0)", "crashed", None),
]


KILL_HOLDER = """
import os, signal
targets = [{holder}]
for p in os.listdir('/proc'):
    try:
        if p.isdigit() and open(f'/proc/{{p}}/stat').read().rsplit(')', 1)[1].split()[1] == '{holder}':
            targets.append(int(p))
    except OSError:
        pass
for p in targets:
    try:
        os.kill(p, signal.SIGKILL)
    except OSError:
        pass
"""


def _signal_isolation(sb) -> str:
    """A session kills another session's holder and its spare, by pid: the victim must live."""
    with sb.session() as victim, sb.session() as attacker:
        victim.run("v = 1")
        holder = victim.run("import os; print(os.getpid())").stdout.strip()
        attacker.run(KILL_HOLDER.format(holder=holder))
        r = victim.run("v")
    good = (r.status, r.stdout.strip()) == ("ok", "1")
    return f"    [{'ok' if good else 'FAIL'}] sessions isolated (signals): {r.status}"


def _self_test(backend_name: str) -> tuple[list[str], float | None]:
    """Report lines, and the median latency of a stateless print(1) (None: a check failed)."""
    from tirgym.sandbox.core import Sandbox, make_backend

    lines: list[str] = []
    all_good = True
    backend = LocalBackend() if backend_name == "local" else make_backend(backend_name)
    t0 = time.perf_counter()
    with Sandbox(backend, workers=1) as sb:
        sb.run("pass")
        lines.append(f"    warm start: {time.perf_counter() - t0:.2f} s")
        isolated = backend_name != "local"
        for name, code, want, out in SELF_TEST:
            if not isolated and name in ("network blocked", "exec blocked"):
                continue
            r = sb.run(code, timeout_s=1.0)
            good = r.status == want and (out is None or r.stdout.strip() == out)
            all_good &= good
            lines.append(
                f"    [{'ok' if good else 'FAIL'}] {name}: {r.status} ({r.duration_s * 1000:.1f} ms)"
            )
        with sb.session() as s:
            s.run("x = 1")
            s.run("while True: pass", timeout_s=0.5)
            r = s.run("x + 1")
            good = r.stdout.strip() == "2"
            lines.append(
                f"    [{'ok' if good else 'FAIL'}] session survives a timeout: {r.stdout.strip()!r}"
            )
            with sb.session() as other:
                s.run("open('mine.txt', 'w').write('x')")
                seen = other.run("import os; print(os.path.exists('mine.txt'))").stdout.strip()
            lines.append(
                f"    [{'ok' if seen == 'False' else 'FAIL'}] sessions isolated (files): {seen}"
            )
            if isolated:
                lines.append(_signal_isolation(sb))
        times = []
        for _ in range(20):
            t = time.perf_counter()
            sb.run("print(1)")
            times.append(time.perf_counter() - t)
        times.sort()
        median = times[len(times) // 2]
        lines.append(f"    latency print(1): median {median * 1000:.1f} ms")
    all_good &= not any("[FAIL]" in line for line in lines)
    return lines, median if all_good else None


def _landlock_abi() -> int:
    """Landlock ABI version (0: none). ABI 6 scopes abstract unix sockets and signals, which
    keeps docker sessions (one network namespace) from reaching each other's sockets."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(abi, 0)


def doctor_report(self_test: bool = True) -> str:
    """A human-readable report; never raises for a missing backend (that is what it reports)."""
    from tirgym.sandbox.docker_backend import DockerBackend

    lines = ["tirgym sandbox doctor", ""]
    lines.append(f"  machine: {os.cpu_count()} cores, uid {os.getuid()}, {describe_cgroups()}")
    lines.append(
        f"  bwrap: {shutil.which('bwrap') or 'missing'}   docker CLI: {shutil.which('docker') or 'missing'}"
    )
    try:
        import pyseccomp  # noqa: F401

        lines.append("  pyseccomp: installed")
    except ImportError:
        lines.append("  pyseccomp: missing (a tirgym dependency: pip install pyseccomp)")
    abi = _landlock_abi()
    scopes = "scopes abstract sockets and signals per session" if abi >= 6 else "no scopes"
    lines.append(f"  landlock: ABI {abi} ({scopes})")
    lines.append("")
    verdict: dict[str, str | None] = {}
    verdict["jail"] = JailBackend().unavailable_reason()
    verdict["docker"] = DockerBackend(docker_build=False).unavailable_reason()
    verdict["local"] = None
    for name in ("jail", "docker", "local"):
        reason = verdict[name]
        note = " (NO isolation: trusted code only; never chosen by auto)" if name == "local" else ""
        lines.append(
            f"  {name:7s} {'available' if reason is None else 'unavailable: ' + reason}{note}"
        )
    auto = "jail" if verdict["jail"] is None else "docker" if verdict["docker"] is None else None
    auto_at = len(lines)
    medians: dict[str, float | None] = {}
    if self_test:
        for name in ("jail", "docker"):
            if verdict[name] is not None:
                continue
            lines.append("")
            lines.append(f"  self-test [{name}]")
            try:
                more, medians[name] = _self_test(name)
                lines.extend(more)
            except Exception as e:  # report, keep going with the other backends
                medians[name] = None
                lines.append(f"    FAILED: {type(e).__name__}: {e}")
        if auto is None:
            lines.append("")
            lines.append("  self-test [local] (no isolation)")
            with contextlib.suppress(Exception):
                lines.extend(_self_test("local")[0])
    lines.insert(auto_at, _auto_line(auto, verdict, medians))
    return "\n".join(lines)


def _auto_line(auto: str | None, verdict: dict[str, str | None], medians: dict) -> str:
    """Which backend auto picks, and why: the jail when it works, as the faster one; where the
    self-test measured otherwise on this machine, or the jail failed it, say so."""
    if auto is None:
        return "  auto -> ERROR: no sandbox available (install bubblewrap or start Docker)"
    if auto == "docker":
        return f"  auto -> docker (the jail is unavailable: {verdict['jail']})"
    jail, docker = medians.get("jail"), medians.get("docker")
    if jail is not None and docker is not None:
        if jail <= docker * 1.1:  # a 20-run median: a few percent either way is noise
            return (
                f"  auto -> jail (print(1) median here {jail * 1000:.1f} ms, "
                f"docker {docker * 1000:.1f} ms)"
            )
        return (
            f"  auto -> jail, but docker was faster here ({docker * 1000:.1f} ms vs "
            f"{jail * 1000:.1f} ms median): pass backend='docker' to use it"
        )
    if "jail" in medians and jail is None:
        return "  auto -> jail, but the jail FAILED its self-test above"
    return "  auto -> jail (the faster backend: no container round trip)"


if __name__ == "__main__":
    print(doctor_report())
