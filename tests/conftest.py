"""Shared fixtures: the backend modules and small chunking options.

The one way a test picks a backend module is a fixture of this file:
``c_backend``, ``py_backend``, ``any_backend`` (each in turn) or
``both_backends`` (the pair, for cross-checks). The public API runs on the
backend that SELF_ENCRYPTION_BACKEND selected for the whole run (the suite
runs once per backend); ``helpers.using(backend)`` switches it for a test
that drives the public API with a fixture's backend.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, settings

import self_encryption as se
from self_encryption import _backend, _options

from helpers import READ_SIZES, SMALL_SIZES

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def _c_backend_or_skip():
    try:
        return _backend.load_c()
    except ImportError as exc:  # an install without the compiled module
        pytest.skip(f"C backend not built: {exc}")


@pytest.fixture(scope="session")
def c_backend():
    """The C backend module (the test is skipped where it was not built)."""
    return _c_backend_or_skip()


@pytest.fixture(scope="session")
def py_backend():
    """The pure-Python backend module."""
    return _backend.load_python()


@pytest.fixture(scope="session", params=["c", "python"])
def any_backend(request):
    """Each backend module in turn, whatever SELF_ENCRYPTION_BACKEND says."""
    return request.getfixturevalue("c_backend" if request.param == "c" else "py_backend")


@pytest.fixture(scope="session")
def both_backends(c_backend, py_backend):
    """(C, Python) backend modules, for cross-checks."""
    return c_backend, py_backend


@pytest.fixture
def small_options():
    return _options.make_options(chunk_sizes=SMALL_SIZES)


@pytest.fixture
def read_file() -> tuple[bytes, se.DataMap, se.MemoryStore]:
    """(data, root, store): 600 kB of seeded random bytes in a memory store, in READ_SIZES chunks."""
    data = random.Random(11).randbytes(600_000)
    store = se.MemoryStore()
    return data, se.encrypt_to_store(data, store, chunk_sizes=READ_SIZES), store
