"""Decryption of a whole file: into memory, into a writer, or into a path.

Chunks are fetched on a pool of store requests (as many at once as the
store declares, so that a store far away is kept busy; bounded in bytes),
opened on the worker pool, and handed on in file order; every chunk is checked against its name
and sizes before a byte of it is used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from . import _backend
from ._buffers import ScratchPool
from ._datamap import DataMap
from ._errors import InvalidArgumentError
from ._files import atomic_write, current_umask, written_back
from ._levels import check_root, iter_level, level_zero
from ._options import Progress
from ._sealing import EncryptedChunk
from ._workers import InlineExecutor, check_workers, in_flight, make_executor, running
from .stores.access import access
from .stores.protocol import ChunkStore

#: Where decryption may fetch chunks from: a store, a mapping of name to bytes,
#: the EncryptedChunks encrypt() returned, or a plain get(name) -> bytes function.
ChunkSource = ChunkStore | Mapping[str, bytes] | Iterable[EncryptedChunk] | Callable[[str], bytes | None]


def decrypt(
    data_map: DataMap,
    chunks: ChunkSource,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    store_concurrency: int | None = None,
) -> bytes:
    """The original bytes of a data map, fetching chunks from ``chunks``.

    ``chunks`` is a chunk store, a mapping of hex name to content, or an
    iterable of :class:`EncryptedChunk`. Every chunk is checked against its
    name; a missing or damaged one raises ChunkNotFoundError or
    ChunkIntegrityError naming it, and nothing is returned.
    ``store_concurrency`` is how many chunk requests are in flight at once
    (default: what the store declares as ``io_concurrency``, else ``workers``).
    """
    parts: list[Any] = []
    decrypt_into(
        data_map,
        chunks,
        parts.append,
        workers=workers,
        progress=progress,
        reuse_buffers=False,
        store_concurrency=store_concurrency,
    )
    return b"".join(parts)


def decrypt_into(
    data_map: DataMap,
    chunks: ChunkSource,
    write: Callable[[Any], object],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    reuse_buffers: bool = True,
    store_concurrency: int | None = None,
) -> int:
    """Open every chunk of data_map in order and pass its plaintext to write().

    Returns the number of bytes written. Chunks are fetched ahead,
    ``store_concurrency`` requests at once (see :func:`decrypt`), and up
    to a bounded number opened at once on the worker pool. With
    reuse_buffers, what write() receives is a view valid only until it
    returns.
    """
    root = check_root(data_map)
    store = access(chunks).tuned(store_concurrency)
    backend = _backend.active
    workers = check_workers(workers)
    pool = ScratchPool() if reuse_buffers else None
    done = 0
    level0 = level_zero(backend, root, store)
    # Threads start only for a file of more than one chunk.
    several = len(level0.chunks) > 1
    executor = make_executor(workers) if several else InlineExecutor()
    requests = store.concurrency(workers)
    io = store.io_pool(workers) if several else InlineExecutor()
    with running(io), running(executor):
        parts = iter_level(backend, level0, store, executor, in_flight(workers), pool, io, requests)
        with contextlib.closing(parts):  # type: ignore[type-var]
            for plain, scratch in parts:
                write(plain)
                done += len(plain)
                if pool is not None:
                    pool.release(scratch)
                if progress is not None:
                    progress(done, root.file_size)
    return done


def decrypt_file(
    data_map: DataMap,
    store: ChunkSource,
    destination: str | os.PathLike[str] | IO[bytes],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    store_concurrency: int | None = None,
) -> int:
    """Decrypt into a path or a writable binary file; returns the bytes written.

    A path that is absent or a regular file is written through a temporary
    file beside it (``.NAME.*.partial``) that replaces it only after every
    chunk was verified: on any error nothing is left under the destination
    name. An existing file keeps its mode; a new one gets 0666 less the
    umask. A link is followed, and what it leads to is written, never the
    link replaced. A FIFO, a device or another non-regular file is written
    as a stream, like a file object: it receives bytes as they are opened,
    so it may hold a prefix if an error stops the work.
    """
    return write_output(
        destination,
        lambda write: decrypt_into(
            data_map, store, write, workers=workers, progress=progress, store_concurrency=store_concurrency
        ),
    )


def write_output(
    destination: str | os.PathLike[str] | IO[bytes], fill: Callable[[Callable[[Any], object]], int]
) -> int:
    """Write a decrypted file by the rules of decrypt_file; ``fill(write)`` makes its bytes."""
    if hasattr(destination, "write"):
        return fill(destination.write)
    if not isinstance(destination, (str, bytes, os.PathLike)):
        raise InvalidArgumentError("destination must be a path or a writable binary file")
    path = os.fsdecode(destination)
    target, mode = _destination(path)
    if target is None:  # not a regular file: a stream
        with open(path, "wb", buffering=0) as stream:
            return fill(stream.write)
    with atomic_write(target, prefix=f".{os.path.basename(target)}.", suffix=".partial", mode=mode) as temp:
        return fill(written_back(temp))


def _destination(path: str) -> tuple[str | None, int]:
    """Where to write a decrypted file: (regular file path, mode), or (None, 0) for a stream."""
    try:
        info = os.stat(path)  # follows links
    except FileNotFoundError:
        if os.path.islink(path):
            raise InvalidArgumentError(f"destination {path!r} is a link to a missing file") from None
        return os.path.abspath(path), 0o666 & ~current_umask()
    if stat.S_ISDIR(info.st_mode):
        raise InvalidArgumentError(f"destination {path!r} is a folder")
    if not stat.S_ISREG(info.st_mode):
        return None, 0
    target = os.path.realpath(path)
    if not os.access(target, os.W_OK):
        raise PermissionError(
            errno.EACCES,
            "the destination is not writable (like cp, decrypt does not replace a file you cannot write)",
            path,
        )
    return target, stat.S_IMODE(info.st_mode)
