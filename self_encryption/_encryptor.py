"""Encryption: the streaming Encryptor (the entry points built on it are in _encrypting).

Chunks are cut as bytes arrive, prepared (compressed and keyed) and sealed on
a worker pool (one thread per core), and handed to the store on a pool of
its own (as many requests at once as the store declares, so that a store far
away is kept busy) while reading goes on. Memory holds only the chunks in
flight (at most the store's ``max_io_bytes`` of them, 64 MiB by default),
the two first chunks (their pads need the last two key seeds, known only at
the end) and 72 bytes of record per chunk.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, NamedTuple

from . import _backend
from ._buffers import Buffer, as_bytes_view
from ._chunking import Cutter
from ._datamap import ChunkInfo, DataMap
from ._errors import SelfEncryptionError
from ._options import DEFAULT_CHUNK_SIZES, DEFAULT_COMPRESSION_LEVEL, Options, Progress, make_options
from ._sealing import (
    PreparedChunk,
    neighbour_seeds,
    prepare_chunk,
    seal_prepared,
    shrink_map,
)
from ._workers import (
    ByteBudget,
    Executor,
    InlineExecutor,
    check_workers,
    in_flight,
    make_executor,
    stop,
)
from ._workers import result as wait_for
from .stores.access import StoreAccess, access
from .stores.protocol import ChunkStore

#: Bytes read from a file at a time.
READ_SIZE = 8 << 20


@dataclass
class EncryptStats:
    """What an encryption did to the store.

    ``chunks_written`` were new to the store and put; ``chunks_present``
    were already there and not put again; ``bytes_written`` is the size of
    what was put; ``bytes_read`` the size of the input. ``chunks_repaired``
    (with ``check_existing``) counts the present chunks found damaged and
    put again; they are among ``chunks_written``.
    """

    chunks_written: int = 0
    chunks_present: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    chunks_repaired: int = 0

    @property
    def chunks(self) -> int:
        """Every chunk the data map names, written or present."""
        return self.chunks_written + self.chunks_present


class _Held(NamedTuple):
    """Chunk 0 or 1, prepared: sealed by finish() once the last seeds are known."""

    number: int  # the chunk's index in the file (index would shadow tuple.index)
    prepared: PreparedChunk


class _Stored(NamedTuple):
    """A chunk sealed and handed to the store: its record and what storing it did."""

    number: int
    record: ChunkInfo
    written: int  # bytes put; 0 when it was present
    repaired: bool  # a damaged copy was replaced


class Encryptor:
    """Self-encrypt a stream into a store: ``write()`` any number of times, then ``finish()``.

    Use it for input that arrives piece by piece (a socket, a pipe, a
    generator); :func:`encrypt_file` wraps it for files. The result is
    byte-identical to :func:`self_encryption.encrypt` of the concatenated
    writes, whatever their sizes. As a context manager it finishes on a
    clean exit (the root is then in ``data_map``) and stops its workers on
    an error.

    From creation to finish() or abort() it holds the store's writer lock
    (``store.writing()``, shared), so a garbage collection waits for it. A
    store that offers ``begin_writing()`` (S3) has it taken beside the
    first chunks' work: its puts wait for it, and a gc holding the store
    shows as a StoreBusyError from write() or finish().
    Chunks the store already has are refreshed (``touch``) rather than put;
    with ``check_existing`` they are first read back and checked against
    their names, and damaged ones are replaced. ``workers`` threads seal
    chunks; ``store_concurrency`` store requests run at once on a pool of
    their own (default: the store's ``io_concurrency``, else ``workers``).
    """

    def __init__(
        self,
        store: ChunkStore | StoreAccess,
        *,
        convergence_secret: bytes | str = b"",
        compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
        chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
        workers: int | None = None,
        progress: Progress | None = None,
        total_size: int | None = None,
        check_existing: bool = False,
        store_concurrency: int | None = None,
    ) -> None:
        self._options: Options = make_options(convergence_secret, compression_level, chunk_sizes)
        self._store = access(store, needs=("put", "has")).tuned(store_concurrency)
        if check_existing:
            self._store.require("get", purpose="check_existing needs a store with a get() method")
        self._check_existing = bool(check_existing)
        self._backend = _backend.active
        self._workers = check_workers(workers)
        # Large writes are scanned for cuts on the same pool that seals chunks.
        self._cutter = Cutter(self._backend, self._options, pool=self._pool, workers=self._workers)
        # Threads start with the second chunk: a small input never pays for them.
        self._executor: Executor = InlineExecutor()
        # Store requests have a pool of their own, as large as the store asks (1: made by
        # the thread that sealed the chunk). It too starts with the second chunk.
        self._io_concurrency = self._store.concurrency(self._workers)
        self._io: Executor = InlineExecutor()
        self._budget = ByteBudget(self._store.max_io_bytes)
        self._window = in_flight(self._workers) + (self._io_concurrency if self._io_concurrency > 1 else 0)
        self._pending_bytes = 0  # plaintext of the chunks in flight
        self._progress = progress
        self._total = total_size
        self._count = 0
        self._seeds: dict[int, Future[bytes]] = {}  # key seeds, published as chunks are prepared
        self._records: list[ChunkInfo | None] = []
        self._held: dict[int, PreparedChunk] = {}
        # In order: what storing each chunk in flight did, its plaintext size, and its record once sealed.
        self._pending: deque[tuple[Future[_Held | _Stored], int, Future[ChunkInfo]]] = deque()
        self._waiting: dict[int, tuple[Any, ...]] = {}  # prepared chunks waiting for seeds
        self._sealed_bytes = 0
        self._state = "open"
        self.stats = EncryptStats()
        self.data_map: DataMap | None = None
        self.level0: DataMap | None = None
        self._lock = contextlib.ExitStack()  # last: a failure above leaves nothing held
        self._lock.enter_context(self._store.writing(early=True))

    # -- public --------------------------------------------------------------

    def write(self, data: Buffer) -> int:
        """Add bytes to the stream; returns how many were taken (all of them).

        The bytes are copied as needed: data may be reused once write() returns.
        """
        return self._write(data, owned=False)

    def write_from(self, source: IO[bytes]) -> int:
        """Write everything a readable binary file holds, to its end; returns the bytes read."""
        total = 0
        while True:
            block = source.read(READ_SIZE)  # a fresh object each time: safe to hand on
            if not block:
                return total
            total += self._write(block, owned=isinstance(block, bytes))

    def write_owned(self, data: Buffer) -> int:
        """write() for a buffer that stays unchanged until finish() returns.

        Chunks are then handed to the workers as views of data, not copies.
        """
        return self._write(data, owned=True)

    def finish(self) -> DataMap:
        """Seal what is left, store the map levels and return the root data map."""
        self._check_open()
        with self._failing():
            for piece in self._cutter.finish():
                self._submit(piece)
            # The first two chunks are sealed as soon as the last two seeds are out, and the
            # map's own chunks as soon as every record is: they are stored alongside the
            # last chunks of the file, not a round trip or two after them.
            self._seal_first_chunks()
            for _, _, sealed in self._pending:
                wait_for(sealed)
            records = tuple(record for record in self._records if record is not None)
            assert len(records) == self._count  # every chunk was sealed
            self.level0 = level0 = DataMap(0, self.stats.bytes_read, records)
            root, upper = shrink_map(self._backend, level0, self._options)
            uppers = [self._put_within_budget(chunk.name, chunk.content) for chunk in upper]
            self._drain(0)
            for future in uppers:
                self._account(*wait_for(future))
        self._stop_pools(None)
        self._state = "finished"
        self.data_map = root
        self._lock.close()
        return root

    def abort(self, error: BaseException | None = None) -> None:
        """Stop the workers and drop everything not yet stored.

        After an interrupt (``error`` a KeyboardInterrupt) it does not wait
        for a worker that may be stuck in a store call.
        """
        if self._state == "open":
            self._state = "failed"
        try:
            self._stop_pools(error)
        finally:
            self._lock.close()

    def _stop_pools(self, error: BaseException | None) -> None:
        """Stop the workers, then the store requests (each given the interrupt grace after one)."""
        self._budget.close()  # a worker waiting for room fails at once
        try:
            stop(self._executor, error)
        finally:
            stop(self._io, error)

    def __enter__(self) -> Encryptor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None and self._state == "open":
            self.finish()
        else:
            self.abort(value)

    # -- stages --------------------------------------------------------------

    def _write(self, data: Buffer, *, owned: bool) -> int:
        self._check_open()
        view = as_bytes_view(data)
        with self._failing():
            for piece in self._cutter.feed(view, owned=owned):
                self._submit(piece)
        self.stats.bytes_read += len(view)
        return len(view)

    def _pool(self) -> Executor:
        """The worker pool, started on first need (a small input never pays for it)."""
        if isinstance(self._executor, InlineExecutor):
            self._executor = make_executor(self._workers)
        if isinstance(self._io, InlineExecutor):
            self._io = self._store.io_pool(self._workers)
        return self._executor

    def _check_open(self) -> None:
        if self._state != "open":
            raise SelfEncryptionError(f"this Encryptor is {self._state}; start a new one")

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        """Abort on any error, so no worker keeps running behind a failure."""
        try:
            yield
        except BaseException as exc:
            self.abort(exc)
            raise

    def _submit(self, piece: bytes | memoryview) -> None:
        index = self._count
        self._count += 1
        self._records.append(None)
        seed: Future[bytes] = Future()
        done: Future[_Held | _Stored] = Future()
        sealed: Future[ChunkInfo] = Future()
        self._seeds[index] = seed
        self._pending.append((done, len(piece), sealed))
        self._pending_bytes += len(piece)
        if index == 1:
            self._pool()
        self._executor.submit(self._prepare_chunk, index, piece, seed, done, sealed)
        self._drain(self._window)

    def _prepare_chunk(
        self,
        index: int,
        piece: bytes | memoryview,
        seed: Future[bytes],
        done: Future[_Held | _Stored],
        sealed: Future[ChunkInfo],
    ) -> None:
        """On a worker: compress and key a chunk, publish its seed, then get it sealed.

        Sealing waits for the two predecessors' seeds without holding a
        worker: whichever thread publishes the last one seals this chunk too.
        """
        try:
            prepared = prepare_chunk(self._backend, piece, self._options)
        except BaseException as exc:
            for future in (seed, done, sealed):
                future.set_exception(exc)
            return
        seed.set_result(prepared.key_seed)
        if index < 2:  # their pads need the last two seeds: sealed by finish()
            done.set_result(_Held(index, prepared))
            sealed.cancel()  # not waited for: finish() seals these two under new futures
            return
        # Chunks past the first two never wrap, so their neighbours are i-1 and i-2 whatever
        # the count (which is not known yet): the only pads worked out without neighbours().
        predecessors = (self._seeds[index - 1], self._seeds[index - 2])
        job = (index, prepared, predecessors, done, sealed)
        if all(f.done() for f in predecessors):
            self._seal_chunk(*job)
            return
        # Futures keep their callbacks: the job itself waits in a dict, so
        # that a finished callback holds no chunk bytes.
        waiting = [len(predecessors)]
        lock = threading.Lock()
        self._waiting[index] = job

        def on_seed(_: Future[bytes]) -> None:
            with lock:
                waiting[0] -= 1
                if waiting[0]:
                    return
            self._seal_chunk(*self._waiting.pop(index))  # in the thread that published the seed

        for future in predecessors:
            future.add_done_callback(on_seed)

    def _seal_chunk(
        self,
        index: int,
        prepared: PreparedChunk,
        predecessors: tuple[Future[bytes], Future[bytes]],
        done: Future[_Held | _Stored],
        sealed: Future[ChunkInfo],
    ) -> None:
        try:
            prev1, prev2 = (future.result() for future in predecessors)
            self._seal_and_put(index, prepared, prev1, prev2, done, sealed)
        except BaseException as exc:
            done.set_exception(exc)
            if not sealed.done():
                sealed.set_exception(exc)

    def _drain(self, limit: int) -> None:
        """Collect finished jobs in order until at most ``limit`` (and max_io_bytes of them) are in flight."""
        pending = self._pending
        cap = self._store.max_io_bytes
        while pending and (len(pending) > limit or self._pending_bytes > cap or pending[0][0].done()):
            self._collect()

    def _collect(self) -> None:
        """Take the oldest job in flight, once it is done."""
        done, size, _ = self._pending.popleft()
        self._pending_bytes -= size
        result = wait_for(done)
        if isinstance(result, _Held):
            self._held[result.number] = result.prepared
        else:
            self._tally(result)
            if result.number - 2 >= 2:  # later jobs need seeds from index - 1 on; finish() 0 and 1
                del self._seeds[result.number - 2]

    def _seal_and_put(
        self,
        index: int,
        prepared: PreparedChunk,
        prev1: bytes,
        prev2: bytes,
        done: Future[_Held | _Stored],
        sealed: Future[ChunkInfo],
    ) -> None:
        """Seal a chunk, then hand it to the store's pool; done gets what storing it did.

        Its record is published at once (sealed): the map can be made before
        the store has every chunk. The sealed bytes count against the
        store's max_io_bytes until the store has them: a worker waits for
        room before handing a chunk on.
        """
        record, content = seal_prepared(self._backend, prepared, prev1, prev2)
        self._records[index] = record  # each index written by one thread, once
        sealed.set_result(record)
        size = memoryview(content).nbytes
        self._budget.take(size)

        def put() -> None:
            try:
                done.set_result(_Stored(index, record, *self._store_chunk(record.name, content)))
            except BaseException as exc:
                done.set_exception(exc)
            finally:
                self._budget.give(size)

        try:
            self._io.submit(put)
        except BaseException:  # the pool was stopped behind a failure
            self._budget.give(size)
            raise

    def _put_within_budget(self, name: str, content: Buffer) -> Future[tuple[int, bool]]:
        """Hand one of the map's own chunks to the store's pool, counted against max_io_bytes.

        They go while the file's last chunks may still be in flight, so they
        wait for room as those do.
        """
        size = memoryview(content).nbytes
        self._budget.take(size)

        def put() -> tuple[int, bool]:
            try:
                return self._store_chunk(name, content)
            finally:
                self._budget.give(size)

        try:
            return self._io.submit(put)
        except BaseException:  # the pool was stopped behind a failure
            self._budget.give(size)
            raise

    def _store_chunk(self, name: str, content: Buffer) -> tuple[int, bool]:
        return self._store.store_chunk(name, content, check=self._check_existing)

    def _seal_first_chunks(self) -> None:
        """Seal chunks 0 and 1 and queue them for the store behind the others."""
        while len(self._held) < min(2, self._count):  # they lead the queue: prepared, not sealed
            self._collect()
        seeds = _SeedList(self._seeds, self._count)
        for index, prepared in sorted(self._held.items()):
            done: Future[_Held | _Stored] = Future()
            sealed: Future[ChunkInfo] = Future()
            self._pending.append((done, 0, sealed))  # two chunks: outside the bytes in flight
            self._seal_and_put(index, prepared, *neighbour_seeds(seeds, index), done, sealed)
        self._held.clear()

    def _tally(self, stored: _Stored) -> None:
        """Count a stored chunk (its record was published when it was sealed)."""
        self._account(stored.written, stored.repaired)
        self._sealed_bytes += stored.record.plain_size
        if self._progress is not None:
            self._progress(self._sealed_bytes, self._total)

    def _account(self, written: int, repaired: bool = False) -> None:
        if written:
            self.stats.chunks_written += 1
            self.stats.bytes_written += written
            self.stats.chunks_repaired += repaired
        else:
            self.stats.chunks_present += 1


class _SeedList(Sequence[bytes]):
    """The published key seeds by index, as the sequence neighbour_seeds() reads.

    Only the seeds of chunks 0, 1 and the last two are still kept at the end.
    """

    def __init__(self, seeds: dict[int, Future[bytes]], count: int) -> None:
        self._seeds, self._count = seeds, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]  # ints only
        return wait_for(self._seeds[index])
