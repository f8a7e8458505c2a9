"""Sandbox choice for the env tests: the jail (bubblewrap) when it works here, else `local`
(TIRGYM_TEST_SANDBOX=local|jail|docker forces one).

`local` runs the (trusted, test-written) code without isolation; the chosen backend shows
in the test ids as `sandbox=jail` or `sandbox=local`, so a report says which one ran.
"""

from __future__ import annotations

import functools
import os

import pytest


@functools.lru_cache(maxsize=1)
def pick_backend() -> str:
    from tirgym.sandbox.backends import JailBackend

    if os.environ.get("TIRGYM_TEST_SANDBOX"):
        return os.environ["TIRGYM_TEST_SANDBOX"]
    return "jail" if JailBackend().unavailable_reason() is None else "local"


@pytest.fixture(scope="session", params=[pick_backend()], ids=lambda b: f"sandbox={b}")
def sandbox_kwargs(request):
    """Env kwargs selecting the test sandbox: one shared warm worker for every test."""
    return {"sandbox": request.param, "sandbox_options": {"workers": 1}}
