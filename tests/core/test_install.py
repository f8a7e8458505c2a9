"""The folder mapping works from a real wheel, and plugins register via entry points.

Builds tirgym's wheel, installs it with a third-party plugin package into a fresh venv
(dependencies come from the running interpreter's site-packages through a .pth file, so
no network is needed) and imports everything from there, outside the repo.
"""

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).parent / "plugin_pkg"


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    for src in (ROOT, PLUGIN):
        _run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist")],
             cwd=tmp)
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheels = sorted(str(p) for p in (tmp / "dist").glob("*.whl"))
    _run([*pip, "--python", str(py), "install", "--no-deps", "--no-index", *wheels]) if _pip_has_python_flag() \
        else _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), *wheels])
    return py, tmp


def _pip_has_python_flag() -> bool:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout
    major, minor = (int(x) for x in out.split()[1].split(".")[:2])
    return (major, minor) >= (22, 3)


@pytest.mark.slow
def test_wheel_imports_every_subpackage(wheel_venv):
    py, tmp = wheel_venv
    code = (
        "import tirgym, tirgym.envs, tirgym.sandbox, tirgym.rewards, tirgym.agents, tirgym.trainer\n"
        "import tirgym.envs.base, tirgym.protocol, tirgym.registry\n"
        "assert 'site-packages' in tirgym.envs.__file__, tirgym.envs.__file__\n"
        "assert tirgym.suite_names(), 'built-in suites missing from the wheel'\n"
        "print(tirgym.make('tirgym/GuessNumber-v0').reset(seed=1)[0])\n"
    )
    out = _run([str(py), "-c", code], cwd=tmp)
    assert "Guess it" in out
    # no bare top-level package (envs, agents, ...): the wheel holds tirgym/ and its metadata only
    (wheel,) = (tmp / "dist").glob("tirgym-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"tirgym", next(t for t in tops if t.endswith(".dist-info"))}, tops


@pytest.mark.slow
def test_plugin_registers_through_entry_point(wheel_venv):
    py, tmp = wheel_venv
    code = (
        "import tirgym\n"
        "assert 'demo/Coin-v0' in tirgym.env_ids(tag='plugin')\n"
        "env = tirgym.make('demo/Coin-v0'); env.reset(seed=0)\n"
        "print(env.step('<answer>heads</answer>')[4]['success'])\n"
    )
    assert _run([str(py), "-c", code], cwd=tmp).strip().endswith("True")


@pytest.mark.slow
def test_gymnasium_make_finds_plugin_envs_after_import_tirgym(wheel_venv):
    py, tmp = wheel_venv
    code = (
        "import gymnasium, tirgym\n"
        "env = gymnasium.make('demo/Coin-v0'); env.reset(seed=0)\n"
        "print(env.step('<answer>heads</answer>')[4]['success'])\n"
    )
    assert _run([str(py), "-c", code], cwd=tmp).strip().endswith("True")


@pytest.mark.slow
def test_plugin_rollout_on_threads_never_misses_the_env(wheel_venv):
    # episodes reset on a thread pool; each run is a fresh process (plugins not loaded yet)
    py, tmp = wheel_venv
    for _ in range(20):
        out = _run([str(py), "-m", "tirgym", "rollout", "--env", "demo/Coin-v0", "--policy", "solver",
                    "--n", "5"], cwd=tmp)
        assert "success 5/5" in out, out
