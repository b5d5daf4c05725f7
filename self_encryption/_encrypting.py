"""The encryption entry points, each one Encryptor: bytes in memory, into a store, a file.

``encrypt`` returns the chunks themselves (a small store that collects
them); ``encrypt_to_store`` and ``encrypt_file`` hand them to a store. The
output is the same whichever is used, and whatever the workers.
"""

from __future__ import annotations

import os
from typing import IO, Any, cast

from ._buffers import Buffer, as_bytes_view
from ._datamap import DataMap
from ._encryptor import Encryptor
from ._errors import InvalidArgumentError
from ._options import DEFAULT_CHUNK_SIZES, DEFAULT_COMPRESSION_LEVEL, Progress
from ._sealing import (
    EncryptedChunk,
)
from .stores.access import StoreAccess, access
from .stores.protocol import ChunkStore


class _Collector:
    """A store that keeps what encrypt() returns: each chunk once, in put order."""

    io_concurrency = 1  # a dict: a request costs nothing, made by the thread that sealed the chunk

    def __init__(self) -> None:
        self.chunks: dict[str, EncryptedChunk] = {}

    def has(self, name: str) -> bool:
        return name in self.chunks

    def put(self, name: str, data: Buffer) -> None:
        self.chunks.setdefault(name, EncryptedChunk(name, bytes(data)))


def encrypt(
    data: Buffer,
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
        data,
        access(collector, needs=("put", "has")),
        convergence_secret=convergence_secret,
        compression_level=compression_level,
        chunk_sizes=chunk_sizes,
        workers=workers,
        progress=progress,
    )
    assert encryptor.level0 is not None and encryptor.data_map is not None
    # File order, whatever order the workers stored them in; map levels after.
    ordered = {record.name: collector.chunks[record.name] for record in encryptor.level0.chunks}
    ordered.update(collector.chunks)
    return encryptor.data_map, list(ordered.values())


def encrypt_to_store(
    data: Buffer,
    store: ChunkStore,
    *,
    convergence_secret: bytes | str = b"",
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
    workers: int | None = None,
    progress: Progress | None = None,
    check_existing: bool = False,
    store_concurrency: int | None = None,
) -> DataMap:
    """Self-encrypt data into a store and return the root data map.

    Chunks the store already has are not put again (with
    ``check_existing``, they are read back and replaced if damaged); file
    chunks go in before data-map chunks, so the root never names a chunk
    not yet stored. ``store_concurrency`` is how many store requests run
    at once (default: what the store declares as ``io_concurrency``, else
    ``workers``).
    """
    encryptor = _encrypt_buffer(
        data,
        store,
        convergence_secret=convergence_secret,
        compression_level=compression_level,
        chunk_sizes=chunk_sizes,
        workers=workers,
        progress=progress,
        check_existing=check_existing,
        store_concurrency=store_concurrency,
    )
    assert encryptor.data_map is not None
    return encryptor.data_map


def _encrypt_buffer(data: Buffer, store: ChunkStore | StoreAccess, **options: Any) -> Encryptor:
    """Run a finished Encryptor over a whole buffer, which stays ours until it is done."""
    view = as_bytes_view(data)
    with Encryptor(store, total_size=len(view), **options) as encryptor:
        encryptor.write_owned(view)
    return encryptor


def encrypt_file(
    source: str | os.PathLike[str] | IO[bytes],
    store: ChunkStore,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> DataMap:
    """Self-encrypt a file (a path or a readable binary file) into a store; returns the root.

    ``options`` are the Encryptor's: ``convergence_secret``,
    ``compression_level``, ``chunk_sizes``, ``check_existing`` and
    ``store_concurrency``.
    """
    if hasattr(source, "read"):
        return _encrypt_stream(cast("IO[bytes]", source), store, None, workers, progress, options)
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise InvalidArgumentError("source must be a path or a readable binary file")
    with open(source, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        return _encrypt_stream(handle, store, size, workers, progress, options)


def _encrypt_stream(
    handle: IO[bytes],
    store: ChunkStore,
    size: int | None,
    workers: int | None,
    progress: Progress | None,
    options: dict[str, Any],
) -> DataMap:
    with Encryptor(store, workers=workers, progress=progress, total_size=size, **options) as encryptor:
        encryptor.write_from(handle)
    assert encryptor.data_map is not None
    return encryptor.data_map
