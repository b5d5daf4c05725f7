"""The upstream data map: its JSON and binary forms, and every check that needs no chunk.

``docs/upstream-format.md`` describes the format; this is an independent
implementation written from that description.
"""

from __future__ import annotations

import array
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from .._errors import DataMapError, InvalidArgumentError
from ._records import (
    _BINCODE_VERSION,
    _HEX_NAME,
    _INFO_KEYS,
    _MAP_KEYS,
    _Q_PER_RECORD,
    _RECORDS_PER_BATCH,
    _U64_LIMIT,
    BINCODE_ENTRY,
    BINCODE_MAP_BASE,
    HASH_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    U64,
    ChunkInfo,
    ChunkRecords,
    _check_child,
    _check_count,
    _check_max_chunk_size,
    _check_size,
)


def serialised_record_count(size: int, *, with_child: bool) -> int:
    """How many chunks a serialised map of size bytes lists; DataMapError if none can be that size.

    A map is 10 + 80 n bytes, 18 + 80 n with a child: the bytes a map level
    opens to say exactly how many records the map inside holds, before any
    of them is fetched.
    """
    base = BINCODE_MAP_BASE + (U64.size if with_child else 0)
    if size < base or (size - base) % BINCODE_ENTRY.size:
        raise DataMapError(
            f"{size} bytes cannot be a serialised data map "
            f"({'18' if with_child else '10'} + 80 n bytes for a map "
            f"{'with' if with_child else 'without'} a child level)"
        )
    return (size - base) // BINCODE_ENTRY.size


