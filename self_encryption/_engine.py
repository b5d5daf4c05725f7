"""Format v1 in memory: chunking, payloads, sealing, and data-map levels.

Every function takes the backend module explicitly, so the same engine runs
over the C and the Python primitives and the two can be compared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import zstandard

from ._errors import (
    ChunkError,
    ChunkIntegrityError,
    ChunkNotFoundError,
    DataMapError,
    InvalidArgumentError,
)
from ._format import ChunkInfo, DataMap
from ._stores import store_call
from ._workers import ordered_map

DEFAULT_CHUNK_SIZES = (262144, 1048576, 4194304)
DEFAULT_COMPRESSION_LEVEL = 3
KIND_RAW = 0x00
KIND_ZSTD = 0x01


@dataclass(frozen=True)
class EncryptedChunk:
    """A sealed chunk as it is stored: ``content`` under its hex ``name``."""

    name: str
    content: bytes

    def __repr__(self) -> str:
        return f"EncryptedChunk(name={self.name!r}, size={len(self.content)})"


@dataclass(frozen=True)
class Options:
    """Checked encryption options (format sections 1 to 3)."""

    convergence_secret: bytes = b""
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL
    min_size: int = DEFAULT_CHUNK_SIZES[0]
    avg_size: int = DEFAULT_CHUNK_SIZES[1]
    max_size: int = DEFAULT_CHUNK_SIZES[2]


def make_options(
    convergence_secret: bytes | str = b"",
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
) -> Options:
    """Check user options and return them normalised; raises InvalidArgumentError."""
    if isinstance(convergence_secret, str):
        convergence_secret = convergence_secret.encode("utf-8")
    try:
        secret = bytes(memoryview(convergence_secret))
    except TypeError:
        raise InvalidArgumentError("convergence_secret must be bytes-like or str") from None
    if compression_level is not None:
        if not _is_int(compression_level) or not (
            -(1 << 17) <= compression_level <= zstandard.MAX_COMPRESSION_LEVEL
        ) or compression_level == 0:
            raise InvalidArgumentError(
                "compression_level must be None (off) or a zstd level from "
                f"-131072 to {zstandard.MAX_COMPRESSION_LEVEL}, not 0, "
                f"got {compression_level!r}"
            )
    try:
        min_size, avg_size, max_size = chunk_sizes
    except (TypeError, ValueError):
        raise InvalidArgumentError("chunk_sizes must be (min, avg, max)") from None
    if not all(_is_int(size) for size in (min_size, avg_size, max_size)):
        raise InvalidArgumentError(f"chunk_sizes must be integers, got {chunk_sizes!r}")
    if not 64 <= min_size <= avg_size <= max_size <= 1 << 31:
        raise InvalidArgumentError(
            f"chunk_sizes must satisfy 64 <= min <= avg <= max <= 2**31, got {chunk_sizes!r}"
        )
    if avg_size < 256 or avg_size & (avg_size - 1):
        raise InvalidArgumentError(
            f"the average chunk size must be a power of two of at least 256, got {avg_size}"
        )
    return Options(secret, compression_level, min_size, avg_size, max_size)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_bytes_view(data) -> memoryview:
    """A flat byte view of any bytes-like object, without copying it."""
    if isinstance(data, str):
        raise InvalidArgumentError("data must be bytes-like, not str (encode it first)")
    try:
        view = memoryview(data)
    except TypeError:
        raise InvalidArgumentError(
            f"data must be bytes-like, not {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise InvalidArgumentError("data must be a contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


# -- compression -------------------------------------------------------------

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """A per-thread compressor: ZstdCompressor objects are not thread-safe."""
    cache = _local.__dict__.setdefault("compressors", {})
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def make_payload(piece, compression_level: int | None) -> tuple[int, object]:
    """Section 2: (kind, body) for one plaintext chunk."""
    if compression_level is not None:
        frame = _compressor(compression_level).compress(piece)
        if len(frame) < len(piece):
            return KIND_ZSTD, frame
    return KIND_RAW, piece


def decode_payload(payload, plain_size: int, out=None):
    """Section 2 in reverse; raises ChunkIntegrityError, never inflates past plain_size.

    A zstd body is inflated into ``out`` (at least plain_size + 1 bytes) when
    given; a raw body is returned as a view of the payload.
    """
    if not payload:
        raise ChunkIntegrityError("chunk payload is empty")
    kind = payload[0]
    body = memoryview(payload)[1:]
    if kind == KIND_RAW:
        plain = body
    elif kind == KIND_ZSTD:
        try:
            declared = zstandard.frame_content_size(body)
            if declared not in (plain_size, -1):
                raise ChunkIntegrityError(
                    f"compressed payload declares {declared} bytes, the data map {plain_size}"
                )
            if out is None and declared == plain_size:
                plain = _decompressor().decompress(body)
            else:
                plain = _inflate_into(body, out if out is not None else bytearray(plain_size + 1))
        except zstandard.ZstdError as exc:
            raise ChunkIntegrityError(f"compressed payload is not a valid zstd frame: {exc}") from None
    else:
        raise ChunkIntegrityError(f"unknown payload kind 0x{kind:02x}")
    if len(plain) != plain_size:
        raise ChunkIntegrityError(
            f"chunk holds {len(plain)} bytes of plaintext, the data map says {plain_size}"
        )
    return plain


def _inflate_into(frame, out) -> memoryview:
    """Inflate one zstd frame into out, stopping when out is full."""
    target = memoryview(out)
    filled = 0
    with _decompressor().stream_reader(frame, read_across_frames=False) as reader:
        while filled < len(target):
            count = reader.readinto(target[filled:])
            if not count:
                break
            filled += count
    return target[:filled]


class Scratch:
    """Reusable buffers for opening chunks one at a time: payload and plaintext.

    Allocating fresh megabytes for every chunk costs a page fault per 4 KiB,
    which on some machines is as slow as the cryptography itself.
    """

    __slots__ = ("payload", "plain")

    def __init__(self) -> None:
        self.payload = bytearray()
        self.plain = bytearray()

    def buffer(self, name: str, size: int) -> memoryview:
        current = getattr(self, name)
        if len(current) < size:
            current = bytearray(size)
            setattr(self, name, current)
        return memoryview(current)[:size]


class ScratchPool:
    """Scratch buffers handed out to workers and given back after use."""

    def __init__(self) -> None:
        self._free: list[Scratch] = []
        self._lock = threading.Lock()

    def acquire(self) -> Scratch:
        with self._lock:
            return self._free.pop() if self._free else Scratch()

    def release(self, scratch: Scratch | None) -> None:
        if scratch is not None:
            with self._lock:
                self._free.append(scratch)


# -- chunking ----------------------------------------------------------------

@lru_cache(maxsize=32)
def gear_table(backend: ModuleType, secret: bytes):
    """The gear table of a secret, built once per backend and secret."""
    return backend.GearTable(secret)


def cut_lengths(backend: ModuleType, data, options: Options) -> list[int]:
    """Section 1: the lengths of the content-defined chunks of data."""
    view = as_bytes_view(data)
    table = gear_table(backend, options.convergence_secret)
    lengths = []
    start, total = 0, len(view)
    while start < total:
        # The cut search never looks past max bytes; one more shows it is not the end.
        window = view[start:start + options.max_size + 1]
        length = backend.find_cut(
            table, window, options.min_size, options.avg_size, options.max_size, True
        )
        lengths.append(length)
        start += length
    return lengths


# -- one level of chunks -------------------------------------------------------

def prepare(backend: ModuleType, piece, options: Options) -> tuple[int, object, bytes]:
    """Payload and key seed of one plaintext chunk: (kind, body, key seed)."""
    kind, body = make_payload(piece, options.compression_level)
    return kind, body, backend.key_seed(options.convergence_secret, kind, body)


def seal(backend: ModuleType, plain_size: int, prepared: tuple[int, object, bytes],
         prev1: bytes, prev2: bytes) -> tuple[ChunkInfo, bytes]:
    """Seal a prepared chunk given its predecessors' key seeds: (record, content)."""
    kind, body, seed = prepared
    content, name = backend.seal(seed, prev1, prev2, kind, body)
    return ChunkInfo(plain_size, len(content), seed, name.hex()), content


