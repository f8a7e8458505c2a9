"""log.token_advantages: the trainer logs the advantages its update used, per token."""

import numpy as np
import yaml

from tirgym.episode import load_jsonl
from tirgym.trainer.advantages import compute_advantages
from tirgym.trainer.config import advantage_config


def test_logged_advantages_are_the_ones_the_update_used(tiny_run):
    eps = load_jsonl(tiny_run / "episodes.jsonl")
    logged = [e for e in eps if "token_advantages" in e.info]
    assert logged, "no episode carries token_advantages"
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    adv_cfg = advantage_config(cfg["advantage"])
    for step in {e.info["train_step"] for e in logged}:
        kept = [e for e in logged if e.info["train_step"] == step]
        for e, want in zip(kept, compute_advantages(kept, adv_cfg), strict=True):
            got = np.asarray(e.info["token_advantages"])
            assert got.shape == (len(e.token_ids),)
            assert not got[np.asarray(e.loss_mask) == 0].any()  # credit only on sampled tokens
            np.testing.assert_allclose(got, want, atol=1e-5)
    assert any(np.abs(e.info["token_advantages"]).max() > 0 for e in logged)


def test_advantages_are_not_logged_by_default():
    from tirgym.trainer.config import LogConfig

    assert LogConfig().token_advantages is False
