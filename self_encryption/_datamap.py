"""Data maps (docs/format.md 3): records, the binary and text forms, and map files."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from ._errors import DataMapError, InvalidArgumentError
from ._files import PARTIAL_SUFFIX, atomic_write, hidden_prefix

MAGIC = b"SEDM"
VERSION = 1
TEXT_PREFIX = "se1:"
HEADER = struct.Struct("<4sBBHQQI")
RECORD = struct.Struct("<II32s32s")
TRAILER_SIZE = 4
MAX_ROOT_RECORDS = 4
#: Bytes read from a map file before it is judged too large to be a root map:
#: a root's text form is at most 431 characters (docs/format.md 4), so this
#: leaves room for line ends and white space, and nothing more.
MAX_MAP_FILE = 4096


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
        """The binary form (docs/format.md 3): header, records, checksum."""
        parts = [
            HEADER.pack(MAGIC, VERSION, self.level, 0, self.file_size, self.content_size, len(self.chunks))
        ]
        parts.extend(
            RECORD.pack(c.plain_size, c.stored_size, c.key_seed, bytes.fromhex(c.name)) for c in self.chunks
        )
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()[:TRAILER_SIZE]

    @classmethod
    def from_bytes(cls, data: object) -> DataMap:
        """Parse and check the binary form; raises DataMapError if anything is off."""
        if isinstance(data, str):
            raise DataMapError("a data map in binary form must be bytes-like, not str (see from_text)")
        try:
            data = memoryview(data).tobytes()  # type: ignore[arg-type]  # bytes(n) would make n zeros
        except TypeError:
            raise DataMapError(f"a data map must be bytes-like, not {type(data).__name__}") from None
        if len(data) < HEADER.size + TRAILER_SIZE:
            raise DataMapError(f"data map too short: {len(data)} bytes")
        magic, version, level, reserved, file_size, content_size, count = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DataMapError("not a data map: wrong magic")
        if version != VERSION:
            raise DataMapError(f"unsupported data map version {version}")
        expected = HEADER.size + RECORD.size * count + TRAILER_SIZE
        if len(data) != expected:
            raise DataMapError(f"data map of {count} records must be {expected} bytes, not {len(data)}")
        if hashlib.sha256(data[:-TRAILER_SIZE]).digest()[:TRAILER_SIZE] != data[-TRAILER_SIZE:]:
            raise DataMapError("data map checksum does not match (damaged or truncated)")
        if reserved != 0:
            raise DataMapError("data map reserved field is not zero")
        chunks = tuple(
            ChunkInfo(plain, stored, seed, name.hex())
            for plain, stored, seed, name in RECORD.iter_unpack(data[HEADER.size : -TRAILER_SIZE])
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
        """Parse the text form, ``se1:`` and base64url, as :meth:`to_text` writes it; DataMapError if it is not one."""
        if not isinstance(text, str):
            raise DataMapError("a data map in text form must be a str")
        text = text.strip(_ASCII_SPACE)  # no other white space: it is not base64url either
        if not text.startswith(TEXT_PREFIX):
            raise DataMapError(f"a data map in text form starts with {TEXT_PREFIX!r}")
        encoded = text[len(TEXT_PREFIX) :]
        if "=" in encoded or len(encoded) % 4 == 1:
            raise DataMapError("data map text is not unpadded base64url")
        try:
            raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise DataMapError("data map text is not valid base64url") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
            raise DataMapError("data map text is not in canonical base64url")
        return cls.from_bytes(raw)

    def __str__(self) -> str:
        return f"DataMap(level={self.level}, file_size={self.file_size}, records={len(self.chunks)})"

    # -- JSON form ---------------------------------------------------------------

    def to_json(self, *, indent: int | None = None) -> str:
        """The JSON form (docs/format.md 3.4): format, level, file size, records.

        Like the other forms it holds every key seed: keep it secret.
        """
        return json.dumps(
            {
                "format": JSON_FORMAT,
                "level": self.level,
                "file_size": self.file_size,
                "chunks": [
                    {
                        "plain_size": c.plain_size,
                        "stored_size": c.stored_size,
                        "key_seed": c.key_seed.hex(),
                        "name": c.name,
                    }
                    for c in self.chunks
                ],
            },
            indent=indent,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> DataMap:
        """Parse and check the JSON form, as strictly as the binary one.

        Exactly the documented keys, integers that are not booleans, key seeds
        and names as 64 lowercase hex digits; anything else is a DataMapError.
        """
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise DataMapError("a data map in JSON form must be UTF-8 text") from None
        if not isinstance(text, str):
            raise DataMapError("a data map in JSON form must be a str")
        try:
            value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise DataMapError(f"data map JSON does not parse: {_short_reason(exc)}") from None
        top = _json_object(value, "the data map", {"format", "level", "file_size", "chunks"})
        if top["format"] != JSON_FORMAT:
            raise DataMapError(f"data map JSON format must be {JSON_FORMAT!r}")
        records = top["chunks"]
        if not isinstance(records, list):
            raise DataMapError("data map JSON chunks must be a list")
        chunks = []
        for index, record in enumerate(records):
            fields = _json_object(
                record, f"record {index}", {"plain_size", "stored_size", "key_seed", "name"}
            )
            seed = fields["key_seed"]
            if not is_chunk_name(seed):  # the same shape: 64 lowercase hex digits
                raise DataMapError(f"record {index}: key_seed must be 64 lowercase hex digits")
            chunks.append(
                ChunkInfo(
                    _json_int(fields["plain_size"], f"record {index} plain_size"),
                    _json_int(fields["stored_size"], f"record {index} stored_size"),
                    bytes.fromhex(str(seed)),
                    str(fields["name"]),
                )
            )
        return cls(_json_int(top["level"], "level"), _json_int(top["file_size"], "file_size"), tuple(chunks))

    # -- map files -------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the text form to a file, atomically and readable by its owner only."""
        # The temporary is hidden beside the target (.NAME.XXXXXXXX.partial); the map-file
        # module builds on this one, so this one does not ask it for the map's own naming.
        target = os.fspath(path)
        with atomic_write(target, prefix=hidden_prefix(target), suffix=PARTIAL_SUFFIX, mode=0o600) as out:
            out.write(self.to_text().encode("ascii") + b"\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DataMap:
        """Read a map file in either form, as :meth:`save` (or ``to_bytes``) wrote it."""
        with open(path, "rb") as handle:
            return cls.from_file(handle)

    @classmethod
    def from_file(cls, handle: BinaryIO) -> DataMap:
        """Read a root data map in either form from an open binary file, to its end.

        At most MAX_MAP_FILE bytes are read: a longer file is refused, not loaded.
        """
        raw = handle.read(MAX_MAP_FILE + 1)
        if len(raw) > MAX_MAP_FILE:
            raise DataMapError(f"more than {MAX_MAP_FILE} bytes: too large to be a root data map")
        if raw.startswith(MAGIC):
            return cls.from_bytes(raw)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise DataMapError("not a data map: neither the binary, the text nor the JSON form") from None
        if text.lstrip(_ASCII_SPACE).startswith("{"):
            return cls.from_json(text)
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
        raise DataMapError(f"level-0 data map holds {content_size} bytes but file_size is {file_size}")
    if level > 0:
        # The map below was shrunk because it had more than a root's records.
        minimum = HEADER.size + TRAILER_SIZE + RECORD.size * (MAX_ROOT_RECORDS + 1)
        if content_size < minimum or (content_size - HEADER.size - TRAILER_SIZE) % RECORD.size:
            raise DataMapError(
                f"level-{level} data map holds {content_size} bytes, "
                "which is not the size of a serialized data map of more than "
                f"{MAX_ROOT_RECORDS} records"
            )
        if content_size > max_content_size(level, file_size):
            raise DataMapError(
                f"level-{level} data map holds {content_size} bytes, more than the map of a "
                f"{file_size}-byte file can need"
            )


_HEX = frozenset("0123456789abcdef")
_ASCII_SPACE = " \t\r\n"
#: The "format" member of the JSON form.
JSON_FORMAT = "self-encryption/1"


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice")
    return dict(pairs)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _short_reason(exc: BaseException) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:100]


