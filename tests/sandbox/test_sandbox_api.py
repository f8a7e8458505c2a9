"""get_sandbox: caching, backend choice, 'auto' never unsandboxed, errors users can read."""

from __future__ import annotations

import pytest

from tirgym.errors import TirgymError
from tirgym.sandbox import ExecResult, get_sandbox
from tirgym.sandbox import core as core_mod
from tirgym.sandbox.backends import JailBackend, LocalBackend


def test_exec_result_ok_property():
    assert ExecResult("", "", 0, "ok", 0.0).ok
    assert not ExecResult("", "", 1, "error", 0.0).ok
    assert ExecResult.from_dict({"status": "weird"}).status == "crashed"


def test_get_sandbox_is_cached_per_options(local_sb):
    again = get_sandbox("local", workers=2)  # cached: same pool, warned once when created
    assert again is local_sb
    with pytest.warns(RuntimeWarning):
        other = get_sandbox("local", workers=1)
    assert other is not local_sb and other.workers == 1
    other.close()


def test_unknown_backend_and_option_are_user_errors():
    with pytest.raises(TirgymError, match="unknown sandbox backend"):
        get_sandbox("chroot")
    with pytest.raises(TirgymError, match="bad sandbox option"):
        get_sandbox("local", no_such_option=1)


def test_auto_never_falls_back_to_local(monkeypatch):
    from tirgym.sandbox import docker_backend

    monkeypatch.setattr(
        JailBackend, "unavailable_reason", lambda self: "bubblewrap is not installed"
    )
    monkeypatch.setattr(
        docker_backend.DockerBackend, "unavailable_reason", lambda self: "no engine"
    )
    with pytest.raises(TirgymError, match="never runs code unsandboxed") as e:
        core_mod.make_backend("auto")
    assert "bubblewrap" in str(e.value)


def test_auto_prefers_the_jail_then_docker(monkeypatch):
    """The jail is the faster backend (no container round trip): auto takes it first."""
    from tirgym.sandbox import docker_backend

    monkeypatch.setattr(JailBackend, "unavailable_reason", lambda self: None)
    monkeypatch.setattr(docker_backend.DockerBackend, "unavailable_reason", lambda self: None)
    assert core_mod.make_backend("auto").name == "jail"
    monkeypatch.setattr(JailBackend, "unavailable_reason", lambda self: "no bubblewrap")
    assert core_mod.make_backend("auto").name == "docker"


def test_local_is_never_auto_and_warns(capsys):
    be = core_mod.make_backend("local")
    assert isinstance(be, LocalBackend)
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"):
        sb = get_sandbox("local", workers=1, default_timeout_s=2.0)
    assert "WITHOUT isolation" in capsys.readouterr().err
    sb.close()


def test_watchdog_restarts_a_dead_worker(local_sb):
    with local_sb.session() as s:
        s.run("y = 1")
        slot = s.slot
        assert slot is not None
        slot.proc.kill()  # the whole worker goes away (as if it hung and the watchdog fired)
        slot.proc.wait()
        r = s.run("y")
        assert r.status == "crashed" and "lost" in r.stderr
        r = s.run("z = 2\nz")
        assert r.ok and r.stdout == "2\n"
    assert local_sb.run("print('back')").stdout == "back\n"


def test_slot_recycles_after_n_runs():
    with pytest.warns(RuntimeWarning):
        sb = get_sandbox("local", workers=1, max_runs_per_slot=3)
    gens = []
    for _ in range(7):
        assert sb.run("print(1)").ok
        gens.append(sb.slots[0].generation)
    assert gens[0] < gens[-1]
    sb.close()


def test_doctor_reports_backends():
    from tirgym.sandbox.doctor import doctor_report

    text = doctor_report(self_test=False)
    for name in ("jail", "docker", "local", "auto ->"):
        assert name in text


def test_doctor_says_which_backend_auto_picks_and_why():
    from tirgym.sandbox.doctor import _auto_line

    both = {"jail": None, "docker": None}
    assert "jail (print(1) median here 3.0 ms, docker 9.0 ms)" in _auto_line(
        "jail", both, {"jail": 0.003, "docker": 0.009}
    )
    slower = _auto_line("jail", both, {"jail": 0.009, "docker": 0.003})
    assert "docker was faster here" in slower and "backend='docker'" in slower
    assert "FAILED" in _auto_line("jail", both, {"jail": None, "docker": 0.003})
    jailless = _auto_line("docker", {"jail": "bubblewrap is not installed", "docker": None}, {})
    assert jailless == "  auto -> docker (the jail is unavailable: bubblewrap is not installed)"
    assert "ERROR" in _auto_line(None, {"jail": "x", "docker": "y"}, {})
