"""What a run shows and logs: per-step lines, the progress bar, missing loggers said up front."""

import io
import sys
from contextlib import contextmanager

import pytest

from tirgym.errors import TirgymError
from tirgym.trainer.config import LogConfig
from tirgym.trainer.loop import Trainer, train


def config(tiny_path, out, **extra):
    cfg = {
        "model": tiny_path,
        "seed": 4,
        "steps": 1,
        "output_dir": str(out),
        "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 4, "max_turns": 1}}],
        "rollout": {"group_size": 2, "tasks_per_step": 1, "max_new_tokens": 4},
        "eval": {"before": False, "after": False},
        "log": {"progress": False, "plot": False},
    }
    cfg.update(extra)
    return cfg


def test_per_step_lines_are_printed_without_the_bar(tiny_path, tmp_path, capsys):
    train(config(tiny_path, tmp_path / "run"))
    assert "step    1/1  reward" in capsys.readouterr().out


class FakeBar:
    """Stands in for the rich bar: records descriptions and whether hf's tqdm bars were on."""

    def __init__(self):
        self.descriptions: list[str] = []
        self.hf_bars_on: list[bool] = []
        self.lines: list[str] = []
        self.console = self

    def print(self, text, **_):
        self.lines.append(text)

    def add_task(self, description, **_):
        return 0

    def update(self, task, description=None, **_):
        from transformers.utils import logging as hf_logging

        self.hf_bars_on.append(hf_logging.is_progress_bar_enabled())
        if description:
            self.descriptions.append(description)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_names_the_current_step_and_silences_hf_bars(tiny_path, tmp_path, monkeypatch):
    from transformers.utils import logging as hf_logging

    import tirgym.progress

    bar = FakeBar()

    @contextmanager
    def fake_progress_bar(*args, **kwargs):
        yield bar

    monkeypatch.setattr(tirgym.progress, "progress_bar", fake_progress_bar)
    monkeypatch.setattr(sys, "stdout", Terminal())
    hf_logging.enable_progress_bar()
    cfg = config(tiny_path, tmp_path / "run", steps=2, checkpoint={"every": 1})
    train({**cfg, "log": {"progress": True, "plot": False}})
    assert "step 1: checkpoint" in bar.descriptions and "step 2: checkpoint" in bar.descriptions
    assert not any(d.startswith("step 3") for d in bar.descriptions), bar.descriptions
    assert bar.hf_bars_on and not any(bar.hf_bars_on)  # off while tirgym's bar shows
    assert hf_logging.is_progress_bar_enabled()  # and on again after
    assert any(line.startswith("step    2/2") for line in bar.lines)


def test_missing_tensorboard_is_said_and_required_one_fails(monkeypatch):
    from tirgym.trainer.metrics import check_loggers

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    (note,) = check_loggers(LogConfig())
    assert "TensorBoard is not installed" in note and "metrics.jsonl" in note
    assert check_loggers(LogConfig(tensorboard=False)) == []
    with pytest.raises(TirgymError, match="pip install tensorboard"):
        check_loggers(LogConfig(tensorboard=True))


def test_missing_wandb_fails_before_the_sft_warm_start(tiny_path, tmp_path, monkeypatch):
    import tirgym.trainer.sft

    monkeypatch.setitem(sys.modules, "wandb", None)
    calls = []
    monkeypatch.setattr(tirgym.trainer.sft, "run_sft", lambda *a, **k: calls.append(1) or {})
    cfg = config(
        tiny_path,
        tmp_path / "run",
        sft={"demos": {"episodes": 2}},
        log={"progress": False, "wandb": {"project": "p", "mode": "offline"}},
    )
    with pytest.raises(TirgymError, match="wandb is not installed"):
        Trainer(cfg, quiet=True).setup()
    assert calls == [] and not (tmp_path / "run" / "sft_model").exists()
