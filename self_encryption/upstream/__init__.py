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

The package holds the data map (``_datamap``), where chunks come from
(``_chunks``, through the engine's store access), opening a chunk
(``_opening``) and the level walk (``_levels``); this module only gathers
the public names and the operations built on them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import IO

_INSTALL_HINT = (
    "pip install 'self-encryption-cffi[upstream]' (from a source checkout: pip install -e '.[upstream]')"
)

try:
    import blake3  # noqa: F401 - only checked here; _opening uses it
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


from .._decryptor import write_output  # noqa: E402 - after the dependency checks
from .._errors import OutOfMemoryError  # noqa: E402
from ._chunks import Chunks, open_chunks  # noqa: E402
from ._datamap import DataMap, as_data_map  # noqa: E402
from ._levels import iter_level, walk  # noqa: E402

# LARGEST_CHUNK_SIZE_ACCEPTED, MAX_CHILD_LEVEL and MIN_CHUNK_SIZE stay importable as before (not in __all__).
from ._records import (  # noqa: E402
    LARGEST_CHUNK_SIZE_ACCEPTED,  # noqa: F401
    MAX_CHILD_LEVEL,  # noqa: F401
    MAX_CHUNK_SIZE,
    MAX_MAP_BYTES,
    MIN_CHUNK_SIZE,  # noqa: F401
    MIN_ENCRYPTABLE_BYTES,
    UPSTREAM_VERSION,
    ChunkInfo,
    chunk_sizes,
)

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


# -- the public operations ------------------------------------------------------------


@contextlib.contextmanager
def _memory_typed(what: str) -> Iterator[None]:
    """A MemoryError (a huge inner map, a huge file held whole) as our OutOfMemoryError."""
    try:
        yield
    except OutOfMemoryError:
        raise
    except MemoryError:
        raise OutOfMemoryError(f"not enough memory to {what}") from None


def resolve(data_map: DataMap | str | bytes, chunks: Chunks) -> DataMap:
    """The map of the file's own chunks: ``data_map`` itself, or what its levels hold."""
    return data_maps(data_map, chunks)[-1][1]


def data_maps(data_map: DataMap | str | bytes, chunks: Chunks) -> list[tuple[int, DataMap]]:
    """Every map from ``data_map`` down to the file's own, as (level of its chunks, map).

    Their names together are every chunk the file needs. Fetches and opens
    the map levels' chunks (and the file's first chunk when a level-1 map is
    ambiguous), not the file's.
    """
    with _memory_typed("read the upstream data map's levels"):
        return walk(as_data_map(data_map), open_chunks(chunks))[0]


def iter_decrypt(data_map: DataMap | str | bytes, chunks: Chunks) -> Iterator[bytes]:
    """The file's plaintext, one verified chunk (at most about 4 MiB) at a time, in order.

    Arguments are checked at once; chunks are fetched as the iterator is
    advanced, so an error (ChunkNotFoundError, ChunkIntegrityError naming the
    chunk, StoreError, DataMapError for a bad inner map) surfaces then, after
    the pieces before it were yielded.
    """
    root = as_data_map(data_map)
    store = open_chunks(chunks)

    def pieces() -> Iterator[bytes]:
        with _memory_typed("decrypt the upstream file"):
            found, first = walk(root, store)
            yield from iter_level(found[-1][1], store, 0, first)

    return pieces()


def decrypt(data_map: DataMap | str | bytes, chunks: Chunks) -> bytes:
    """The whole file as bytes (held in memory: use iter_decrypt or decrypt_file for big ones)."""
    with _memory_typed("hold the whole upstream file"):
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
