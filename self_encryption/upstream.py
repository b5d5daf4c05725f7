"""Read what the upstream ``self_encryption`` 0.35.0 wrote: a migration path.

The upstream project (the ``self_encryption`` Rust crate and its Python
package ``self-encryption``) stores a file as chunks named by the BLAKE3 hash
of their content and describes them in a JSON data map. This module reads
that format -- it never writes it -- so its users can move their files into
this package. ``docs/upstream-format.md`` describes the format; this is an
independent implementation written from that description.

    from self_encryption import upstream
    data_map = upstream.DataMap.from_json(open("map.json").read())
    upstream.decrypt_file(data_map, "chunks/", "restored.bin")

``chunks`` is a folder holding one file per chunk named by its 64-hex name
(what upstream's ``encrypt_from_file`` writes), a mapping of hex name to
bytes, or any object with ``get(name) -> bytes`` such as our chunk stores.
Every chunk is checked against its name before it is used, and every opened
chunk against its recorded size and source hash. It needs the ``blake3`` and
``brotli`` packages: ``pip install 'self-encryption-cffi[upstream]'``.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import IO, Any, NoReturn, TypedDict

from ._decryptor import write_output
from ._errors import (
    ChunkIntegrityError,
    ChunkNotFoundError,
    DataMapError,
    InvalidArgumentError,
    SelfEncryptionError,
    StoreError,
)


class _Where(TypedDict):
    """Where a chunk sits, as our chunk errors name it."""

    name: str
    index: int
    level: int | None


#: Where upstream chunks are read from: a folder of files named by hex name, a
#: mapping of hex name to bytes, or any object with get(name) (and perhaps get_many).
Chunks = str | os.PathLike[str] | Mapping[str, bytes] | Any

_INSTALL_HINT = (
    "pip install 'self-encryption-cffi[upstream]' (from a source checkout: pip install -e '.[upstream]')"
)

try:
    import blake3 as _blake3
    import brotli as _brotli
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"self_encryption.upstream needs the blake3 and brotli packages ({_missing}); "
        f"install them with: {_INSTALL_HINT}"
    ) from _missing

try:  # brotli 1.2 added the output limit that keeps decompression bounded
    _brotli.Decompressor().process(b"", output_buffer_limit=1)
except TypeError as _old:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"self_encryption.upstream needs brotli >= 1.2 (this one has no output_buffer_limit); "
        f"upgrade with: {_INSTALL_HINT}"
    ) from _old

from Crypto.Cipher import ChaCha20_Poly1305 as _ChaCha20Poly1305  # noqa: E402

__all__ = [
    "MAX_CHUNK_SIZE",
    "MAX_MAP_BYTES",
    "MIN_ENCRYPTABLE_BYTES",
    "UPSTREAM_VERSION",
    "ChunkInfo",
    "DataMap",
    "chunk_sizes",
    "data_maps",
    "decrypt",
    "decrypt_file",
    "iter_decrypt",
    "resolve",
]

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

_KDF_CONTEXT = "self_encryption/chunk/v2"
_PAD_SIZE = 52
_KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_HASH_SIZE = 32
_U64_LIMIT = 1 << 64
_BINCODE_VERSION = 1
_BINCODE_ENTRY = struct.Struct("<Q32s32sQ")
_BINCODE_MAP_BASE = 10  # version, count and an absent child around the entries
_U64 = struct.Struct("<Q")
_HEX_NAME = re.compile(r"[0-9a-fA-F]{64}")
_MAP_KEYS = frozenset({"chunk_identifiers", "child"})
_INFO_KEYS = ("index", "dst_hash", "src_hash", "src_size")
_DECOMPRESS_STEP = 1 << 20


# -- the data map -------------------------------------------------------------------


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
        self._chunks = chunks
        self._child = child
        self._size = self._validate()

    def _validate(self) -> int:
        child = self._child
        if child is not None and (
            isinstance(child, bool) or not isinstance(child, int) or not 1 <= child <= MAX_CHILD_LEVEL
        ):
            raise DataMapError(f"child must be null or an integer from 1 to {MAX_CHILD_LEVEL}, not {child!r}")
        chunks = self._chunks
        if len(chunks) < 3:
            raise DataMapError(f"a data map lists at least 3 chunks, this one {len(chunks)}")
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
                if not isinstance(value, bytes) or len(value) != _HASH_SIZE:
                    raise DataMapError(f"{where}: {field} is not a 32-byte hash")
            if _bad_int(info.src_size) or info.src_size < MIN_CHUNK_SIZE:
                raise DataMapError(f"{where}: src_size must be an integer from 1, not {info.src_size!r}")
            total += info.src_size
        if total >= _U64_LIMIT:
            raise DataMapError("the chunk sizes add up to more than 2**64 - 1 bytes")
        max_chunk = self._max_chunk_size
        if _chunk_count(total, max_chunk) != len(chunks):
            raise DataMapError(
                f"{len(chunks)} chunks for {total} bytes: upstream (max chunk {max_chunk}) "
                f"cuts that into {_chunk_count(total, max_chunk)}"
            )
        for position, info in enumerate(chunks):
            expected = _chunk_size(total, position, len(chunks), max_chunk)
            if info.src_size != expected:
                raise DataMapError(
                    f"chunk_identifiers[{position}]: src_size {info.src_size} where upstream "
                    f"(max chunk {max_chunk}) cuts {total} bytes into a chunk of {expected}"
                )
        return total

    # -- views

    @property
    def chunk_identifiers(self) -> tuple[ChunkInfo, ...]:
        return self._chunks

    @property
    def child(self) -> int | None:
        """None for the file's own chunks; k >= 1 for a map shrunk k times."""
        return self._child

    @property
    def is_child(self) -> bool:
        return self._child is not None

    @property
    def max_chunk_size(self) -> int:
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
        return (self._chunks, self._child, self._max_chunk_size) == (
            other._chunks,
            other._child,
            other._max_chunk_size,
        )

    def __hash__(self) -> int:
        return hash((self._chunks, self._child, self._max_chunk_size))

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
        length = len(view)
        if length < 1 + _U64.size + 1:
            raise DataMapError(f"a serialised data map is at least 10 bytes, this one {length}")
        if view[0] != _BINCODE_VERSION:
            raise DataMapError(f"serialised data map version {view[0]}, only 1 is known")
        (count,) = _U64.unpack_from(view, 1)
        offset = 1 + _U64.size
        # The count is checked against the bytes at hand before anything is built from it.
        available = (length - offset - 1) // _BINCODE_ENTRY.size
        if count > available:
            raise DataMapError(f"the serialised data map claims {count} chunks but holds at most {available}")
        infos = []
        for _ in range(count):
            index, dst, src, size = _BINCODE_ENTRY.unpack_from(view, offset)
            infos.append(ChunkInfo(index, dst, src, size))
            offset += _BINCODE_ENTRY.size
        tag = view[offset]
        offset += 1
        if tag == 0:
            child = None
        elif tag == 1:
            if length - offset < _U64.size:
                raise DataMapError("the serialised data map ends inside its child level")
            (child,) = _U64.unpack_from(view, offset)
            offset += _U64.size
        else:
            raise DataMapError(f"the serialised data map's child tag is {tag}, not 0 or 1")
        if offset != length:
            raise DataMapError(f"{length - offset} bytes follow the serialised data map")
        return cls(infos, child, max_chunk_size=max_chunk_size)

    def to_bytes(self) -> bytes:
        """The map serialised as upstream keeps it in a shrunk map's chunks."""
        parts = [bytes([_BINCODE_VERSION]), _U64.pack(len(self._chunks))]
        parts += [_BINCODE_ENTRY.pack(i.index, i.dst_hash, i.src_hash, i.src_size) for i in self._chunks]
        parts.append(b"\x00" if self._child is None else b"\x01" + _U64.pack(self._child))
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


