"""The upstream chunk records: upstream's constants, its chunk-size rules, and records kept compact.

Upstream cuts a file of ``total`` bytes into a number of chunks and sizes
that follow from ``total`` alone; the checks here hold a record to those
rules, and :class:`ChunkRecords` keeps a map's records in 64 bytes each.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import overload

from .._errors import DataMapError, InvalidArgumentError

#: The upstream release whose format this module reads.
UPSTREAM_VERSION = "0.35.0"
#: Upstream's largest chunk (before compression) in its default build.
MAX_CHUNK_SIZE = 4_190_208
#: Upstream's smallest chunk, and so the smallest file it encrypts is 3 bytes.
MIN_CHUNK_SIZE = 1
MIN_ENCRYPTABLE_BYTES = 3 * MIN_CHUNK_SIZE
#: The largest serialised inner data map this reader will decrypt and parse
#: (about 3.3 million chunks, a file of some 13 TiB at the default chunk size).
MAX_MAP_BYTES = 1 << 28
#: The deepest chain of shrunk data maps accepted (upstream stops at 100 too).
MAX_CHILD_LEVEL = 100
#: The largest max_chunk_size a caller may declare for a custom upstream build.
LARGEST_CHUNK_SIZE_ACCEPTED = 1 << 28


HASH_SIZE = 32
_U64_LIMIT = 1 << 64
_BINCODE_VERSION = 1
#: One serialised entry: index, dst_hash, src_hash, src_size.
BINCODE_ENTRY = struct.Struct("<Q32s32sQ")
BINCODE_MAP_BASE = 10  # version, count and an absent child around the entries
U64 = struct.Struct("<Q")
_HEX_NAME = re.compile(r"[0-9a-fA-F]{64}")
_MAP_KEYS = frozenset({"chunk_identifiers", "child"})
_INFO_KEYS = ("index", "dst_hash", "src_hash", "src_size")


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One chunk of an upstream data map: its position, names and plain size."""

    index: int
    dst_hash: bytes  #: BLAKE3 of the stored (encrypted) chunk: its name
    #: BLAKE3 of the chunk's plaintext. Upstream derives the chunk's keys from it, so it
    #: is as secret as our key seeds and is left out of ``repr``.
    src_hash: bytes = dataclass_field(repr=False)
    src_size: int  #: plaintext bytes in the chunk

    @property
    def name(self) -> str:
        """The chunk's name in a store: its dst_hash as 64 lowercase hex digits."""
        return self.dst_hash.hex()


def chunk_sizes(total: int, max_chunk_size: int = MAX_CHUNK_SIZE) -> list[int] | None:
    """The plaintext chunk sizes upstream cuts ``total`` bytes into, or None below 3 bytes."""
    _check_max_chunk_size(max_chunk_size)
    count = _chunk_count(total, max_chunk_size)
    if count == 0:
        return None
    return [_chunk_size(total, index, count, max_chunk_size) for index in range(count)]


def _chunk_count(total: int, max_chunk: int) -> int:
    if total < 3 * MIN_CHUNK_SIZE:
        return 0
    if total < 3 * max_chunk:
        return 3
    return -(-total // max_chunk)


def _chunk_size(total: int, index: int, count: int, max_chunk: int) -> int:
    # With a minimum chunk of one byte, upstream's rules come down to: thirds
    # below three full chunks (the third takes the remainder), else full
    # chunks with the remainder, if any, last.
    if total < 3 * max_chunk:
        third = total // 3
        return third if index < 2 else total - 2 * third
    if index < count - 1:
        return max_chunk
    return total % max_chunk or max_chunk


def _check_child(child: object) -> int | None:
    if child is not None and (
        isinstance(child, bool) or not isinstance(child, int) or not 1 <= child <= MAX_CHILD_LEVEL
    ):
        raise DataMapError(f"child must be null or an integer from 1 to {MAX_CHILD_LEVEL}, not {child!r}")
    return child


def _check_count(count: int, total: int, max_chunk: int) -> None:
    """That count chunks of total bytes are how upstream cuts them (its chunk-count rule)."""
    if count < 3:
        raise DataMapError(f"a data map lists at least 3 chunks, this one {count}")
    if total >= _U64_LIMIT:
        raise DataMapError("the chunk sizes add up to more than 2**64 - 1 bytes")
    if _chunk_count(total, max_chunk) != count:
        raise DataMapError(
            f"{count} chunks for {total} bytes: upstream (max chunk {max_chunk}) "
            f"cuts that into {_chunk_count(total, max_chunk)}"
        )


def _check_size(position: int, size: int, total: int, count: int, max_chunk: int) -> None:
    expected = _chunk_size(total, position, count, max_chunk)
    if size != expected:
        raise DataMapError(
            f"chunk_identifiers[{position}]: src_size {size} where upstream "
            f"(max chunk {max_chunk}) cuts {total} bytes into a chunk of {expected}"
        )


def _check_max_chunk_size(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (MIN_CHUNK_SIZE <= value <= LARGEST_CHUNK_SIZE_ACCEPTED)
    ):
        raise InvalidArgumentError(
            f"max_chunk_size must be an int from 1 to {LARGEST_CHUNK_SIZE_ACCEPTED}, not {value!r}"
        )
    return value


class ChunkRecords(Sequence[ChunkInfo]):
    """The chunk list of a map read from its binary form, kept compact.

    A serialised map can list millions of chunks; as ChunkInfo objects they
    would cost some 300 bytes each. Kept here are the two hashes (64 bytes a
    chunk) and the total: indices are positions and upstream's rules make
    every size a function of the total and the count (:func:`_chunk_size`),
    so each ChunkInfo is made only when asked for.
    """

    __slots__ = ("_hashes", "_count", "_total", "_max_chunk")

    def __init__(self, hashes: bytes | bytearray, total: int, max_chunk: int) -> None:
        self._hashes = hashes
        self._count = len(hashes) // (2 * HASH_SIZE)
        self._total = total
        self._max_chunk = max_chunk

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> ChunkInfo: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[ChunkInfo, ...]: ...
    def __getitem__(self, index: int | slice) -> ChunkInfo | tuple[ChunkInfo, ...]:
        if isinstance(index, slice):
            return tuple(self._info(i) for i in range(self._count)[index])
        position = range(self._count)[index]  # IndexError, negative indices, as a tuple has them
        return self._info(position)

    def _info(self, index: int) -> ChunkInfo:
        start = index * 2 * HASH_SIZE
        return ChunkInfo(
            index,
            bytes(self._hashes[start : start + HASH_SIZE]),
            bytes(self._hashes[start + HASH_SIZE : start + 2 * HASH_SIZE]),
            _chunk_size(self._total, index, self._count, self._max_chunk),
        )

    def __iter__(self) -> Iterator[ChunkInfo]:
        return (self._info(i) for i in range(self._count))

    def __repr__(self) -> str:
        return f"<upstream.ChunkRecords {self._count} chunks>"

    def bincode(self) -> Iterator[bytes]:
        """The records in upstream's binary form, a batch at a time."""
        for start in range(0, self._count, _RECORDS_PER_BATCH):
            yield b"".join(
                BINCODE_ENTRY.pack(i.index, i.dst_hash, i.src_hash, i.src_size)
                for i in self[start : start + _RECORDS_PER_BATCH]
            )


#: Records packed or checked together: a few MiB of a map at a time.
_RECORDS_PER_BATCH = 1 << 16
_Q_PER_RECORD = BINCODE_ENTRY.size // U64.size  # 10: index, 4 + 4 of hashes, size
