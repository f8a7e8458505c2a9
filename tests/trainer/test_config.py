"""Config loading, overrides and the one-line errors for bad configs."""

from pathlib import Path

import pytest
import yaml

from tirgym.errors import TirgymError
from tirgym.registry import HELDOUT_SEED_BASE
from tirgym.trainer.config import apply_overrides, build_config, check_envs, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write(tmp_path, data, name="run.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


BASE = {
    "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 7}, "seeds": [0, 1000]}]
}


def test_load_with_overrides(tmp_path):
    cfg = load_config(
        write(tmp_path, BASE),
        [
            "optim.lr=3e-4",
            "loss.dual_clip=3",
            "envs.0.weight=2.5",
            "rollout.group_size=4",
            "lora.r=8",
        ],
    )
    assert cfg.optim.lr == 3e-4 and cfg.loss.dual_clip == 3.0
    assert cfg.envs[0].weight == 2.5 and cfg.rollout.group_size == 4
    assert cfg.lora is not None and cfg.lora.r == 8
    assert cfg.name == "run" and cfg.run_dir() == Path("runs/run")


def test_env_shorthand_and_defaults():
    cfg = build_config({"envs": ["tirgym/GuessNumber-v0"]})
    assert cfg.envs[0].id == "tirgym/GuessNumber-v0"
    assert cfg.loss.clip_low == 0.2 and cfg.loss.clip_high == 0.28 and cfg.loss.agg == "token-mean"
    assert cfg.loss.kl_beta == 0.0 and cfg.eval.seed_start == HELDOUT_SEED_BASE


def test_unknown_field_names_it_and_lists_allowed(tmp_path):
    with pytest.raises(TirgymError) as e:
        load_config(write(tmp_path, BASE), ["optim.learning_rate=1e-5"])
    msg = str(e.value)
    assert "optim.learning_rate" in msg and "lr" in msg and "warmup_steps" in msg
    assert "\n" not in msg


def test_unknown_top_level_section_suggests(tmp_path):
    with pytest.raises(TirgymError, match="'optimizer'.*Did you mean 'optim'"):
        build_config({**BASE, "optimizer": {"lr": 1}})


def test_bad_literal_lists_allowed_values():
    with pytest.raises(TirgymError) as e:
        build_config({**BASE, "loss": {"agg": "mean"}})
    msg = str(e.value)
    assert "loss.agg" in msg and "token-mean" in msg and "seq-mean-token-sum-norm" in msg


def test_bad_estimator_is_rejected():
    with pytest.raises(TirgymError, match="advantage"):
        build_config({**BASE, "advantage": {"estimator": "ppo-magic"}})


def test_eval_seeds_must_be_disjoint_from_training():
    with pytest.raises(TirgymError, match="overlap"):
        build_config({**BASE, "eval": {"seed_start": 500, "num_seeds": 10}})
    with pytest.raises(TirgymError, match="HELDOUT_SEED_BASE"):
        build_config({"envs": [{"id": "x/Y-v0", "seeds": [0, HELDOUT_SEED_BASE + 5]}]})


def test_env_entry_needs_id_or_suite():
    with pytest.raises(TirgymError, match="exactly one of 'id'"):
        build_config({"envs": [{"weight": 1.0}]})


def test_sft_needs_data_or_demos():
    with pytest.raises(TirgymError, match="sft"):
        build_config({**BASE, "sft": {"epochs": 1}})


def test_unknown_env_id_fails_with_suggestion():
    cfg = build_config({"envs": ["tirgym/GuesNumber-v0"]})
    with pytest.raises(TirgymError, match="GuessNumber-v0"):
        check_envs(cfg)


def test_override_errors():
    with pytest.raises(TirgymError, match="key.sub=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(TirgymError, match="out of range"):
        apply_overrides({"envs": [{}]}, ["envs.3.weight=1"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(TirgymError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("envs: [unclosed")
    with pytest.raises(TirgymError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    check_envs(cfg)


def test_cli_train_bad_config_is_one_line_exit_2(tmp_path, capsys):
    from tirgym.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", str(write(tmp_path, BASE)), "loss.agg=mean"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "loss.agg" in err and "\n" not in err


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"id": "tirgym/GuessNumber-v0", "kwargs": {"hihg": 7}},
            r"envs\.0: .*no kwarg 'hihg'.*'high'",
        ),
        ({"id": "tirgym/GuessNumber-v0", "kwargs": {"low": "a"}}, r"envs\.0: .*low='a'.*int"),
        ({"suite": "games", "kwargs": {"difficuly": "easy"}}, r"envs\.0: .*no kwarg 'difficuly'"),
    ],
    ids=["typo", "type", "suite"],
)
def test_env_kwargs_are_checked_when_the_config_loads(tmp_path, entry, message):
    cfg = load_config(write(tmp_path, {"envs": [entry]}))
    with pytest.raises(TirgymError, match=message):
        check_envs(cfg)
