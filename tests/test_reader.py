"""Random access: ChunkReader and se.open read only the chunks they need."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import self_encryption as se

from helpers import SMALL_SIZES, CountingStore, level0_of

SMALL = dict(chunk_sizes=SMALL_SIZES)


@pytest.fixture(scope="module")
def multi_level():
    data = os.urandom(120_000)
    store = se.MemoryStore()
    root = se.encrypt_to_store(data, store, **SMALL)
    assert root.level >= 2
    return data, root, store


@settings(max_examples=100)
@given(choice=st.data())
def test_ranged_reads(multi_level, choice):
    data, root, store = multi_level
    start = choice.draw(st.integers(0, len(data) + 50))
    length = choice.draw(st.integers(0, 5000))
    with se.open(root, store, workers=choice.draw(st.sampled_from([1, 2]))) as reader:
        reader.seek(start)
        assert reader.read(length) == data[start : start + length]
        assert reader.tell() == max(start, min(start + length, len(data)))


def test_reader_is_a_seekable_binary_file(multi_level, tmp_path):
    data, root, store = multi_level
    reader = se.open(root, store)
    assert isinstance(reader, io.RawIOBase)
    assert reader.readable() and reader.seekable() and not reader.writable()
    assert reader.size == len(data)
    assert reader.read() == data
    assert reader.read(10) == b""
    assert reader.seek(-100, io.SEEK_END) == len(data) - 100
    assert reader.read() == data[-100:]
    reader.seek(10)
    assert reader.seek(5, io.SEEK_CUR) == 15
    buffer = bytearray(1000)
    assert reader.readinto(buffer) == 1000 and bytes(buffer) == data[15:1015]
    with pytest.raises(ValueError):
        reader.seek(-1)
    reader.seek(0)
    with open(tmp_path / "copy", "wb") as out:
        shutil.copyfileobj(reader, out, 3000)
    assert (tmp_path / "copy").read_bytes() == data
    reader.seek(0)
    assert b"".join(iter(lambda: reader.read(4096), b"")) == data
    reader.close()
    with pytest.raises(ValueError):
        reader.read(1)
    buffered = io.BufferedReader(se.open(root, store))
    assert buffered.read(100) == data[:100]


def test_ranged_read_fetches_only_overlapping_chunks():
    data = os.urandom(200_000)
    plain = se.MemoryStore()
    root = se.encrypt_to_store(data, plain, **SMALL)
    level0 = level0_of(root, plain)
    map_chunks = {n for n in plain} - {c.name for c in level0.chunks}
    starts = [0]
    for record in level0.chunks:
        starts.append(starts[-1] + record.plain_size)
    store = CountingStore()
    for name in plain:
        se.MemoryStore.put(store, name, plain.get(name))
    with se.open(root, store, workers=1) as reader:
        for offset, length in [(starts[40] + 3, 10), (starts[90] - 2, 4), (starts[7], 4096)]:
            before = len(store.gets)
            reader.seek(offset)
            assert reader.read(length) == data[offset : offset + length]
            wanted = {
                level0.chunks[i].name
                for i in range(len(level0.chunks))
                if starts[i] < offset + length and starts[i + 1] > offset
            }
            fetched = set(store.gets[before:]) - map_chunks
            assert fetched == wanted
        # The map levels were fetched once, on the first read.
        assert sorted(n for n in store.gets if n in map_chunks) == sorted(map_chunks)


def test_sequential_reads_read_ahead():
    data = os.urandom(100_000)
    store = CountingStore()
    root = se.encrypt_to_store(data, store, **SMALL)
    with se.open(root, store, workers=3) as reader:
        assert reader.read(100) == data[:100]
        assert reader.read(100) == data[100:200]
        assert reader.read() == data[200:]


def test_reader_reports_damage(multi_level):
    data, root, store = multi_level
    damaged = {name: store.get(name) for name in store}
    level0 = level0_of(root, store)
    victim = level0.chunks[5]
    damaged[victim.name] = bytes(len(damaged[victim.name]))
    with se.open(root, damaged) as reader:
        assert reader.read(100) == data[:100]
        with pytest.raises(se.ChunkIntegrityError) as caught:
            reader.read()
    assert caught.value.index == 5 and caught.value.level == 0


def test_opening_one_map_many_times_fetches_its_levels_once():
    """50 random 4 KiB reads, each through a new se.open: one chunk fetch each, the levels once."""
    import random

    store = CountingStore()
    data = os.urandom(3 << 20)
    root = se.encrypt_to_store(data, store, chunk_sizes=(4096, 16384, 65536))
    level0 = level0_of(root, store)
    map_chunks = se.chunk_names(root, store) - {record.name for record in level0.chunks}
    assert root.level >= 1 and map_chunks  # the level-0 map is in the store, behind the root
    rng = random.Random(7)
    store.gets.clear()
    reads = 50
    for _ in range(reads):
        offset = rng.randrange(len(data) - 4096)
        with se.open(root, store, workers=1) as reader:
            reader.seek(offset)
            assert reader.read(4096) == data[offset : offset + 4096]
    level_gets = [name for name in store.gets if name in map_chunks]
    assert len(level_gets) <= len(map_chunks)  # the first open only (or none: cached before)
    file_gets = len(store.gets) - len(level_gets)
    assert reads <= file_gets <= 2 * reads  # a 4 KiB read touches one chunk, or two at a cut
