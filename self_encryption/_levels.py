"""The levels of a data map in a store: fetching chunks, walking down, indexing level 0.

A root above level 0 names chunks that hold the serialized map one level
down (docs/format.md 4). :func:`walk_levels` is the one walk from a root to
the file's own chunks; decryption, readers, the editor, verify, gc and
``info`` all use it. :class:`Level0View` is the one offset index over the
file's chunks, with the small cache of opened chunks that the reader and
the editor share.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ._buffers import Scratch, ScratchPool
from ._datamap import DataMap
from ._errors import ChunkError, ChunkNotFoundError, DataMapError, InvalidArgumentError
from ._sealing import unseal_chunk
from ._workers import Executor, ordered_map, result
from .stores.access import BATCH, StoreAccess, windows

#: A chunk opened: its plaintext, and the scratch it lives in (None: its own memory).
Opened = tuple["memoryview | bytes", "Scratch | None"]

if TYPE_CHECKING:
    from ._backend import Backend


def check_root(root: object) -> DataMap:
    """The root itself, if it is a DataMap."""
    if not isinstance(root, DataMap):
        raise InvalidArgumentError(f"data_map must be a DataMap, not {type(root).__name__}")
    return root


def fetch_chunk(data_map: DataMap, store: StoreAccess, index: int) -> object:
    """The stored content of record index of data_map, as the store returns it, to be opened.

    Every caller opens it (load_chunk, reseal), which checks it against its
    name: the store is spared a check of its own.
    """
    record = data_map.chunks[index]
    try:
        return store.get(record.name, record.stored_size, checked_by_caller=True)
    except ChunkError as exc:
        raise exc.located(index=index, level=data_map.level, name=record.name) from None


def fetch_chunks(data_map: DataMap, store: StoreAccess, indices: Sequence[int]) -> dict[int, object]:
    """The stored content of several records, in one get_many() call where the store has it."""
    if not store.batched or len(indices) == 1:
        return {index: fetch_chunk(data_map, store, index) for index in indices}
    # What the map says each chunk is stored as: a store that can reads no more than that (plus one).
    sizes = {data_map.chunks[index].name: data_map.chunks[index].stored_size for index in indices}
    try:
        found = store.get_window(list(sizes), sizes)
    except ChunkError as exc:  # the store named a chunk of the window: place it in the map
        index = next((i for i in indices if data_map.chunks[i].name == exc.name), None)
        if index is None:
            raise
        raise exc.located(index=index, level=data_map.level, name=data_map.chunks[index].name) from None
    result = {}
    for index in indices:
        record = data_map.chunks[index]
        content = found.get(record.name)
        if content is None:
            raise ChunkNotFoundError(
                "chunk not found in the store", name=record.name, index=index, level=data_map.level
            )
        result[index] = content
    return result


def load_chunk(
    backend: Backend,
    data_map: DataMap,
    store: StoreAccess,
    index: int,
    scratch: Scratch | None = None,
    content: object = None,
) -> memoryview | bytes:
    """Fetch (unless content is given), check and open record index of data_map."""
    if content is None:
        content = fetch_chunk(data_map, store, index)
    return unseal_chunk(backend, data_map, index, content, scratch)


def iter_level(
    backend: Backend,
    data_map: DataMap,
    store: StoreAccess,
    executor: Executor | None = None,
    window: int = 1,
    pool: ScratchPool | None = None,
    io: Executor | None = None,
    requests: int = 1,
) -> Iterator[Opened]:
    """(plaintext, scratch) for each record of one data map, in order.

    With an executor, up to ``window`` chunks are opened at once. With an
    ``io`` pool, chunks are fetched on it, ``requests`` store calls at once
    (and no more than the store's max_io_bytes, by the sizes the map
    gives, which bound what is read), ahead of the ones being opened.
    With a pool, each plaintext lives in a scratch taken from it, to be given
    back once the plaintext has been used; otherwise scratch is None. When
    the store can get several chunks at once, they are fetched in windows
    of at least BATCH.
    """

    def load(index: int, content: object = None) -> Opened:
        scratch = None if pool is None else pool.acquire()
        return load_chunk(backend, data_map, store, index, scratch, content), scratch

    count = len(data_map.chunks)
    if io is not None and count > 1:
        return _iter_fetched(data_map, store, executor, window, io, requests, load)
    if store.batched and count > 1:
        return _iter_batched(data_map, store, executor, max(window, BATCH), load)
    indices = range(count)
    if executor is None:
        return map(load, indices)
    return ordered_map(executor, load, indices, window)


def _iter_batched(
    data_map: DataMap, store: StoreAccess, executor: Executor | None, size: int, load: Callable[..., Opened]
) -> Iterator[Opened]:
    """iter_level over a store with get_many: a window fetched while the one before is opened."""
    runs = list(windows(len(data_map.chunks), size))
    if executor is None:
        for run in runs:
            contents = fetch_chunks(data_map, store, run)
            for index in run:
                yield load(index, contents.pop(index))
        return
    ahead: Future[dict[int, object]] | None = None
    try:
        for number, run in enumerate(runs):
            current = result(ahead) if ahead is not None else fetch_chunks(data_map, store, run)
            ahead = (
                executor.submit(fetch_chunks, data_map, store, runs[number + 1])
                if number + 1 < len(runs)
                else None
            )
            opened = [executor.submit(load, index, current.pop(index)) for index in run]
            for future in opened:
                yield result(future)
    finally:
        if ahead is not None:
            ahead.cancel()


def _iter_fetched(
    data_map: DataMap,
    store: StoreAccess,
    executor: Executor | None,
    window: int,
    io: Executor,
    requests: int,
    load: Callable[..., Opened],
) -> Iterator[Opened]:
    """iter_level with fetching on the io pool, ahead and in order, and opening on the executor."""
    fetched = fetch_ahead(data_map, store, io, requests)
    try:
        if executor is None:
            for index, content in fetched:
                yield load(index, content)
        else:
            yield from ordered_map(executor, lambda item: load(*item), fetched, window)
    finally:
        fetched.close()


def fetch_ahead(
    data_map: DataMap, store: StoreAccess, io: Executor, requests: int
) -> Generator[tuple[int, object], None, None]:
    """(index, stored content) of every record, in order, fetched ahead on io.

    Up to ``requests`` store calls are in flight (one a chunk, or one a
    window of BATCH for a store whose get_many saves requests), and no more than the
    store's max_io_bytes by the stored sizes the map gives (a chunk is
    never read past its size + 1, so that bounds memory whatever the map
    claims); one call is always allowed.
    """
    count = len(data_map.chunks)
    size = BATCH if store.windows_save_requests else 1
    cap = store.max_io_bytes
    pending: deque[tuple[range, Future[dict[int, object]], int]] = deque()
    held = 0
    try:
        for run in (range(i, min(count, i + size)) for i in range(0, count, size)):
            cost = sum(data_map.chunks[i].stored_size + 1 for i in run)
            while pending and (len(pending) >= requests or held + cost > cap):
                done, future, claimed = pending.popleft()
                held -= claimed
                contents = result(future)
                for index in done:
                    yield index, contents.pop(index)
            pending.append((run, io.submit(fetch_chunks, data_map, store, run), cost))
            held += cost
        while pending:
            done, future, _ = pending.popleft()
            contents = result(future)
            for index in done:
                yield index, contents.pop(index)
    finally:
        for _, future, _ in pending:
            future.cancel()


def child_map(parent: DataMap, serialized: bytes) -> DataMap:
    """Parse the level below parent and check that it belongs to it."""
    try:
        child = DataMap.from_bytes(serialized)
    except DataMapError as exc:
        raise DataMapError(f"the level-{parent.level - 1} data map is malformed: {exc}") from None
    if child.level != parent.level - 1:
        raise DataMapError(f"a level-{parent.level} data map holds a level-{child.level} map")
    if child.file_size != parent.file_size:
        raise DataMapError(
            f"level-{child.level} data map file_size {child.file_size} differs "
            f"from its parent's {parent.file_size}"
        )
    return child


def walk_levels(backend: Backend, root: DataMap, store: StoreAccess) -> Iterator[DataMap]:
    """Every level of a data map, root first and level 0 last, each fetched when reached."""
    data_map = root
    yield data_map
    while data_map.level > 0:
        content = b"".join(plain for plain, _ in iter_level(backend, data_map, store))
        data_map = child_map(data_map, content)
        yield data_map


def level_zero(backend: Backend, root: DataMap, store: StoreAccess) -> DataMap:
    """The level-0 map of a root: the records of the file's own chunks."""
    *_, level0 = walk_levels(backend, root, store)  # the walk ends at level 0
    return level0


