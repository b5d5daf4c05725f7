"""Shared fixtures: the backend modules and small chunking options."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from self_encryption import _backend, _options

from helpers import SMALL_SIZES

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def _c_backend_or_skip():
    try:
        return _backend.load_c()
    except ImportError as exc:  # an install without the compiled module
        pytest.skip(f"C backend not built: {exc}")


@pytest.fixture(scope="session", params=["c", "python"])
def any_backend(request):
    """Each backend module in turn, whatever SELF_ENCRYPTION_BACKEND says."""
    if request.param == "c":
        return _c_backend_or_skip()
    return _backend.load_python()


@pytest.fixture(scope="session")
def both_backends():
    """(C, Python) backend modules, for cross-checks."""
    return _c_backend_or_skip(), _backend.load_python()


@pytest.fixture
def small_options():
    return _options.make_options(chunk_sizes=SMALL_SIZES)
