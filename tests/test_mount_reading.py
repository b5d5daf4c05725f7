"""A mount's read-only handles without FUSE: reads into a buffer, two requests at once, the shared cache."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

import self_encryption as se
from self_encryption.mount._cache import CachingStore
from self_encryption.mount._reading import Reading


@pytest.fixture
def reading(read_file: tuple[bytes, se.DataMap, se.MemoryStore]) -> Iterator[Reading]:
    _, root, store = read_file
    opened = Reading("/f", root, CachingStore(store, 1 << 20), 2)
    yield opened
    opened.close()


def test_reads_give_the_file(read_file: tuple[bytes, se.DataMap, se.MemoryStore], reading: Reading) -> None:
    data = read_file[0]
    got = b"".join(reading.read(131072, offset) for offset in range(0, len(data) + 131072, 131072))
    assert got == data
    rng = random.Random(5)
    for _ in range(100):
        offset = rng.randrange(len(data) + 100)
        size = rng.choice([1, 4096, 70_000, 300_000])
        assert reading.read(size, offset) == data[offset : offset + size]
    reading.close()
    assert reading.read(10, 0) == b""  # a request after release gets nothing, not an error


def test_two_requests_of_one_handle_at_once_get_their_bytes(
    read_file: tuple[bytes, se.DataMap, se.MemoryStore], reading: Reading
) -> None:
    # The kernel may have two read-ahead requests of one file in flight: both are served whole.
    data = read_file[0]
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
    read_file: tuple[bytes, se.DataMap, se.MemoryStore],
) -> None:
    data, root, store = read_file
    *uppers, level0 = se.walk_levels(root, store)
    map_chunks = sum(chunk.stored_size for level in uppers for chunk in level.chunks)
    cache = CachingStore(store, 1 << 20)
    whole = Reading("/f", root, cache, 2)
    try:
        assert whole.read(len(data), 0) == data  # one read, not sequential: opened in this thread
    finally:
        whole.close()
    assert cache.held >= sum(chunk.stored_size for chunk in level0.chunks)  # what it fetched is kept
    hits = cache.hits
    again = Reading("/f", root, cache, 2)
    try:
        assert b"".join(again.read(8192, offset) for offset in range(0, len(data), 8192)) == data
    finally:
        again.close()
    assert cache.hits - hits >= len(level0.chunks)  # the read-ahead was served from the cache
    streaming_cache = CachingStore(store, 1 << 20)
    streamer = Reading("/f", root, streaming_cache, 2)
    try:
        assert b"".join(streamer.read(8192, offset) for offset in range(0, len(data), 8192)) == data
    finally:
        streamer.close()
    # The map's levels and the first (not sequential) read are kept; what was read ahead is not.
    assert streaming_cache.held - map_chunks <= max(chunk.stored_size for chunk in level0.chunks)
