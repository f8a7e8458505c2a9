"""Behaviour every backend must share: statuses, limits, sessions, survival, concurrency."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tirgym.errors import TirgymError
from tirgym.sandbox import ExecResult, Session


def test_ok_captures_stdout_and_stderr(sb):
    r = sb.run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert isinstance(r, ExecResult)
    assert (r.status, r.exit_code, r.stdout, r.stderr) == ("ok", 0, "out\n", "err\n")
    assert r.ok and 0 < r.duration_s < 5


def test_preloaded_modules_work(sb):
    r = sb.run(
        "import numpy as np, sympy as sp, math\nprint(int(np.arange(5).sum()), sp.factorint(12), math.isqrt(17))"
    )
    assert r.ok, r.stderr
    assert r.stdout == "10 {2: 2, 3: 1} 4\n"


def test_error_has_traceback_without_worker_frames(sb):
    r = sb.run("def f():\n    return 1/0\nf()")
    assert (r.status, r.exit_code) == ("error", 1)
    assert "ZeroDivisionError" in r.stderr and 'File "<cell>", line 2' in r.stderr
    assert "worker.py" not in r.stderr
    assert sb.run("x = (").status == "error"


def test_sys_exit_codes(sb):
    assert sb.run("import sys; sys.exit(0)").status == "ok"
    r = sb.run("import sys; sys.exit(3)")
    assert (r.status, r.exit_code) == ("error", 3)


def test_timeout_kills_cpu_spin_and_sleep(sb):
    r = sb.run("while True: pass", timeout_s=0.5)
    assert (r.status, r.exit_code) == ("timeout", None)
    assert r.duration_s < 3
    assert sb.run("import time; time.sleep(60)", timeout_s=0.5).status == "timeout"


def test_timeout_keeps_output_printed_before(sb):
    r = sb.run("import time\nprint('before', flush=True)\ntime.sleep(60)", timeout_s=0.5)
    assert r.status == "timeout" and r.stdout == "before\n"


def test_output_limit_truncates(sb):
    r = sb.run("while True: print('x' * 1000)", max_output_bytes=5000, timeout_s=3)
    assert r.status == "output_limit"
    assert len(r.stdout) <= 5000 and r.stdout.startswith("xxx")


def test_memory_limit(sb):
    r = sb.run("x = bytearray(3 * 1024**3)", memory_mb=256)
    assert r.status == "memory", r
    assert sb.run("x = bytearray(50 * 1024**2); print(len(x))", memory_mb=256).ok


def test_threads_work_under_memory_limit(sb):
    code = (
        "import threading\nts=[threading.Thread(target=sum, args=([1]*1000,)) for _ in range(64)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]; print('ok')"
    )
    r = sb.run(code, memory_mb=256)
    assert r.ok and r.stdout == "ok\n", r


def test_segfault_is_crashed(sb):
    r = sb.run("import ctypes; ctypes.string_at(0)")
    assert (r.status, r.exit_code) == ("crashed", -11)


def test_killed_by_signal(sb):
    r = sb.run("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert (r.status, r.exit_code) == ("killed_by_signal", -15)


def test_closed_pipes_cannot_dodge_timeout(sb):
    r = sb.run("import os; os.close(1); os.close(2)\nwhile True: pass", timeout_s=0.5)
    assert r.status == "timeout"


def test_stateless_runs_share_nothing(sb):
    assert sb.run("x = 1; open('f.txt', 'w').write('1')").ok
    r = sb.run("import os; print('x' in globals(), os.path.exists('f.txt'))")
    assert r.stdout == "False False\n"


def test_stdin_is_empty(sb):
    r = sb.run("import sys; print(repr(sys.stdin.read()))")
    assert r.ok and r.stdout == "''\n"


def test_session_state_and_display(sb):
    with sb.session() as s:
        assert isinstance(s, Session)
        assert s.run("import math\nx = 41\nopen('notes.txt', 'w').write('hi')").ok
        r = s.run("x + 1")
        assert (r.stdout, r.status) == ("42\n", "ok")
        r = s.run("math.sqrt(16), open('notes.txt').read()")
        assert r.stdout == "(4.0, 'hi')\n"
        assert s.run("None").stdout == ""


def test_session_keeps_partial_state_of_a_raising_cell(sb):
    with sb.session() as s:
        r = s.run("y = 5\nraise ValueError('boom')")
        assert r.status == "error" and "ValueError: boom" in r.stderr
        assert s.run("print(y)").stdout == "5\n"


def test_session_survives_timeout_segfault_fork_bomb(sb):
    """The bar from the issue: state -> timeout -> segfault -> fork bomb -> state still there."""
    with sb.session() as s:
        assert s.run("state = {'a': 1}\nimport numpy as np\narr = np.arange(3)").ok
        r = s.run("state['a'] = 999\nwhile True: pass", timeout_s=0.5)
        assert r.status == "timeout"
        r = s.run("state['a'] = 998\nimport ctypes; ctypes.string_at(0)")
        assert r.status == "crashed"
        r = s.run("state['a'] = 997\nimport os\nwhile True:\n    os.fork()", timeout_s=1)
        assert r.status in ("timeout", "error"), r
        r = s.run("print(state, arr.tolist())")
        assert r.ok and r.stdout == "{'a': 1} [0, 1, 2]\n", r


def test_session_output_flood_discarded(sb):
    with sb.session() as s:
        s.run("n = 7")
        r = s.run("n = 8\nwhile True: print('y' * 100)", max_output_bytes=1000)
        assert r.status == "output_limit"
        assert s.run("n").stdout == "7\n"


def test_sessions_do_not_see_each_other(sb):
    with sb.session() as a, sb.session() as b:
        a.run("secret = 'A'\nopen('secret.txt', 'w').write('A')")
        r = b.run("import os; print('secret' in globals(), os.path.exists('secret.txt'))")
        assert r.stdout == "False False\n"
        assert a.run("secret").stdout == "'A'\n"


def test_closed_session_rejects_runs(sb):
    s = sb.session()
    s.run("1")
    s.close()
    with pytest.raises(TirgymError):
        s.run("1")


def test_thread_safety_many_concurrent_runs(sb):
    results: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        r = sb.run(f"print({i} * 2)")
        with lock:
            results.append(r.stdout)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"{i * 2}\n" for i in range(16))


def test_asyncio_runs_and_sessions(sb):
    async def main():
        s = sb.session()
        await s.arun("z = 3")
        rs = await asyncio.gather(*(sb.arun(f"print({i})") for i in range(6)), s.arun("z * 2"))
        s.close()
        return rs

    rs = asyncio.run(main())
    assert [r.stdout for r in rs] == [f"{i}\n" for i in range(6)] + ["6\n"]


def test_bad_limits_are_user_errors(sb):
    with pytest.raises(TirgymError):
        sb.run("1", timeout_s=0)
    with pytest.raises(TirgymError):
        sb.run(b"print(1)")  # type: ignore[arg-type]


def test_session_whose_processes_are_killed_recovers(sb):
    """Where another session's cell can kill our holder (local: no isolation), we report it
    once and go on; isolating backends keep the victim intact (test_sandbox_isolation.py)."""
    with sb.session() as victim, sb.session() as attacker:
        victim.run("v = 1")
        pids = victim.run("import os; print(os.getpid(), os.getppid())").stdout.split()
        code = "import os, signal\nfor p in ({}):\n    try:\n        os.kill(p, signal.SIGKILL)\n    except OSError:\n        pass"
        attacker.run(code.format(", ".join(pids)))
        r = victim.run("v")
        assert r.status in ("crashed", "ok"), r
        if sb.name != "local":
            assert (r.status, r.stdout) == ("ok", "1\n"), r
        if r.status == "crashed":
            assert victim.run("w = 2\nw").stdout == "2\n"


def test_session_random_state_persists_and_stateless_runs_differ(sb):
    with sb.session() as s:
        s.run("import random\nrandom.seed(123)")
        a = s.run("random.random()").stdout
        s.run(
            "import threading\nt = threading.Thread(target=lambda: __import__('time').sleep(30), daemon=True)\nt.start()"
        )
        b = s.run("random.random()").stdout
    import random

    rng = random.Random(123)
    assert (a, b) == (f"{rng.random()!r}\n", f"{rng.random()!r}\n")
    draws = {sb.run("import random; print(random.random())").stdout for _ in range(4)}
    assert len(draws) == 4


def test_fork_bomb_ending_in_an_exception_is_discarded(isolating_sb):
    """Hitting the process limit raises BlockingIOError in the cell (status "error", not a
    timeout); the cell left processes behind, so it is discarded like a timeout."""
    with isolating_sb.session() as s:
        assert s.run("state = {'a': 1}").ok
        r = s.run("state['a'] = 997\nimport os\nwhile True:\n    os.fork()", timeout_s=5)
        assert r.status in ("error", "timeout"), r
        assert s.run("print(state)").stdout == "{'a': 1}\n"
        assert s.run("state['a'] = 2\nraise ValueError('x')").status == "error"
        assert s.run("print(state)").stdout == "{'a': 2}\n"  # a plain raising cell still commits
