import pytest


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory):
    """One small random model (1 layer, 64 wide, 512-token vocab) shared by the trainer tests;
    runs write into their own output dirs and never modify it."""
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