def _as_data_map(data_map: DataMap | str | bytes) -> DataMap:
    if isinstance(data_map, DataMap):
        return data_map
    if isinstance(data_map, (str, bytes, bytearray, memoryview)):
        return DataMap.from_json(data_map)
    raise InvalidArgumentError(
        f"data_map must be an upstream.DataMap or its JSON text, not {type(data_map).__name__}"
    )


# -- where the chunks come from -------------------------------------------------------


class _Chunks:
    """Fetches raw chunk bytes by name from a folder, a mapping or a store."""

    def __init__(self, chunks: Chunks) -> None:
        self._folder = None
        self._source: Any = chunks
        get_many = getattr(chunks, "get_many", None)
        self.batched = callable(get_many) and not isinstance(chunks, (str, bytes, os.PathLike, Mapping))
        if isinstance(chunks, (str, bytes, os.PathLike)):
            folder = os.fsdecode(chunks)
            if not os.path.isdir(folder):
                raise StoreError(f"no chunk folder at {folder!r}")
            self._folder = folder
        elif not isinstance(chunks, Mapping) and not callable(getattr(chunks, "get", None)):
            raise InvalidArgumentError(
                "chunks must be a folder path, a mapping of hex name to bytes, or an object "
                f"with get(name) -> bytes, not {type(chunks).__name__}"
            )

    def fetch(self, info: ChunkInfo, level: int | None, limit: int) -> bytes:
        name = info.name
        located: _Where = {"name": name, "index": info.index, "level": level}
        if self._folder is not None:
            content = self._read_file(name, limit, located)
        else:
            content = self._ask(name, located)
        return self._checked(info, content, limit, located)

    def fetch_many(self, infos: list[ChunkInfo], level: int | None) -> dict[int, bytes]:
        """Several chunks in one get_many() call of the store, by index."""
        names = list(dict.fromkeys(info.name for info in infos))
        try:
            found = self._source.get_many(names)
        except SelfEncryptionError:
            raise
        except Exception as exc:
            raise StoreError(f"the store failed to get {len(names)} chunks: {exc!r}") from exc
        if not isinstance(found, Mapping):
            raise StoreError(f"the store's get_many returned {type(found).__name__}, not a mapping")
        result = {}
        for info in infos:
            located: _Where = {"name": info.name, "index": info.index, "level": level}
            content = found.get(info.name)
            if content is None:
                raise ChunkNotFoundError("chunk not found in the store", **located)
            if isinstance(content, (bytearray, memoryview)):
                content = bytes(content)
            if not isinstance(content, bytes):
                raise StoreError(
                    f"the store returned {type(content).__name__} for chunk {info.name}, not bytes"
                )
            result[info.index] = self._checked(info, content, _stored_size_limit(info.src_size), located)
        return result

    def _checked(self, info: ChunkInfo, content: bytes, limit: int, located: _Where) -> bytes:
        if len(content) > limit:
            raise ChunkIntegrityError(
                f"chunk is {len(content)} bytes, more than an upstream chunk of "
                f"{info.src_size} plain bytes can be",
                **located,
            )
        return content

    def _read_file(self, name: str, limit: int, located: _Where) -> bytes:
        assert self._folder is not None
        path = os.path.join(self._folder, name)
        try:
            with open(path, "rb") as handle:
                # Never read more than a chunk of this size can be (+1 to notice more).
                return handle.read(limit + 1)
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk not found in {self._folder!r}", **located) from None
        except OSError as exc:
            raise StoreError(f"cannot read chunk {name} from {self._folder!r}: {exc}") from exc

    def _ask(self, name: str, located: _Where) -> bytes:
        try:
            content = self._source.get(name)
        except ChunkNotFoundError as exc:
            raise ChunkNotFoundError(exc.reason, **located) from None
        except ChunkIntegrityError as exc:
            raise ChunkIntegrityError(exc.reason, **located) from None
        except SelfEncryptionError:
            raise
        except KeyError:
            raise ChunkNotFoundError("chunk not found in the store", **located) from None
        except Exception as exc:
            raise StoreError(f"the store failed to get chunk {name}: {exc!r}") from exc
        if content is None:
            raise ChunkNotFoundError("chunk not found in the store", **located)
        if isinstance(content, bytes):
            return content
        if isinstance(content, (bytearray, memoryview)):
            return bytes(content)
        raise StoreError(f"the store returned {type(content).__name__} for chunk {name}, not bytes")


