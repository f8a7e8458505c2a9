"""One tenant of a slot must not leak to, starve or break another, and no cell may fake its
result. Every case runs on each isolating backend (jail; docker when an engine is up), in a
one-slot pool so that all tenants share one worker, and ends with a health check: a fresh
stateless run and a fresh session still work, and an innocent session kept its state.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest


def healthy(sb, innocent=None) -> None:
    """The slot still serves stateless runs and new sessions; an innocent session is intact."""
    r = sb.run("print(6 * 7)")
    assert (r.status, r.stdout) == ("ok", "42\n"), r
    with sb.session() as s:
        assert s.run("y = 2").ok
        r = s.run("print(y * 21)")
        assert (r.status, r.stdout) == ("ok", "42\n"), r
    if innocent is not None:
        r = innocent.run("print(v)")
        assert (r.status, r.stdout) == ("ok", "alive\n"), r


def both_modes(sb, code: str, **kw):
    """Run code stateless and as the second cell of a session; return both results."""
    stateless = sb.run(code, **kw)
    with sb.session() as s:
        assert s.run("import os").ok
        in_session = s.run(code, **kw)
    return stateless, in_session


# ------------------------------------------------------------------------------ /dev
DEV_WRITES = """
import os, socket
escaped = []
def attempt(name, fn):
    try:
        fn()
        escaped.append(name)
    except OSError:
        pass
attempt('file', lambda: open('/dev/planted-{tag}', 'w').write('x'))
attempt('mkdir', lambda: os.mkdir('/dev/dir-{tag}'))
attempt('stdout_symlink', lambda: (os.remove('/dev/stdout'), os.symlink('/tmp/x', '/dev/stdout')))
attempt('unix_socket', lambda: socket.socket(socket.AF_UNIX).bind('/dev/sock-{tag}'))
print('ESCAPED' if escaped else 'BLOCKED', escaped)
"""


def test_dev_is_read_only(one_slot):
    for r in both_modes(one_slot, DEV_WRITES.format(tag=uuid.uuid4().hex[:8])):
        assert r.ok and r.stdout.startswith("BLOCKED"), r
    r = one_slot.run("import os; print(sorted(p for p in os.listdir('/dev') if 'planted' in p))")
    assert (r.status, r.stdout) == ("ok", "[]\n"), r
    healthy(one_slot)


def test_dev_shm_is_private_and_capped(one_slot):
    token = uuid.uuid4().hex
    with one_slot.session() as victim, one_slot.session() as other:
        assert victim.run("v = 'alive'").ok
        r = victim.run(f"open('/dev/shm/s-{token}', 'w').write('{token}'); print('ok')")
        assert r.ok, r
        look = f"import glob; print(glob.glob('/dev/shm/*{token}*'))"
        assert other.run(look).stdout == "[]\n"
        assert one_slot.run(look).stdout == "[]\n"
        fill = (  # 1 GiB in files under RLIMIT_FSIZE: only the tmpfs cap can stop it
            "for i in range(32):\n    with open(f'/dev/shm/fill{i}', 'wb') as f:\n"
            "        f.write(b'0' * (32 << 20))"
        )
        for r in both_modes(one_slot, fill, timeout_s=20):
            assert r.status in ("error", "killed_by_signal", "memory"), r
        healthy(one_slot, innocent=victim)


HOG = """
made = 0
for where in ('/dev/shm', '.'):
    for i in range(48):
        try:
            with open(f'{where}/hog{i}', 'wb') as f:
                f.write(b'0' * (16 << 20))
        except OSError:
            break
        made += 16
print('hogged', made)
"""

WRITE_64MB = """
for where in ('/dev/shm', '.'):
    for i in range(2):
        with open(f'{{where}}/{tag}-{{i}}', 'wb') as f:
            f.write(b'1' * (32 << 20))
