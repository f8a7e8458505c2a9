"""The async generator in its own process: the thread generator's schedule and results,
a clear error when the process dies, and no generator process outliving its trainer."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from test_async import Graded, config, metrics, partial_versions

from tirgym.episode import load_jsonl
from tirgym.errors import TirgymError
from tirgym.trainer.async_process import ProcessGenerator
from tirgym.trainer.loop import Callback, Trainer, train

PROCESS = {"max_staleness": 1, "generator": "process"}


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if gone(pid):
            return True
        time.sleep(0.2)
    return gone(pid)


def tasks(run_dir):
    return Counter(
        (e.info["train_step"], e.seed, e.group_id) for e in load_jsonl(run_dir / "episodes.jsonl")
    )


@pytest.mark.slow
def test_process_k0_reproduces_the_sync_loop(tiny_path, tmp_path):
    sync = Trainer(config(tiny_path, tmp_path / "sync"), callbacks=[Graded()], quiet=True)
    sync.run()
    tr = Trainer(config(tiny_path, tmp_path / "p0"), callbacks=[Graded()], quiet=True)
    tr.setup()
    tr.generator = gen = ProcessGenerator(tr, 0)
    try:
        tr.run()
    finally:
        tr.close()
    a, b = metrics(tmp_path / "sync"), metrics(tmp_path / "p0")
    assert len(a) == len(b) == 3 and all(m["grad_norm"] > 0 for m in a)
    for ma, mb in zip(a, b, strict=True):
        for key in ("loss", "grad_norm", "reward_mean", "logprob_gap_mean", "is_ratio_mean"):
            assert ma[key] == pytest.approx(mb[key], abs=1e-6), key
    for k, v in sync.model.state_dict().items():
        assert torch.allclose(v, tr.model.state_dict()[k], atol=1e-6), k
    assert tr.generator is None and not gen.proc.is_alive()


@pytest.mark.slow
def test_process_k1_pins_versions_like_the_thread(tiny_path, tmp_path):
    cfg = config(tiny_path, tmp_path / "k1", **{"async": PROCESS})
    tr = Trainer(cfg, callbacks=[Graded()], quiet=True)
    tr.setup()
    gen = tr.generator
    try:
        tr.run()
    finally:
        tr.close()
    eps = load_jsonl(tmp_path / "k1" / "episodes.jsonl")
    assert {e.info["train_step"]: e.policy_version for e in eps} == {1: 0, 2: 0, 3: 1}
    m = metrics(tmp_path / "k1")
    assert [x["async_staleness"] for x in m] == [0, 1, 1]
    assert all(x["async_dropped_episodes"] == 0 for x in m)
    assert isinstance(gen, ProcessGenerator) and tr.generator is None
    assert wait_gone(gen.proc.pid, 5)


class KillGeneratorAt(Graded):
    """SIGKILLs the generator process while it rolls out the batch of `step`."""

    def __init__(self, step):
        self.step = step

    def on_episodes(self, trainer, step, episodes):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
        super().on_episodes(trainer, step, episodes)


@pytest.mark.slow
def test_generator_process_killed_mid_batch_resumes_losing_and_repeating_nothing(
    tiny_path, tmp_path
):
    ref = tmp_path / "ref"  # the thread generator: the same tasks, step by step
    train(
        config(tiny_path, ref, steps=4, **{"async": {"max_staleness": 1}}),
        callbacks=[Graded()],
        quiet=True,
    )
    run = tmp_path / "run"
    cfg = config(tiny_path, run, steps=4, **{"async": PROCESS})
    with pytest.raises(TirgymError, match=r"generator process exited \(code -9\).*step 3"):
        train(cfg, callbacks=[KillGeneratorAt(3)], quiet=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1].endswith("2")
    train(cfg, callbacks=[Graded()], resume=True, quiet=True)
    assert tasks(run) == tasks(ref)
    assert [m["step"] for m in metrics(run)] == [1, 2, 3, 4]


class FailAfterStep(Graded):
    """Raises in the trainer (not the generator) after step 1; remembers the generator."""

    def on_step_end(self, trainer, step, metrics):
        self.pid = trainer.generator.proc.pid
        raise RuntimeError("trainer failed")


@pytest.mark.slow
def test_trainer_error_leaves_no_generator_process(tiny_path, tmp_path):
    cb = FailAfterStep()
    cfg = config(tiny_path, tmp_path / "e", steps=4, **{"async": PROCESS})
    with pytest.raises(RuntimeError, match="trainer failed"):
        train(cfg, callbacks=[cb], quiet=True)
    assert wait_gone(cb.pid, 5)


PARENT = """
import sys, time
from test_async import Graded, config
from tirgym.trainer.loop import train

class Report(Graded):
    def on_step_end(self, trainer, step, metrics):
        print("generator", trainer.generator.proc.pid, flush=True)
        time.sleep(600)

if __name__ == "__main__":  # the spawned generator re-imports this module: it must not train
    cfg = config(sys.argv[1], sys.argv[2], steps=5, **{"async": {"max_staleness": 1, "generator": "process"}})
    train(cfg, callbacks=[Report()], quiet=True)
"""


@pytest.mark.slow
def test_killed_trainer_process_leaves_no_generator_process(tiny_path, tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    here = Path(__file__).parent  # test_async, and the tests/ helpers it imports
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}
    p = subprocess.Popen(
        [sys.executable, str(script), tiny_path, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = p.stdout.readline()
        assert line.startswith("generator "), line
        pid = int(line.split()[1])
        assert not gone(pid)
        p.kill()  # SIGKILL: no finally, no atexit
        p.wait(30)
        assert wait_gone(pid, 15)
    finally:
        p.kill()


class Unpicklable(Callback):
    def __init__(self):
        self.fn = lambda: None


def test_process_generator_refuses_unpicklable_callbacks(tiny_path, tmp_path):
    tr = Trainer(
        config(tiny_path, tmp_path / "u", **{"async": PROCESS}),
        callbacks=[Unpicklable()],
        quiet=True,
    )
    tr.setup()
    try:
        with pytest.raises(TirgymError, match="cannot be pickled.*async.generator=thread"):
            tr.generator.start(0, 3)
        assert tr.generator.proc is None
    finally:
        tr.close()


@pytest.mark.slow
def test_process_generator_takes_weights_between_turns(tiny_path, tmp_path):
    """Partial rollouts in the generator process: whatever lands mid-batch, turn versions
    stay consistent and bounded, and the loads are counted."""
    extra = {"async": {**PROCESS, "partial_rollouts": True}, "steps": 4}
    tr = Trainer(config(tiny_path, tmp_path / "pp", **extra), callbacks=[Graded()], quiet=True)
    try:
        tr.run()
    finally:
        tr.close()
    m = metrics(tmp_path / "pp")
    assert [x["step"] for x in m] == [1, 2, 3, 4]
    assert all("async_mid_batch_loads" in x for x in m)
    partial_versions(tmp_path / "pp", k=1)