class Level0Cache:
    """Level-0 maps already walked, by root: opening one map again fetches no map level.

    The key is the store and the SHA-256 of the root's binary form (the
    root itself is not kept): a level-0 map is reused only for the store it
    was read from, so that opening a map in another store reads (and
    checks) that store's map chunks, and every path gives one verdict on
    the same store. An entry holds its store, so that the store's identity
    cannot be taken by another object while it is cached. Bounded by
    entries and by records held, least recently used first out; a level-0
    map larger than the records bound is never held. Thread-safe.
    """

    def __init__(self, entries: int = 64, records: int = 1 << 18) -> None:
        self._entries = entries
        self._records = records
        self._held: OrderedDict[tuple[int, bytes], tuple[object, DataMap]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def level_zero(self, backend: Backend, root: DataMap, store: StoreAccess) -> DataMap:
        """As :func:`level_zero`, from the cache when this root was walked before."""
        if root.level == 0:
            return root
        key = (id(store.store), hashlib.sha256(root.to_bytes()).digest())
        with self._lock:
            held = self._held.get(key)
            if held is not None and held[0] is store.store:
                self._held.move_to_end(key)
                return held[1]
        level0 = level_zero(backend, root, store)  # outside the lock: a walk fetches
        size = len(level0.chunks)
        if size <= self._records:
            with self._lock:
                if key not in self._held:
                    self._held[key] = (store.store, level0)
                    self._count += size
                while len(self._held) > self._entries or self._count > self._records:
                    _, (_, old) = self._held.popitem(last=False)
                    self._count -= len(old.chunks)
        return level0


#: The level-0 maps that readers (se.open, cat) share.
READERS_LEVEL0 = Level0Cache()


class Level0View:
    """The file's chunks by offset: where each starts, which holds an offset,
    and the last few opened, most recently used last."""

    def __init__(self, level0: DataMap, cached_chunks: int = 8) -> None:
        self.map = level0
        starts, offset = [], 0
        for record in level0.chunks:
            starts.append(offset)
            offset += record.plain_size
        self.starts = starts
        self._opened: OrderedDict[int, object] = OrderedDict()
        self._capacity = max(1, cached_chunks)

    def __len__(self) -> int:
        return len(self.starts)

    def locate(self, offset: int) -> int:
        """The index of the chunk that holds offset (offset < file size)."""
        return bisect.bisect_right(self.starts, offset) - 1

    def start(self, index: int) -> int:
        return self.starts[index]

    def end(self, index: int) -> int:
        return self.starts[index] + self.map.chunks[index].plain_size

    def first_starting_at(self, offset: int) -> int:
        """The index of the first chunk that starts at or after offset (len(self) if none)."""
        return bisect.bisect_left(self.starts, offset)

    def index_of_start(self, offset: int) -> int | None:
        """The chunk that starts exactly at offset, if one does."""
        index = self.first_starting_at(offset)
        return index if index < len(self.starts) and self.starts[index] == offset else None

    def chunks_ending_by(self, offset: int) -> int:
        """How many chunks end at or before offset (they lie wholly below it)."""
        total = self.end(len(self) - 1) if len(self) else 0
        return len(self) if offset >= total else self.locate(offset)

    # -- opened chunks ---------------------------------------------------------

    def cached(self, index: int) -> object | None:
        """The opened plaintext of chunk index if it is still held (marks it recent)."""
        plain = self._opened.get(index)
        if plain is not None:
            self._opened.move_to_end(index)
        return plain

    def holds(self, index: int) -> bool:
        """Whether chunk index is held opened (without marking it recent)."""
        return index in self._opened

    def remember(self, index: int, plain: object) -> None:
        """Hold an opened chunk, forgetting the least recently used past capacity."""
        self._opened[index] = plain
        self._opened.move_to_end(index)
        while len(self._opened) > self._capacity:
            self._opened.popitem(last=False)

    def forget(self, index: int) -> None:
        self._opened.pop(index, None)

    def opened(self) -> dict[int, object]:
        """The opened chunks held, least recently used first."""
        return dict(self._opened)

    def clear(self) -> None:
        self._opened.clear()
