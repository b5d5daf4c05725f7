"""A handle opened for reading only: each read copies its chunks' parts straight into the kernel's buffer.

The handle holds a :class:`self_encryption.ChunkViews` over the map as it
was when opened: a read gets views of the opened chunks (reused buffers,
read ahead on sequential reads, each chunk checked against its name) and
copies them into the buffer libfuse gives, without the GIL
(:func:`_fuse.copy_into`): one copy of every byte, and Python work per
chunk, not per 4 KiB. The read-ahead goes through the mount's chunk cache
without filling it (see :meth:`CachingStore.passing`).
"""

from __future__ import annotations

import threading
from typing import Any

import self_encryption as se

from ._fuse import address_of, copy_into


class Reading:
    """Reads of one open handle; safe to call from many threads (requests run one at a time)."""

    #: How far ahead of a sequential reader chunks are opened, in plaintext bytes by the map's sizes.
    AHEAD_BYTES = 16 << 20

    def __init__(self, path: str, data_map: se.DataMap, store: Any, workers: int | None) -> None:
        self.path = path
        passing = getattr(store, "passing", None)
        self._views = se.ChunkViews(
            data_map,
            store,
            workers=workers,
            read_ahead=self.AHEAD_BYTES,
            ahead_store=passing() if callable(passing) else None,
        )
        # One request at a time: the views of one are valid until the next asks.
        self._lock = threading.Lock()
        self._closed = False

    def read_into(self, address: int, size: int, offset: int) -> int:
        """Copy the bytes at [offset, offset + size) to memory at ``address``; returns how many (0 at the end)."""
        with self._lock:
            if self._closed:
                return 0
            written = 0
            for piece in self._views.views(offset, size):
                copy_into(address + written, piece, 0, len(piece))
                written += len(piece)
            return written

    def read(self, size: int, offset: int) -> bytes:
        """The bytes at [offset, offset + size), as a new bytes object (see read_into)."""
        buffer = bytearray(max(0, min(size, self._views.size - offset)))
        if not buffer:
            return b""
        count = self.read_into(address_of(buffer), len(buffer), offset)
        return bytes(memoryview(buffer)[:count])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._views.close()
