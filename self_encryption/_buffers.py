"""Byte buffers: flat views of caller data, and scratch space reused across chunks."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Protocol

from ._errors import InvalidArgumentError

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
elif TYPE_CHECKING:
    from typing_extensions import Buffer
else:

    class Buffer(Protocol):
        """Any object with the buffer protocol (collections.abc.Buffer from Python 3.12)."""

        def __buffer__(self, flags: int, /) -> memoryview: ...


__all__ = ["Buffer", "Scratch", "ScratchPool", "as_bytes_view"]


def as_bytes_view(data: object) -> memoryview:
    """A flat byte view of any bytes-like object, without copying it."""
    if isinstance(data, str):
        raise InvalidArgumentError("data must be bytes-like, not str (encode it first)")
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError(f"data must be bytes-like, not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise InvalidArgumentError("data must be a contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class Scratch:
    """Reusable buffers for opening chunks one at a time: payload and plaintext.

    Allocating fresh megabytes for every chunk costs a page fault per 4 KiB,
    which on some machines is as slow as the cryptography itself.
    """

    __slots__ = ("payload", "plain")

    def __init__(self) -> None:
        self.payload = bytearray()
        self.plain = bytearray()

    def buffer(self, name: str, size: int) -> memoryview:
        current: bytearray = getattr(self, name)
        if len(current) < size:
            current = bytearray(size)
            setattr(self, name, current)
        return memoryview(current)[:size]


class ScratchPool:
    """Scratch buffers handed out to workers and given back after use."""

    def __init__(self) -> None:
        self._free: list[Scratch] = []
        self._lock = threading.Lock()

    def acquire(self) -> Scratch:
        with self._lock:
            return self._free.pop() if self._free else Scratch()

    def release(self, scratch: Scratch | None) -> None:
        if scratch is not None:
            with self._lock:
                self._free.append(scratch)
