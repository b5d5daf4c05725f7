"""ChunkViews: a file's ranges as views of opened chunks, read ahead into reused buffers."""

from __future__ import annotations

import random
import tracemalloc

import pytest

import self_encryption as se

from helpers import READ_SIZES as SIZES


def level0_of(root: se.DataMap, store: object) -> se.DataMap:
    *_, level0 = se.walk_levels(root, store)
    return level0


def joined(chunks: se.ChunkViews, offset: int, size: int) -> bytes:
    return b"".join(bytes(piece) for piece in chunks.views(offset, size))


def test_sequential_random_and_spanning_ranges_give_the_file(
    read_file: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = read_file
    with se.ChunkViews(root, store, workers=2) as chunks:
        assert chunks.size == len(data)
        for block in (4096, 131072, 1 << 20):
            got = b"".join(joined(chunks, offset, block) for offset in range(0, len(data) + block, block))
            assert got == data
        rng = random.Random(5)
        for _ in range(300):
            offset = rng.randrange(len(data) + 100)
            size = rng.choice([0, 1, 4095, 4096, 70_000, 300_000])
            assert joined(chunks, offset, size) == data[offset : offset + size]
        assert chunks.views(len(data), 10) == [] and chunks.views(0, 0) == []
        pieces = chunks.views(0, len(data))
        assert len(pieces) == len(level0_of(root, store).chunks)  # one view per chunk, no joining


def test_bad_arguments_and_a_closed_object_are_refused(
    read_file: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    _, root, store = read_file
    with pytest.raises(se.InvalidArgumentError):
        se.ChunkViews(root, store, read_ahead=-1)
    with pytest.raises(se.InvalidArgumentError):
        se.ChunkViews(root, store, workers=0)
    chunks = se.ChunkViews(root, store)
    with pytest.raises(ValueError):
        chunks.views(-1, 10)
    chunks.close()
    with pytest.raises(ValueError):
        chunks.views(0, 10)


def test_a_bad_chunk_fails_only_the_ranges_that_need_it(
    read_file: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = read_file
    chunks = level0_of(root, store).chunks
    middle = len(chunks) // 2
    start = sum(chunk.plain_size for chunk in chunks[:middle])
    end = start + chunks[middle].plain_size
    store.delete(chunks[middle].name)
    with se.ChunkViews(root, store, workers=2) as views:
        block, offset = 4096, 0
        while offset + block <= start:  # sequential up to the gap: the read-ahead met it
            assert joined(views, offset, block) == data[offset : offset + block]
            offset += block
        with pytest.raises(se.ChunkNotFoundError) as failure:
            views.views(start + 10, block)
        assert failure.value.name == chunks[middle].name
        assert joined(views, end, 100) == data[end : end + 100]
        assert joined(views, len(data) - 50, 50) == data[-50:]
    damaged = se.MemoryStore()
    for name in store:
        content = store.get(name)
        damaged.put(name, content[:-1] + bytes([content[-1] ^ 1]) if name == chunks[1].name else content)
    with se.ChunkViews(root, damaged) as views, pytest.raises(se.ChunkIntegrityError):
        views.views(0, len(data))


def test_read_ahead_fetches_through_the_ahead_store(
    read_file: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = read_file
    asked: dict[str, int] = {"store": 0, "ahead": 0}

    def counting(what: str) -> se.CallbackStore:
        def get(name: str) -> bytes:
            asked[what] += 1
            return store.get(name)

        return se.CallbackStore(get)

    with se.ChunkViews(root, counting("store"), workers=2, ahead_store=counting("ahead")) as chunks:
        got = b"".join(joined(chunks, offset, 8192) for offset in range(0, len(data), 8192))
    assert got == data
    levels = sum(len(level.chunks) for level in se.walk_levels(root, store) if level.level)
    # The level walk and the first (not sequential) range: through store; all the rest read ahead.
    assert asked["store"] <= levels + 1
    assert asked["ahead"] >= len(level0_of(root, store).chunks) - 1


def test_random_ranges_open_only_their_chunks(read_file: tuple[bytes, se.DataMap, se.MemoryStore]) -> None:
    data, root, store = read_file
    fetched: list[str] = []

    def get(name: str) -> bytes:
        fetched.append(name)
        return store.get(name)

    level0 = level0_of(root, store)
    middle = len(level0.chunks) // 2
    start = sum(chunk.plain_size for chunk in level0.chunks[:middle])
    with se.ChunkViews(root, se.CallbackStore(get), workers=2) as chunks:
        assert joined(chunks, start + 10, 100) == data[start + 10 : start + 110]
        before = len(fetched)
        # Back into the chunk it opened, not where the last range ended: no read-ahead.
        assert joined(chunks, start + 500, 100) == data[start + 500 : start + 600]
        assert joined(chunks, start, 10) == data[start : start + 10]
        assert len(fetched) == before
        assert fetched[-1] == level0.chunks[middle].name


def test_a_store_with_get_many_is_read_ahead_in_windows(
    read_file: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = read_file
    asked: list[int] = []

    def get_many(names: list[str]) -> dict[str, bytes]:
        asked.append(len(names))
        return {name: store.get(name) for name in names}

    with se.ChunkViews(root, se.CallbackStore(store.get, get_many=get_many), workers=2) as chunks:
        got = b"".join(joined(chunks, offset, 16384) for offset in range(0, len(data), 16384))
    assert got == data
    assert asked and max(asked) > 1


def test_memory_follows_the_read_ahead_not_the_file() -> None:
    data = random.Random(12).randbytes(4 << 20)
    store = se.MemoryStore()
    root = se.encrypt_to_store(data, store, chunk_sizes=SIZES)
    chunks = se.ChunkViews(root, store, workers=2, read_ahead=256 << 10)
    buffer = bytearray(1 << 16)
    tracemalloc.start()
    try:
        chunks.views(0, 1)  # the level walk and the first chunk before the baseline
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for offset in range(0, len(data), len(buffer)):
            position = 0
            for piece in chunks.views(offset, len(buffer)):
                buffer[position : position + len(piece)] = piece
                position += len(piece)
            assert buffer[:position] == data[offset : offset + position]
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
        chunks.close()
    # The read-ahead (256 KiB by the map's sizes, plus its last chunk), the chunks kept
    # behind, their scratch buffers and the fetched contents: far below the 4 MiB file.
    assert peak < 2 << 20, peak
