"""Build the default sandbox image without a registry: `docker import` of the host runtime.

The tarball holds the same runtime the jail binds (interpreter, stdlib, numpy, sympy,
mpmath, pyseccomp) plus every shared library those need (found with ldd), the loader and
its cache, and the merged-/usr symlinks. Nothing else: no shell, no package manager.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from pathlib import Path

from tirgym.sandbox.runtime import build_runtime

_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def _shared_libs(paths: list[Path]) -> set[str]:
    libs: set[str] = set()
    for path in paths:
        try:
            out = subprocess.run(
                ["ldd", str(path)], capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines():
            m = _LDD_LINE.search(line)
            if m and os.path.exists(m.group(1)):
                libs.add(m.group(1))
    return libs


def _canonical(path: str) -> str:
    """The path with its directories resolved (/lib -> /usr/lib), the file name kept."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _add(tar: tarfile.TarFile, src: str, arcname: str, seen: set[str]) -> None:
    """Add src at arcname, with its parent directories; symlinks are kept and followed."""
    arcname = arcname.lstrip("/")
    if arcname in seen:
        return
    parts = Path(arcname).parts
    for i in range(1, len(parts)):
        d = "/".join(parts[:i])
        if d not in seen:
            seen.add(d)
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
    seen.add(arcname)
    if os.path.islink(src):
        info = tarfile.TarInfo(arcname)
        info.type = tarfile.SYMTYPE
        target = os.readlink(src)
        info.linkname = target
        tar.addfile(info)
        real = os.path.join(os.path.dirname(src), target) if not target.startswith("/") else target
        if os.path.exists(real) and not target.startswith("/") and "/" not in target:
            # a sibling (libfoo.so.1 -> libfoo.so.1.2): keep it next to the link
            _add(tar, os.path.normpath(real), os.path.join(os.path.dirname(arcname), target), seen)
        elif os.path.exists(real):
            canon = _canonical(real)
            _add(tar, canon, canon, seen)
        return
    tar.add(src, arcname=arcname, recursive=False)


def build_tarball(out: io.BufferedIOBase) -> None:
    rt = build_runtime()
    files: list[tuple[str, str]] = []
    for host_dir, image_dir in ((rt.host_prefix, rt.prefix), (rt.host_site, "/opt/tirgym/site")):
        for dirpath, _dirs, names in os.walk(host_dir):
            for n in names:
                src = os.path.join(dirpath, n)
                files.append((src, os.path.join(image_dir, os.path.relpath(src, host_dir))))
    so_files = [
        Path(s) for s, _ in files if ".so" in Path(s).name or s.endswith(Path(rt.python).name)
    ]
    libs = _shared_libs(so_files)
    import ctypes.util

    for dlopened in ("seccomp",):  # loaded with ctypes at run time, so ldd cannot see it
        name = ctypes.util.find_library(dlopened)
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu"):
            if name and os.path.exists(os.path.join(d, name)):
                libs.add(os.path.join(d, name))
                break
    seen: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for top in ("bin", "sbin", "lib", "lib64"):
            if os.path.islink("/" + top):
                _add(tar, "/" + top, top, seen)
        for src, arc in files:
            _add(tar, src, arc, seen)
        for lib in sorted({_canonical(p) for p in libs}):
            _add(tar, lib, lib, seen)
        for extra in ("/etc/ld.so.cache", "/etc/ld.so.conf"):
            if os.path.exists(extra):
                _add(tar, extra, extra, seen)
        # /opt/tirgym/python -> the interpreter, so the backend need not know the host layout
        info = tarfile.TarInfo("opt/tirgym/python")
        info.type = tarfile.SYMTYPE
        info.linkname = rt.python
        tar.addfile(info)
        for d in ("tmp", "proc", "dev", "etc"):
            if d not in seen:
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
                seen.add(d)
        passwd = b"root:x:0:0::/root:/nonexistent\nnobody:x:65534:65534::/tmp:/nonexistent\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))


def build_image(image: str = "tirgym-sandbox:latest", docker_host: str | None = None) -> str:
    """docker import the runtime tarball as `image`; returns the image name."""
    env = {**os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {})}
    proc = subprocess.Popen(
        ["docker", "import", "--change", "ENV LANG=C.UTF-8", "-", image],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    try:
        build_tarball(proc.stdin)
    finally:
        proc.stdin.close()
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"docker import failed: {err.decode(errors='replace').strip()}")
    return image


if __name__ == "__main__":
    import sys

    print(build_image(*(sys.argv[1:2] or [])))