def _stored_size_limit(src_size: int) -> int:
    # Brotli never grows its input by more than a few bytes per 16 KiB (plus a
    # small constant); the cipher adds a 16-byte tag. This is comfortably above both.
    return src_size + (src_size >> 10) + 64 + _TAG_SIZE


# -- opening chunks -----------------------------------------------------------------


def _neighbours(index: int, count: int) -> tuple[int, int]:
    if index == 0:
        return count - 1, count - 2
    if index == 1:
        return 0, count - 1
    return index - 1, index - 2


def _chunk_secrets(data_map: DataMap, index: int, level: int) -> tuple[bytes, bytes, bytes]:
    """(pad, key, nonce) of a chunk: BLAKE3 in key-derivation mode over its context."""
    chunks = data_map.chunk_identifiers
    first, second = _neighbours(index, len(chunks))
    material = b"".join(
        (
            chunks[index].src_hash,
            chunks[first].src_hash,
            chunks[second].src_hash,
            _U64.pack(index),
            _U64.pack(level),
        )
    )
    stream = _blake3.blake3(material, derive_key_context=_KDF_CONTEXT).digest(
        length=_PAD_SIZE + _KEY_SIZE + _NONCE_SIZE
    )
    return (stream[:_PAD_SIZE], stream[_PAD_SIZE : _PAD_SIZE + _KEY_SIZE], stream[_PAD_SIZE + _KEY_SIZE :])


