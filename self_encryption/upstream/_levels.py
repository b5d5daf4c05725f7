"""The upstream level walk: from a root data map down to the file's own chunks."""

from __future__ import annotations

from collections.abc import Iterator

from .._errors import ChunkIntegrityError, DataMapError
from ..stores.access import BATCH, StoreAccess, windows
from ._chunks import fetch, fetch_window
from ._datamap import (
    DataMap,
    MapParser,
    serialised_record_count,
)
from ._opening import check_name, finish, located, open_chunk, unseal
from ._records import (
    BINCODE_ENTRY,
    BINCODE_MAP_BASE,
    MAX_CHILD_LEVEL,
    MAX_MAP_BYTES,
)


def iter_level(
    data_map: DataMap, store: StoreAccess, level: int, first: bytes | None = None
) -> Iterator[bytes]:
    """Each chunk of one map opened, in order; ``first`` is chunk 0's plaintext when already opened."""
    for run in windows(len(data_map), BATCH if store.batched else 1):
        wanted = [data_map.chunk_identifiers[i] for i in run if not (i == 0 and first is not None)]
        batch = fetch_window(store, wanted, level) if store.batched and len(wanted) > 1 else None
        for index in run:
            if index == 0 and first is not None:
                yield first
                continue
            if batch is not None:
                content = batch[index]
            else:
                content = fetch(store, data_map.chunk_identifiers[index], level)
            yield open_chunk(data_map, index, content, level)


def _inner_map(holder: DataMap, store: StoreAccess, level: int, rounds: int) -> DataMap:
    """The map serialised in the chunks of ``holder`` (at ``level``).

    What the holder's chunks open to is exactly the serialised map, so its
    size, which upstream's chunk-count rules fix, gives the number of
    records before anything is fetched: a size no serialised map can have
    is refused then. The map is parsed as each chunk is opened and kept
    compact (:class:`~._datamap.MapParser`): it is never held twice, and
    memory grows only with bytes that were verified.
    """
    if holder.size > MAX_MAP_BYTES:
        raise DataMapError(
            f"a level-{level} data map claims {holder.size} bytes of inner map, "
            f"more than this reader accepts ({MAX_MAP_BYTES})"
        )
    where = f"the map inside the level-{level} chunks (round {rounds})"
    try:
        try:
            serialised_record_count(holder.size, with_child=False)
        except DataMapError:
            serialised_record_count(holder.size, with_child=True)
        parser = MapParser(holder.size, holder.max_chunk_size)
        for piece in iter_level(holder, store, level):
            parser.feed(piece)
        return parser.finish()
    except DataMapError as exc:
        raise DataMapError(f"{where} is malformed: {exc}") from None


def walk(root: DataMap, store: StoreAccess) -> tuple[list[tuple[int, DataMap]], bytes | None]:
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
        inner = _inner_map(current, store, level, len(found))
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
        if len(inner) <= 3 or (inner.size - BINCODE_MAP_BASE) % BINCODE_ENTRY.size:
            # Upstream shrinks only maps of more than three chunks, and a map of
            # level-1 chunks holds a serialised map: 10 + 80 n bytes.
            found.append((0, inner))
            return found, None
        info = inner.chunk_identifiers[0]
        content = fetch(store, info, None)
        check_name(info, content, None)  # the chunk's level is not known yet
        compressed = unseal(inner, 0, content, 0)
        if compressed is not None:
            found.append((0, inner))
            return found, finish(info, compressed, 0)
        if unseal(inner, 0, content, 1) is None:
            raise ChunkIntegrityError(
                "chunk does not decrypt under the keys the data map gives it, as a chunk of "
                "the file or of a map (the map's source hashes do not belong to this chunk)",
                **located(info, None),
            )
        current = inner  # another round: level-1 chunks that hold a map
        found.append((1, current))
    return found, None
