"""A mount's read-only handles without FUSE: every read pattern, read-ahead, the shared cache, faults, memory."""

from __future__ import annotations

import random
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

import self_encryption as se
from self_encryption.mount._cache import CachingStore
from self_encryption.mount._fuse import address_of
from self_encryption.mount._reading import Reading

SIZES = (4096, 16384, 65536)


@pytest.fixture
def stored() -> tuple[bytes, se.DataMap, se.MemoryStore]:
    data = random.Random(11).randbytes(600_000)
    store = se.MemoryStore()
    return data, se.encrypt_to_store(data, store, chunk_sizes=SIZES), store


def level0_of(root: se.DataMap, store: object) -> se.DataMap:
    *_, level0 = se.walk_levels(root, store)
    return level0


@pytest.fixture
def reading(stored: tuple[bytes, se.DataMap, se.MemoryStore]) -> Iterator[Reading]:
    _, root, store = stored
    opened = Reading("/f", root, CachingStore(store, 1 << 20), 2)
    yield opened
    opened.close()


def test_sequential_random_and_spanning_reads_give_the_file(
    stored: tuple[bytes, se.DataMap, se.MemoryStore], reading: Reading
) -> None:
    data = stored[0]
    for block in (4096, 131072, 1 << 20):
        got = b"".join(reading.read(block, offset) for offset in range(0, len(data) + block, block))
        assert got == data
    rng = random.Random(5)
    for _ in range(300):
        offset = rng.randrange(len(data) + 100)
        size = rng.choice([1, 4095, 4096, 70_000, 300_000])
        assert reading.read(size, offset) == data[offset : offset + size]
    assert reading.read(10, len(data)) == b"" and reading.read(0, 0) == b""


def test_two_requests_of_one_handle_at_once_get_their_bytes(
    stored: tuple[bytes, se.DataMap, se.MemoryStore], reading: Reading
) -> None:
    # The kernel may have two read-ahead requests of one file in flight: both are served whole.
    data = stored[0]
    block = 65536
    results: dict[int, bool] = {}

    def read(offsets: range) -> None:
        for offset in offsets:
            results[offset] = reading.read(block, offset) == data[offset : offset + block]

    halves = [range(0, len(data), 2 * block), range(block, len(data), 2 * block)]
    threads = [threading.Thread(target=read, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == len(range(0, len(data), block)) and all(results.values())


def test_read_ahead_is_served_by_the_cache_but_does_not_fill_it(
    stored: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = stored
    cache = CachingStore(store, 1 << 20)
    with_level0 = Reading("/f", root, cache, 2)
    try:
        assert with_level0.read(len(data), 0) == data  # one read: every chunk opened in this thread
    finally:
        with_level0.close()
    chunks = level0_of(root, store).chunks
    assert cache.held >= sum(chunk.stored_size for chunk in chunks)  # a random read keeps what it fetched
    streaming_cache = CachingStore(store, 1 << 20)
    streamer = Reading("/f", root, streaming_cache, 2)
    try:
        got = b"".join(streamer.read(8192, offset) for offset in range(0, len(data), 8192))
    finally:
        streamer.close()
    assert got == data
    held_chunks = streaming_cache.held - sum(
        chunk.stored_size for level in se.walk_levels(root, store) for chunk in level.chunks if level.level
    )
    # The first read is not sequential (it keeps its chunk); what was read ahead is not kept.
    assert held_chunks <= max(chunk.stored_size for chunk in chunks)


def test_a_bad_chunk_fails_only_the_reads_that_need_it(
    stored: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = stored
    chunks = level0_of(root, store).chunks
    middle = len(chunks) // 2
    start = sum(chunk.plain_size for chunk in chunks[:middle])
    end = start + chunks[middle].plain_size
    store.delete(chunks[middle].name)
    reading = Reading("/f", root, CachingStore(store, 1 << 20), 2)
    try:
        block = 4096
        offset = 0
        while offset + block <= start:  # sequential reads up to the gap: the read-ahead met it
            assert reading.read(block, offset) == data[offset : offset + block]
            offset += block
        with pytest.raises(se.ChunkNotFoundError) as failure:
            reading.read(block, start + 10)
        assert failure.value.name == chunks[middle].name
        assert reading.read(100, end) == data[end : end + 100]
        assert reading.read(50, len(data) - 50) == data[-50:]
    finally:
        reading.close()


def test_a_store_with_get_many_is_read_ahead_in_windows(
    stored: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = stored
    asked: list[int] = []

    def get_many(names: list[str]) -> dict[str, bytes]:
        asked.append(len(names))
        return {name: store.get(name) for name in names}

    windowed = se.CallbackStore(store.get, get_many=get_many)
    reading = Reading("/f", root, CachingStore(windowed, 1 << 20), 2)
    try:
        got = b"".join(reading.read(16384, offset) for offset in range(0, len(data), 16384))
    finally:
        reading.close()
    assert got == data
    assert asked and max(asked) > 1


def test_memory_follows_the_read_ahead_not_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    data = random.Random(12).randbytes(4 << 20)
    store = se.MemoryStore()
    root = se.encrypt_to_store(data, store, chunk_sizes=SIZES)
    monkeypatch.setattr(Reading, "AHEAD_BYTES", 256 << 10)
    reading = Reading("/f", root, CachingStore(store, 0), 2)
    buffer = bytearray(1 << 16)
    tracemalloc.start()
    try:
        reading.read(1, 0)  # the level walk and the first chunk before the baseline
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for offset in range(0, len(data), len(buffer)):
            count = reading.read_into(address_of(buffer), len(buffer), offset)
            assert buffer[:count] == data[offset : offset + count]
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
        reading.close()
    # The read-ahead (256 KiB by the map's sizes, plus its last chunk), the chunks kept
    # behind, their scratch buffers and the fetched contents: far below the 4 MiB file.
    assert peak < 2 << 20, peak
