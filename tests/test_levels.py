"""A map's levels in a store (_levels): fetching, the walk from root to level 0, views and caches."""

from __future__ import annotations

import os

import pytest

import self_encryption as se
from self_encryption import _levels
from self_encryption.stores.access import access

from helpers import SMALL_SIZES, CountingStore


@pytest.fixture
def stored(any_backend):
    store = CountingStore()
    data = os.urandom(60_000)
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    assert root.level >= 2  # several levels above the file's own chunks
    return any_backend, root, store, data


def test_the_walk_goes_from_the_root_down_one_level_at_a_time(stored):
    backend, root, store, data = stored
    levels = list(_levels.walk_levels(backend, root, access(store)))
    assert [level.level for level in levels] == list(range(root.level, -1, -1))
    assert all(level.file_size == len(data) for level in levels)
    assert _levels.level_zero(backend, root, access(store)) == levels[-1]


def test_fetch_chunks_places_a_missing_chunk_in_its_map(stored):
    backend, root, store, _ = stored
    level0 = _levels.level_zero(backend, root, access(store))
    victim = level0.chunks[3].name
    store.delete(victim)
    with pytest.raises(se.ChunkNotFoundError) as caught:
        _levels.fetch_chunks(level0, access(store), [2, 3, 4])
    assert (caught.value.index, caught.value.level, caught.value.name) == (3, 0, victim)


def test_a_child_map_that_does_not_belong_to_its_parent_is_refused(stored):
    backend, root, store, _ = stored
    levels = list(_levels.walk_levels(backend, root, access(store)))
    parent = levels[-2]
    with pytest.raises(se.DataMapError, match="holds a level-1 map"):
        _levels.child_map(parent, parent.to_bytes())  # a level-1 map where level 0 belongs
    other = se.encrypt_to_store(os.urandom(50_000), store, chunk_sizes=SMALL_SIZES)
    foreign = _levels.level_zero(backend, other, access(store))
    with pytest.raises(se.DataMapError, match="differs from its parent"):
        _levels.child_map(parent, foreign.to_bytes())  # another file's level 0
    with pytest.raises(se.DataMapError, match="malformed"):
        _levels.child_map(parent, b"not a map")


def test_the_view_locates_offsets(stored):
    backend, root, store, data = stored
    view = _levels.Level0View(_levels.level_zero(backend, root, access(store)))
    assert view.locate(0) == 0 and view.locate(len(data) - 1) == len(view) - 1
    for index in range(len(view)):
        assert view.end(index) - view.start(index) == view.map.chunks[index].plain_size
        assert view.locate(view.start(index)) == index


def test_the_level0_cache_walks_a_root_once_and_stays_bounded(stored):
    backend, root, store, _ = stored
    cache = _levels.Level0Cache(entries=2, records=10_000)
    store.gets.clear()
    first = cache.level_zero(backend, root, access(store))
    walked = len(store.gets)
    assert walked and cache.level_zero(backend, root, access(store)) is first
    assert len(store.gets) == walked  # the second time, nothing fetched
    others = [se.encrypt_to_store(os.urandom(40_000), store, chunk_sizes=SMALL_SIZES) for _ in range(2)]
    for other in others:
        cache.level_zero(backend, other, access(store))
    store.gets.clear()
    cache.level_zero(backend, root, access(store))  # pushed out by the two newer ones
    assert store.gets
    tiny = _levels.Level0Cache(records=1)
    tiny.level_zero(backend, root, access(store))
    store.gets.clear()
    tiny.level_zero(backend, root, access(store))  # larger than the bound: never held
    assert store.gets


def test_a_cached_level0_map_is_never_used_for_another_store(stored):
    backend, root, store, _ = stored
    cache = _levels.Level0Cache()
    cache.level_zero(backend, root, access(store))
    damaged = dict(store._chunks)  # the same chunks, one map chunk spoiled
    name = root.chunks[0].name
    damaged[name] = bytes([damaged[name][0] ^ 1]) + damaged[name][1:]
    with pytest.raises(se.ChunkIntegrityError):
        cache.level_zero(backend, root, access(damaged))  # read, and checked, from this store
    with pytest.raises(se.ChunkIntegrityError):
        se.decrypt(root, damaged)  # the same verdict as every other path
