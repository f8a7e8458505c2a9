"""The tenant load test: 48 client threads on one pool, 6 of them hostile (spin, fork bomb,
setsid fork bomb, zombies, a thread left spinning, a forged "done"); no innocent run may fail.
It runs benchmarks/bench_sandbox.py --load, which also prints the innocent p99."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tirgym.sandbox.backends import JailBackend

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sandbox.py"


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("jail", id="jail"),
        pytest.param("docker", id="docker", marks=pytest.mark.docker),
    ],
)
def test_no_innocent_failures_under_hostile_load(backend):
    if backend == "jail":
        reason = JailBackend().unavailable_reason()
    else:
        from tirgym.sandbox.docker_backend import DockerBackend

        reason = DockerBackend().unavailable_reason()
    if reason:
        pytest.skip(f"{backend} backend unavailable: {reason}")
    cmd = [sys.executable, str(BENCH), "--load", "--backend", backend, "--seconds", "20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert "innocent failures 0" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
