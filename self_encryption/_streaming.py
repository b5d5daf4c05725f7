"""Any-size files: the streaming encryptor, file entry points and ranged reads.

Chunks are cut as bytes arrive, prepared (compressed and keyed) and sealed on
a worker pool, and handed to the store while reading goes on. Memory holds
only the chunks in flight, the two first chunks (their pads need the last
two key seeds, known only at the end) and 72 bytes of record per chunk.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from . import _backend, _engine
from ._engine import DEFAULT_CHUNK_SIZES, DEFAULT_COMPRESSION_LEVEL, Options
from ._errors import InvalidArgumentError, SelfEncryptionError
from ._format import ChunkInfo, DataMap
from ._stores import put_if_absent
from ._workers import InlineExecutor, check_workers, make_executor, in_flight

Progress = Callable[[int, "int | None"], object]

#: Bytes read from a file at a time.
READ_SIZE = 8 << 20


@dataclass
class EncryptStats:
    """What an encryption did to the store."""

    chunks_written: int = 0
    chunks_present: int = 0
    bytes_stored: int = 0
    bytes_read: int = 0

    @property
    def chunks(self) -> int:
        return self.chunks_written + self.chunks_present


class Encryptor:
    """Self-encrypt a stream into a store: ``write()`` any number of times, then ``finish()``.

    The result is byte-identical to :func:`self_encryption.encrypt` of the
    concatenated writes, whatever their sizes. As a context manager it
    finishes on a clean exit (the root is then in ``data_map``) and stops
    its workers on an error.
    """

    def __init__(
        self,
        store,
        *,
        convergence_secret: bytes | str = b"",
        compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
        chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
        workers: int | None = None,
        progress: Progress | None = None,
        total_size: int | None = None,
    ) -> None:
        self._options: Options = _engine.make_options(convergence_secret, compression_level, chunk_sizes)
        for method in ("put", "has"):
            if not callable(getattr(store, method, None)):
                raise InvalidArgumentError(f"store has no {method}() method")
        self._store = store
        self._backend = _backend.active
        self._table = _engine.gear_table(self._backend, self._options.convergence_secret)
        self._workers = check_workers(workers)
        # Threads start with the second chunk: a small input never pays for them.
        self._executor = InlineExecutor()
        self._window = in_flight(self._workers)
        self._progress = progress
        self._total = total_size
        self._buffer = bytearray()  # bytes of the next chunk, kept between writes
        self._count = 0
        self._seeds: dict[int, Future] = {}  # key seeds, published as chunks are prepared
        self._records: list[ChunkInfo | None] = []
        self._held: dict[int, list] = {}  # chunks 0 and 1, prepared but not sealed
        self._pending: deque[Future] = deque()
        self._waiting: dict[int, tuple] = {}  # prepared chunks waiting for seeds
        self._sealed_bytes = 0
        self._state = "open"
        self.stats = EncryptStats()
        self.data_map: DataMap | None = None
        self.level0: DataMap | None = None

    # -- public --------------------------------------------------------------

    def write(self, data) -> int:
        """Add bytes to the stream; returns how many were taken (all of them).

        The bytes are copied as needed: data may be reused once write() returns.
        """
        return self._write(data, owned=False)

    def write_from(self, source) -> int:
        """Write everything a readable binary file holds, to its end; returns the bytes read."""
        total = 0
        while True:
            block = source.read(READ_SIZE)  # a fresh object each time: safe to hand on
            if not block:
                return total
            total += self._write(block, owned=isinstance(block, bytes))

    def _write(self, data, *, owned: bool) -> int:
        """write(); with owned=True the caller promises data stays unchanged
        until finish(), and chunks are handed to the workers without a copy."""
        self._check_open()
        view = _engine.as_bytes_view(data)
        with self._failing():
            position = self._finish_leftover(view)
            if position is not None:
                position += self._cut_view(view[position:], at_end=False, copy=not owned)
                self._buffer += view[position:]
        self.stats.bytes_read += len(view)
        return len(view)

    def finish(self) -> DataMap:
        """Seal what is left, store the map levels and return the root data map."""
        self._check_open()
        with self._failing():
            with memoryview(self._buffer) as rest:
                self._cut_view(rest, at_end=True)
            self._buffer.clear()
            self._drain(0)
            self._seal_first_chunks()
            self.level0 = level0 = DataMap(0, self.stats.bytes_read, tuple(self._records))
            root, upper = _engine.shrink(self._backend, level0, self._options)
            for chunk in upper:
                self._account(put_if_absent(self._store, chunk.name, chunk.content))
        self._executor.shutdown()
        self._state = "finished"
        self.data_map = root
        return root

    def abort(self) -> None:
        """Stop the workers and drop everything not yet stored."""
        if self._state == "open":
            self._state = "failed"
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Encryptor:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None and self._state == "open":
            self.finish()
        else:
            self.abort()

    # -- stages --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state != "open":
            raise SelfEncryptionError(f"this Encryptor is {self._state}; start a new one")

    @contextlib.contextmanager
    def _failing(self):
        """Abort on any error, so no worker keeps running behind a failure."""
        try:
            yield
        except BaseException:
            self.abort()
            raise

    def _cut_view(self, view, at_end: bool, copy: bool = True) -> int:
        """Cut the chunks decided at the start of view; returns the bytes they took.

        More than max bytes ahead always decide a cut; fewer only at the end.
        Without copy, chunks are slices of view, which must outlive the work.
        """
        options, backend = self._options, self._backend
        position = 0
        while len(view) - position > (0 if at_end else options.max_size):
            with view[position:position + options.max_size + 1] as window:
                length = backend.find_cut(self._table, window, options.min_size,
                                          options.avg_size, options.max_size, at_end)
                piece = bytes(window[:length]) if copy else view[position:position + length]
            if not length:
                raise SelfEncryptionError("internal error: the cut search did not decide")
            self._submit(piece)
            position += length
        return position

    def _finish_leftover(self, view) -> int | None:
        """Cut the chunks that begin in bytes kept from earlier writes.

        Borrows from view only what those chunks need. Returns where in view
        the next chunk starts, or None when view was all taken into the buffer.
        """
        buffer, limit = self._buffer, self._options.max_size + 1
        own, position = len(buffer), 0
        while own:
            borrowed = view[position:position + limit - len(buffer)]
            buffer += borrowed
            position += len(borrowed)
            if len(buffer) < limit:
                return None
            with memoryview(buffer) as whole:
                length = self._cut_view(whole, at_end=False)
            if length >= own:
                position -= len(buffer) - length  # hand back what the chunk did not take
                buffer.clear()
                own = 0
            else:
                del buffer[:length]
                own -= length
        return position

    def _submit(self, piece) -> None:
        index = self._count
        self._count += 1
        self._records.append(None)
        seed, done = Future(), Future()
        self._seeds[index] = seed
        self._pending.append(done)
        if index == 1:
            self._executor = make_executor(self._workers)
        self._executor.submit(self._prepare_chunk, index, piece, seed, done)
        self._drain(self._window)

    def _prepare_chunk(self, index: int, piece, seed: Future, done: Future) -> None:
        """On a worker: compress and key a chunk, publish its seed, then get it sealed.

        Sealing waits for the two predecessors' seeds without holding a
        worker: whichever thread publishes the last one seals this chunk too.
        """
        try:
            prepared = _engine.prepare(self._backend, piece, self._options)
        except BaseException as exc:
            seed.set_exception(exc)
            done.set_exception(exc)
            return
        seed.set_result(prepared[2])
        if index < 2:  # their pads need the last two seeds: sealed by finish()
            done.set_result((index, len(piece), prepared))
            return
        predecessors = (self._seeds[index - 1], self._seeds[index - 2])
        job = (index, len(piece), prepared, predecessors, done)
        if all(f.done() for f in predecessors):
            self._seal_chunk(*job)
            return
        # Futures keep their callbacks: the job itself waits in a dict, so
        # that a finished callback holds no chunk bytes.
        waiting = [len(predecessors)]
        lock = threading.Lock()
        self._waiting[index] = job

        def on_seed(_: Future) -> None:
            with lock:
                waiting[0] -= 1
                if waiting[0]:
                    return
            self._seal_chunk(*self._waiting.pop(index))  # in the thread that published the seed

        for future in predecessors:
            future.add_done_callback(on_seed)

    def _seal_chunk(self, index: int, plain_size: int, prepared, predecessors, done: Future) -> None:
        try:
            prev1, prev2 = (future.result() for future in predecessors)
            done.set_result((index, *self._seal_and_put(plain_size, prepared, prev1, prev2)))
        except BaseException as exc:
            done.set_exception(exc)

    def _drain(self, limit: int) -> None:
        """Collect finished jobs in order until at most ``limit`` are in flight."""
        pending = self._pending
        while pending and (len(pending) > limit or pending[0].done()):
            index, *result = pending.popleft().result()
            if index < 2:
                self._held[index] = result
            else:
                self._record(index, result)
                if index - 2 >= 2:  # later jobs need seeds from index - 1 on; finish() 0 and 1
                    del self._seeds[index - 2]

    def _seal_and_put(self, plain_size: int, prepared, prev1: bytes, prev2: bytes):
        record, content = _engine.seal(self._backend, plain_size, prepared, prev1, prev2)
        return record, put_if_absent(self._store, record.name, content)


    def _seal_first_chunks(self) -> None:
        count = self._count
        seeds = self._seeds
        for index, (plain_size, prepared) in sorted(self._held.items()):
            result = self._seal_and_put(plain_size, prepared, seeds[(index - 1) % count].result(),
                                        seeds[(index - 2) % count].result())
            self._record(index, result)
        self._held.clear()

    def _record(self, index: int, result) -> None:
        record, written = result
        self._records[index] = record
        self._account(written)
        self._sealed_bytes += record.plain_size
        if self._progress is not None:
            self._progress(self._sealed_bytes, self._total)

    def _account(self, written: int) -> None:
        if written:
            self.stats.chunks_written += 1
            self.stats.bytes_stored += written
        else:
            self.stats.chunks_present += 1


# -- decryption ------------------------------------------------------------------

def decrypt_into(data_map: DataMap, chunks, write: Callable[[object], object], *,
                 workers: int | None = None, progress: Progress | None = None,
                 reuse_buffers: bool = True) -> int:
    """Open every chunk of data_map in order and pass its plaintext to write().

    Returns the number of bytes written. Up to a bounded number of chunks are
    fetched and opened at once on the worker pool. With reuse_buffers, what
    write() receives is a view valid only until it returns.
    """
    root = _engine.check_root(data_map)
    fetch = _engine.fetcher(chunks)
    backend = _backend.active
    workers = check_workers(workers)
    executor = InlineExecutor()
    pool = _engine.ScratchPool() if reuse_buffers else None
    done = 0
    try:
        level0 = _engine.level_zero(backend, root, fetch)
        if len(level0.chunks) > 1:
            executor = make_executor(workers)
        parts = _engine.iter_level(backend, level0, fetch, executor, in_flight(workers), pool)
        with contextlib.closing(parts):
            for plain, scratch in parts:
                write(plain)
                done += len(plain)
                if pool is not None:
                    pool.release(scratch)
                if progress is not None:
                    progress(done, root.file_size)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return done


def decrypt_file(data_map: DataMap, store, destination, *, workers: int | None = None,
                 progress: Progress | None = None) -> int:
    """Decrypt into a path or a writable binary file; returns the bytes written.

    A path is written through a temporary file beside it that replaces the
    destination only after every chunk was verified: on any error nothing is
    left under the destination name. A file object receives bytes as they
    are opened, so it may hold a prefix if an error stops the work.
    """
    if hasattr(destination, "write"):
        return decrypt_into(data_map, store, destination.write, workers=workers, progress=progress)
    if not isinstance(destination, (str, bytes, os.PathLike)):
        raise InvalidArgumentError("destination must be a path or a writable binary file")
    target = os.path.abspath(os.fsdecode(destination))
    if os.path.isdir(target):
        raise InvalidArgumentError(f"destination {target!r} is a folder")
    folder, name = os.path.split(target)
    handle, temp_path = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(handle, "wb") as temp:
            written = decrypt_into(data_map, store, temp.write, workers=workers, progress=progress)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    return written


def encrypt_file(source, store, *, workers: int | None = None, progress: Progress | None = None,
                 **options) -> DataMap:
    """Self-encrypt a file (a path or a readable binary file) into a store; returns the root."""
    if hasattr(source, "read"):
        return _encrypt_stream(source, store, None, workers, progress, options)
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise InvalidArgumentError("source must be a path or a readable binary file")
    with open(source, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        return _encrypt_stream(handle, store, size, workers, progress, options)


def _encrypt_stream(handle, store, size, workers, progress, options) -> DataMap:
    with Encryptor(store, workers=workers, progress=progress, total_size=size, **options) as encryptor:
        encryptor.write_from(handle)
    return encryptor.data_map


# -- random access ----------------------------------------------------------------

class ChunkReader(io.RawIOBase):
    """A read-only, seekable binary file over a data map and a store.

    A read fetches and opens only the chunks that overlap it (the data-map
    levels of the root are fetched once, on first use), keeps the last few
    opened chunks, and on sequential reads opens the next chunks ahead on the
    worker pool. One reader is for one thread at a time.
    """

    def __init__(self, data_map: DataMap, store, *, workers: int | None = None,
                 cached_chunks: int = 8) -> None:
        super().__init__()
        self._root = _engine.check_root(data_map)
        self._fetch = _engine.fetcher(store)
        self._backend = _backend.active
        workers = check_workers(workers)
        self._ahead_count = workers if workers > 1 else 0
        self._executor = make_executor(workers) if workers > 1 else None
        self._cache: OrderedDict[int, object] = OrderedDict()
        self._cache_size = max(1, cached_chunks)
        self._ahead: dict[int, Future] = {}
        self._level0: DataMap | None = None
        self._starts: list[int] = []
        self._position = 0
        self._last_end = -1

    @property
    def size(self) -> int:
        """The length of the file."""
        return self._root.file_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
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

    def readinto(self, buffer) -> int:
        self._checkClosed()
        with memoryview(buffer) as target:
            target = target.cast("B")
            start = self._position
            end = min(start + len(target), self.size)
            if end <= start:
                return 0
            level0 = self._map()
            index = bisect.bisect_right(self._starts, start) - 1
            written = 0
            while start + written < end:
                plain = self._chunk(index)
                offset = start + written - self._starts[index]
                take = min(level0.chunks[index].plain_size - offset, end - start - written)
                target[written:written + take] = plain[offset:offset + take]
                written += take
                index += 1
            if start == self._last_end:
                self._read_ahead(index)
            self._position = self._last_end = end
            return written

    def readall(self) -> bytes:
        remaining = max(0, self.size - self.tell())
        buffer = bytearray(remaining)
        count = self.readinto(buffer)
        return bytes(buffer[:count]) if count != remaining else bytes(buffer)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._ahead.clear()
        self._cache.clear()
        super().close()

    # -- chunks -------------------------------------------------------------

    def _map(self) -> DataMap:
        if self._level0 is None:
            level0 = _engine.level_zero(self._backend, self._root, self._fetch)
            starts, offset = [], 0
            for record in level0.chunks:
                starts.append(offset)
                offset += record.plain_size
            self._starts, self._level0 = starts, level0
        return self._level0

    def _load(self, index: int):
        return _engine.load_chunk(self._backend, self._level0, self._fetch, index)

    def _chunk(self, index: int):
        plain = self._cache.get(index)
        if plain is not None:
            self._cache.move_to_end(index)
            return plain
        future = self._ahead.pop(index, None)
        plain = future.result() if future is not None else self._load(index)
        self._cache[index] = plain
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return plain

    def _read_ahead(self, index: int) -> None:
        """After a sequential read, start opening the next chunks."""
        if self._executor is None:
            return
        count = len(self._level0.chunks)
        for stale in [i for i in self._ahead if i < index]:
            self._ahead.pop(stale).cancel()
        for ahead in range(index, min(index + self._ahead_count, count)):
            if ahead not in self._cache and ahead not in self._ahead:
                self._ahead[ahead] = self._executor.submit(self._load, ahead)
