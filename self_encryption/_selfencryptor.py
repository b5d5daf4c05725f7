"""SelfEncryptor: read, write and truncate an encrypted file in place.

The content is the old file (its level-0 map, loaded on first use) with an
overlay: old chunks touched by a write are held opened and patched in
memory, and bytes past the point where the old content stops counting
(after a truncation, or past its end) live in one extension buffer.

A flush re-cuts only from the first chunk a change can affect, until the
new cuts land on an old boundary past the last change (content-defined cuts
resynchronise); it re-seals the new chunks and the neighbours whose pads
depend on a changed key seed, rebuilds the map levels and puts only what the
store lacks. The result is the data map encrypt() gives for the same bytes.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from . import _backend, _engine
from ._engine import DEFAULT_CHUNK_SIZES, DEFAULT_COMPRESSION_LEVEL
from ._errors import InvalidArgumentError, SelfEncryptionError
from ._format import ChunkInfo, DataMap
from ._stores import put_if_absent

_CACHED_CHUNKS = 8


class SelfEncryptor:
    """A file-like view of a self-encrypted file that can be changed in place.

    ``read(position, length)``, ``write(data, position)``, ``truncate(size)``,
    ``size``; ``flush()`` stores the changes and returns the new data map,
    ``close()`` does the same and ends the object. Opening a map fetches
    nothing; reads fetch the chunks they touch; writes keep only the chunks
    they change in memory. All methods take an internal lock, so threads may
    share one object (their calls run one at a time).
    """

    def __init__(
        self,
        store,
        data_map: DataMap | None = None,
        *,
        convergence_secret: bytes | str = b"",
        compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
        chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
    ) -> None:
        self._options = _engine.make_options(convergence_secret, compression_level, chunk_sizes)
        for method in ("get", "put", "has"):
            if not callable(getattr(store, method, None)):
                raise InvalidArgumentError(f"store has no {method}() method")
        if data_map is not None:
            _engine.check_root(data_map)
        else:
            data_map = DataMap(0, 0, ())
        self._store = store
        self._fetch = _engine.fetcher(store)
        self._backend = _backend.active
        self._lock = threading.RLock()
        self._root = data_map
        self._level0: DataMap | None = None if data_map.level else data_map
        self._starts: list[int] = []
        self._size = data_map.file_size
        self._valid = data_map.file_size  # old content counts below this offset only
        self._extension = bytearray()  # the bytes from _valid to _size
        self._patched: dict[int, bytearray] = {}  # old chunks changed by writes
        self._cache: OrderedDict[int, bytes] = OrderedDict()  # old chunks opened for reading
        self._dirty: tuple[int, int] | None = None  # [first, end) of the bytes written
        self._closed = False
        if self._level0 is not None:
            self._index_level0()

    # -- public ------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The current length of the content."""
        return self._size

    @property
    def data_map(self) -> DataMap:
        """The data map of the content as of the last flush (or as opened)."""
        return self._root

    def read(self, position: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``position``; fewer at the end of the content."""
        _check_range(position, length)
        with self._lock:
            self._check_open()
            end = min(position + length, self._size)
            return self._content(position, end) if end > position else b""

    def write(self, data, position: int) -> int:
        """Write bytes at ``position``; a gap past the end is filled with zeros."""
        view = _engine.as_bytes_view(data)
        _check_range(position, len(view))
        with self._lock:
            self._check_open()
            if not len(view):
                return 0
            if position > self._size:
                self._grow(position)
            end = position + len(view)
            self._mark(position, end)
            below = min(end, self._valid)
            if position < below:
                self._patch(position, view[:below - position])
            if end > self._valid:
                start = max(position, self._valid)
                offset = start - self._valid
                self._extension[offset:offset + end - start] = view[start - position:]
            self._size = max(self._size, end)
            return len(view)

    def truncate(self, size: int) -> None:
        """Shrink the content to ``size`` bytes, or extend it with zeros."""
        _check_range(size, 0)
        with self._lock:
            self._check_open()
            if size > self._size:
                self._grow(size)
            elif size < self._size:
                self._mark(size, size)
                if size < self._valid:
                    self._valid = size
                    self._extension.clear()
                    self._map()
                    first_gone = bisect.bisect_left(self._starts, size)
                    for index in [i for i in self._patched if i >= first_gone]:
                        del self._patched[index]
                else:
                    del self._extension[size - self._valid:]
                self._size = size

    def flush(self) -> DataMap:
        """Store what changed and return the data map of the current content."""
        with self._lock:
            self._check_open()
            if self._changed():
                self._reencrypt()
            return self._root

    def close(self) -> DataMap:
        """Flush, then refuse further use; returns the final data map."""
        with self._lock:
            if not self._closed:
                self.flush()
                self._closed = True
            return self._root

    def __enter__(self) -> SelfEncryptor:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self._closed = True

    # -- content -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SelfEncryptionError("this SelfEncryptor is closed")

    def _changed(self) -> bool:
        return self._dirty is not None or self._size != self._root.file_size

    def _mark(self, start: int, end: int) -> None:
        if self._dirty is None:
            self._dirty = (start, end)
        else:
            self._dirty = (min(self._dirty[0], start), max(self._dirty[1], end))

    def _grow(self, size: int) -> None:
        """Extend the content with zeros up to size."""
        self._mark(self._size, size)
        self._extension.extend(bytes(size - self._size))
        self._size = size

    def _map(self) -> DataMap:
        """The old level-0 map, fetched on first need."""
        if self._level0 is None:
            self._level0 = _engine.level_zero(self._backend, self._root, self._fetch)
            self._index_level0()
        return self._level0

    def _index_level0(self) -> None:
        starts, offset = [], 0
        for record in self._level0.chunks:
            starts.append(offset)
            offset += record.plain_size
        self._starts = starts

    def _old_chunk(self, index: int):
        """Plaintext of old chunk index as it stands: patched, cached or fetched."""
        patched = self._patched.get(index)
        if patched is not None:
            return patched
        plain = self._cache.get(index)
        if plain is None:
            plain = bytes(_engine.load_chunk(self._backend, self._level0, self._fetch, index))
            self._cache[index] = plain
            while len(self._cache) > _CACHED_CHUNKS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return plain

    def _content(self, start: int, end: int) -> bytes:
        """The current bytes in [start, end), end <= size."""
        parts = []
        below = min(end, self._valid)
        if start < below:
            self._map()
            index = bisect.bisect_right(self._starts, start) - 1
            position = start
            while position < below:
                chunk_start = self._starts[index]
                plain = self._old_chunk(index)
                take_end = min(below, chunk_start + len(plain))
                parts.append(memoryview(plain)[position - chunk_start:take_end - chunk_start])
                position = take_end
                index += 1
        if end > self._valid:
            first = max(start, self._valid) - self._valid
            parts.append(memoryview(self._extension)[first:end - self._valid])
        return b"".join(parts)

    def _patch(self, position: int, data: memoryview) -> None:
        """Write data over old content at position (all of it below _valid)."""
        self._map()
        index = bisect.bisect_right(self._starts, position) - 1
        done = 0
        while done < len(data):
            chunk_start = self._starts[index]
            patched = self._patched.get(index)
            if patched is None:
                patched = self._patched[index] = bytearray(self._old_chunk(index))
                self._cache.pop(index, None)
            offset = position + done - chunk_start
            take = min(len(patched) - offset, len(data) - done)
            patched[offset:offset + take] = data[done:done + take]
            done += take
            index += 1

    # -- flush ---------------------------------------------------------------------

    def _reencrypt(self) -> None:
        old = self._map()
        options, backend = self._options, self._backend
        starts, count = self._starts, len(old.chunks)
        old_size = old.file_size
        first_dirty = min(self._dirty[0] if self._dirty else self._size, self._valid, self._size)
        last_dirty = self._dirty[1] if self._dirty else 0
        same_size = self._size == old_size and self._valid == old_size

        # Old chunks that end before the first change keep their cuts; the last
        # old chunk was cut by the end of the data, so a new end re-cuts it.
        keep = bisect.bisect_right([s + c.plain_size for s, c in zip(starts, old.chunks)], first_dirty)
        if not same_size:
            keep = min(keep, max(count - 1, 0))
        position = starts[keep] if keep < count else old_size
        entries: list = [("old", index) for index in range(keep)]
        boundaries = {start: index for index, start in enumerate(starts)}
        resume = count
        while position < self._size:
            piece, length = self._next_cut(position)
            entries.append(("new", piece))
            position += length
            if same_size and position >= last_dirty and position in boundaries:
                resume = boundaries[position]
                break
        entries.extend(("old", index) for index in range(resume, count))

        prepared = {i: _engine.prepare(backend, entry[1], options)
                    for i, entry in enumerate(entries) if entry[0] == "new"}
        seeds = [prepared[i][2] if kind == "new" else old.chunks[ref].key_seed
                 for i, (kind, ref) in enumerate(entries)]
        total = len(entries)
        records = []
        for i, (kind, ref) in enumerate(entries):
            prev1, prev2 = seeds[(i - 1) % total], seeds[(i - 2) % total]
            if kind == "new":
                record, content = _engine.seal(backend, len(ref), prepared[i], prev1, prev2)
                put_if_absent(self._store, record.name, content)
            else:
                record = old.chunks[ref]
                if (prev1, prev2) != (old.chunks[(ref - 1) % count].key_seed,
                                      old.chunks[(ref - 2) % count].key_seed):
                    record = self._reseal(ref, prev1, prev2)
            records.append(record)

        level0 = DataMap(0, self._size, tuple(records))
        root, upper = _engine.shrink(backend, level0, options)
        for chunk in upper:
            put_if_absent(self._store, chunk.name, chunk.content)
        self._adopt(root, level0, entries)

    def _next_cut(self, position: int) -> tuple[bytes, int]:
        """The next chunk from position, reading whole old chunks as the search needs them."""
        options = self._options
        table = _engine.gear_table(self._backend, options.convergence_secret)
        limit = min(self._size, position + options.max_size + 1)
        end = self._next_boundary(position + options.min_size)
        while True:
            end = min(max(end, position + 1), limit)
            window = self._content(position, end)
            at_end = end == self._size
            length = self._backend.find_cut(table, window, options.min_size, options.avg_size,
                                            options.max_size, at_end)
            if length:
                return window[:length], length
            end = self._next_boundary(end + 1)

    def _next_boundary(self, offset: int) -> int:
        """The first old chunk boundary (or the extension's end) at or after offset."""
        if offset >= self._valid:
            return self._size
        index = bisect.bisect_left(self._starts, offset)
        return self._starts[index] if index < len(self._starts) else self._valid

    def _reseal(self, index: int, prev1: bytes, prev2: bytes) -> ChunkInfo:
        """An unchanged old chunk under new neighbours: same payload, new pad."""
        old = self._level0
        record = old.chunks[index]
        content = _engine.fetch_chunk(old, self._fetch, index)
        payload = _engine.open_payload(self._backend, old, index, content)
        prepared = (payload[0], memoryview(payload)[1:], record.key_seed)
        new_record, sealed = _engine.seal(self._backend, record.plain_size, prepared, prev1, prev2)
        put_if_absent(self._store, new_record.name, sealed)
        return new_record


    def _adopt(self, root: DataMap, level0: DataMap, entries: list) -> None:
        """Make the flushed content the new base, keeping opened chunks cached."""
        opened = {}
        for index, (kind, ref) in enumerate(entries):
            if kind == "new":
                opened[index] = bytes(ref)
            elif ref in self._cache:
                opened[index] = self._cache[ref]
        self._root, self._level0 = root, level0
        self._index_level0()
        self._valid = self._size
        self._extension = bytearray()
        self._patched.clear()
        self._dirty = None
        self._cache = OrderedDict(list(opened.items())[-_CACHED_CHUNKS:])


def _check_range(position: int, length: int) -> None:
    for label, value in (("position", position), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(f"{label} must be a non-negative integer, not {value!r}")
