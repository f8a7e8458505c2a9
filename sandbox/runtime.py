"""The Python runtime a jail or container sees: the interpreter, its stdlib and a few packages.

The host interpreter may live under a directory the sandbox uid cannot enter (pyenv under
/root here), so we mirror just what the worker needs into a world-readable directory, with
hard links where possible (no copy, no extra disk), and bind that mirror read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import stat
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path

WORKER_SRC = Path(__file__).with_name("worker.py")
SITE_MODULES = ("numpy", "sympy", "mpmath", "pyseccomp")
SKIP_STDLIB = {
    "site-packages",
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "__pycache__",
}
DEFAULT_ROOT = os.environ.get("TIRGYM_SANDBOX_RUNTIME", "/var/lib/tirgym/sandbox-runtime")


@dataclass(frozen=True)
class Runtime:
    """Where things are on the host (mirror) and where the jail sees them."""

    root: Path  # mirror root on the host
    prefix: str  # sys.base_prefix; the mirror's prefix/ is bound here inside the jail
    python: str  # interpreter path inside the jail
    site: str = "/opt/tirgym/site"
    worker: str = "/opt/tirgym/worker.py"
    worker_file: str = "worker.py"  # name of the host copy (named by its content hash)

    @property
    def host_prefix(self) -> Path:
        return self.root / "prefix"

    @property
    def host_site(self) -> Path:
        return self.root / "site"

    @property
    def host_worker(self) -> Path:
        return self.root / self.worker_file


def _key() -> str:
    parts = [sys.version, os.path.realpath(sys.executable)]
    for name in SITE_MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        mtime = os.stat(origin).st_mtime_ns if origin and os.path.exists(origin) else 0
        parts.append(f"{name}:{origin}:{mtime}")  # a reinstall changes the mtime
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    mode = dst.stat().st_mode
    os.chmod(dst, mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _mirror_tree(src: Path, dst: Path, skip: set[str] = frozenset()) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d not in skip and d != "__pycache__"]
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(dst / rel, 0o755)
        for name in filenames:
            _link(Path(dirpath) / name, dst / rel / name)


def _module_paths(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return []
    origin = Path(spec.origin)
    top = origin.parent if spec.submodule_search_locations else origin
    paths = [top]
    libs = top.parent / f"{name}.libs"
    if libs.is_dir():
        paths.append(libs)
    return paths


_LOCK = threading.Lock()
_BUILT: dict[str, Runtime] = {}


def build_runtime(root: str | os.PathLike = DEFAULT_ROOT) -> Runtime:
    """Create (once per interpreter/package set) the mirror and return where everything is."""
    with _LOCK:
        if str(root) not in _BUILT:
            try:
                _BUILT[str(root)] = _build_runtime(root)
            except PermissionError:
                if str(root) != DEFAULT_ROOT or os.getuid() == 0:
                    raise
                # Not root: bwrap runs as this user, who can read a mirror in their own cache.
                cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                _BUILT[str(root)] = _build_runtime(cache / "tirgym" / "sandbox-runtime")
        return _BUILT[str(root)]


def _build_runtime(root: str | os.PathLike) -> Runtime:
    base = Path(sys.base_prefix)
    exe = Path(os.path.realpath(sys.executable))
    out = Path(root) / _key()
    source = WORKER_SRC.read_bytes()
    worker_file = f"worker-{hashlib.sha256(source).hexdigest()[:16]}.py"
    runtime = Runtime(root=out, prefix=str(base), python=str(exe), worker_file=worker_file)
    stamp = out / ".complete"
    if not stamp.exists():
        tmp = Path(f"{out}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        _mirror_tree(stdlib, tmp / "prefix" / stdlib.relative_to(base), SKIP_STDLIB)
        _link(exe, tmp / "prefix" / exe.relative_to(base))
        libdir = base / "lib"
        for lib in libdir.glob("libpython*.so*"):
            _link(lib, tmp / "prefix" / "lib" / lib.name)
        (tmp / "site").mkdir(parents=True, exist_ok=True)
        for name in SITE_MODULES:
            for path in _module_paths(name):
                if path.is_dir():
                    _mirror_tree(path, tmp / "site" / path.name)
                else:
                    _link(path, tmp / "site" / path.name)
        for d in [Path(root), tmp, *[p for p in tmp.rglob("*") if p.is_dir()]]:
            with contextlib.suppress(OSError):
                os.chmod(d, 0o755)
        (tmp / ".complete").write_text("ok\n")
        try:
            os.rename(tmp, out)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    # The worker source changes with the repo: one copy per version, named by its hash, so
    # processes running different versions side by side never swap each other's worker.
    if not runtime.host_worker.exists():
        tmp_worker = out / f".worker-{os.getpid()}-{threading.get_ident()}.py"
        tmp_worker.write_bytes(source)
        os.chmod(tmp_worker, 0o644)
        os.replace(tmp_worker, runtime.host_worker)
    return runtime
