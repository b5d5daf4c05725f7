"""Shared fixtures: the backend modules and small chunking options."""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, settings

from self_encryption import _backend, _engine

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci" if os.environ.get("CI") else "default")

#: Chunk sizes small enough that a few KiB make many chunks and several levels.
SMALL_SIZES = (64, 256, 1024)


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
    return _engine.make_options(chunk_sizes=SMALL_SIZES)


def in_threads(function, items) -> list:
    """function(item) for every item, each on a thread of its own, all at once.

    Results come back in item order; an exception in any thread is raised here.
    """
    items = list(items)
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(function, items))


@contextlib.contextmanager
def using(backend):
    """Run the public API on the given backend module for a while."""
    saved = _backend.active
    _backend.active = backend
    try:
        yield
    finally:
        _backend.active = saved
