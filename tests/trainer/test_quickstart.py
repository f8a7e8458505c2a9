"""The 2-minute smoke (`make demo-tiny`): configs/quickstart.yaml must visibly learn.

SFT on a few solver demonstrations, then GRPO; held-out success (success@1 sampled at the
training temperature, averaged over several samples of each held-out seed from
HELDOUT_SEED_BASE up) must rise by >= 15 points, or from < 90% to >= 95%.
"""

import json
import time
from pathlib import Path

import pytest

from tirgym.trainer.config import load_config
from tirgym.trainer.loop import train

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


def test_quickstart_config_is_small_and_seeded():
    cfg = load_config(QUICKSTART)
    assert cfg.model == "tiny" and cfg.sft is not None and cfg.seed == 0
    assert cfg.eval.before and cfg.eval.after and cfg.eval.num_seeds * cfg.eval.samples >= 200


@pytest.mark.slow
def test_quickstart_raises_heldout_success(tmp_path):
    t0 = time.perf_counter()
    run = train(QUICKSTART, [f"output_dir={tmp_path / 'qs'}"])
    wall = time.perf_counter() - t0
    s = json.loads((run / "summary.json").read_text())
    before, after = s["heldout_success_before"], s["heldout_success_after"]
    print(f"quickstart: held-out success {before:.3f} -> {after:.3f} in {wall:.0f}s")
    assert after - before >= 0.15 or (before < 0.90 and after >= 0.95), (before, after)
    assert (run / "learning_curves.png").exists()
