"""The vLLM backend's parts that need no engine: errors, engine arguments, seeds (fast, no vllm)."""

from __future__ import annotations

import sys

import pytest

from tirgym.agents import vllm_backend as vb
from tirgym.agents.types import SamplingParams
from tirgym.errors import TirgymError


def test_missing_vllm_names_both_extras(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(TirgymError) as e:
        vb.import_vllm()
    msg = str(e.value)
    assert "pip install tirgym[vllm]" in msg and "tirgym[cpu-vllm]" in msg


def test_from_pretrained_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(TirgymError, match="No such directory"):
        vb.VLLMPolicy.from_pretrained(tmp_path / "missing")
    with pytest.raises(TirgymError, match="no config.json"):
        vb.VLLMPolicy.from_pretrained(tmp_path)


def test_unknown_option_is_rejected(tmp_path):
    with pytest.raises(TirgymError, match="Bad vllm options"):
        vb.VLLMPolicy.from_pretrained(tmp_path, gpu_mem=0.9)


def test_engine_kwargs_per_platform():
    cfg = vb.VLLMConfig(max_model_len=1024, gpu_memory_utilization=0.7)
    cpu = vb.engine_kwargs("/m", cfg, on_cpu=True)
    assert cpu["enforce_eager"] is True and cpu["kv_cache_memory_bytes"] == 1 << 30
    assert "gpu_memory_utilization" not in cpu and cpu["logprobs_mode"] == "raw_logprobs"
    assert cpu["enable_prefix_caching"] and cpu["max_model_len"] == 1024
    gpu = vb.engine_kwargs("/m", cfg, on_cpu=False)
    assert gpu["enforce_eager"] is False and gpu["gpu_memory_utilization"] == 0.7
    assert "kv_cache_memory_bytes" not in gpu and "enable_sleep_mode" not in gpu
    gpu = vb.engine_kwargs(
        "/m", vb.VLLMConfig(kv_cache_gb=2, enable_sleep_mode=True, engine_kwargs={"x": 1}), False
    )
    assert gpu["kv_cache_memory_bytes"] == 2 << 30 and gpu["enable_sleep_mode"] and gpu["x"] == 1


@pytest.mark.parametrize(
    ("err", "want"),
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),
        (ValueError("No available memory for the cache blocks. Try increasing"), "out of memory"),
        (
            ValueError("Model architectures ['FooForCausalLM'] are not supported for now."),
            "unsupported model",
        ),
        (RuntimeError("something else broke"), "failed to start"),
    ],
)
def test_engine_errors_are_translated(err, want):
    e = vb._engine_error(err, "/m", vb.VLLMConfig())
    assert isinstance(e, TirgymError) and want in str(e) and "\n" not in str(e)


def test_row_seeds_are_distinct_and_deterministic():
    from tirgym.agents.seeding import row_seeds

    p = SamplingParams(seed=7)
    a = row_seeds(p, 8)
    assert a == row_seeds(p, 8) and len(set(a)) == 8
    assert all(0 <= s < 2**63 for s in a)
    assert row_seeds(SamplingParams(seed=8), 8) != a
    # explicit per-prompt seeds win; copies of a prompt (n > 1) get distinct streams
    assert row_seeds(SamplingParams(seed=7, seeds=[5, 6]), 2) == [5, 6]
    b = row_seeds(SamplingParams(n=3, seeds=[5, 6]), 2)
    assert len(set(b)) == 6 and b[:3] == row_seeds(SamplingParams(n=3, seeds=[5, 9]), 2)[:3]
    with pytest.raises(TirgymError):
        row_seeds(SamplingParams(seeds=[1]), 2)
