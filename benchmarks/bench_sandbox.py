"""Sandbox speed: latency and throughput of the jail (and docker/local) vs a cold `python -c`.

Prints median/p99 latency of a stateless `print(1)` and of a stateful session turn, runs/s
with 1 and 2 workers, and the same for a cold unsandboxed `python -c` subprocess measured in
the same run, then checks the issue's bars (jail: <= 5 ms median per stateless cell and per
session turn, >= 250 runs/s on 2 workers, >= 4x a cold subprocess).

    .venv/bin/python benchmarks/bench_sandbox.py [--backend jail|docker|local|all] [--n 300]

--load runs the tenant load test instead: many client threads share one pool, a few of them
hostile (spin, fork bomb, setsid fork bomb, zombies, a spinning thread left behind, a forged
"done"); it prints the innocent failures (the bar is zero) and the innocent p50/p99 latency.

    .venv/bin/python benchmarks/bench_sandbox.py --load [--threads 48 --hostile 6 --seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time

from tirgym.sandbox import get_sandbox
from tirgym.sandbox.core import make_backend

CODE = "print(1)"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def latency(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def throughput(fn, clients: int, seconds: float) -> float:
    count = [0] * clients
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            fn()
            count[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / (time.perf_counter() - t0)


def _proc_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of pid in seconds (children count once reaped)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def sandbox_cpu(sb) -> float | None:
    """CPU seconds used so far by this process plus every slot's process tree."""
    total = sum(os.times()[:2])
    for slot in sb.slots:
        if slot.proc is None or slot.backend.name == "docker":
            return None
        for pid in _descendants(slot.proc.pid):
            with contextlib.suppress(OSError):
                total += _proc_cpu(pid)
    return total


def cold_subprocess() -> None:
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert r.stdout == "1\n"


def fmt(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:7.2f} ms   p99 {pct(xs, 0.99) * 1000:7.2f} ms"


