"""Data maps (docs/format.md 3): records, the binary and text forms, and map files."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from ._errors import DataMapError, InvalidArgumentError
from ._files import PARTIAL_SUFFIX, atomic_write, map_temp_prefix

MAGIC = b"SEDM"
VERSION = 1
TEXT_PREFIX = "se1:"
HEADER = struct.Struct("<4sBBHQQI")
RECORD = struct.Struct("<II32s32s")
TRAILER_SIZE = 4
MAX_ROOT_RECORDS = 4
#: Bytes read from a map file before it is judged too large to be a root map
#: (the text form of a root is at most a few hundred bytes).
MAX_MAP_FILE = 1 << 20


@dataclass(frozen=True)
class ChunkInfo:
    """One record of a data map: where a chunk is and how to open it.

    ``name`` is the hex SHA-256 of the stored chunk; ``key_seed`` is secret
    and is left out of ``repr``.
    """

    plain_size: int
    stored_size: int
    key_seed: bytes = field(repr=False)
    name: str


@dataclass(frozen=True)
class DataMap:
    """The secret that opens a file: its chunk records at one level.

    Level 0 lists the file's own chunks; level L > 0 lists the chunks that
    hold the serialized level L-1 map. ``file_size`` is the original file's
    size at every level. Keep a data map like a key: it holds every key seed.
    """

    level: int
    file_size: int
    chunks: tuple[ChunkInfo, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunks", tuple(self.chunks))
        _validate(self)

    @property
    def content_size(self) -> int:
        """Bytes the records hold: the file at level 0, a child map above."""
        return sum(chunk.plain_size for chunk in self.chunks)

    @property
    def is_root(self) -> bool:
        """True when the map is small enough to be a root (at most 4 records)."""
        return len(self.chunks) <= MAX_ROOT_RECORDS

    def to_bytes(self) -> bytes:
        parts = [HEADER.pack(MAGIC, VERSION, self.level, 0, self.file_size,
                             self.content_size, len(self.chunks))]
        parts.extend(
            RECORD.pack(c.plain_size, c.stored_size, c.key_seed, bytes.fromhex(c.name))
            for c in self.chunks
        )
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()[:TRAILER_SIZE]

    @classmethod
    def from_bytes(cls, data) -> DataMap:
        """Parse and check the binary form; raises DataMapError if anything is off."""
        try:
            data = bytes(data)
        except TypeError:
            raise DataMapError("a data map must be bytes-like") from None
        if len(data) < HEADER.size + TRAILER_SIZE:
            raise DataMapError(f"data map too short: {len(data)} bytes")
        magic, version, level, reserved, file_size, content_size, count = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DataMapError("not a data map: wrong magic")
        if version != VERSION:
            raise DataMapError(f"unsupported data map version {version}")
        expected = HEADER.size + RECORD.size * count + TRAILER_SIZE
        if len(data) != expected:
            raise DataMapError(
                f"data map of {count} records must be {expected} bytes, not {len(data)}"
            )
        if hashlib.sha256(data[:-TRAILER_SIZE]).digest()[:TRAILER_SIZE] != data[-TRAILER_SIZE:]:
            raise DataMapError("data map checksum does not match (damaged or truncated)")
        if reserved != 0:
            raise DataMapError("data map reserved field is not zero")
        chunks = tuple(
            ChunkInfo(plain, stored, seed, name.hex())
            for plain, stored, seed, name in RECORD.iter_unpack(data[HEADER.size:-TRAILER_SIZE])
        )
        data_map = cls(level, file_size, chunks)
        if data_map.content_size != content_size:
            raise DataMapError("data map content_size does not match its records")
        return data_map

    def to_text(self) -> str:
        """The text form: ``se1:`` and unpadded base64url of the binary form."""
        return TEXT_PREFIX + base64.urlsafe_b64encode(self.to_bytes()).rstrip(b"=").decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> DataMap:
        if not isinstance(text, str):
            raise DataMapError("a data map in text form must be a str")
        text = text.strip()
        if not text.startswith(TEXT_PREFIX):
            raise DataMapError(f"a data map in text form starts with {TEXT_PREFIX!r}")
        encoded = text[len(TEXT_PREFIX):]
        if "=" in encoded or len(encoded) % 4 == 1:
            raise DataMapError("data map text is not unpadded base64url")
        try:
            raw = base64.b64decode(
                encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
            )
        except (binascii.Error, ValueError):
            raise DataMapError("data map text is not valid base64url") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
            raise DataMapError("data map text is not in canonical base64url")
        return cls.from_bytes(raw)

    def __str__(self) -> str:
        return (f"DataMap(level={self.level}, file_size={self.file_size}, "
                f"records={len(self.chunks)})")

    # -- map files -------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the text form to a file, atomically and readable by its owner only."""
        with atomic_write(os.fspath(path), prefix=map_temp_prefix(os.fspath(path)), suffix=PARTIAL_SUFFIX, mode=0o600) as out:
            out.write(self.to_text().encode("ascii") + b"\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DataMap:
        """Read a map file in either form, as :meth:`save` (or ``to_bytes``) wrote it."""
        with open(path, "rb") as handle:
            return cls.from_file(handle)

    @classmethod
    def from_file(cls, handle: BinaryIO) -> DataMap:
        """Read a data map in either form from an open binary file, to its end."""
        raw = handle.read(MAX_MAP_FILE + 1)
        if len(raw) > MAX_MAP_FILE:
            raise DataMapError(f"more than {MAX_MAP_FILE} bytes: too large to be a data map")
        if raw.startswith(MAGIC):
            return cls.from_bytes(raw)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise DataMapError("not a data map: neither the binary nor the text form") from None
        return cls.from_text(text)


def _validate(data_map: DataMap) -> None:
    """The rules of docs/format.md 3.3 that do not depend on the serialized bytes."""
    level, file_size = data_map.level, data_map.file_size
    if not isinstance(level, int) or not 0 <= level <= 255:
        raise DataMapError(f"data map level must be 0..255, not {level!r}")
    if not isinstance(file_size, int) or not 0 <= file_size < 1 << 64:
        raise DataMapError(f"data map file_size out of range: {file_size!r}")
    if len(data_map.chunks) >= 1 << 32:
        raise DataMapError("data map has too many records")
    for index, chunk in enumerate(data_map.chunks):
        if not isinstance(chunk, ChunkInfo):
            raise DataMapError(f"record {index} is not a ChunkInfo")
        for label in ("plain_size", "stored_size"):
            value = getattr(chunk, label)
            if not isinstance(value, int) or not 1 <= value < 1 << 32:
                raise DataMapError(f"record {index}: {label} must be 1..2**32-1, not {value!r}")
        if not isinstance(chunk.key_seed, bytes) or len(chunk.key_seed) != 32:
            raise DataMapError(f"record {index}: key_seed must be 32 bytes")
        if not is_chunk_name(chunk.name):
            raise DataMapError(f"record {index}: name must be 64 lowercase hex digits")
    content_size = data_map.content_size
    if level == 0 and content_size != file_size:
        raise DataMapError(
            f"level-0 data map holds {content_size} bytes but file_size is {file_size}"
        )
    if level > 0:
        minimum = HEADER.size + TRAILER_SIZE
        if content_size < minimum or (content_size - minimum) % RECORD.size:
            raise DataMapError(
                f"level-{level} data map holds {content_size} bytes, "
                "which is not the size of a serialized data map"
            )


_HEX = frozenset("0123456789abcdef")


def is_chunk_name(name: object) -> bool:
    """A chunk name is the hex SHA-256 of its content: 64 lowercase hex digits."""
    return isinstance(name, str) and len(name) == 64 and _HEX.issuperset(name)


def check_name(name: object) -> str:
    """The name itself if it is a chunk name; InvalidArgumentError otherwise."""
    if not is_chunk_name(name):
        raise InvalidArgumentError(f"not a chunk name (64 lowercase hex digits): {name!r}")
    return name  # type: ignore[return-value]
