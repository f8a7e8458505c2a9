"""Shared sandboxes for the tests: one pool per backend per test session (they are warm)."""

from __future__ import annotations

import pytest

from tirgym.errors import TirgymError
from tirgym.sandbox import get_sandbox
from tirgym.sandbox.backends import JailBackend


def jail_reason() -> str | None:
    return JailBackend().unavailable_reason()


def docker_reason() -> str | None:
    from tirgym.sandbox.docker_backend import DockerBackend

    return DockerBackend().unavailable_reason()


@pytest.fixture(scope="session")
def local_sb():
    with pytest.warns(RuntimeWarning):
        sb = get_sandbox("local", workers=2)
    return sb


@pytest.fixture(scope="session")
def jail_sb():
    reason = jail_reason()
    if reason:
        pytest.skip(f"jail backend unavailable: {reason} (CI: apt-get install -y bubblewrap)")
    return get_sandbox("jail", workers=2)


@pytest.fixture(scope="session")
def docker_sb():
    reason = docker_reason()
    if reason:
        pytest.skip(f"docker backend unavailable: {reason}")
    try:
        return get_sandbox("docker", workers=2)
    except TirgymError as e:
        pytest.skip(f"docker backend unavailable: {e}")


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("jail", id="jail"),
        pytest.param("docker", id="docker", marks=pytest.mark.docker),
    ]
)
def sb(request):
    """Each backend's shared sandbox (skips the ones this machine lacks)."""
    return request.getfixturevalue(f"{request.param}_sb")


@pytest.fixture(
    params=[
        pytest.param("jail", id="jail"),
        pytest.param("docker", id="docker", marks=pytest.mark.docker),
    ]
)
def isolating_sb(request):
    """Backends that promise isolation (the red-team suite runs against these)."""
    return request.getfixturevalue(f"{request.param}_sb")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("jail", id="jail"),
        pytest.param("docker", id="docker", marks=pytest.mark.docker),
    ],
)
def one_slot(request):
    """A one-slot pool of an isolating backend, one per test module, so tenants share a
    worker the way they do in production (skips the backends this machine lacks)."""
    reason = jail_reason() if request.param == "jail" else docker_reason()
    if reason:
        pytest.skip(f"{request.param} backend unavailable: {reason}")
    return get_sandbox(request.param, workers=1, default_timeout_s=10.0)
