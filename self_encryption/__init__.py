"""Self-encryption: convergent encryption with obfuscation, format v1.

A file is cut into content-defined chunks; each chunk is compressed,
encrypted with a key derived from its own content, obfuscated with a pad
derived from its neighbours and stored under the SHA-256 of the result. The
small :class:`DataMap` that comes back is the secret that opens the file.

The hot path runs in a C core (``self_encryption._native``) unless
``SELF_ENCRYPTION_BACKEND=python`` asks for the pure-Python backend;
:data:`backend` names the one in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import _backend, _engine
from ._engine import DEFAULT_CHUNK_SIZES, DEFAULT_COMPRESSION_LEVEL, EncryptedChunk
from ._errors import (
    ChunkError,
    ChunkIntegrityError,
    ChunkNotFoundError,
    DataMapError,
    InvalidArgumentError,
    SelfEncryptionError,
    StoreError,
)
from ._format import ChunkInfo, DataMap
from ._s3 import S3Store
from ._selfencryptor import SelfEncryptor
from ._stores import CallbackStore, ChunkStore, DirStore, MemoryStore
from ._streaming import (
    ChunkReader,
    Encryptor,
    EncryptStats,
    Progress,
    decrypt_file,
    decrypt_into,
    encrypt_file,
)

__version__ = "0.1.0"

#: "c" or "python": the backend that runs the primitives.
backend: str = _backend.active.NAME

__all__ = [
    "DEFAULT_CHUNK_SIZES",
    "DEFAULT_COMPRESSION_LEVEL",
    "CallbackStore",
    "ChunkError",
    "ChunkReader",
    "ChunkInfo",
    "ChunkIntegrityError",
    "ChunkNotFoundError",
    "ChunkStore",
    "DataMap",
    "DataMapError",
    "DirStore",
    "EncryptStats",
    "EncryptedChunk",
    "Encryptor",
    "InvalidArgumentError",
    "MemoryStore",
    "S3Store",
    "SelfEncryptionError",
    "SelfEncryptor",
    "StoreError",
    "backend",
    "decrypt",
    "decrypt_file",
    "encrypt",
    "encrypt_file",
    "encrypt_to_store",
    "open",
]

ChunkSource = ChunkStore | Mapping[str, bytes] | Iterable[EncryptedChunk]


class _Collector:
    """A store that keeps what encrypt() returns: each chunk once, in put order."""

    def __init__(self) -> None:
        self.chunks: dict[str, EncryptedChunk] = {}

    def has(self, name: str) -> bool:
        return name in self.chunks

    def put(self, name: str, data) -> None:
        self.chunks.setdefault(name, EncryptedChunk(name, bytes(data)))


def encrypt(
    data,
    *,
    convergence_secret: bytes | str = b"",
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[DataMap, list[EncryptedChunk]]:
    """Self-encrypt a bytes-like object in memory.

    Returns the root data map and every chunk to store (data-map chunks
    included), each once. ``convergence_secret`` limits de-duplication to
    those who share it (a str is taken as UTF-8); ``compression_level`` is a
    zstd level or None for no compression; ``chunk_sizes`` is (min, avg, max);
    ``workers`` is the number of threads (default: one per CPU core);
    ``progress(done, total)`` is called as chunks are sealed.
    """
    collector = _Collector()
    encryptor = _encrypt_buffer(
        data, collector, convergence_secret=convergence_secret, compression_level=compression_level,
        chunk_sizes=chunk_sizes, workers=workers, progress=progress)
    # File order, whatever order the workers stored them in; map levels after.
    ordered = {record.name: collector.chunks[record.name] for record in encryptor.level0.chunks}
    ordered.update(collector.chunks)
    return encryptor.data_map, list(ordered.values())


def decrypt(data_map: DataMap, chunks: ChunkSource, *, workers: int | None = None,
            progress: Progress | None = None) -> bytes:
    """The original bytes of a data map, fetching chunks from ``chunks``.

    ``chunks`` is a chunk store, a mapping of hex name to content, or an
    iterable of :class:`EncryptedChunk`. Every chunk is checked against its
    name; a missing or damaged one raises ChunkNotFoundError or
    ChunkIntegrityError naming it, and nothing is returned.
    """
    parts: list = []
    decrypt_into(data_map, chunks, parts.append, workers=workers, progress=progress,
                 reuse_buffers=False)
    return b"".join(parts)


def encrypt_to_store(
    data,
    store: ChunkStore,
    *,
    convergence_secret: bytes | str = b"",
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DataMap:
    """Self-encrypt data into a store and return the root data map.

    Chunks the store already has are not put again; file chunks go in
    before data-map chunks, so the root never names a chunk not yet stored.
    """
    return _encrypt_buffer(
        data, store, convergence_secret=convergence_secret, compression_level=compression_level,
        chunk_sizes=chunk_sizes, workers=workers, progress=progress).data_map


def _encrypt_buffer(data, store, **options) -> Encryptor:
    """Run a finished Encryptor over a whole buffer, which stays ours until it is done."""
    view = _engine.as_bytes_view(data)
    with Encryptor(store, total_size=len(view), **options) as encryptor:
        encryptor._write(view, owned=True)
    return encryptor


def open(data_map: DataMap, store: ChunkSource, *, workers: int | None = None) -> ChunkReader:  # noqa: A001
    """A read-only, seekable binary file that decrypts only the chunks it reads."""
    return ChunkReader(data_map, store, workers=workers)
