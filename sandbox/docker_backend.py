"""Docker backend: one long-lived container per slot running the same worker as the jail.

Each container: no network, read-only rootfs, tmpfs scratch, memory/pids/CPU limits,
no-new-privileges, and gVisor (runsc) when the engine has it. The worker keeps only
CAP_SETUID/SETGID/KILL/CHOWN so that every session runs as a uid of its own (docker's seccomp
profile rules out the jail's per-session namespaces); cells run as non-root uids, with none.
The worker's stdin/stdout are attached through `docker run -i`, so the protocol is the same
as for the jail; a cold container start (~2.5 s) is paid once per slot.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from tirgym.sandbox.backends import SANDBOX_UID, THREAD_ENV, Backend
from tirgym.sandbox.runtime import WORKER_SRC

DEFAULT_IMAGE = "tirgym-sandbox:latest"
IMAGE_PYTHON = "/opt/tirgym/python"  # the image's interpreter (a symlink made by docker_image)


@functools.lru_cache(maxsize=8)
def _engine_info(docker_host: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(reason the engine is unreachable or None, runtimes it offers)."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (apt-get install docker.io)", ()
    env = {**os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {})}
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{json .Runtimes}}"],
            capture_output=True,
            text=True,
            timeout=5,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker engine did not answer: {e}", ()
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["no engine"])[-1]
        return f"no Docker engine is reachable ({err}); start one with scripts/start_dockerd.sh", ()
    try:
        runtimes = tuple(json.loads(proc.stdout or "{}"))
    except ValueError:
        runtimes = ()
    return None, runtimes


def image_exists(image: str, docker_host: str | None = None) -> bool:
    env = {**os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {})}
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, timeout=10, env=env
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@dataclass
class DockerBackend(Backend):
    name: str = "docker"
    docker_image: str = DEFAULT_IMAGE
    docker_runtime: str | None = None  # None: runsc when installed, else the engine default
    docker_host: str | None = None  # e.g. unix:///run/tirgym-docker.sock; default: DOCKER_HOST
    docker_cpus: float = 1.0
    docker_build: bool = True  # build the default image locally when it is missing
    use_cgroup: bool = False  # the container has its own limits
    _names: dict[int, str] = field(default_factory=dict, repr=False)
    _starts: int = field(default=0, repr=False)

    def _host(self) -> str | None:
        return self.docker_host or os.environ.get("DOCKER_HOST")

    def _env(self) -> dict[str, str]:
        host = self._host()
        return {**os.environ, **({"DOCKER_HOST": host} if host else {})}

    def unavailable_reason(self) -> str | None:
        reason, _ = _engine_info(self._host())
        if reason:
            return reason
        if image_exists(self.docker_image, self._host()):
            return None
        if self.docker_build and self.docker_image == DEFAULT_IMAGE:
            from tirgym.sandbox.docker_image import build_image

            try:
                build_image(self.docker_image, docker_host=self._host())
            except Exception as e:  # reported, not raised: auto then tries the jail
                return f"could not build image {self.docker_image}: {e}"
            return None
        return (
            f"image {self.docker_image} is missing (build it with scripts/build_sandbox_image.sh)"
        )

    def runtime_name(self) -> str | None:
        if self.docker_runtime:
            return self.docker_runtime
        _, runtimes = _engine_info(self._host())
        return "runsc" if "runsc" in runtimes else None

    def command(self, slot: int) -> tuple[list[str], dict[str, str] | None]:
        self._starts += 1
        name = f"tirgym-sb-{os.getpid()}-{slot}-{uuid.uuid4().hex[:12]}"
        self._names[slot] = name
        cfg = {
            **self.worker_cfg(),
            "harden": True,
            "scratch": "/tmp",
            "site": ["/opt/tirgym/site"],
            # docker's seccomp profile forbids namespaces: sessions get a uid each instead
            "isolation": "uid",
            "stateless_uid": SANDBOX_UID,
            "scratch_mb": self.scratch_mb,  # each tenant's budget, counted by the worker
            "scratch_inodes": self.scratch_inodes,
        }
        argv = ["docker", "run", "-i", "--rm", "--name", name, "--network", "none", "--read-only"]
        # /tmp is root's and 0711: cells reach only their own 0700 directory in it. Tenants
        # share it and /dev/shm; the worker holds each to scratch_mb / scratch_inodes (its
        # ScratchMeter), so the mounts are sized for as many tenants at their budget as the
        # slot's memory holds (a tmpfs size is a cap, not a reservation).
        tenants = max(4, self.slot_memory_mb // self.scratch_mb)
        tmp_mb = self.scratch_mb * tenants
        tmp = f"size={tmp_mb}m,nr_inodes={self.scratch_inodes * tenants},mode=0711"
        argv += ["--tmpfs", f"/tmp:rw,nosuid,nodev,{tmp}"]
        argv += ["--shm-size", f"{tmp_mb}m"]
        argv += ["--memory", f"{self.slot_memory_mb}m", "--memory-swap", f"{self.slot_memory_mb}m"]
        argv += ["--pids-limit", str(self.nproc * 2), *cpu_quota_args(self.docker_cpus)]
        # The worker starts as root with only what it needs to give each session its own uid,
        # to signal them and to run above their priority (SYS_NICE: a fork bomb must not
        # starve it); every cell drops to a non-root uid, which clears all five.
        argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        for cap in ("SETUID", "SETGID", "KILL", "CHOWN", "SYS_NICE"):
            argv += ["--cap-add", cap]
        argv += [
            "--user",
            "0:0",
            "--ulimit",
            "core=0",
            "--log-driver",
            "none",
        ]
        argv += ["--hostname", "sandbox", "--workdir", "/tmp"]
        for k, v in {**THREAD_ENV, "HOME": "/tmp", "PATH": "/usr/bin:/bin"}.items():
            argv += ["-e", f"{k}={v}"]
        argv += ["-v", f"{WORKER_SRC}:/opt/tirgym/worker.py:ro"]
        runtime = self.runtime_name()
        if runtime:
            argv += ["--runtime", runtime]
        argv += [
            self.docker_image,
            IMAGE_PYTHON,
            "-I",
            "-B",
            "/opt/tirgym/worker.py",
            json.dumps(cfg),
        ]
        return argv, self._env()

    def cleanup_slot(self, slot: int) -> None:
        """Killing the `docker run` client does not stop the container: remove it."""
        name = self._names.pop(slot, None)
        if name:
            remove_container(name, self._env())


def cpu_quota_args(cpus: float) -> list[str]:
    """docker's --cpus, over a 5 ms period instead of its 100 ms.

    A container past its quota is throttled as a whole, the worker too, however high its
    priority: under a setsid fork bomb holding a 1-CPU quota on this 2-core box, the worker
    answered seconds late and missed the host's watchdog 1 run in 3 at the 100 ms period;
    with 5 ms it saw every timeout in time (9 of 9 bombs, 2.3-4.5 s for a 2 s cell).
    docker takes no quota under 1 ms, so small shares get a longer period.
    """
    period = max(5000, math.ceil(1000 / cpus))
    return ["--cpu-period", str(period), "--cpu-quota", str(round(period * cpus))]


def _docker(args: list[str], env: dict[str, str], timeout_s: float) -> str | None:
    """stdout of a docker command, or None when it failed or did not answer in time."""
    try:
        proc = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _kill_cgroup_tasks(container_id: str) -> int:
    """SIGKILL every host process in the container's cgroup (needs the host's root); returns
    how many were signalled."""
    hit = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if container_id not in f.read():
                    continue
            os.kill(int(entry), signal.SIGKILL)
            hit += 1
        except OSError:
            continue
    return hit


def remove_container(name: str, env: dict[str, str], wait_s: float = 90.0) -> bool:
    """Remove a slot's container and make sure it is gone; False if it is still there.

    A container full of processes that die slowly (a fork bomb's, at the lowest priority)
    can make the engine give up on `docker rm -f` ("did not receive an exit event") and leave
    it running: then its processes are killed through its cgroup and the removal is retried.
    """
    found = _docker(["inspect", "--format", "{{.Id}}", name], env, 20)
    container_id = found.strip() if found else None
    end = time.monotonic() + wait_s
    while True:
        _docker(["rm", "-f", name], env, max(1.0, min(30.0, end - time.monotonic())))
        listed = _docker(["ps", "-aq", "--filter", f"name=^{name}$"], env, 20)
        if listed is not None and not listed.strip():
            return True  # gone (an engine that did not answer says nothing)
        if container_id:
            _kill_cgroup_tasks(container_id)
        if time.monotonic() >= end:
            return False
        time.sleep(0.5)