class MapParser:
    """A serialised (bincode, version 1) map, parsed as its bytes arrive.

    Each piece fed is checked and reduced to its records' hashes at once,
    so reading a map never holds it twice (its bytes and its parsed form),
    and memory grows only with bytes actually received. ``size`` is the
    exact length of the serialised map.
    """

    def __init__(self, size: int, max_chunk_size: int) -> None:
        self._size = size
        self._max_chunk = _check_max_chunk_size(max_chunk_size)
        self._head = bytearray()
        self._count: int | None = None
        self._done = 0
        self._carry = bytearray()
        self._hashes = bytearray()
        self._total = 0
        self._kept: list[tuple[int, int]] = []  # (position, src_size) not yet checked
        self._tail = bytearray()

    def feed(self, piece: object) -> None:
        view = memoryview(piece).cast("B")  # type: ignore[arg-type]  # bytes-like pieces only
        while len(view):
            if self._count is None:
                take = 1 + U64.size - len(self._head)
                self._head += view[:take]
                view = view[take:]
                if len(self._head) == 1 + U64.size:
                    self._start()
            elif self._done < self._count:
                if self._carry or len(view) < BINCODE_ENTRY.size:
                    take = BINCODE_ENTRY.size - len(self._carry)
                    self._carry += view[:take]
                    view = view[take:]
                    if len(self._carry) == BINCODE_ENTRY.size:
                        self._records(self._carry)
                        self._carry = bytearray()
                    continue
                whole = min(len(view) // BINCODE_ENTRY.size, self._count - self._done, _RECORDS_PER_BATCH)
                self._records(view[: whole * BINCODE_ENTRY.size])
                view = view[whole * BINCODE_ENTRY.size :]
            else:
                if len(self._tail) + len(view) > 1 + U64.size:
                    raise DataMapError("bytes follow the serialised data map")
                self._tail += view
                break

    def _start(self) -> None:
        if self._head[0] != _BINCODE_VERSION:
            raise DataMapError(f"serialised data map version {self._head[0]}, only 1 is known")
        (count,) = U64.unpack_from(self._head, 1)
        # The count is checked against the length before anything is built from it.
        available = max(0, (self._size - BINCODE_MAP_BASE) // BINCODE_ENTRY.size)
        if count > available:
            raise DataMapError(f"the serialised data map claims {count} chunks but holds at most {available}")
        self._count = count

    def _records(self, batch: memoryview | bytearray) -> None:
        """Check a run of whole records and keep their hashes."""
        assert self._count is not None
        values = array.array("Q", bytes(batch))
        indices, sizes = values[0::_Q_PER_RECORD], values[_Q_PER_RECORD - 1 :: _Q_PER_RECORD]
        if sys.byteorder == "big":  # the format is little-endian
            indices.byteswap()
            sizes.byteswap()
        start = self._done
        if indices != array.array("Q", range(start, start + len(indices))):
            position = next(start + i for i, index in enumerate(indices) if index != start + i)
            raise DataMapError(
                f"chunk_identifiers[{position}]: index {indices[position - start]} where {position} "
                "was expected (chunks are listed in order from 0)"
            )
        if min(sizes) < MIN_CHUNK_SIZE:
            position = start + sizes.index(0)
            raise DataMapError(f"chunk_identifiers[{position}]: src_size must be an integer from 1, not 0")
        # Upstream's rules (_chunk_size) make every chunk of a map of more than three
        # a full one, but the last; the others (the last, or all of three) are kept
        # and checked against the total once it is known (finish).
        full = len(sizes) if start + len(sizes) < self._count else len(sizes) - 1
        if self._count <= 3:
            full = 0
        if full and sizes[:full] != array.array("Q", [self._max_chunk]) * full:
            offset = next(i for i in range(full) if sizes[i] != self._max_chunk)
            raise DataMapError(
                f"chunk_identifiers[{start + offset}]: src_size {sizes[offset]} where upstream "
                f"(max chunk {self._max_chunk}) cuts a map of {self._count} chunks into full "
                "chunks but the last"
            )
        self._kept += [(start + offset, sizes[offset]) for offset in range(full, len(sizes))]
        self._total += sum(sizes)
        del values[0::_Q_PER_RECORD]  # now 9 a record: the hashes, then the size
        del values[_Q_PER_RECORD - 2 :: _Q_PER_RECORD - 1]
        self._hashes += values
        self._done += len(indices)

    def finish(self) -> DataMap:
        """The map, once every byte was fed; DataMapError if it is incomplete or malformed."""
        if self._count is None or self._done < self._count or not self._tail:
            raise DataMapError("the serialised data map ends early")
        tag = self._tail[0]
        if tag == 0:
            child = None
            expected_tail = 1
        elif tag == 1:
            if len(self._tail) < 1 + U64.size:
                raise DataMapError("the serialised data map ends inside its child level")
            (child,) = U64.unpack_from(self._tail, 1)
            expected_tail = 1 + U64.size
        else:
            raise DataMapError(f"the serialised data map's child tag is {tag}, not 0 or 1")
        if len(self._tail) != expected_tail:
            raise DataMapError(f"{len(self._tail) - expected_tail} bytes follow the serialised data map")
        count, total, max_chunk = self._count, self._total, self._max_chunk
        _check_count(count, total, max_chunk)
        for position, size in self._kept:
            _check_size(position, size, total, count, max_chunk)
        return DataMap._of_records(ChunkRecords(self._hashes, total, max_chunk), child)


class DataMap:
    """An upstream data map: the chunks of one level and, if shrunk, its child level.

    ``child`` is None for a map of the file's own chunks. A shrunk map
    (``child`` = k >= 1) lists chunks that hold the serialised map of level
    k - 1; :func:`resolve` follows them down to the file's map. Construction
    checks everything that can be checked without the chunks (indices,
    hashes, that the sizes are exactly how upstream cuts their total), and
    raises DataMapError otherwise. ``max_chunk_size`` is the MAX_CHUNK_SIZE
    of the upstream build that wrote the map (the default for the published
    crate and wheels).
    """

    __slots__ = ("_chunks", "_child", "_max_chunk_size", "_size")

    def __init__(
        self,
        chunk_identifiers: Iterable[ChunkInfo],
        child: int | None = None,
        *,
        max_chunk_size: int = MAX_CHUNK_SIZE,
    ) -> None:
        self._max_chunk_size = _check_max_chunk_size(max_chunk_size)
        chunks = tuple(chunk_identifiers)
        for position, info in enumerate(chunks):
            if not isinstance(info, ChunkInfo):
                raise DataMapError(f"chunk_identifiers[{position}] is not a ChunkInfo")
        self._chunks: tuple[ChunkInfo, ...] | ChunkRecords = chunks
        self._child = child
        self._size = self._validate()

    @classmethod
    def _of_records(cls, records: ChunkRecords, child: int | None) -> DataMap:
        """A map over records a MapParser has checked entry by entry."""
        made = cls.__new__(cls)
        made._max_chunk_size = records._max_chunk
        made._chunks = records
        made._child = _check_child(child)
        made._size = records._total
        return made

    def _validate(self) -> int:
        _check_child(self._child)
        chunks = self._chunks
        total = 0
        for position, info in enumerate(chunks):
            where = f"chunk_identifiers[{position}]"
            if _bad_int(info.index) or info.index != position:
                raise DataMapError(
                    f"{where}: index {info.index!r} where {position} was expected "
                    "(chunks are listed in order from 0)"
                )
            for field in ("dst_hash", "src_hash"):
                value = getattr(info, field)
                if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                    raise DataMapError(f"{where}: {field} is not a 32-byte hash")
            if _bad_int(info.src_size) or info.src_size < MIN_CHUNK_SIZE:
                raise DataMapError(f"{where}: src_size must be an integer from 1, not {info.src_size!r}")
            total += info.src_size
        _check_count(len(chunks), total, self._max_chunk_size)
        for position, info in enumerate(chunks):
            _check_size(position, info.src_size, total, len(chunks), self._max_chunk_size)
        return total

    # -- views

    @property
    def chunk_identifiers(self) -> Sequence[ChunkInfo]:
        """The chunks in order: a tuple, or for a map read from its binary form a
        compact sequence that makes each ChunkInfo when asked for."""
        return self._chunks

    @property
    def child(self) -> int | None:
        """None for the file's own chunks; k >= 1 for a map shrunk k times."""
        return self._child

    @property
    def is_child(self) -> bool:
        """Whether this map was shrunk: its chunks hold another map, not the file."""
        return self._child is not None

    @property
    def max_chunk_size(self) -> int:
        """The MAX_CHUNK_SIZE of the upstream build that wrote the map, which its sizes follow."""
        return self._max_chunk_size

    @property
    def size(self) -> int:
        """Bytes this level's chunks open to: the file size when ``child`` is None."""
        return self._size

    @property
    def level(self) -> int:
        """The level of this map's chunks in the key derivation: ``child`` or 0.

        (An inner map without ``child`` can still hold level-1 chunks; see
        :func:`resolve`.)
        """
        return self._child or 0

    def names(self) -> list[str]:
        """This level's chunk names (hex dst_hash), in order."""
        return [info.name for info in self._chunks]

    def __len__(self) -> int:
        return len(self._chunks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataMap):
            return NotImplemented
        return (self._max_chunk_size, len(self)) == (other._max_chunk_size, len(other)) and (
            self.to_bytes() == other.to_bytes()
        )

    def __hash__(self) -> int:
        return hash((self.to_bytes(), self._max_chunk_size))

    def __repr__(self) -> str:
        return f"<upstream.DataMap {len(self._chunks)} chunks, {self._size} bytes, child={self._child}>"

    # -- JSON, as upstream's Python binding reads and writes it

    @classmethod
    def from_json(cls, text: str | bytes, *, max_chunk_size: int = MAX_CHUNK_SIZE) -> DataMap:
        """Parse upstream's JSON data map strictly; anything malformed raises DataMapError.

        Exactly the keys upstream writes are accepted (no others, none twice),
        hashes as 64 hex digits, integers as plain JSON integers.
        """
        if isinstance(text, (bytes, bytearray, memoryview)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataMapError(f"a JSON data map must be UTF-8: {exc}") from None
        if not isinstance(text, str):
            raise DataMapError(f"a JSON data map is text, not {type(text).__name__}")
        try:
            document = json.loads(
                text,
                object_pairs_hook=_unique_keys,
                parse_int=_json_int,
                parse_float=_json_float,
                parse_constant=_json_constant,
            )
        except DataMapError:
            raise
        except Exception as exc:  # json's own errors, RecursionError on deep nesting, ...
            raise DataMapError(f"not a JSON data map: {exc}") from None
        return cls._from_document(document, max_chunk_size)

    @classmethod
    def _from_document(cls, document: object, max_chunk_size: int) -> DataMap:
        if not isinstance(document, dict):
            raise DataMapError("a JSON data map is an object")
        unknown = set(document) - _MAP_KEYS
        if unknown:
            raise DataMapError(f"unknown data map keys: {sorted(unknown)!r}")
        if "chunk_identifiers" not in document:
            raise DataMapError("the data map has no chunk_identifiers")
        entries = document["chunk_identifiers"]
        if not isinstance(entries, list):
            raise DataMapError("chunk_identifiers is not a list")
        child = document.get("child")
        if child is not None and _bad_int(child):
            raise DataMapError(f"child must be null or an integer, not {child!r}")
        infos = []
        for position, entry in enumerate(entries):
            where = f"chunk_identifiers[{position}]"
            if not isinstance(entry, dict):
                raise DataMapError(f"{where} is not an object")
            if set(entry) != set(_INFO_KEYS):
                raise DataMapError(f"{where} has keys {sorted(entry)!r}, not {list(_INFO_KEYS)!r}")
            for field in ("index", "src_size"):
                if _bad_int(entry[field]):
                    raise DataMapError(f"{where}: {field} is not an integer from 0 to 2**64 - 1")
            infos.append(
                ChunkInfo(
                    entry["index"],
                    _hex_hash(entry["dst_hash"], where, "dst_hash"),
                    _hex_hash(entry["src_hash"], where, "src_hash"),
                    entry["src_size"],
                )
            )
        return cls(infos, child, max_chunk_size=max_chunk_size)

    def to_json(self) -> str:
        """The map as upstream writes it (compact, keys in its order, lowercase hex)."""
        document = {
            "chunk_identifiers": [
                {
                    "index": info.index,
                    "dst_hash": info.dst_hash.hex(),
                    "src_hash": info.src_hash.hex(),
                    "src_size": info.src_size,
                }
                for info in self._chunks
            ],
            "child": self._child,
        }
        return json.dumps(document, separators=(",", ":"))

    # -- the binary form that shrunk maps keep inside their chunks

    @classmethod
    def from_bytes(cls, data: object, *, max_chunk_size: int = MAX_CHUNK_SIZE) -> DataMap:
        """Parse upstream's serialised (bincode, version 1) data map; DataMapError if malformed."""
        try:
            view = memoryview(data).cast("B")  # type: ignore[arg-type]  # TypeError below
        except TypeError:
            raise DataMapError(f"a serialised data map is bytes, not {type(data).__name__}") from None
        if len(view) < BINCODE_MAP_BASE:
            raise DataMapError(f"a serialised data map is at least 10 bytes, this one {len(view)}")
        parser = MapParser(len(view), max_chunk_size)
        parser.feed(view)
        return parser.finish()

    def to_bytes(self) -> bytes:
        """The map serialised as upstream keeps it in a shrunk map's chunks."""
        parts = [bytes([_BINCODE_VERSION]), U64.pack(len(self._chunks))]
        if isinstance(self._chunks, ChunkRecords):
            parts += self._chunks.bincode()
        else:
            parts += [BINCODE_ENTRY.pack(i.index, i.dst_hash, i.src_hash, i.src_size) for i in self._chunks]
        parts.append(b"\x00" if self._child is None else b"\x01" + U64.pack(self._child))
        return b"".join(parts)


def _bad_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64_LIMIT


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise DataMapError(f"a key appears twice in one JSON object: {keys!r}")
    return dict(pairs)


def _json_int(digits: str) -> int:
    if len(digits) > 21:  # more than any u64; also spares int() a huge string
        raise DataMapError(f"integer out of range: {digits[:24]}...")
    return int(digits)


def _json_float(text: str) -> NoReturn:
    raise DataMapError(f"not an integer: {text[:40]}")


def _json_constant(text: str) -> NoReturn:
    raise DataMapError(f"not a JSON value: {text}")


def _hex_hash(value: object, where: str, field: str) -> bytes:
    if not isinstance(value, str) or not _HEX_NAME.fullmatch(value):
        raise DataMapError(f"{where}: {field} is not 64 hex digits")
    return bytes.fromhex(value)


def as_data_map(data_map: DataMap | str | bytes) -> DataMap:
    if isinstance(data_map, DataMap):
        return data_map
    if isinstance(data_map, (str, bytes, bytearray, memoryview)):
        return DataMap.from_json(data_map)
    raise InvalidArgumentError(
        f"data_map must be an upstream.DataMap or its JSON text, not {type(data_map).__name__}"
    )