print('wrote')
"""


def test_a_tenant_filling_its_scratch_does_not_starve_another(one_slot):
    """A tenant's files, in its directory and in /dev/shm, count against its own scratch
    budget only (jail: tmpfs mounts of its own; docker: the worker's scratch meter stops it),
    so another session and the next stateless run can still write theirs."""
    with one_slot.session() as victim, one_slot.session() as hog:
        assert victim.run("v = 'alive'").ok
        r = hog.run(HOG, timeout_s=60)
        assert r.status in ("ok", "memory"), r  # ENOSPC at its own cap, or stopped at it
        assert r.status == "ok" or "scratch limit" in r.stderr, r
        r = victim.run(WRITE_64MB.format(tag="victim"), timeout_s=60)
        assert (r.status, r.stdout) == ("ok", "wrote\n"), r
        r = one_slot.run(HOG, timeout_s=60)
        assert r.status in ("ok", "memory"), r
        r = one_slot.run(WRITE_64MB.format(tag="stateless"), timeout_s=60)
        assert (r.status, r.stdout) == ("ok", "wrote\n"), r
        healthy(one_slot, innocent=victim)


def test_ptys_do_not_connect_tenants(one_slot):
    with one_slot.session() as owner, one_slot.session() as other:
        r = owner.run("import os\nm, s = os.openpty()\nprint(os.ttyname(s))")
        assert r.ok, r
        grab = (
            "import os\nopened = []\nfor name in os.listdir('/dev/pts'):\n"
            "    if name.isdigit():\n        try:\n"
            "            os.close(os.open('/dev/pts/' + name, os.O_RDWR | os.O_NOCTTY))\n"
            "            opened.append(name)\n        except OSError:\n            pass\n"
            "print(opened)"
        )
        assert other.run(grab).stdout == "[]\n"
        assert one_slot.run(grab).stdout == "[]\n"


# ------------------------------------------------------------------------------ IPC
IPC_CREATE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
made = {{}}
made['shm'] = libc.shmget({key}, 1 << 20, 0o1666)
made['sem'] = libc.semget({key}, 1, 0o1666)
made['msg'] = libc.msgget({key}, 0o1666)
libc.mq_open.restype = ctypes.c_int
made['mq'] = libc.mq_open(b'/q-{tag}', os.O_CREAT | os.O_RDWR, 0o666, None)
print(made)
"""

IPC_FIND = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
found = []
for kind in ('shm', 'sem', 'msg'):
    with open('/proc/sysvipc/' + kind) as f:
        next(f)
        found += [kind for line in f if line.split() and int(line.split()[0]) == {key}]
if libc.mq_open(b'/q-{tag}', os.O_RDWR) >= 0:
    found.append('mq')
print(found)
"""


def test_ipc_objects_neither_survive_a_run_nor_cross_sessions(one_slot):
    key, tag = 0x7E570000 + (uuid.uuid4().int & 0xFFF), uuid.uuid4().hex[:8]
    create, find = IPC_CREATE.format(key=key, tag=tag), IPC_FIND.format(key=key, tag=tag)
    assert one_slot.run(create).ok
    r = one_slot.run(find)
    assert (r.status, r.stdout) == ("ok", "[]\n"), r
    with one_slot.session() as maker, one_slot.session() as other:
        assert maker.run(create).ok
        r = other.run(find)
        assert (r.status, r.stdout) == ("ok", "[]\n"), r
        r = one_slot.run(find)
        assert (r.status, r.stdout) == ("ok", "[]\n"), r
    healthy(one_slot)


def test_memfd_memory_is_refused(one_slot):
    grab = (
        "import os, mmap\nfds = []\nfor _ in range(24):\n    fd = os.memfd_create('m')\n"
        "    os.ftruncate(fd, 48 << 20)\n    m = mmap.mmap(fd, 48 << 20)\n"
        "    m.write(b'1' * (48 << 20))\n    m.close()\n    fds.append(fd)\nprint('HELD', len(fds))"
    )
    with one_slot.session() as victim:
        assert victim.run("v = 'alive'").ok
        for r in both_modes(one_slot, grab, memory_mb=256, timeout_s=20):
            assert r.status == "error" and "HELD" not in r.stdout, r
        healthy(one_slot, innocent=victim)


# ------------------------------------------------------------------------------ processes
ZOMBIES = """
import os
n = 0
for _ in range(600):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os._exit(0)
    n += 1
print('forked', n)
"""


# Zombies of our uid that we can see (jail: in our session's pid namespace).
ZOMBIE_COUNT = """
import os
n = 0
for p in os.listdir('/proc'):
    try:
        if p.isdigit() and os.stat('/proc/' + p).st_uid == os.getuid():
            n += open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        pass
print(n)
"""


@pytest.mark.slow  # hundreds of forks of a preloaded interpreter: seconds on a loaded box
def test_zombies_left_by_sessions_do_not_starve_the_slot(one_slot):
    with (
        one_slot.session() as victim,
        one_slot.session() as a,
        one_slot.session() as b,
    ):
        assert victim.run("v = 'alive'").ok
        for s in (a, b):
            r = s.run(ZOMBIES, timeout_s=60)
            assert r.ok and r.stdout.startswith("forked"), r
        r = a.run(ZOMBIE_COUNT)
        assert (r.status, r.stdout) == ("ok", "0\n"), r
        r = victim.run(
            "import os\nkids = []\nfor _ in range(100):\n    pid = os.fork()\n"
            "    if pid == 0:\n        os._exit(0)\n    kids.append(pid)\n"
            "for pid in kids:\n    os.waitpid(pid, 0)\nprint(v, len(kids))"
        )
        assert (r.status, r.stdout) == ("ok", "alive 100\n"), r
        healthy(one_slot, innocent=victim)


SETSID_BOMB = """
import os
while True:
    try:
        if os.fork() == 0:
            os.setsid()
    except OSError:
        pass
"""


def test_setsid_fork_bomb_in_a_session_fails_alone(one_slot):
    """Processes that left the cell's session and group still die with the cell; the bomb
    hits its own process budget, and the slot (and a session beside it) lives on."""
    with one_slot.session() as victim:
        assert victim.run("v = 'alive'").ok
        generation = one_slot.slots[0].generation  # read once the slot is up
        for _ in range(3):
            with one_slot.session() as bomber:
                assert bomber.run("b = 1").ok
                r = bomber.run(SETSID_BOMB, timeout_s=2)
                assert r.status in ("timeout", "error"), r
                r = bomber.run("print(b)")
                assert (r.status, r.stdout) == ("ok", "1\n"), r
            healthy(one_slot, innocent=victim)
    assert one_slot.slots[0].generation == generation, "the slot had to restart"


ORPHANS_FILL_THE_BUDGET = """
import os, time
r, w = os.pipe()
if os.fork() == 0:
    if os.fork() == 0:  # an orphan: it forks until the budget is full, then says so
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
            except OSError:
                os.write(w, b'x')
                time.sleep(60)
                os._exit(0)
    os._exit(0)
os.wait()
os.read(r, 1)
x = 'kept'
print('filled')
"""


def test_cell_whose_orphans_fill_the_process_budget_still_finishes(one_slot):
    """The cell returns, but the processes it orphaned hold the session's whole process
    budget, so its fork of the session's next spare fails: it has still finished (its
    verdict and state stand), and the session's next cell runs once they are swept. The
    same happened, racily, after a killed fork bomb whose processes were not yet reaped."""
    with one_slot.session() as s:
        r = s.run(ORPHANS_FILL_THE_BUDGET, timeout_s=8)
        assert (r.status, r.stdout) == ("ok", "filled\n"), r
        r = s.run("print(x)")
        assert (r.status, r.stdout) == ("ok", "kept\n"), r
    healthy(one_slot)


def test_a_jail_slot_has_a_cpu_group_of_its_own():
    """Scheduler autogroups gave every setsid() of a fork bomb a group as heavy as the
    worker's: the worker ended the bomb 3-9 s past a 1 s timeout, and under load the host's
    watchdog restarted the slot, losing its sessions. Tasks outside the root cpu group have
    no autogroup, so the slot's processes must run in a cpu group of their own."""
    from tirgym.sandbox import get_sandbox
    from tirgym.sandbox.backends import JailBackend
    from tirgym.sandbox.cgroups import describe

    reason = JailBackend().unavailable_reason()
    if reason:
        pytest.skip(f"jail backend unavailable: {reason}")
    if "cpu" not in describe():
        pytest.skip(f"no writable cpu cgroup here ({describe()})")
    sb = get_sandbox("jail", workers=1, warm=True)
    try:
        with open(f"/proc/{sb.slots[0].proc.pid}/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
        v1 = [path for _, ctrl, path in lines if "cpu" in ctrl.split(",")]
        cpu_path = v1[0] if v1 else next(path for _, ctrl, path in lines if ctrl == "")
        assert "tirgym-" in cpu_path, lines
    finally:
        sb.close()


BEATS = """
import os, threading, time
def beat(path):
    while True:
        with open(path, 'a') as f:
            f.write(f'{time.time()}\\n')
        time.sleep(0.005)
threading.Thread(target=beat, args=('beat-thread',), daemon=True).start()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        beat('beat-process')
    os._exit(0)
time.sleep(0.2)
print('beating')
"""

LAST_BEATS = """
import os
last = {}
for name in ('beat-thread', 'beat-process'):
    if os.path.exists(name):
        with open(name) as f:
            last[name] = float(f.read().split()[-1])
print(json.dumps(last))
"""


def test_nothing_a_cell_started_runs_between_cells(one_slot):
    with one_slot.session() as s:
        assert s.run("import json").ok
        r = s.run(BEATS)
        assert (r.status, r.stdout) == ("ok", "beating\n"), r
        returned = time.time()
        time.sleep(1.0)
        r = s.run(LAST_BEATS)
        assert r.ok, r
        last = json.loads(r.stdout)
        assert last, r
        for name, when in last.items():
            assert when < returned + 0.3, f"{name} ran {when - returned:.2f} s after its cell"
    healthy(one_slot)


FORGE_DONE = """
import os, socket, sys, time
frame = sys._getframe()
while frame is not None and not ('sock' in frame.f_locals and 'msg' in frame.f_locals):
    frame = frame.f_back
sock, msg = frame.f_locals['sock'], frame.f_locals['msg']
sock.send(json.dumps({'done': os.getpid(), 'exit': 0, 'kind': 'ok', 'cell': msg['cell']}).encode())
end = time.time() + 6
while time.time() < end:
    with open('beat-forger', 'a') as f:
        f.write(f'{time.time()}\\n')
    time.sleep(0.005)
"""


def test_forged_done_record_does_not_let_a_cell_run_on(one_slot):
    with one_slot.session() as s:
        assert s.run("import json\nv = 'alive'").ok
        r = s.run(FORGE_DONE, timeout_s=2)
        returned = time.time()
        assert r.status in ("ok", "timeout"), r
        time.sleep(1.0)
        r = s.run(
            "import os\nlast = 0.0\nif os.path.exists('beat-forger'):\n"
            "    last = float(open('beat-forger').read().split()[-1])\nprint(last)"
        )
        assert r.ok, r
        assert float(r.stdout) < returned + 0.3, "the forging cell kept running after its result"
        r = s.run("print(v)")
        assert (r.status, r.stdout) == ("ok", "alive\n"), r
    healthy(one_slot)


# ------------------------------------------------------------------------------ clear results
def test_closing_stdout_does_not_silence_later_cells(one_slot):
    with one_slot.session() as s:
        assert s.run("import os, sys\nos.close(1)\nos.close(2)").ok
        r = s.run("print('out')\nprint('err', file=sys.stderr)")
        assert (r.status, r.stdout, r.stderr) == ("ok", "out\n", "err\n"), r
        assert s.run("sys.stdout.close()").ok
        r = s.run("print('again')")
        assert (r.status, r.stdout) == ("ok", "again\n"), r


def test_lone_surrogate_is_a_clear_error(one_slot):
    for r in both_modes(one_slot, "print('\udc80')"):
        assert r.status == "error" and "not valid UTF-8" in r.stderr, r


def test_cell_leaving_files_open_fails_alone_with_a_reason(one_slot):
    with one_slot.session() as s:
        assert s.run("v = 'alive'").ok
        r = s.run("fs = [open('/dev/null') for _ in range(250)]")
        assert r.status == "error" and "files open" in r.stderr, r
        r = s.run("print(v, 'fs' in dir())")
        assert (r.status, r.stdout) == ("ok", "alive False\n"), r


def test_stateless_cell_cannot_forge_its_exit_status(one_slot):
    forge = (
        "import os\nfor fd in range(3, 64):\n    try:\n"
        '        os.write(fd, b\'{"exit": 0, "kind": "ok"}\')\n    except OSError:\n        pass\n'
        "os._exit(3)"
    )
    r = one_slot.run(forge)
    assert (r.status, r.exit_code) == ("error", 3), r
    assert "code 3" in r.stderr, r
    healthy(one_slot)


# ------------------------------------------------------------------------------ cleanup
MKDIRS = (
    "import os\nn = 0\ntry:\n    for i in range(3_000_000):\n        os.mkdir(f'd{i}')\n"
    "        n += 1\nexcept OSError as e:\n    print('stopped', e.errno)\n"
)


def stopped_at_its_cap(r) -> bool:
    """The jail's tmpfs cap made the cell's own writes fail (it printed "stopped"), or the
    docker worker's scratch meter stopped the cell, saying why."""
    ok_after_enospc = r.ok and r.stdout.startswith("stopped")
    return ok_after_enospc or (r.status == "memory" and "scratch limit" in r.stderr)


def test_a_cell_making_masses_of_directories_cleans_up_on_its_own_clock(one_slot):
    """The inode cap stops it; removing what it made delays neither the next run nor close."""
    assert one_slot.run("pass").ok
    generation = one_slot.slots[0].generation  # read once the slot is up
    r = one_slot.run(MKDIRS, timeout_s=30)
    assert stopped_at_its_cap(r), r
    t = time.monotonic()
    r = one_slot.run("print(1)")
    assert (r.status, r.stdout) == ("ok", "1\n") and time.monotonic() - t < 1.0, r
    with one_slot.session() as victim:
        assert victim.run("v = 'alive'").ok
        s = one_slot.session()
        r = s.run(MKDIRS, timeout_s=30)
        assert stopped_at_its_cap(r), r
        t = time.monotonic()
        s.close()
        assert time.monotonic() - t < 1.0
        healthy(one_slot, innocent=victim)
    assert one_slot.slots[0].generation == generation, "the slot had to restart"
