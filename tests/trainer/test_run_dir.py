"""Training keeps work: a previous run is never replaced silently, Ctrl-C and SIGTERM leave a
checkpoint, and --resume of a finished or reconfigured run changes nothing it should not."""

import json
import signal

import pytest
import yaml
from train_helpers import guess_config

from tirgym.episode import load_jsonl
from tirgym.errors import TirgymError
from tirgym.trainer.checkpoint import latest_checkpoint
from tirgym.trainer.loop import Callback, Trainer, train


def config(tiny_path, out, **extra):
    return guess_config(
        tiny_path,
        out,
        seed=2,
        steps=2,
        seeds=None,
        optim={"lr": 1e-2},
        eval={"before": False, "after": False},
        log={"progress": False, "plot": False},
    ) | extra


def test_a_previous_run_is_refused_unless_resume_or_overwrite(tiny_path, tmp_path):
    out = tmp_path / "run"
    run = train(
        config(tiny_path, out, steps=3, checkpoint={"every": 1, "keep_last": 5}), quiet=True
    )
    episodes = (run / "episodes.jsonl").read_bytes()
    with pytest.raises(TirgymError, match=r"holds a previous run .*--resume.*--overwrite"):
        train(config(tiny_path, out, steps=1), quiet=True)
    assert (run / "episodes.jsonl").read_bytes() == episodes  # untouched
    with pytest.raises(TirgymError, match="give one"):
        train(config(tiny_path, out), resume=True, overwrite=True, quiet=True)

    train(config(tiny_path, out, steps=1), overwrite=True, quiet=True)
    # the old run's later checkpoints are gone: a resume cannot pick up its step 3
    assert latest_checkpoint(run).name == "step_000001"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000001"]
    assert {e.info["train_step"] for e in load_jsonl(run / "episodes.jsonl")} == {1}
    assert yaml.safe_load((run / "config.yaml").read_text())["steps"] == 1


class SignalAfter(Callback):
    def __init__(self, signum, step):
        self.signum, self.step = signum, step

    def on_step_end(self, trainer, step, metrics):
        if step == self.step:
            signal.raise_signal(self.signum)


class Escaped(Exception):
    pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_and_resume_finishes(tiny_path, tmp_path, capsys, signum):
    from tirgym.trainer.signals import TrainingStopped

    def escaped(*_):  # the signal reached the test: the trainer did not handle it
        raise Escaped

    outer = signal.signal(signum, escaped)
    try:
        cfg = config(tiny_path, tmp_path / "run", steps=3)
        with pytest.raises(TrainingStopped) as stop:
            train(cfg, callbacks=[SignalAfter(signum, 1)])
        assert signal.getsignal(signum) is escaped  # the trainer's handler is gone again
    finally:
        signal.signal(signum, outer)
    run = tmp_path / "run"
    assert stop.value.signum == signum
    assert stop.value.checkpoint == latest_checkpoint(run)
    assert latest_checkpoint(run).name == "step_000001"
    said = capsys.readouterr().out
    assert "finishing this step" in said and str(stop.value.checkpoint) in said
    assert json.loads((run / "summary.json").read_text())["finished"] is False

    train(cfg, resume=True, quiet=True)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert json.loads((run / "summary.json").read_text())["finished"] is True


def test_resume_of_a_finished_run_writes_nothing(tiny_path, tmp_path):
    cfg = config(tiny_path, tmp_path / "run", eval={"num_seeds": 2, "max_new_tokens": 4})
    run = train(cfg, quiet=True)
    files = ["metrics.jsonl", "episodes.jsonl", "config.yaml", "summary.json"]
    before = {n: (run / n).read_bytes() for n in files}
    train(cfg, resume=True, quiet=True)
    assert {n: (run / n).read_bytes() for n in files} == before


def test_resume_with_changed_settings_warns_records_and_applies_them(tiny_path, tmp_path, capsys):
    out = tmp_path / "run"
    train(config(tiny_path, out, steps=3), stop_after=1, quiet=True)
    saved = (out / "config.yaml").read_text()
    tr = Trainer(config(tiny_path, out, steps=3, optim={"lr": 5e-3}), resume=True)
    tr.setup()
    assert "WARNING" in capsys.readouterr().out
    assert tr.scheduler.base_lrs == [5e-3]
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    tr.run()
    tr.close()
    assert (out / "config.yaml").read_text() == saved  # the run's own config is kept
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config_changes"] == [{"step": 1, "changes": {"optim.lr": [0.01, 0.005]}}]
