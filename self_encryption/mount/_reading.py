"""A handle opened for reading only: sequential reads served from windows filled ahead.

The handle has its own :class:`self_encryption.ChunkReader` over the map as
it was when opened, reading through the mount's shared chunk cache. Once
reads are sequential, it asks the reader for a whole window (4 MiB) at once
and serves the kernel's requests from it; while they are served, the next
window is filled on a thread of its own, so that opening chunks and handing
bytes to the kernel overlap. A read that does not follow the last one asks
for exactly its own range, so a random read opens only the chunks it
touches. A window that fails (a bad chunk past the read) is dropped, and
the read asks for its own range instead, so it fails only if its own bytes
are bad.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import self_encryption as se

from ._fuse import reply


class _Window(NamedTuple):
    start: int
    data: memoryview  # a buffer of its own, never written again once filled

    @property
    def end(self) -> int:
        return self.start + len(self.data)


_EMPTY = _Window(0, memoryview(b""))


class Reading:
    """Reads of one open handle; safe to call from many threads (requests run one at a time)."""

    #: The bytes fetched at once on sequential reads.
    WINDOW = 4 << 20

    def __init__(self, path: str, data_map: se.DataMap, store: Any, workers: int | None) -> None:
        self.path = path
        self._reader = se.ChunkReader(data_map, store, workers=workers)
        self._size = self._reader.size
        self._lock = threading.Lock()  # the window state
        self._reader_lock = threading.Lock()  # a ChunkReader is for one thread at a time
        self._window = _EMPTY
        self._next: Future[_Window] | None = None
        self._filler: ThreadPoolExecutor | None = None
        self._last_end = -1

    def read(self, size: int, offset: int) -> Any:
        """The bytes at [offset, offset + size): bytes, or a view of a window (see _fuse.reply)."""
        with self._lock:
            window = self._window
            if not (window.start <= offset and offset + size <= window.end):
                window = self._sequential(offset, size) if offset == self._last_end else _EMPTY
            if (
                window.start <= offset
                and offset + size <= window.end
                or (window.data and window.end == self._size)
            ):
                piece: Any = reply(window.data[offset - window.start : offset - window.start + size])
                if offset + size > window.start + len(window.data) // 2:
                    self._fill_ahead(window.end)
            else:
                piece = self._exact(offset, size)
            self._last_end = offset + len(piece)
            return piece

    def _sequential(self, offset: int, size: int) -> _Window:
        """The window for a read that follows the last one: the one filled ahead, or a new one."""
        ahead, self._next = self._next, None
        window = None
        if ahead is not None:
            try:
                window = ahead.result()
            except se.SelfEncryptionError:
                window = None
            if window is not None and window.start != offset:
                window = None
        if window is None:
            window = self._fill(offset, max(size, self.WINDOW))
        self._window = window or _EMPTY
        return self._window

    def _fill(self, offset: int, length: int) -> _Window | None:
        """A window from offset; None if it failed (a bad chunk past this read must not fail it)."""
        buffer = bytearray(min(length, max(self._size - offset, 0)))
        with self._reader_lock:
            self._reader.seek(offset)
            try:
                filled = self._reader.readinto(buffer)
            except se.SelfEncryptionError:
                return None
        return _Window(offset, memoryview(buffer)[:filled])

    def _fill_ahead(self, offset: int) -> None:
        if self._next is not None or offset >= self._size:
            return
        if self._filler is None:
            self._filler = ThreadPoolExecutor(1, thread_name_prefix="self-encryption-mount-window")
        self._next = self._filler.submit(self._fill_or_fail, offset)

    def _fill_or_fail(self, offset: int) -> _Window:
        window = self._fill(offset, self.WINDOW)
        if window is None:
            raise se.SelfEncryptionError("this window could not be read")
        return window

    def _exact(self, offset: int, size: int) -> bytes:
        with self._reader_lock:
            self._reader.seek(offset)
            return self._reader.read(size)

    def close(self) -> None:
        with self._lock:
            self._window = _EMPTY
            if self._next is not None:
                self._next.cancel()
                self._next = None
            if self._filler is not None:
                # A fill waiting on a store that hangs must not hold the close.
                self._filler.shutdown(wait=False, cancel_futures=True)
        # A fill stuck on a store that hangs holds the reader: leave it to end on its own.
        if self._reader_lock.acquire(blocking=False):
            try:
                self._reader.close()
            finally:
                self._reader_lock.release()
