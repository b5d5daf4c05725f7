"""Backend choice: SELF_ENCRYPTION_BACKEND = auto (default), c or python."""

from __future__ import annotations

import os
import warnings
from array import array
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from ._buffers import Buffer

VARIABLE = "SELF_ENCRYPTION_BACKEND"
CHOICES = ("auto", "c", "python")


class Backend(Protocol):
    """What the format's engine needs from a backend; both backend modules are one.

    The two are checked against it (below, for mypy), so a function that
    drifts in one of them (a parameter, a return type) is a type error.
    """

    NAME: str

    def GearTable(self, secret: bytes) -> Any: ...  # noqa: N802 - a class in each backend

    def sha256(self, data: Buffer) -> bytes: ...

    def hmac_sha256(self, key: Buffer, data: Buffer) -> bytes: ...

    def aes256_ctr(self, key: Buffer, counter_block: Buffer, data: Buffer) -> bytearray: ...

    def find_cut(
        self, table: Any, data: Buffer, min_size: int, avg_size: int, max_size: int, at_end: bool
    ) -> int: ...

    def key_seed(self, secret: bytes, kind: int, body: Buffer) -> bytes: ...

    def seal(
        self, seed: bytes, prev1: bytes, prev2: bytes, kind: int, body: Buffer
    ) -> tuple[bytearray, bytes]: ...

    def open_chunk(
        self, seed: bytes, prev1: bytes, prev2: bytes, content: Buffer, name: bytes, out: Buffer | None = None
    ) -> memoryview: ...

    def cut_path(self, path: str | None = None) -> str: ...

    def cut_lengths(
        self,
        table: Any,
        data: Buffer,
        min_size: int,
        avg_size: int,
        max_size: int,
        at_end: bool,
        *,
        path: str | None = None,
        limit: int | None = None,
    ) -> list[int]: ...

    def scan_candidates(
        self, table: Any, data: Buffer, start: int, stop: int, avg_size: int, *, path: str | None = None
    ) -> array[int]: ...

    def resolve_cuts(
        self,
        table: Any,
        data: Buffer,
        candidates: Iterable[Any],
        min_size: int,
        avg_size: int,
        max_size: int,
        at_end: bool,
        start: int = 0,
    ) -> list[int]: ...


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
        raise ImportError(f"{VARIABLE}={os.environ[VARIABLE]!r} is not one of {', '.join(CHOICES)}")
    if choice == "python":
        return load_python()
    try:
        return load_c()
    except ImportError as exc:
        if type(exc).__name__ == "StaleCoreError":  # built, but for another version: fail loudly
            raise
        if choice == "c":
            raise ImportError(f"{VARIABLE}=c but the C backend cannot be loaded: {exc}") from exc
        warnings.warn(
            f"self_encryption: C backend unavailable ({exc}); using the much slower pure-Python backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return load_python()


if TYPE_CHECKING:  # both modules must be a Backend: mypy checks every member
    from . import _cbackend, _pybackend

    _c: Backend = _cbackend
    _python: Backend = _pybackend

active: Backend = cast(Backend, select())

#: "c" or "python": the backend that runs the primitives.
BACKEND_NAME: str = active.NAME


def openssl_version() -> str | None:
    """The OpenSSL version the C backend runs on, or None for the pure-Python backend."""
    versions = getattr(active, "openssl_versions", None)
    return str(versions()[1]) if versions is not None else None