def encrypt_level(backend: ModuleType, data, options: Options) -> tuple[list[ChunkInfo], list[EncryptedChunk]]:
    """Cut, compress, key and seal data in one go; returns its records and chunks."""
    view = as_bytes_view(data)
    pieces = []
    start = 0
    for length in cut_lengths(backend, view, options):
        pieces.append(view[start:start + length])
        start += length
    prepared = [prepare(backend, piece, options) for piece in pieces]
    count = len(prepared)
    records, sealed = [], []
    for index, piece in enumerate(pieces):
        record, content = seal(
            backend, len(piece), prepared[index],
            prepared[(index - 1) % count][2], prepared[(index - 2) % count][2],
        )
        records.append(record)
        sealed.append(EncryptedChunk(record.name, bytes(content)))
    return records, sealed


def shrink(backend: ModuleType, data_map: DataMap, options: Options) -> tuple[DataMap, list[EncryptedChunk]]:
    """Section 6: self-encrypt the map level by level until it is a root.

    Returns the root and the chunks of the levels above data_map, lowest first.
    """
    sealed: list[EncryptedChunk] = []
    while not data_map.is_root:
        records, more = encrypt_level(backend, data_map.to_bytes(), options)
        data_map = DataMap(data_map.level + 1, data_map.file_size, tuple(records))
        sealed.extend(more)
    return data_map, sealed


# -- decryption ----------------------------------------------------------------

Fetch = Callable[[str], object]


