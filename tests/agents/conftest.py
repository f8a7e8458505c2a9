import pytest
import torch

from tirgym.agents.models import build_tiny_model

torch.set_num_threads(1)  # the tiny model is faster single-threaded, and CI cores are shared


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def hf_policy(tiny_path):
    from tirgym.agents.hf_backend import HFPolicy

    return HFPolicy.from_pretrained(tiny_path)
