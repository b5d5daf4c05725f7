"""Random access: a read-only file object that opens only the chunks a read touches."""

from __future__ import annotations

import io
import sys
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import _backend
from ._datamap import DataMap
from ._errors import SelfEncryptionError
from ._levels import READERS_LEVEL0, Level0View, check_root, fetch_chunks, load_chunk
from ._workers import Executor, check_workers, make_executor, result, stop
from .stores.access import BATCH, access

if TYPE_CHECKING:
    from ._decryptor import ChunkSource

#: The most bytes readall() asks for at a time.
READ_PIECE = 8 << 20


class ChunkReader(io.RawIOBase):
    """A read-only, seekable binary file over a data map and a store.

    Use it to read parts of a file without decrypting all of it; to change
    the file, use :class:`SelfEncryptor`. A read fetches and opens only the
    chunks that overlap it (the data-map levels of the root are fetched
    once, on first use), keeps the last few opened chunks, and on
    sequential reads only, fetches and opens the next chunks ahead: as many
    as the store takes requests at once (``store_concurrency``, default
    what the store declares, else ``workers``) and no more than the
    store's max_io_bytes of them. One reader is for one thread at a time.
    """

    def __init__(
        self,
        data_map: DataMap,
        store: ChunkSource,
        *,
        workers: int | None = None,
        cached_chunks: int = 8,
        store_concurrency: int | None = None,
    ) -> None:
        super().__init__()
        self._root = check_root(data_map)
        self._store = access(store).tuned(store_concurrency)
        self._backend = _backend.active
        workers = check_workers(workers)
        # A chunk read ahead is fetched and opened by one job: enough threads to keep
        # the store's requests in flight (opening releases the GIL, so they also use the cores).
        threads = max(workers, self._store.concurrency(workers))
        self._ahead_count = threads if threads > 1 else 0
        self._executor: Executor | None = make_executor(threads) if threads > 1 else None
        self._cached_chunks = cached_chunks
        self._ahead: dict[int, Future[Any]] = {}
        self._view: Level0View | None = None
        self._position = 0
        self._last_end = -1

    @property
    def size(self) -> int:
        """The length of the file."""
        return self._root.file_size

    def readable(self) -> bool:
        """Always True: a reader reads."""
        return True

    def seekable(self) -> bool:
        """Always True: any position can be read, fetching only the chunks it touches."""
        return True

    def tell(self) -> int:
        """The current position."""
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to offset (from the start, the current position or the end, as whence says); returns the new position."""
        self._checkClosed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        """Read into buffer from the current position; returns the bytes read (0 at the end)."""
        self._checkClosed()
        with memoryview(buffer) as target:
            target = target.cast("B")
            start = self._position
            end = min(start + len(target), self.size)
            if end <= start:
                return 0
            view = self._level0()
            index = view.locate(start)
            written = 0
            while start + written < end:
                plain = self._chunk(index)
                offset = start + written - view.start(index)
                take = min(view.end(index) - start - written, end - start - written)
                target[written : written + take] = plain[offset : offset + take]
                written += take
                index += 1
            self._advance(start, end, index)
            return written

    def _advance(self, start: int, end: int, next_index: int) -> None:
        """Move past a read of [start, end); a read that follows the last one reads ahead."""
        if start == self._last_end:
            self._read_ahead(next_index)
        self._position = self._last_end = end

    def read(self, size: int | None = -1) -> bytes:
        """Up to size bytes (all that is left when size is negative or None).

        The result is gathered chunk by chunk, so memory follows the bytes
        actually opened, never the size the data map claims.
        """
        self._checkClosed()
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        while size > 0:
            piece = self._read_piece(size)
            if not piece:
                break
            parts.append(piece)
            size -= len(piece)
        return b"".join(parts)

    def readall(self) -> bytes:
        """Everything from the current position to the end, read a piece at a time."""
        parts: list[bytes] = []
        while True:
            piece = self._read_piece(READ_PIECE)
            if not piece:
                return b"".join(parts)
            parts.append(piece)

    def _read_piece(self, limit: int) -> bytes:
        """At most limit bytes from the position, and at most to the end of its chunk."""
        start = self._position
        if start >= self.size or limit <= 0:
            return b""
        view = self._level0()
        index = view.locate(start)
        plain = self._chunk(index)  # opened and checked: its length is real
        offset = start - view.start(index)
        piece = bytes(memoryview(plain)[offset : offset + limit])
        self._advance(start, start + len(piece), index + (offset + len(piece) >= len(plain)))
        return piece

    def close(self) -> None:
        """Stop the read-ahead workers and forget the opened chunks.

        Closed while an interrupt is on its way out (from a ``with`` block or
        a ``finally``), it gives workers stuck in a store call the interrupt
        grace, as every pool of the package does, instead of waiting for them.
        """
        if self._executor is not None:
            executor, self._executor = self._executor, None
            stop(executor, sys.exc_info()[1])
        self._ahead.clear()
        if self._view is not None:
            self._view.clear()
        super().close()

    # -- chunks -------------------------------------------------------------

    def _level0(self) -> Level0View:
        if self._view is None:
            # Opening one map again (a server answering many ranges of a file) fetches no level.
            level0 = READERS_LEVEL0.level_zero(self._backend, self._root, self._store)
            self._view = Level0View(level0, self._cached_chunks)
        return self._view

    def _load(self, index: int) -> Any:
        assert self._view is not None
        return load_chunk(self._backend, self._view.map, self._store, index)

    def _chunk(self, index: int) -> Any:
        view = self._level0()
        plain = view.cached(index)
        if plain is None:
            future = self._ahead.pop(index, None)
            try:
                plain = result(future) if future is not None else None
            except SelfEncryptionError:
                plain = None  # a read-ahead window failed: this chunk may still be sound
            if plain is None:
                plain = self._load(index)
            view.remember(index, plain)
        return plain

    def _read_ahead(self, index: int) -> None:
        """After a sequential read, start opening the next chunks."""
        if self._executor is None or self._view is None:
            return
        for stale in [i for i in self._ahead if i < index]:
            self._ahead.pop(stale).cancel()
        wanted = []
        budget = self._store.max_io_bytes
        for i in range(index, min(index + self._ahead_count, len(self._view))):
            budget -= self._view.map.chunks[i].stored_size + self._view.map.chunks[i].plain_size
            if budget < 0 and i > index:
                break
            if not self._view.holds(i) and i not in self._ahead:
                wanted.append(i)
        if not wanted:
            return
        if not self._store.batched or len(wanted) == 1:
            for ahead in wanted:
                self._ahead[ahead] = self._executor.submit(self._load, ahead)
            return
        # One get_many() for each BATCH of the window; each chunk is opened as its own job.
        for start in range(0, len(wanted), BATCH):
            run = wanted[start : start + BATCH]
            batch = self._executor.submit(fetch_chunks, self._view.map, self._store, run)
            for ahead in run:
                self._ahead[ahead] = self._executor.submit(self._load_from, batch, ahead)

    def _load_from(self, batch: Future[dict[int, object]], index: int) -> Any:
        assert self._view is not None
        content = result(batch)[index]
        return load_chunk(self._backend, self._view.map, self._store, index, content=content)


def open(  # noqa: A001
    data_map: DataMap, store: ChunkSource, *, workers: int | None = None, store_concurrency: int | None = None
) -> ChunkReader:
    """A read-only, seekable binary file that decrypts only the chunks it reads."""
    return ChunkReader(data_map, store, workers=workers, store_concurrency=store_concurrency)