def _json_object(value: object, what: str, keys: set[str]) -> dict[str, object]:
    if not isinstance(value, dict):
        raise DataMapError(f"{what} must be a JSON object")
    if set(value) != keys:
        unknown, missing = sorted(set(value) - keys), sorted(keys - set(value))
        raise DataMapError(
            f"{what} must have exactly the keys {sorted(keys)}"
            + (f"; unknown: {unknown}" if unknown else "")
            + (f"; missing: {missing}" if missing else "")
        )
    return value


def _json_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataMapError(f"data map JSON {what} must be an integer")
    return value


def max_content_size(level: int, file_size: int) -> int:
    """The most bytes the records of a level-``level`` map of a file can hold.

    docs/format.md 3.3: the level below has at most one record per byte of
    its own content, so S(0) = file_size and S(k) = 32 + 72 * S(k-1).
    """
    bound = file_size
    for _ in range(level):
        bound = HEADER.size + TRAILER_SIZE + RECORD.size * bound
        if bound >= 1 << 64:  # past what content_size can say: no bound left to check
            break
    return bound


def is_chunk_name(name: object) -> bool:
    """A chunk name is the hex SHA-256 of its content: 64 lowercase hex digits."""
    return isinstance(name, str) and len(name) == 64 and _HEX.issuperset(name)


def check_name(name: object) -> str:
    """The name itself if it is a chunk name; InvalidArgumentError otherwise."""
    if not is_chunk_name(name):
        raise InvalidArgumentError(f"not a chunk name (64 lowercase hex digits): {name!r}")
    return name  # type: ignore[return-value]
