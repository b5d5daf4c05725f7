"""Round trips through the public API of the active backend."""

from __future__ import annotations

import array
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import self_encryption as se

from helpers import SMALL_SIZES, level0_of

MIN, AVG, MAX = SMALL_SIZES
EDGE_SIZES = [0, 1, MIN - 1, MIN, MIN + 1, AVG, MAX, MAX + 1, 3 * MAX + 17]


def _roundtrip(data, **options):
    data_map, chunks = se.encrypt(data, **options)
    assert se.decrypt(data_map, chunks) == bytes(data)
    assert data_map.file_size == len(data)
    assert len(data_map.chunks) <= 4
    assert se.DataMap.from_bytes(data_map.to_bytes()) == data_map
    assert se.DataMap.from_text(data_map.to_text()) == data_map
    return data_map, chunks


@pytest.mark.parametrize("size", EDGE_SIZES)
@pytest.mark.parametrize("level", [3, None])
def test_edge_sizes_small_chunks(size, level):
    data = os.urandom(size)
    data_map, chunks = _roundtrip(data, chunk_sizes=SMALL_SIZES, compression_level=level)
    if size == 0:
        assert data_map.chunks == () and chunks == []
    elif size <= MIN:
        assert [c.plain_size for c in data_map.chunks] == [size]


@pytest.mark.parametrize("size", [1, 262143, 262144, 262145, 1 << 20, (4 << 20) + 1])
def test_edge_sizes_default_chunks(size):
    data = os.urandom(size)
    data_map, _ = _roundtrip(data)
    if size <= 262144:
        assert len(data_map.chunks) == 1 and data_map.level == 0
    if size == (4 << 20) + 1:
        assert data_map.chunks[0].plain_size <= 4 << 20


def test_no_chunk_exceeds_max_and_only_last_is_below_min():
    data = os.urandom(20 * MAX)
    data_map, chunks = se.encrypt(data, chunk_sizes=SMALL_SIZES, compression_level=None)
    assert data_map.level >= 1  # many records, so the root is a higher level
    level0 = level0_of(data_map, chunks)
    sizes = [c.plain_size for c in level0.chunks]
    assert all(s <= MAX for s in sizes)
    assert all(s > MIN for s in sizes[:-1])
    assert sum(sizes) == len(data)


def test_multi_level_map():
    data = os.urandom(200_000)
    data_map, chunks = _roundtrip(data, chunk_sizes=SMALL_SIZES)
    assert data_map.level >= 2
    assert len(chunks) > 200


def test_compressible_data_is_stored_smaller():
    data = b"self-encryption " * 50_000
    _, chunks = _roundtrip(data)
    assert sum(len(c.content) for c in chunks) < len(data) // 10
    _, raw = _roundtrip(data, compression_level=None)
    assert sum(len(c.content) for c in raw) > len(data)


def test_equal_content_gives_equal_chunks():
    data = os.urandom(5000)
    first = se.encrypt(data, chunk_sizes=SMALL_SIZES)
    second = se.encrypt(bytes(data), chunk_sizes=SMALL_SIZES)
    assert first == second


def test_secret_changes_every_chunk():
    data = os.urandom(5000)
    _, plain = se.encrypt(data, chunk_sizes=SMALL_SIZES)
    secret_map, keyed = _roundtrip(data, chunk_sizes=SMALL_SIZES, convergence_secret=b"group key")
    assert not {c.name for c in plain} & {c.name for c in keyed}
    # The secret is not needed to decrypt, and a str secret is its UTF-8 bytes.
    assert se.encrypt(data, chunk_sizes=SMALL_SIZES, convergence_secret="group key")[0] == secret_map


def test_any_bytes_like_input():
    numbers = array.array("I", range(3000))
    data_map, chunks = se.encrypt(numbers, chunk_sizes=SMALL_SIZES)
    assert se.decrypt(data_map, chunks) == numbers.tobytes()
    assert se.encrypt(bytearray(numbers.tobytes()), chunk_sizes=SMALL_SIZES)[0] == data_map
    assert se.encrypt(memoryview(numbers), chunk_sizes=SMALL_SIZES)[0] == data_map


def test_decrypt_accepts_store_mapping_and_iterable():
    data = os.urandom(3000)
    data_map, chunks = se.encrypt(data, chunk_sizes=SMALL_SIZES)
    store = se.MemoryStore()
    for chunk in chunks:
        store.put(chunk.name, chunk.content)
    mapping = {chunk.name: chunk.content for chunk in chunks}
    assert se.decrypt(data_map, store) == data
    assert se.decrypt(data_map, mapping) == data
    assert se.decrypt(data_map, iter(chunks)) == data


def test_encrypt_to_store_round_trip_and_dedup():
    data = os.urandom(50_000)
    store = se.MemoryStore()
    data_map = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    assert data_map == se.encrypt(data, chunk_sizes=SMALL_SIZES)[0]
    assert se.decrypt(data_map, store) == data
    stored = len(store)
    assert se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES) == data_map
    assert len(store) == stored


@given(
    data=st.binary(max_size=6000),
    level=st.sampled_from([None, 1, 3, 19]),
    secret=st.binary(max_size=40),
)
def test_roundtrip_property(data, level, secret):
    _roundtrip(data, chunk_sizes=SMALL_SIZES, compression_level=level, convergence_secret=secret)


@given(
    pattern=st.binary(min_size=1, max_size=64),
    repeats=st.integers(min_value=1, max_value=400),
)
def test_roundtrip_repetitive(pattern, repeats):
    _roundtrip(pattern * repeats, chunk_sizes=SMALL_SIZES)