def _xor_pad(data: bytes, pad: bytes) -> bytes:
    size = len(data)
    if size == 0:
        return b""
    stream = (pad * (size // len(pad) + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(size, "little")


def _decompress(data: bytes, expected: int, located: _Where) -> bytes:
    """Brotli-decompress at most ``expected`` bytes; more, less or a broken stream raise."""
    decompressor = _brotli.Decompressor()
    pieces = []
    produced = 0
    try:
        piece = decompressor.process(data, output_buffer_limit=_DECOMPRESS_STEP)
        while True:
            produced += len(piece)
            if produced > expected:
                raise ChunkIntegrityError(
                    f"chunk opens to more than its recorded {expected} bytes", **located
                )
            pieces.append(piece)
            if decompressor.is_finished():
                break
            piece = decompressor.process(b"", output_buffer_limit=_DECOMPRESS_STEP)
            if not piece and decompressor.can_accept_more_data():
                raise ChunkIntegrityError("chunk's compressed stream is truncated", **located)
    except _brotli.error as exc:
        raise ChunkIntegrityError(f"chunk does not decompress: {exc}", **located) from None
    if produced != expected:
        raise ChunkIntegrityError(f"chunk opens to {produced} bytes, not its recorded {expected}", **located)
    return b"".join(pieces)


def _located(info: ChunkInfo, level: int | None) -> _Where:
    return {"name": info.name, "index": info.index, "level": level}


def _check_name(info: ChunkInfo, content: bytes, level: int | None) -> None:
    if _blake3.blake3(content).digest() != info.dst_hash:
        raise ChunkIntegrityError("chunk content does not hash to its name", **_located(info, level))


def _unseal(data_map: DataMap, index: int, content: bytes, level: int) -> bytes | None:
    """Undo the pad and the cipher; None if the tag does not verify under these keys."""
    if len(content) < _TAG_SIZE:
        return None
    pad, key, nonce = _chunk_secrets(data_map, index, level)
    sealed = _xor_pad(content, pad)
    cipher = _ChaCha20Poly1305.new(key=key, nonce=nonce)
    try:
        return cipher.decrypt_and_verify(sealed[:-_TAG_SIZE], sealed[-_TAG_SIZE:])
    except ValueError:
        return None


def _finish(info: ChunkInfo, compressed: bytes, level: int) -> bytes:
    plain = _decompress(compressed, info.src_size, _located(info, level))
    if _blake3.blake3(plain).digest() != info.src_hash:
        raise ChunkIntegrityError(
            "chunk opens to bytes that do not match its src_hash", **_located(info, level)
        )
    return plain


def _open_chunk(data_map: DataMap, index: int, content: bytes, level: int) -> bytes:
    """Verify and open one stored chunk of a map whose chunks are at ``level``."""
    info = data_map.chunk_identifiers[index]
    _check_name(info, content, level)
    compressed = _unseal(data_map, index, content, level)
    if compressed is None:
        raise ChunkIntegrityError(
            "chunk does not decrypt under the keys the data map gives it "
            "(the map's source hashes do not belong to this chunk)",
            **_located(info, level),
        )
    return _finish(info, compressed, level)


def _fetch(data_map: DataMap, index: int, source: _Chunks, level: int) -> bytes:
    info = data_map.chunk_identifiers[index]
    return source.fetch(info, level, _stored_size_limit(info.src_size))


#: Chunks asked of a store's get_many() at once.
_BATCH = 8


def _iter_level(
    data_map: DataMap, source: _Chunks, level: int, first: bytes | None = None
) -> Iterator[bytes]:
    count = len(data_map)
    for start in range(0, count, _BATCH if source.batched else 1):
        run = range(start, min(count, start + (_BATCH if source.batched else 1)))
        wanted = [data_map.chunk_identifiers[i] for i in run if not (i == 0 and first is not None)]
        batch = source.fetch_many(wanted, level) if source.batched and len(wanted) > 1 else None
        for index in run:
            if index == 0 and first is not None:
                yield first
                continue
            content = batch[index] if batch is not None else _fetch(data_map, index, source, level)
            yield _open_chunk(data_map, index, content, level)


def _inner_map(holder: DataMap, source: _Chunks, level: int, rounds: int) -> DataMap:
    """The map serialised in the chunks of ``holder`` (at ``level``)."""
    if holder.size > MAX_MAP_BYTES:
        raise DataMapError(
            f"a level-{level} data map claims {holder.size} bytes of inner map, "
            f"more than this reader accepts ({MAX_MAP_BYTES})"
        )
    serialised = b"".join(_iter_level(holder, source, level))
    try:
        return DataMap.from_bytes(serialised, max_chunk_size=holder.max_chunk_size)
    except DataMapError as exc:
        raise DataMapError(
            f"the map inside the level-{level} chunks (round {rounds}) is malformed: {exc}"
        ) from None


def _walk(root: DataMap, source: _Chunks) -> tuple[list[tuple[int, DataMap]], bytes | None]:
    """Every map from ``root`` down to the file's own, each with the level of its chunks,
    and the file's first chunk's plaintext if that was opened on the way.

    A map with ``child`` = k >= 2 holds the map of level k - 1, as upstream's
    reader expects. Under level 1 upstream 0.35.0 writes what its encryptor
    makes (docs/upstream-format.md, "Shrinking"): a map without ``child``
    that is either the file's map (chunks at level 0) or, when the map
    needed more than one shrink round, another map of level-1 chunks. A
    size that no serialised map can have settles it; otherwise the keys
    that open the first chunk do.
    """
    found = [(root.level, root)]
    current, level = root, root.level
    while level > 0:
        if len(found) > MAX_CHILD_LEVEL:
            raise DataMapError(f"more than {MAX_CHILD_LEVEL} levels of data maps")
        inner = _inner_map(current, source, level, len(found))
        if level >= 2:
            if inner.child != level - 1:
                raise DataMapError(
                    f"the map inside the level-{level} chunks says "
                    f"child={inner.child}, where {level - 1} was expected"
                )
            current, level = inner, level - 1
            found.append((level, current))
            continue
        if inner.child is not None:
            raise DataMapError(
                f"the map inside the level-1 chunks says child={inner.child}, where none was expected"
            )
        if len(inner) <= 3 or (inner.size - _BINCODE_MAP_BASE) % _BINCODE_ENTRY.size:
            # Upstream shrinks only maps of more than three chunks, and a map of
            # level-1 chunks holds a serialised map: 10 + 80 n bytes.
            found.append((0, inner))
            return found, None
        info = inner.chunk_identifiers[0]
        content = source.fetch(info, None, _stored_size_limit(info.src_size))
        _check_name(info, content, None)  # the chunk's level is not known yet
        compressed = _unseal(inner, 0, content, 0)
        if compressed is not None:
            found.append((0, inner))
            return found, _finish(info, compressed, 0)
        if _unseal(inner, 0, content, 1) is None:
            raise ChunkIntegrityError(
                "chunk does not decrypt under the keys the data map gives it, as a chunk of "
                "the file or of a map (the map's source hashes do not belong to this chunk)",
                **_located(info, None),
            )
        current = inner  # another round: level-1 chunks that hold a map
        found.append((1, current))
    return found, None


# -- the public operations ------------------------------------------------------------


def resolve(data_map: DataMap | str | bytes, chunks: Chunks) -> DataMap:
    """The map of the file's own chunks: ``data_map`` itself, or what its levels hold."""
    return data_maps(data_map, chunks)[-1][1]


def data_maps(data_map: DataMap | str | bytes, chunks: Chunks) -> list[tuple[int, DataMap]]:
    """Every map from ``data_map`` down to the file's own, as (level of its chunks, map).

    Their names together are every chunk the file needs. Fetches and opens
    the map levels' chunks (and the file's first chunk when a level-1 map is
    ambiguous), not the file's.
    """
    return _walk(_as_data_map(data_map), _Chunks(chunks))[0]


def iter_decrypt(data_map: DataMap | str | bytes, chunks: Chunks) -> Iterator[bytes]:
    """The file's plaintext, one verified chunk (at most about 4 MiB) at a time, in order.

    Arguments are checked at once; chunks are fetched as the iterator is
    advanced, so an error (ChunkNotFoundError, ChunkIntegrityError naming the
    chunk, StoreError, DataMapError for a bad inner map) surfaces then, after
    the pieces before it were yielded.
    """
    root = _as_data_map(data_map)
    source = _Chunks(chunks)

    def pieces() -> Iterator[bytes]:
        found, first = _walk(root, source)
        yield from _iter_level(found[-1][1], source, 0, first)

    return pieces()


def decrypt(data_map: DataMap | str | bytes, chunks: Chunks) -> bytes:
    """The whole file as bytes (held in memory: use iter_decrypt or decrypt_file for big ones)."""
    return b"".join(iter_decrypt(data_map, chunks))


def decrypt_file(
    data_map: DataMap | str | bytes, chunks: Chunks, destination: str | os.PathLike[str] | IO[bytes]
) -> int:
    """Decrypt into a path or a writable binary file; returns the bytes written.

    The destination is written as :func:`self_encryption.decrypt_file`
    writes one: a path that is absent or a regular file through
    ``.NAME.*.partial`` beside it, renamed over it only when every chunk was
    verified (its mode kept, or 0666 less the umask for a new file); a link
    followed, never replaced; a FIFO, a device or a file object as a stream,
    which may hold a prefix if an error stops the work.
    """

    def fill(write: Callable[[bytes], object]) -> int:
        written = 0
        for piece in iter_decrypt(data_map, chunks):
            write(piece)
            written += len(piece)
        return written

    return write_output(destination, fill)
