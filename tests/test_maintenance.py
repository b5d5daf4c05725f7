"""verify, chunk_names and walk_levels: what a store holds of a file."""

from __future__ import annotations

import os

import pytest

import self_encryption as se
from helpers import SMALL_SIZES, levels_of


@pytest.fixture
def stored():
    """A file of several levels in a memory store: (data, root, store)."""
    data = os.urandom(30_000)
    store = se.MemoryStore()
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES, workers=2)
    assert root.level >= 2
    return data, root, store


def _at(levels, level, index):
    return levels[len(levels) - 1 - level].chunks[index].name


def test_walk_levels_goes_from_the_root_to_level_zero(stored):
    data, root, store = stored
    levels = levels_of(root, store)
    assert levels[0] == root
    assert [m.level for m in levels] == list(range(root.level, -1, -1))
    assert levels[-1].content_size == len(data)


def test_chunk_names_is_every_chunk_at_every_level(stored):
    _, root, store = stored
    names = se.chunk_names(root, store)
    assert names == set(store)  # the store holds this file only
    assert names == {c.name for m in levels_of(root, store) for c in m.chunks}


def test_a_sound_file_verifies_quick_and_full(stored):
    _, root, store = stored
    quick = se.verify(root, store)
    full = se.verify(root, store, full=True, workers=3)
    assert quick.ok and full.ok and not full.missing and not full.corrupt
    assert full.checked == sum(len(m.chunks) for m in levels_of(root, store))
    assert 0 < quick.checked < full.checked


def _damage(store, name):
    content = bytearray(store.get(name))
    content[len(content) // 2] ^= 0x10
    store._chunks[name] = bytes(content)  # a damaged copy under the right name


def test_missing_and_corrupt_chunks_of_a_map_level_in_one_report(stored):
    _, root, store = stored
    levels = levels_of(root, store)
    level1 = levels[-2]
    assert level1.level == 1 and len(level1.chunks) >= 3
    gone, bad = _at(levels, 1, 0), _at(levels, 1, len(level1.chunks) - 1)
    store.delete(gone)
    _damage(store, bad)
    report = se.verify(root, store, full=True)
    assert not report.ok
    assert not report.complete  # level 0 is read from these chunks: out of reach
    assert [(e.level, e.index, e.name) for e in report.missing] == [(1, 0, gone)]
    assert [(e.level, e.index, e.name) for e in report.corrupt] == [(1, len(level1.chunks) - 1, bad)]
    # Quick mode only asks whether chunks are there: it names the missing one.
    quick = se.verify(root, store)
    assert [(e.level, e.index) for e in quick.missing] == [(1, 0)] and not quick.complete


def test_missing_and_corrupt_at_level_0_are_all_listed(stored):
    _, root, store = stored
    levels = levels_of(root, store)
    count = len(levels[-1].chunks)
    gone, bad = _at(levels, 0, 0), _at(levels, 0, count // 2)
    store.delete(gone)
    _damage(store, bad)
    full = se.verify(root, store, full=True)
    assert full.complete
    assert [(e.index, e.name) for e in full.missing] == [(0, gone)]
    assert [(e.index, e.level, e.name) for e in full.corrupt] == [(count // 2, 0, bad)]
    assert full.checked == sum(len(m.chunks) for m in levels)
    quick = se.verify(root, store)  # probes first, middle and last: finds the missing one
    assert [e.name for e in quick.missing] == [gone] and not quick.corrupt


def test_verify_refuses_what_is_not_a_data_map():
    with pytest.raises(se.InvalidArgumentError):
        se.verify("se1:xyz", se.MemoryStore())  # type: ignore[arg-type]


def test_open_store_names(tmp_path):
    folder = se.open_store(str(tmp_path / "a"), create=True)
    assert isinstance(folder, se.DirStore) and (tmp_path / "a").is_dir()
    assert isinstance(se.open_store(tmp_path / "a"), se.DirStore)
    assert isinstance(se.open_store(f"file:{tmp_path / 'a'}"), se.DirStore)
    assert isinstance(se.open_store("memory:"), se.MemoryStore)
    with pytest.raises(se.StoreError, match="no store folder"):
        se.open_store(str(tmp_path / "missing"))
    with pytest.raises(se.InvalidArgumentError, match="unknown store scheme 'ftp'"):
        se.open_store("ftp://host/x")
    with pytest.raises(se.InvalidArgumentError, match="s3://BUCKET"):
        se.open_store("s3://")
    with pytest.raises(se.InvalidArgumentError):
        se.open_store(42)  # type: ignore[arg-type]
    data = os.urandom(5000)
    root = se.encrypt_to_store(data, folder, chunk_sizes=SMALL_SIZES)
    assert se.decrypt(root, se.open_store(str(tmp_path / "a"))) == data
