"""Sessions that share a slot (one warm worker, one jail or container) must not reach each
other: no signals, no prlimit, no reading or writing each other's files. Stateless cells must
not reach sessions either, nor outlive their run. The pools here have a single slot, so every
session and run below lands in the same worker.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

# Signal (stop, then kill) and prlimit every pid the cell can see plus the victim's pids.
ATTACK = """
import os, resource, signal
victims = {victims}
me = os.getpid()
seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
hit = []
for pid in sorted(set(seen) | set(victims)):
    if pid == me:
        continue
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(pid, sig)
            hit.append(('kill', pid, int(sig)))
        except OSError:
            pass
    for res, lim in ((resource.RLIMIT_AS, 1 << 20), (resource.RLIMIT_CPU, 1), (resource.RLIMIT_NPROC, 0)):
        try:
            resource.prlimit(pid, res, (lim, lim))
            hit.append(('prlimit', pid, res))
        except OSError:
            pass
print('SEEN', seen, 'ME', me, 'PPID', os.getppid())
"""

VICTIM_PIDS = "import os\nprint(os.getpid(), os.getppid())"
# The victim's state, and a cell that needs memory, CPU and a child process: whatever an
# attacker's prlimit or signals would have broken.
VICTIM_CHECK = (
    "import os, time\nx = bytearray(64 * 1024 * 1024)\nt = time.process_time()\n"
    "while time.process_time() - t < 1.2:\n    pass\n"
    "pid = os.fork()\nif pid == 0:\n    os._exit(7)\n"
    "print(v, len(x), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))"
)


def _victim_pids(victim) -> list[int]:
    r = victim.run(VICTIM_PIDS)
    assert r.ok, r
    return [int(p) for p in r.stdout.split()]


def test_session_cannot_signal_or_prlimit_another_session(one_slot):
    with one_slot.session() as victim, one_slot.session() as attacker:
        assert victim.run("v = 'alive'").ok
        assert attacker.run("a = 1").ok
        r = attacker.run(ATTACK.format(victims=_victim_pids(victim)))
        assert r.status in ("ok", "killed_by_signal"), r
        r = victim.run(VICTIM_CHECK)
        assert (r.status, r.stdout) == ("ok", f"alive {64 * 1024 * 1024} 7\n"), r
        assert attacker.run("print('attacker works')").stdout == "attacker works\n"


def test_stateless_run_cannot_signal_or_prlimit_a_session(one_slot):
    with one_slot.session() as victim:
        assert victim.run("v = 'alive'").ok
        r = one_slot.run(ATTACK.format(victims=_victim_pids(victim)))
        assert r.status in ("ok", "killed_by_signal"), r
        r = victim.run(VICTIM_CHECK)
        assert (r.status, r.stdout) == ("ok", f"alive {64 * 1024 * 1024} 7\n"), r


def test_session_cannot_kill_another_sessions_holder_by_its_own_pid(one_slot):
    """The known weakness: the victim's last cell is its holder now, and the spare it forked
    holds a copy of the state; an attacker that kills both (by pid) destroys the session."""
    with one_slot.session() as victim, one_slot.session() as attacker:
        assert victim.run("v = 'alive'").ok
        holder, _old = _victim_pids(victim)
        code = (
            "import os, signal\ntargets = [{holder}]\n"
            "for p in os.listdir('/proc'):\n    try:\n"
            "        if p.isdigit() and open(f'/proc/{{p}}/stat').read().rsplit(')', 1)[1].split()[1] == '{holder}':\n"
            "            targets.append(int(p))\n    except OSError:\n        pass\n"
            "for p in targets:\n    try:\n        os.kill(p, signal.SIGKILL)\n    except OSError:\n        pass\n"
            "print(targets)"
        )
        attacker.run(code.format(holder=holder))
        r = victim.run("v")
        assert (r.status, r.stdout) == ("ok", "'alive'\n"), r


def test_jail_session_sees_only_its_own_processes(one_slot):
    if one_slot.name != "jail":
        pytest.skip("docker sessions share the container's pid namespace (uids keep them apart)")
    with one_slot.session() as a, one_slot.session() as b:
        assert b.run("import numpy").ok
        r = a.run(
            "import os\nseen = {int(p) for p in os.listdir('/proc') if p.isdigit()}\n"
            "print(seen == {1, os.getppid(), os.getpid()}, sorted(seen))"
        )
        assert r.ok and r.stdout.startswith("True"), r
        r = one_slot.run(
            "import os\nseen = {int(p) for p in os.listdir('/proc') if p.isdigit()}\n"
            "print(seen == {1, os.getpid()}, sorted(seen))"
        )
        assert r.ok and r.stdout.startswith("True"), r


SNOOP = """
import glob, json, os
token, paths = {token!r}, {paths!r}
found, wrote = [], []
candidates = set(paths)
for pattern in ('/tmp/*', '/tmp/*/*', '/dev/shm/*', '/proc/*/cwd/*', '/proc/*/root/tmp/*',
                '/proc/*/root/tmp/*/*', '/proc/*/root/dev/shm/*'):
    try:
        candidates.update(glob.glob(pattern))
    except OSError:
        pass
for path in sorted(candidates):
    try:
        with open(path) as f:
            if token in f.read():
                found.append(path)
    except OSError:
        pass
for path in paths:
    try:
        with open(path, 'r+') as f:  # never creates: the victim's own file or nothing
            f.seek(0, 2)
            f.write('TAMPERED')
        wrote.append(path)
    except OSError:
        pass