def bench_backend(name: str, n: int, seconds: float) -> dict:
    sb1 = get_sandbox(name, workers=1, warm=True)
    sb2 = get_sandbox(name, workers=2, warm=True)

    def stateless() -> None:
        r = sb1.run(CODE)
        assert r.stdout == "1\n", r

    for _ in range(20):
        stateless()
    lat = latency(stateless, n)

    def open_close() -> None:
        with sb1.session() as s:
            r = s.run("x = 1")
            assert r.ok, r

    for _ in range(5):
        open_close()
    lat_o = latency(open_close, max(20, n // 5))
    with sb1.session() as s:
        s.run("x = 1")

        def turn() -> None:
            r = s.run("x += 1\nprint(x)")
            assert r.ok, r

        for _ in range(20):
            turn()
        lat_s = latency(turn, n)
    rps1 = throughput(lambda: sb1.run(CODE), clients=2, seconds=seconds)
    counter = [0]

    def counted() -> None:
        sb2.run(CODE)
        counter[0] += 1

    c0 = sandbox_cpu(sb2)
    rps2 = throughput(counted, clients=4, seconds=seconds)
    c1 = sandbox_cpu(sb2)
    cpu_per_run = (
        (c1 - c0) / counter[0] if c0 is not None and c1 is not None and counter[0] else None
    )
    sb1.close()
    sb2.close()
    return {
        "lat": lat,
        "lat_s": lat_s,
        "lat_o": lat_o,
        "rps1": rps1,
        "rps2": rps2,
        "cpu": cpu_per_run,
    }


HOSTILE = {
    "spin": (False, "while True:\n    pass"),
    "fork_bomb": (True, "import os\nwhile True:\n    os.fork()"),
    "setsid_fork_bomb": (
        True,
        "import os\nwhile True:\n    try:\n        if os.fork() == 0:\n            os.setsid()\n"
        "    except OSError:\n        pass",
    ),
    "zombies": (
        True,
        "import os\nfor _ in range(600):\n    try:\n        pid = os.fork()\n    except OSError:\n"
        "        break\n    if pid == 0:\n        os._exit(0)",
    ),
    "thread_left_spinning": (
        True,
        "import threading\ndef spin():\n    while True:\n        pass\n"
        "threading.Thread(target=spin, daemon=True).start()",
    ),
    "forged_done": (
        True,
        "import json, os, sys, time\nf = sys._getframe()\n"
        "while f is not None and 'sock' not in f.f_locals:\n    f = f.f_back\n"
        "f.f_locals['sock'].send(json.dumps({'done': os.getpid(), 'exit': 0, 'kind': 'ok',"
        " 'cell': f.f_locals['msg']['cell']}).encode())\nwhile True:\n    pass",
    ),
}


def load_test(name: str, threads: int, hostile: int, seconds: float, workers: int) -> dict:
    """Innocent clients (stateless runs and counting sessions) beside hostile ones."""
    sb = get_sandbox(name, workers=workers, warm=True)
    stop = time.perf_counter() + seconds
    lock = threading.Lock()
    lat: list[float] = []
    failures: list[str] = []
    hostile_runs = [0]
    kinds = list(HOSTILE)

    def record(t: float, bad: str | None) -> None:
        with lock:
            lat.append(time.perf_counter() - t)
            if bad:
                failures.append(bad)

    def innocent_stateless() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = sb.run("print(sum(range(1000)))")
            record(
                t, None if r.stdout == "499500\n" else f"stateless: {r.status} {r.stderr[-200:]!r}"
            )

    def innocent_session() -> None:
        while time.perf_counter() < stop:
            with sb.session() as s:
                for n in range(1, 21):
                    if time.perf_counter() >= stop:
                        break
                    t = time.perf_counter()
                    r = s.run("n = globals().get('n', 0) + 1\nprint(n)")
                    want = f"{n}\n"
                    record(
                        t,
                        None
                        if r.stdout == want
                        else f"session: {r.status} {r.stdout!r} {r.stderr[-200:]!r}",
                    )

    def attacker(i: int) -> None:
        in_session, code = HOSTILE[kinds[i % len(kinds)]]
        while time.perf_counter() < stop:
            if in_session:
                with sb.session() as s:
                    s.run("a = 1")
                    s.run(code, timeout_s=1.0)
                    s.run("a", timeout_s=1.0)
            else:
                sb.run(code, timeout_s=1.0)
            with lock:
                hostile_runs[0] += 1

    ts = [threading.Thread(target=attacker, args=(i,)) for i in range(hostile)]
    for i in range(threads - hostile):
        target = innocent_stateless if i % 2 else innocent_session
        ts.append(threading.Thread(target=target))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    sb.close()
    return {"lat": lat, "failures": failures, "hostile_runs": hostile_runs[0]}


def run_load(names: list[str], args) -> int:
    ok = True
    print(f"machine load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name in names:
        r = load_test(name, args.threads, args.hostile, args.seconds, args.workers)
        print(
            f"\n{name}: {args.threads} threads ({args.hostile} hostile), {args.workers} workers, {args.seconds:.0f} s"
        )
        print(f"  innocent runs {len(r['lat'])}   hostile cells {r['hostile_runs']}")
        print(f"  innocent latency {fmt(r['lat'])}")
        print(f"  innocent failures {len(r['failures'])}")
        for line in r["failures"][:5]:
            print(f"    {line}")
        passed = not r["failures"] and bool(r["lat"])
        print(f"  [{'PASS' if passed else 'MISS'}] zero innocent failures")
        ok &= passed
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backend", default="jail", help="jail, docker, local, or all (the available ones)"
    )
    ap.add_argument("--n", type=int, default=300, help="runs per latency figure")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput figure")
    ap.add_argument("--load", action="store_true", help="run the tenant load test instead")
    ap.add_argument("--threads", type=int, default=48, help="--load: client threads")
    ap.add_argument("--hostile", type=int, default=6, help="--load: hostile ones among them")
    ap.add_argument("--workers", type=int, default=2, help="--load: slots in the pool")
    args = ap.parse_args()

    names = [args.backend]
    if args.backend == "all":
        names = []
        for name in ("jail", "docker", "local"):
            try:
                make_backend(name)
                names.append(name)
            except Exception as e:
                print(f"[skip] {name}: {e}")

    if args.load:
        return run_load([n for n in names if n != "local"], args)

    print("baseline: cold unsandboxed subprocess `python -c 'print(1)'`")
    cold_subprocess()
    base_lat = latency(cold_subprocess, max(20, args.n // 10))
    base1 = throughput(cold_subprocess, clients=1, seconds=args.seconds)
    base2 = throughput(cold_subprocess, clients=2, seconds=args.seconds)
    print(f"  latency       {fmt(base_lat)}")
    print(f"  runs/s        1 worker {base1:7.1f}   2 workers {base2:7.1f}")
    print(f"  machine load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    ok = True
    for name in names:
        r = bench_backend(name, args.n, args.seconds)
        ratio_lat = statistics.median(base_lat) / statistics.median(r["lat"])
        ratio_rps = r["rps2"] / base2
        print(f"\n{name}:")
        print(f"  stateless     {fmt(r['lat'])}")
        print(f"  session turn  {fmt(r['lat_s'])}")
        print(f"  session open  {fmt(r['lat_o'])}   (open + first turn + close)")
        print(f"  runs/s        1 worker {r['rps1']:7.1f}   2 workers {r['rps2']:7.1f}")
        print(
            f"  vs cold subprocess: latency {ratio_lat:.1f}x faster, 2-worker throughput {ratio_rps:.1f}x"
        )
        if r["cpu"]:
            print(
                f"  CPU per run (host + whole slot tree) {r['cpu'] * 1000:.2f} ms"
                f" -> 2 idle cores could serve ~{2 / r['cpu']:.0f} runs/s"
            )
        if name == "jail":
            bars = {
                "stateless median <= 5 ms": statistics.median(r["lat"]) <= 0.005,
                "session turn median <= 5 ms": statistics.median(r["lat_s"]) <= 0.005,
                ">= 250 runs/s on 2 workers": r["rps2"] >= 250,
                ">= 4x a cold subprocess (throughput)": ratio_rps >= 4,
            }
            for bar, passed in bars.items():
                print(f"  [{'PASS' if passed else 'MISS'}] {bar}")
                ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
