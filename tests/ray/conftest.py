import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the session: a head node in this process with 4 logical
    CPUs (actors reserve them; the machine's cores are shared), no dashboard."""
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory):
    from tirgym.agents.models import build_tiny_model

    return str(
        build_tiny_model(
            tmp_path_factory.mktemp("tiny") / "m",
            seed=0,
            hidden_size=64,
            num_heads=1,
            num_layers=1,
            vocab_size=512,
        )
    )