print(json.dumps({{'found': found, 'wrote': wrote}}))
"""

VICTIM_FILES = """
import json, os
token = {token!r}
for path in ('secret.txt', '/dev/shm/secret-' + token[:8]):
    with open(path, 'w') as f:
        f.write(token)
print(json.dumps([os.path.abspath('secret.txt'), '/dev/shm/secret-' + token[:8]]))
"""

VICTIM_READ = "print(open(paths[0]).read() + '|' + open(paths[1]).read())"


def test_session_cannot_read_or_write_another_sessions_files(one_slot):
    token = uuid.uuid4().hex
    with one_slot.session() as victim, one_slot.session() as attacker:
        r = victim.run(VICTIM_FILES.format(token=token))
        assert r.ok, r
        paths = json.loads(r.stdout)
        assert victim.run(f"paths = {paths!r}").ok
        r = attacker.run(SNOOP.format(token=token, paths=paths))
        assert r.ok, r
        assert json.loads(r.stdout) == {"found": [], "wrote": []}, r.stdout
        r = one_slot.run(SNOOP.format(token=token, paths=paths))  # a stateless run neither
        assert r.ok, r
        assert json.loads(r.stdout) == {"found": [], "wrote": []}, r.stdout
        r = victim.run(VICTIM_READ)
        assert (r.status, r.stdout) == ("ok", f"{token}|{token}\n"), r


def test_stateless_cell_that_forges_its_verdict_does_not_outlive_its_run(one_slot):
    """A cell can write a fake "done" on its control pipe and keep running in the background;
    the record must not count (the cell is still running: a timeout), and the cell must be
    gone when its run returns (else it could reach the runs and sessions after)."""
    forge = (
        "import os, time\nfor fd in sorted(int(x) for x in os.listdir('/proc/self/fd')):\n"
        '    if fd > 2:\n        try:\n            os.write(fd, b\'{"exit": 0, "kind": "ok"}\')\n'
        "        except OSError:\n            pass\n"
        "os.close(1)\nos.close(2)\ntime.sleep(30)"
    )
    r = one_slot.run(forge, timeout_s=1.5)
    assert r.status == "timeout", r
    # Processes of the stateless uid other than this cell and init, not counting ones that
    # are already dead (a killed process may take a moment to be reaped).
    count = (
        "import os\nme, uid, n = os.getpid(), os.getuid(), 0\n"
        "for p in os.listdir('/proc'):\n    if not p.isdigit() or int(p) in (1, me):\n        continue\n"
        "    try:\n        st = os.stat('/proc/' + p)\n        state = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0]\n"
        "    except OSError:\n        continue\n"
        "    n += st.st_uid == uid and state not in 'ZX'\nprint(n)"
    )
    for _ in range(20):
        r = one_slot.run(count)
        assert r.ok, r
        if r.stdout == "0\n":
            break
        time.sleep(0.1)
    assert r.stdout == "0\n", "a stateless cell outlived its run"


def test_stateless_runs_leave_nothing_for_the_next_run(one_slot):
    """Stateless cells share a uid; whatever one writes where it can (its cwd, /tmp,
    /dev/shm) must be gone before the next run."""
    token = uuid.uuid4().hex
    plant = (
        "import os\ndone = []\n"
        "for d in ('.', '/tmp', '/dev/shm'):\n    try:\n"
        f"        open(os.path.join(d, 'planted-{token}'), 'w').write('x')\n"
        f"        os.makedirs(os.path.join(d, 'nest-{token}', 'a'))\n"
        "        done.append(d)\n    except OSError:\n        pass\nprint(done)"
    )
    r = one_slot.run(plant)
    assert r.ok and "/dev/shm" in r.stdout, r
    find = (
        "import glob\nfound = []\n"
        "for d in ('.', '/tmp', '/tmp/*', '/dev/shm'):\n"
        f"    found += glob.glob(d + '/planted-{token}') + glob.glob(d + '/nest-{token}')\n"
        "print(found)"
    )
    r = one_slot.run(find)
    assert (r.status, r.stdout) == ("ok", "[]\n"), r


def _landlock_scopes() -> bool:
    """Landlock ABI >= 6 (Linux 6.12): what keeps docker sessions' abstract sockets apart."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1)) >= 6


def test_session_cannot_connect_to_another_sessions_abstract_socket(one_slot):
    if one_slot.name == "docker" and not _landlock_scopes():
        pytest.skip("docker sessions share a network namespace; needs Landlock ABI >= 6")
    name = f"tirgym-victim-{uuid.uuid4().hex[:8]}"
    listen = (
        "import socket\nsrv = socket.socket(socket.AF_UNIX)\n"
        f"srv.bind('\\0{name}')\nsrv.listen(4)\n"
        "cli = socket.socket(socket.AF_UNIX)\n"
        f"cli.connect('\\0{name}')\nprint('self-connect ok')"
    )
    connect = (
        "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n"
        f"    s.connect('\\0{name}')\n    print('CONNECTED')\nexcept OSError as e:\n"
        "    print('blocked', e.errno)"
    )
    with one_slot.session() as victim, one_slot.session() as attacker:
        r = victim.run(listen)
        assert (r.status, r.stdout) == ("ok", "self-connect ok\n"), r
        r = attacker.run(connect)
        assert r.ok and r.stdout.startswith("blocked"), r
        r = one_slot.run(connect)
        assert r.ok and r.stdout.startswith("blocked"), r
