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

import os
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, NamedTuple

from . import _backend
from ._buffers import as_bytes_view
from ._chunking import Cutter
from ._datamap import ChunkInfo, DataMap
from ._errors import InvalidArgumentError, SelfEncryptionError, StoreError
from ._levels import Level0View, check_root, fetch_chunk, level_zero, load_chunk
from ._mapfile import ReservedMapFile, reserve_map_file
from ._options import DEFAULT_CHUNK_SIZES, DEFAULT_COMPRESSION_LEVEL, make_options
from ._sealing import neighbour_seeds, prepare_chunk, reseal, seal_prepared, shrink_map
from .stores.access import StoreAccess, access
from .stores.protocol import ChunkStore

_CACHED_CHUNKS = 8


class _Old(NamedTuple):
    """A chunk of the new level 0 that is old chunk ``number``, its cut unchanged."""

    number: int


class _New(NamedTuple):
    """A chunk of the new level 0 cut afresh from the current content."""

    piece: bytes


class SelfEncryptor:
    """A file-like view of a self-encrypted file that can be changed in place.

    Use it to edit a stored file without re-encrypting all of it; to only
    read, :class:`ChunkReader` is lighter, and to encrypt new data,
    :class:`Encryptor`. ``read(position, length)``, ``write(data, position)``,
    ``truncate(size)``, ``size``; ``flush()`` stores the changes and returns
    the new data map, ``close()`` does the same and ends the object. Opening
    a map fetches nothing; reads fetch the chunks they touch; writes keep
    only the chunks they change in memory. All methods take an internal
    lock, so threads may share one object (their calls run one at a time).

    The options are those of the data maps it writes: with options other
    than the ones the opened map was made with, the first flush re-cuts the
    content under the new options from the first change on, and the map it
    returns matches neither encryption exactly (the content is right).
    """

    def __init__(
        self,
        store: ChunkStore | StoreAccess,
        data_map: DataMap | None = None,
        *,
        convergence_secret: bytes | str = b"",
        compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
        chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
    ) -> None:
        self._options = make_options(convergence_secret, compression_level, chunk_sizes)
        self._store = access(store, needs=("get", "put", "has"))
        if data_map is not None:
            check_root(data_map)
        else:
            data_map = DataMap(0, 0, ())
        self._backend = _backend.active
        self._lock = threading.RLock()
        self._root = data_map
        self._view: Level0View | None = None if data_map.level else Level0View(data_map, _CACHED_CHUNKS)
        self._size = data_map.file_size
        self._valid = data_map.file_size  # old content counts below this offset only
        self._extension = bytearray()  # the bytes from _valid to _size
        self._patched: dict[int, bytearray] = {}  # old chunks changed by writes
        self._dirty: tuple[int, int] | None = None  # [first, end) of the bytes written
        self._closed = False

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

    def write(self, data: Any, position: int) -> int:
        """Write bytes at ``position``; a gap past the end is filled with zeros."""
        view = as_bytes_view(data)
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
                self._patch(position, view[: below - position])
            if end > self._valid:
                start = max(position, self._valid)
                offset = start - self._valid
                self._extension[offset : offset + end - start] = view[start - position :]
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
                    first_gone = self._level0().first_starting_at(size)
                    for index in [i for i in self._patched if i >= first_gone]:
                        del self._patched[index]
                else:
                    del self._extension[size - self._valid :]
                self._size = size

    def flush(self, save_to: str | os.PathLike[str] | None = None, *, replace: bool = True) -> DataMap:
        """Store what changed and return the data map of the current content.

        While it stores chunks it holds the store's writer lock
        (``store.writing()``), so a garbage collection waits for it. Once it
        returns, the lock is released: until the caller has saved the map
        where a collection looks for kept maps, the new chunks are named by
        no kept map, and a collection run in that window (``gc --grace 0``,
        or any grace once they are that old) deletes them.

        ``save_to`` closes that window: the map is saved to that file (its
        text form, mode 0600, flushed and renamed into place, as
        :func:`reserve_map_file` does) before the lock is released, so a
        collection either ran before the new chunks were stored or sees the
        saved map. The file's place is claimed before any chunk is stored;
        ``replace`` (the default, as an edit usually saves over the map it
        opened) allows an existing map file there to be replaced. A file
        that cannot be written is a StoreError naming it.
        """
        with self._lock:
            self._check_open()
            if save_to is None:
                if self._changed():
                    with self._store.writing():
                        self._reencrypt()
                return self._root
            with _claim(save_to, replace) as reserved, self._store.writing():
                if self._changed():
                    self._reencrypt()
                _save(reserved, self._root)
            return self._root

    def close(self, save_to: str | os.PathLike[str] | None = None, *, replace: bool = True) -> DataMap:
        """Flush (saving the map to ``save_to`` as :meth:`flush` does), then refuse further use."""
        with self._lock:
            if not self._closed:
                self.flush(save_to, replace=replace)
                self._closed = True
            elif save_to is not None:
                raise SelfEncryptionError("this SelfEncryptor is closed: its map can no longer be saved here")
            return self._root

    def __enter__(self) -> SelfEncryptor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
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

    def _level0(self) -> Level0View:
        """The old level-0 map, fetched on first need."""
        if self._view is None:
            level0 = level_zero(self._backend, self._root, self._store)
            self._view = Level0View(level0, _CACHED_CHUNKS)
        return self._view

    def _old_chunk(self, index: int) -> Any:
        """Plaintext of old chunk index as it stands: patched, cached or fetched."""
        patched = self._patched.get(index)
        if patched is not None:
            return patched
        view = self._level0()
        plain = view.cached(index)
        if plain is None:
            plain = bytes(load_chunk(self._backend, view.map, self._store, index))
            view.remember(index, plain)
        return plain

    def _content(self, start: int, end: int) -> bytes:
        """The current bytes in [start, end), end <= size."""
        parts: list[Any] = []
        below = min(end, self._valid)
        if start < below:
            view = self._level0()
            index = view.locate(start)
            position = start
            while position < below:
                chunk_start = view.start(index)
                plain = self._old_chunk(index)
                take_end = min(below, chunk_start + len(plain))
                parts.append(memoryview(plain)[position - chunk_start : take_end - chunk_start])
                position = take_end
                index += 1
        if end > self._valid:
            first = max(start, self._valid) - self._valid
            parts.append(memoryview(self._extension)[first : end - self._valid])
        return b"".join(parts)

    def _patch(self, position: int, data: memoryview) -> None:
        """Write data over old content at position (all of it below _valid)."""
        view = self._level0()
        index = view.locate(position)
        done = 0
        while done < len(data):
            chunk_start = view.start(index)
            patched = self._patched.get(index)
            if patched is None:
                patched = self._patched[index] = bytearray(self._old_chunk(index))
                view.forget(index)
            offset = position + done - chunk_start
            take = min(len(patched) - offset, len(data) - done)
            patched[offset : offset + take] = data[done : done + take]
            done += take
            index += 1

    # -- flush ---------------------------------------------------------------------

    def _reencrypt(self) -> None:
        view = self._level0()
        old = view.map
        options, backend = self._options, self._backend
        count, old_size = len(old.chunks), old.file_size
        first_dirty = min(self._dirty[0] if self._dirty else self._size, self._valid, self._size)
        last_dirty = self._dirty[1] if self._dirty else 0
        same_size = self._size == old_size and self._valid == old_size

        # Old chunks that end before the first change keep their cuts; the last
        # old chunk was cut by the end of the data, so a new end re-cuts it.
        keep = view.chunks_ending_by(first_dirty)
        if not same_size:
            keep = min(keep, max(count - 1, 0))
        position = view.start(keep) if keep < count else old_size
        entries: list[_Old | _New] = [_Old(index) for index in range(keep)]
        resume = count
        for piece in self._recut(position):
            entries.append(_New(bytes(piece)))
            position += len(piece)
            realigned = view.index_of_start(position) if same_size and position >= last_dirty else None
            if realigned is not None:  # the cuts from here on are the old ones
                resume = realigned
                break
        entries.extend(_Old(index) for index in range(resume, count))

        prepared = {
            i: prepare_chunk(backend, entry.piece, options)
            for i, entry in enumerate(entries)
            if isinstance(entry, _New)
        }
        seeds = [
            prepared[i].key_seed if isinstance(entry, _New) else old.chunks[entry.number].key_seed
            for i, entry in enumerate(entries)
        ]
        old_seeds = [record.key_seed for record in old.chunks]
        records: list[ChunkInfo] = []
        for i, entry in enumerate(entries):
            pads = neighbour_seeds(seeds, i)
            if isinstance(entry, _New):
                record, content = seal_prepared(backend, prepared[i], *pads)
                self._store.put_if_absent(record.name, content)
            else:
                record = old.chunks[entry.number]
                if pads != neighbour_seeds(old_seeds, entry.number):
                    record = self._reseal(entry.number, *pads)
            records.append(record)

        level0 = DataMap(0, self._size, tuple(records))
        root, upper = shrink_map(backend, level0, options)
        for chunk in upper:
            self._store.put_if_absent(chunk.name, chunk.content)
        self._adopt(root, level0, entries)

    def _recut(self, position: int) -> Iterator[bytes | memoryview]:
        """The new chunks from position on, reading one old chunk at a time as the cutter needs."""
        cutter = Cutter(self._backend, self._options, eager=True)
        fed = position
        while fed < self._size:
            end = min(self._next_boundary(fed + 1), self._size)
            yield from cutter.feed(self._content(fed, end))
            fed = end
        yield from cutter.finish()

    def _next_boundary(self, offset: int) -> int:
        """The first old chunk boundary (or the extension's end) at or after offset."""
        if offset >= self._valid:
            return self._size
        view = self._level0()
        index = view.first_starting_at(offset)
        return view.start(index) if index < len(view) else self._valid

    def _reseal(self, index: int, prev1: bytes, prev2: bytes) -> ChunkInfo:
        """An unchanged old chunk under new neighbours: same payload, new pad."""
        old = self._level0().map
        content = fetch_chunk(old, self._store, index)
        record, sealed = reseal(self._backend, old, index, content, prev1, prev2)
        self._store.put_if_absent(record.name, sealed)
        return record

    def _adopt(self, root: DataMap, level0: DataMap, entries: list[_Old | _New]) -> None:
        """Make the flushed content the new base, keeping opened chunks cached."""
        held = self._level0().opened()
        view = Level0View(level0, _CACHED_CHUNKS)
        for index, entry in enumerate(entries):
            if isinstance(entry, _New):
                view.remember(index, entry.piece)
            elif entry.number in held:
                view.remember(index, held[entry.number])
        self._root, self._view = root, view
        self._valid = self._size
        self._extension = bytearray()
        self._patched.clear()
        self._dirty = None


def _claim(path: str | os.PathLike[str], replace: bool) -> ReservedMapFile:
    """The map file's place, claimed before any chunk is stored; StoreError if it cannot be."""
    try:
        return reserve_map_file(path, replace=replace)
    except OSError as exc:
        raise StoreError(f"cannot save the data map to {os.fspath(path)!r}: {exc.strerror or exc}") from None


def _save(reserved: ReservedMapFile, root: DataMap) -> None:
    try:
        reserved.save(root)
    except OSError as exc:
        raise StoreError(f"cannot save the data map to {reserved.target!r}: {exc.strerror or exc}") from None


def _check_range(position: int, length: int) -> None:
    for label, value in (("position", position), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(f"{label} must be a non-negative integer, not {value!r}")
