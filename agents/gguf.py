"""GGUF files as ordinary transformers checkpoints: dequantize once, then load like any dir.

transformers reads a GGUF (with the `gguf` package) into a float model, but that model is
marked quantized and cannot be saved, and every load redoes the ~20 s dequantization.
`convert_gguf` does it once and writes a plain checkpoint dir (fp32 safetensors,
tokenizer, chat template) that `hf:DIR`, `vllm:DIR` and the trainer take. `gguf_checkpoint`
is the cached form policy specs use: a `.gguf` path becomes a dir under the cache root,
converted on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from tirgym.errors import TirgymError

log = logging.getLogger(__name__)

MARKER = "tirgym_source.json"
"""Written last into a converted dir: its presence means the conversion finished."""

GGUF_EXTRA = "pip install gguf (or pip install 'tirgym[real]')"


def cache_root() -> Path:
    """$TIRGYM_CACHE, else $XDG_CACHE_HOME/tirgym, else ~/.cache/tirgym."""
    if os.environ.get("TIRGYM_CACHE"):
        return Path(os.environ["TIRGYM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tirgym"


def require_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise TirgymError(f"Reading GGUF files needs the gguf package: {GGUF_EXTRA}.") from None


def is_converted(path: str | Path) -> bool:
    p = Path(path)
    return (p / MARKER).is_file() and (p / "config.json").is_file()


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, **source: object) -> Path:
    """Dequantize `gguf_path` into a transformers checkpoint at `out_dir` (atomically).

    `source` (package, version, ...) is recorded in the marker file next to the file's
    name and sha256, so a converted dir says where its weights came from.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require_gguf()
    src = Path(gguf_path)
    if not src.is_file():
        raise TirgymError(f"No such GGUF file: {str(src)!r}.")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with _quiet_transformers():
            try:
                tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
                model = AutoModelForCausalLM.from_pretrained(
                    src.parent, gguf_file=src.name, dtype=torch.float32
                )
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise TirgymError(f"Cannot read GGUF file {str(src)!r}: {msg}") from None
            # The weights are dequantized floats now: drop the GGUF marking so it saves
            # as a plain checkpoint that loads without the gguf package.
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        _tidy_tokenizer_config(tmp / "tokenizer_config.json")
        info = {"gguf_file": src.name, "sha256": _sha256(src), **source}
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def gguf_checkpoint(gguf_path: str | Path) -> Path:
    """The converted dir of a `.gguf` file, converting it on first use (said in one line)."""
    src = Path(gguf_path).expanduser()
    if not src.is_file():
        raise TirgymError(f"No such GGUF file: {str(gguf_path)!r}.")
    st = src.stat()
    key = hashlib.sha256(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    out = cache_root() / "gguf" / f"{src.stem}-{key[:12]}"
    if not is_converted(out):
        log.warning("Converting %s to a transformers checkpoint in %s (once).", src, out)
        convert_gguf(src, out)
    return out


def _tidy_tokenizer_config(path: Path) -> None:
    """Drop load-time flags that `save_pretrained` writes into the tokenizer config."""
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    for k in ("is_local", "local_files_only"):
        cfg.pop(k, None)
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _quiet_transformers:
    """Silence transformers' progress bars and info logs during a conversion.

    The GGUF reader uses a plain tqdm that ignores transformers' progress-bar switch, so
    its module's `tqdm` is swapped for a disabled one while converting.
    """

    def __enter__(self):
        from functools import partial

        from transformers import modeling_gguf_pytorch_utils as gguf_utils
        from transformers.utils import logging as hf_logging

        self._bars = hf_logging.is_progress_bar_enabled()
        self._level = hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        self._tqdm = getattr(gguf_utils, "tqdm", None)
        if self._tqdm is not None:
            gguf_utils.tqdm = partial(self._tqdm, disable=True)
        return self

    def __exit__(self, *exc):
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
        from transformers.utils import logging as hf_logging

        if self._tqdm is not None:
            gguf_utils.tqdm = self._tqdm
        if self._bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(self._level)
        return False
