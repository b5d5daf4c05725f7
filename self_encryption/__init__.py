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
from ._stores import CallbackStore, ChunkStore, DirStore, MemoryStore

__version__ = "0.1.0"

#: "c" or "python": the backend that runs the primitives.
backend: str = _backend.active.NAME

__all__ = [
    "DEFAULT_CHUNK_SIZES",
    "DEFAULT_COMPRESSION_LEVEL",
    "CallbackStore",
    "ChunkError",
    "ChunkInfo",
    "ChunkIntegrityError",
    "ChunkNotFoundError",
    "ChunkStore",
    "DataMap",
    "DataMapError",
    "DirStore",
    "EncryptedChunk",
    "InvalidArgumentError",
    "MemoryStore",
    "SelfEncryptionError",
    "StoreError",
    "backend",
    "decrypt",
    "encrypt",
    "encrypt_to_store",
]

ChunkSource = ChunkStore | Mapping[str, bytes] | Iterable[EncryptedChunk]


def encrypt(
    data,
    *,
    convergence_secret: bytes | str = b"",
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
) -> tuple[DataMap, list[EncryptedChunk]]:
    """Self-encrypt a bytes-like object in memory.

    Returns the root data map and every chunk to store (data-map chunks
    included), each once. ``convergence_secret`` limits de-duplication to
    those who share it (a str is taken as UTF-8); ``compression_level`` is a
    zstd level or None for no compression; ``chunk_sizes`` is (min, avg, max).
    """
    options = _engine.make_options(convergence_secret, compression_level, chunk_sizes)
    return _engine.encrypt(_backend.active, data, options)


def decrypt(data_map: DataMap, chunks: ChunkSource) -> bytes:
    """The original bytes of a data map, fetching chunks from ``chunks``.

    ``chunks`` is a chunk store, a mapping of hex name to content, or an
    iterable of :class:`EncryptedChunk`. Every chunk is checked against its
    name; a missing or damaged one raises ChunkNotFoundError or
    ChunkIntegrityError naming it, and nothing is returned.
    """
    return _engine.decrypt(_backend.active, data_map, chunks)


def encrypt_to_store(
    data,
    store: ChunkStore,
    *,
    convergence_secret: bytes | str = b"",
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
) -> DataMap:
    """Self-encrypt data into a store and return the root data map.

    Chunks the store already has are not put again; file chunks go in
    before data-map chunks, so the root never names a chunk not yet stored.
    """
    data_map, chunks = encrypt(
        data,
        convergence_secret=convergence_secret,
        compression_level=compression_level,
        chunk_sizes=chunk_sizes,
    )
    for chunk in chunks:
        if not store.has(chunk.name):
            store.put(chunk.name, chunk.content)
    return data_map
