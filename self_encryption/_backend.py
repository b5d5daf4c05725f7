"""Backend choice: SELF_ENCRYPTION_BACKEND = auto (default), c or python."""

from __future__ import annotations

import os
import warnings
from types import ModuleType

VARIABLE = "SELF_ENCRYPTION_BACKEND"
CHOICES = ("auto", "c", "python")


def load_c() -> ModuleType:
    from . import _cbackend

    return _cbackend


def load_python() -> ModuleType:
    from . import _pybackend

    return _pybackend


def select() -> ModuleType:
    """The backend module named by the environment, imported."""
    choice = os.environ.get(VARIABLE, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ImportError(
            f"{VARIABLE}={os.environ[VARIABLE]!r} is not one of {', '.join(CHOICES)}"
        )
    if choice == "python":
        return load_python()
    try:
        return load_c()
    except ImportError as exc:
        if type(exc).__name__ == "StaleCoreError":  # built, but for another version: fail loudly
            raise
        if choice == "c":
            raise ImportError(
                f"{VARIABLE}=c but the C backend cannot be loaded: {exc}"
            ) from exc
        warnings.warn(
            f"self_encryption: C backend unavailable ({exc}); using the much "
            "slower pure-Python backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return load_python()


active: ModuleType = select()

#: "c" or "python": the backend that runs the primitives.
BACKEND_NAME: str = active.NAME


def openssl_version() -> str | None:
    """The OpenSSL version the C backend runs on, or None for the pure-Python backend."""
    versions = getattr(active, "openssl_versions", None)
    return versions()[1] if versions is not None else None
