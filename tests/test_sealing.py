"""Sealing and opening chunks (docs/format.md 2.3, 2.4 and 4): the neighbour rule, levels, roots."""

from __future__ import annotations

import os

import pytest

from self_encryption import ChunkIntegrityError, DataMap, _options, _sealing

from helpers import SMALL_SIZES


@pytest.mark.parametrize(
    ("index", "count", "expected"),
    [(0, 3, (2, 1)), (1, 3, (0, 2)), (2, 3, (1, 0)), (5, 9, (4, 3)), (0, 1, (0, 0)), (1, 2, (0, 1))],
)
def test_neighbours_are_the_two_before_wrapping(index, count, expected):
    assert _sealing.neighbours(index, count) == expected
    seeds = [bytes([n]) * 32 for n in range(count)]
    assert _sealing.neighbour_seeds(seeds, index) == (seeds[expected[0]], seeds[expected[1]])


def _level(backend, data: bytes):
    options = _options.make_options(chunk_sizes=SMALL_SIZES)
    sealed = _sealing.encrypt_level(backend, data, options)
    data_map = DataMap(0, len(data), tuple(chunk.record for chunk in sealed))
    return data_map, sealed, options


def test_a_level_opens_chunk_by_chunk(any_backend):
    data = os.urandom(5000)
    data_map, sealed, _ = _level(any_backend, data)
    assert len(sealed) > 3
    plain = b"".join(
        bytes(_sealing.unseal_chunk(any_backend, data_map, index, chunk.content))
        for index, chunk in enumerate(sealed)
    )
    assert plain == data


def test_a_chunk_opened_with_the_wrong_record_is_located(any_backend):
    data_map, sealed, _ = _level(any_backend, os.urandom(5000))
    with pytest.raises(ChunkIntegrityError) as caught:
        _sealing.unseal_chunk(any_backend, data_map, 1, sealed[2].content)
    assert (caught.value.index, caught.value.level, caught.value.name) == (1, 0, data_map.chunks[1].name)


def test_non_bytes_content_is_an_integrity_error(any_backend):
    data_map, _, _ = _level(any_backend, os.urandom(3000))
    with pytest.raises(ChunkIntegrityError, match="returned int"):
        _sealing.unseal_chunk(any_backend, data_map, 0, 12345)


def test_reseal_under_new_neighbours_matches_a_fresh_seal(any_backend):
    data_map, sealed, options = _level(any_backend, os.urandom(5000))
    other = bytes(32), b"\x01" * 32
    resealed = _sealing.reseal(any_backend, data_map, 0, sealed[0].content, *other)
    plain = bytes(_sealing.unseal_chunk(any_backend, data_map, 0, sealed[0].content))
    fresh = _sealing.seal_prepared(any_backend, _sealing.prepare_chunk(any_backend, plain, options), *other)
    assert resealed == fresh
    assert resealed.record.key_seed == data_map.chunks[0].key_seed
    assert resealed.record.name != data_map.chunks[0].name


def test_shrink_map_stops_at_a_root(any_backend):
    data_map, _, options = _level(any_backend, os.urandom(40_000))
    assert not data_map.is_root
    root, upper = _sealing.shrink_map(any_backend, data_map, options)
    assert root.is_root and root.level >= 1
    assert root.file_size == data_map.file_size
    names = {chunk.name for chunk in upper}
    assert {record.name for record in root.chunks} <= names
