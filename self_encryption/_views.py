"""Reads of a file by ranges, served as views of its opened chunks: for servers that copy each range out at once.

:class:`ChunkViews` walks the map to its level 0 once (through the
readers' shared level-0 cache) and keeps the chunks it opened, each in
scratch buffers of its own that are reused once the chunk is dropped:
fresh megabytes for every chunk would cost a page fault per 4 KiB. A read
returns views of those buffers, valid until the next call, so that a
server copies each byte once, straight where it goes (a FUSE mount copies
them into the kernel's buffer), and does Python work per chunk, not per
byte.

A read that follows the last one, or lands in a chunk opened ahead, is
sequential: the chunks after it, up to ``read_ahead`` bytes by the sizes
the map gives, are fetched and opened on ``workers`` threads (from a store
with get_many, in windows) while the caller copies what is already open.
Any other read opens only the chunks it touches, in the calling thread.
Each chunk is checked against its name before a byte of it is served; a
read fails only if one of its own chunks is missing or damaged (a bad
chunk opened ahead fails no read that does not need it, and is tried once
more when one does).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING

from . import _backend
from ._buffers import Scratch, ScratchPool
from ._datamap import DataMap
from ._errors import InvalidArgumentError, SelfEncryptionError
from ._levels import READERS_LEVEL0, Level0View, check_root, fetch_chunks, load_chunk
from ._workers import check_workers, result
from .stores.access import BATCH, access

if TYPE_CHECKING:
    from ._decryptor import ChunkSource

#: A chunk opened: its plaintext, and the scratch buffers it lives in.
_Opened = tuple["memoryview | bytes", Scratch]

#: Bytes opened ahead of a sequential reader by default.
DEFAULT_READ_AHEAD = 16 << 20


class ChunkViews:
    """A file's bytes by range, as views of its opened chunks; one thread at a time.

    ``views(offset, size)`` returns the bytes of the range as views of
    buffers the object reuses: they stay valid until its next call or
    :meth:`close`, so copy them out (or write them) before asking again.
    Use it where each range is copied out at once (a server, a FUSE mount);
    :class:`ChunkReader` gives a file object. On sequential reads the chunks
    of the next ``read_ahead`` bytes (by the sizes the map gives) are
    fetched and opened ahead on ``workers`` threads (default one per core);
    ``ahead_store``, if given, is what the read-ahead fetches through
    instead of ``store`` (a caching store can offer one that does not keep
    what a sequential reader streams). Memory follows the read-ahead, never
    the file's size.
    """

    #: Opened chunks kept behind the chunk last read, for reads that come again or out of order.
    BEHIND = 2

    def __init__(
        self,
        data_map: DataMap,
        store: ChunkSource,
        *,
        workers: int | None = None,
        read_ahead: int = DEFAULT_READ_AHEAD,
        ahead_store: ChunkSource | None = None,
    ) -> None:
        if isinstance(read_ahead, bool) or not isinstance(read_ahead, int) or read_ahead < 0:
            raise InvalidArgumentError(
                f"read_ahead must be a non-negative number of bytes, not {read_ahead!r}"
            )
        self._root = check_root(data_map)
        self._store = access(store)
        self._ahead_store = self._store if ahead_store is None else access(ahead_store)
        self._backend = _backend.active
        self._threads = check_workers(workers)
        self._read_ahead = read_ahead
        self._view: Level0View | None = None
        self._chunks: OrderedDict[int, Future[_Opened]] = OrderedDict()  # opened or being opened
        self._scratch = ScratchPool()
        self._openers: ThreadPoolExecutor | None = None  # started by the first read ahead
        self._fetchers: ThreadPoolExecutor | None = None
        self._ahead: set[int] = set()  # the chunks of self._chunks started by a read-ahead
        self._last_end = -1
        self._closed = False

    @property
    def size(self) -> int:
        """The length of the file."""
        return self._root.file_size

    def views(self, offset: int, size: int) -> list[memoryview]:
        """The bytes at [offset, offset + size) (fewer past the end), one view per chunk, valid until the next call."""
        if self._closed:
            raise ValueError("these ChunkViews are closed")
        if offset < 0 or size < 0:
            raise ValueError(f"a range cannot be negative: offset {offset}, size {size}")
        end = min(offset + size, self._root.file_size)
        if offset >= end:
            return []
        view = self._level0()
        first = view.locate(offset)
        last = view.locate(end - 1)
        # A range that follows the last one, or lands in a chunk read ahead (the kernel may
        # send two requests of a sequential reader out of order), is sequential; a random
        # range that comes back to a chunk it opened is not.
        sequential = offset == self._last_end or first in self._ahead
        self._keep(first, last)
        if sequential:
            self._open_ahead(last + 1)
        pieces = []
        position = offset
        for index in range(first, last + 1):
            plain = memoryview(self._opened(index))
            start = position - view.start(index)
            take = min(len(plain) - start, end - position)
            pieces.append(plain[start : start + take])
            position += take
        self._last_end = end
        return pieces

    def close(self) -> None:
        """Forget the opened chunks and stop the read-ahead (without waiting for a store that hangs)."""
        self._closed = True
        for index in list(self._chunks):
            self._drop(index)
        for pool in (self._openers, self._fetchers):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._openers = self._fetchers = None

    def __enter__(self) -> ChunkViews:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- chunks ---------------------------------------------------------------------

    def _level0(self) -> Level0View:
        if self._view is None:
            level0 = READERS_LEVEL0.level_zero(self._backend, self._root, self._store)
            self._view = Level0View(level0, 1)
        return self._view

    def _load(self, index: int, content: object = None, *, ahead: bool = False) -> _Opened:
        """Fetch (unless content is given), check and open chunk index into a scratch of the pool."""
        assert self._view is not None
        store = self._ahead_store if ahead else self._store
        scratch = self._scratch.acquire()
        try:
            return load_chunk(self._backend, self._view.map, store, index, scratch, content), scratch
        except BaseException:
            self._scratch.release(scratch)
            raise

    def _start(self, run: list[int]) -> None:
        """Start fetching and opening the chunks of run (read ahead), each a future in self._chunks.

        A store that gets many chunks at once is asked for the run in one
        get_many() on a thread of its own, and each chunk is opened on a
        worker as the run arrives; any other store is asked one chunk per
        job, fetched and opened by the same worker (a local store answers
        at once, and a second thread per chunk would only cost more
        switching on the cores that open chunks).
        """
        assert self._view is not None
        if self._openers is None:
            self._openers = ThreadPoolExecutor(self._threads, thread_name_prefix="self-encryption-views")
        openers = self._openers
        if not self._ahead_store.batched or len(run) == 1:
            for index in run:
                self._chunks[index] = openers.submit(self._load, index, ahead=True)
                self._ahead.add(index)
            return
        if self._fetchers is None:
            # One window fetched while the one before it is opened; get_many has threads of its own.
            self._fetchers = ThreadPoolExecutor(2, thread_name_prefix="self-encryption-views-io")
        window = self._fetchers.submit(fetch_chunks, self._view.map, self._ahead_store, run)
        for index in run:
            opened: Future[_Opened] = Future()
            window.add_done_callback(functools.partial(self._open_fetched, openers, index, opened))
            self._chunks[index] = opened
            self._ahead.add(index)

    def _open_fetched(
        self,
        openers: ThreadPoolExecutor,
        index: int,
        opened: Future[_Opened],
        window: Future[dict[int, object]],
    ) -> None:
        """Once a window is fetched (in the thread that fetched it): open chunk index on a worker."""
        if window.cancelled():
            opened.cancel()
            return
        failure = window.exception()
        if failure is not None:
            if opened.set_running_or_notify_cancel():
                opened.set_exception(failure)
            return
        content = window.result()[index]

        def open_it() -> None:
            if opened.set_running_or_notify_cancel():  # False: dropped meanwhile
                try:
                    opened.set_result(self._load(index, content))
                except BaseException as exc:
                    opened.set_exception(exc)

        try:
            openers.submit(open_it)
        except RuntimeError:  # closed meanwhile
            opened.cancel()

    def _opened(self, index: int) -> memoryview | bytes:
        """The plaintext of chunk index: opened ahead, or opened now (a failure ahead is tried again)."""
        future = self._chunks.get(index)
        if future is not None:
            self._chunks.move_to_end(index)
            try:
                return result(future)[0]
            except SelfEncryptionError:
                self._drop(index)
        done: Future[_Opened] = Future()
        done.set_result(self._load(index))
        self._chunks[index] = done
        return done.result()[0]

    def _open_ahead(self, index: int) -> None:
        """Start the chunks from index on that are not started yet, as far as the read-ahead goes."""
        run = [ahead for ahead in range(index, self._ahead_end(index)) if ahead not in self._chunks]
        for start in range(0, len(run), BATCH):
            self._start(run[start : start + BATCH])

    def _keep(self, first: int, last: int) -> None:
        """Drop the opened chunks a read of chunks first..last leaves behind or beyond the read-ahead."""
        beyond = self._ahead_end(last + 1)
        for held in list(self._chunks):
            if held < first - self.BEHIND or held >= beyond:
                self._drop(held)

    def _ahead_end(self, index: int) -> int:
        """Where the read-ahead from chunk index ends: read_ahead bytes on by the map's sizes, at least one chunk."""
        assert self._view is not None
        records = self._view.map.chunks
        budget = min(self._read_ahead, self._store.max_io_bytes)
        end = index
        while end < len(records) and (end == index or budget > 0):
            budget -= records[end].plain_size
            end += 1
        return end

    def _drop(self, index: int) -> None:
        """Forget chunk index; its scratch goes back to the pool once nothing uses it."""
        future = self._chunks.pop(index)
        self._ahead.discard(index)
        if not future.cancel():
            future.add_done_callback(self._give_back)

    def _give_back(self, future: Future[_Opened]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        self._scratch.release(future.result()[1])
