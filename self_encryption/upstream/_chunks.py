"""Where upstream chunks come from: a folder of chunk files, a mapping, or a store.

Whatever the caller passes is wrapped once in the engine's
:class:`~self_encryption.stores.access.StoreAccess`, so the upstream reader
asks a store exactly as decryption does, and gives the same verdict for the
same store behaviour. Every chunk fetched is checked against the most bytes
a chunk of its recorded size can be stored as.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._errors import ChunkError, ChunkIntegrityError, ChunkNotFoundError, InvalidArgumentError, StoreError
from ..stores.access import StoreAccess, access
from ._opening import Where, located, stored_size_limit
from ._records import (
    ChunkInfo,
)

#: Where upstream chunks are read from: a folder of files named by hex name, a
#: mapping of hex name to bytes, a plain get(name) -> bytes function, or any
#: object with get(name) (and perhaps get_many).
Chunks = str | os.PathLike[str] | Mapping[str, bytes] | Any


class ChunkFolder:
    """A folder of upstream chunk files, each named by its 64-hex name (what ``encrypt_from_file`` writes)."""

    def __init__(self, path: str | bytes | os.PathLike[str]) -> None:
        folder = os.fsdecode(path)
        if not os.path.isdir(folder):
            raise StoreError(f"no chunk folder at {folder!r}")
        self.path = folder

    def __repr__(self) -> str:
        return f"ChunkFolder({self.path!r})"

    def get(self, name: str) -> bytes:
        return self.get_at_most(name, -1)

    def get_at_most(self, name: str, limit: int) -> bytes:
        """The chunk file's content, reading no more than limit bytes of it (all: limit < 0)."""
        path = os.path.join(self.path, name)
        try:
            with open(path, "rb") as handle:
                return handle.read(limit)
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk not found in {self.path!r}", name=name) from None
        except OSError as exc:
            raise StoreError(f"cannot read chunk {name} from {self.path!r}: {exc}") from exc


def open_chunks(chunks: Chunks) -> StoreAccess:
    """The StoreAccess over what a caller passed as upstream chunks."""
    source = ChunkFolder(chunks) if isinstance(chunks, (str, bytes, os.PathLike)) else chunks
    try:
        return access(source)
    except InvalidArgumentError:
        raise InvalidArgumentError(
            "chunks must be a folder path, a mapping of hex name to bytes, a get(name) -> bytes "
            f"function or an object with get(name), not {type(chunks).__name__}"
        ) from None


def fetch(store: StoreAccess, info: ChunkInfo, level: int | None) -> bytes:
    """The stored chunk info names, placed at level (None: not known yet) in any error."""
    where = located(info, level)
    limit = stored_size_limit(info.src_size)
    try:
        # Never read more than a chunk of this size can be (+1 to notice more).
        content = store.get(info.name, limit)
    except ChunkError as exc:
        raise type(exc)(exc.reason, **where) from None
    return _checked(info, content, limit, where)


def fetch_window(store: StoreAccess, infos: list[ChunkInfo], level: int | None) -> dict[int, bytes]:
    """Several chunks in one get_many() call of the store, by index."""
    try:
        # Never read more than a chunk of its size can be (+1 to notice more), as fetch() does.
        found = store.get_window(
            [info.name for info in infos], {info.name: stored_size_limit(info.src_size) for info in infos}
        )
    except ChunkError as exc:  # the store named a chunk of the window: place it
        info = next((i for i in infos if i.name == exc.name), None)
        if info is None:
            raise
        raise type(exc)(exc.reason, **located(info, level)) from None
    result = {}
    for info in infos:
        where = located(info, level)
        content = found.get(info.name)
        if content is None:
            raise ChunkNotFoundError("chunk not found in the store", **where)
        result[info.index] = _checked(info, content, stored_size_limit(info.src_size), where)
    return result


def _checked(info: ChunkInfo, content: object, limit: int, where: Where) -> bytes:
    if isinstance(content, (bytearray, memoryview)):
        content = bytes(content)
    if not isinstance(content, bytes):
        raise StoreError(f"the store returned {type(content).__name__} for chunk {info.name}, not bytes")
    if len(content) > limit:
        raise ChunkIntegrityError(
            f"chunk is {len(content)} bytes, more than an upstream chunk of "
            f"{info.src_size} plain bytes can be",
            **where,
        )
    return content
