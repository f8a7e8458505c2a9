import pytest
from train_helpers import guess_config
from view_helpers import make_episode

from tirgym.episode import save_jsonl


def _config(out):
    return guess_config(
        "tiny",
        out,
        seed=3,
        steps=2,
        group_size=3,
        max_new_tokens=8,
        tiny={"hidden_size": 64, "num_layers": 1, "num_heads": 1, "vocab_size": 512},
        optim={"lr": 1e-3},
        eval={"every": 0, "num_seeds": 2, "max_new_tokens": 6},
        log={"progress": False, "plot": False, "token_advantages": True},
        checkpoint={"final": False},
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real 2-step GRPO run of the tiny model with per-token advantages logged.

    The random model rarely wins, so a callback adds a reward for short answers: rewards
    then differ inside a group and GRPO's advantages are not all zero."""
    from tirgym.trainer.loop import Callback, train

    class ShortBonus(Callback):
        def on_episodes(self, trainer, step, episodes):
            for e in episodes:
                e.outcome_reward += 1.0 / (1 + e.num_sampled_tokens)

    out = tmp_path_factory.mktemp("view") / "run"
    return train(_config(out), callbacks=[ShortBonus()], quiet=True)


@pytest.fixture
def episodes_file(tmp_path):
    path = tmp_path / "eps.jsonl"
    save_jsonl(path, [make_episode(i) for i in range(12)])
    return path