def fetcher(chunks) -> Fetch:
    """A name -> content function over a store, a mapping or EncryptedChunks."""
    if isinstance(chunks, Mapping):
        mapping = chunks
    elif callable(getattr(chunks, "get", None)):
        return _store_fetcher(chunks)
    else:
        try:
            mapping = {chunk.name: chunk.content for chunk in chunks}
        except (TypeError, AttributeError):
            raise InvalidArgumentError(
                "chunks must be a chunk store, a mapping of name to bytes, "
                "or an iterable of EncryptedChunk"
            ) from None

    def from_mapping(name: str):
        try:
            return mapping[name]
        except KeyError:
            raise ChunkNotFoundError("chunk not found", name=name) from None

    return from_mapping


def _store_fetcher(store) -> Fetch:
    def from_store(name: str):
        content = store_call("get", name, store.get, name)
        if content is None:
            raise ChunkNotFoundError("chunk not found in the store", name=name)
        return content

    return from_store


def open_payload(backend: ModuleType, data_map: DataMap, index: int, content, out=None):
    """Check content against record index of data_map and remove both CTR layers.

    Returns the payload (kind byte and body), written into ``out`` when given.
    """
    record = data_map.chunks[index]
    chunks = data_map.chunks
    count = len(chunks)
    try:
        try:
            view = memoryview(content)
        except TypeError:
            raise ChunkIntegrityError(
                f"the store returned {type(content).__name__}, not bytes"
            ) from None
        if view.nbytes != record.stored_size:
            raise ChunkIntegrityError(
                f"stored chunk is {view.nbytes} bytes, the data map says {record.stored_size}"
            )
        return backend.open_chunk(
            record.key_seed,
            chunks[(index - 1) % count].key_seed,
            chunks[(index - 2) % count].key_seed,
            view.cast("B") if view.format != "B" else view,
            bytes.fromhex(record.name),
            out,
        )
    except ChunkError as exc:
        raise exc.located(index=index, level=data_map.level, name=record.name) from None


def open_chunk(backend: ModuleType, data_map: DataMap, index: int, content,
               scratch: Scratch | None = None):
    """Check and open record index of data_map; returns its plaintext.

    With scratch, the plaintext may be a view of the scratch buffers.
    """
    record = data_map.chunks[index]
    payload = open_payload(backend, data_map, index, content,
                           None if scratch is None else scratch.buffer("payload", record.stored_size))
    out = None if scratch is None else scratch.buffer("plain", record.plain_size + 1)
    try:
        return decode_payload(payload, record.plain_size, out)
    except ChunkError as exc:
        raise exc.located(index=index, level=data_map.level, name=record.name) from None


def fetch_chunk(data_map: DataMap, fetch: Fetch, index: int):
    """The stored content of record index of data_map, as the store returns it."""
    record = data_map.chunks[index]
    try:
        return fetch(record.name)
    except ChunkError as exc:
        raise exc.located(index=index, level=data_map.level, name=record.name) from None


def load_chunk(backend: ModuleType, data_map: DataMap, fetch: Fetch, index: int,
               scratch: Scratch | None = None):
    """Fetch, check and open record index of data_map; returns its plaintext."""
    return open_chunk(backend, data_map, index, fetch_chunk(data_map, fetch, index), scratch)


def iter_level(backend: ModuleType, data_map: DataMap, fetch: Fetch, executor=None,
               window: int = 1, pool: ScratchPool | None = None) -> Iterator:
    """(plaintext, scratch) for each record of one data map, in order.

    With an executor, up to ``window`` chunks are fetched and opened at once.
    With a pool, each plaintext lives in a scratch taken from it, to be given
    back once the plaintext has been used; otherwise scratch is None.
    """
    def load(index: int):
        scratch = None if pool is None else pool.acquire()
        return load_chunk(backend, data_map, fetch, index, scratch), scratch

    indices = range(len(data_map.chunks))
    if executor is None:
        return map(load, indices)
    return ordered_map(executor, load, indices, window)


def decrypt_level(backend: ModuleType, data_map: DataMap, fetch: Fetch) -> bytes:
    """The bytes that the records of one data map hold."""
    return b"".join(plain for plain, _ in iter_level(backend, data_map, fetch))


def child_map(parent: DataMap, serialized: bytes) -> DataMap:
    """Parse the level below parent and check that it belongs to it."""
    try:
        child = DataMap.from_bytes(serialized)
    except DataMapError as exc:
        raise DataMapError(f"the level-{parent.level - 1} data map is malformed: {exc}") from None
    if child.level != parent.level - 1:
        raise DataMapError(
            f"a level-{parent.level} data map holds a level-{child.level} map"
        )
    if child.file_size != parent.file_size:
        raise DataMapError(
            f"level-{child.level} data map file_size {child.file_size} differs "
            f"from its parent's {parent.file_size}"
        )
    return child


def level_zero(backend: ModuleType, root: DataMap, fetch: Fetch) -> DataMap:
    """Walk a root down to the level-0 map of the file."""
    data_map = root
    while data_map.level > 0:
        data_map = child_map(data_map, decrypt_level(backend, data_map, fetch))
    return data_map


def check_root(root: object) -> DataMap:
    if not isinstance(root, DataMap):
        raise InvalidArgumentError(f"data_map must be a DataMap, not {type(root).__name__}")
    return root
