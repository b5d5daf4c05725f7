"""verify, chunk_names and walk_levels: what a store holds of a file."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import time

import pytest

import self_encryption as se

from helpers import SMALL_SIZES, level0_of, levels_of, store_lock_is_held


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


# -- repair --------------------------------------------------------------------------


def _break(path, damage: str) -> None:
    content = path.read_bytes()
    if damage == "flip":
        path.write_bytes(content[:20] + bytes([content[20] ^ 1]) + content[21:])
    elif damage == "truncate":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # "unreadable": a folder where the chunk file should be
        path.unlink()
        path.mkdir()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "unreadable"])
@pytest.mark.parametrize("level", [0, 1])
def test_repair_sets_damage_aside_and_encrypting_again_restores_it(tmp_path, damage, level):
    store = se.DirStore(tmp_path / "store")
    data = os.urandom(30_000)
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    levels = levels_of(root, store)
    victim = _at(levels, level, 1)
    path = tmp_path / "store" / victim[:2] / victim
    _break(path, damage)
    before = se.verify(root, store, full=True, repair=False) if damage != "unreadable" else None
    if before is not None:
        assert [e.name for e in before.corrupt] == [victim] and not before.quarantined
    report = se.verify(root, store, full=True, repair=True)
    assert [e.name for e in report.corrupt] == [victim]
    assert report.quarantined == ((victim, f"moved to {store.quarantine_path}/{victim}"),)
    assert os.listdir(store.quarantine_path) == [victim]
    assert not os.path.lexists(path) and victim not in set(store)
    # Now it is simply missing, and encrypting the file again puts it back.
    assert [e.name for e in se.verify(root, store, full=True).missing] == [victim]
    assert se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES) == root
    assert se.verify(root, store, full=True).ok and se.decrypt(root, store) == data


def test_repair_needs_full_mode_and_a_store_that_can_set_aside(stored):
    _, root, store = stored
    with pytest.raises(se.InvalidArgumentError, match="full"):
        se.verify(root, store, repair=True)
    name = _at(levels_of(root, store), 0, 0)
    _damage(store, name)
    report = se.verify(root, store, full=True, repair=True)
    assert report.quarantined == ((name, "moved to the memory store's quarantined chunks"),)
    plain = {n: store.get(n) for n in store}  # a mapping can be read, not repaired
    plain[_at(levels_of(root, store), 0, 1)] = b"bad"
    with pytest.raises(se.StoreError, match="neither quarantine nor delete"):
        se.verify(root, plain, full=True, repair=True)


# -- garbage collection --------------------------------------------------------------


def _age_all(store: se.DirStore, seconds: float) -> None:
    for name in store:
        path = store._path_of(name)
        stamp = os.stat(path).st_mtime - seconds
        os.utime(path, (stamp, stamp))


@pytest.fixture
def two_files(tmp_path):
    """keep and drop, sharing content, in one folder store: (store, keep, drop) with (data, root)."""
    store = se.DirStore(tmp_path / "store")
    shared = os.urandom(20_000)
    keep_data, drop_data = shared + os.urandom(8000), os.urandom(8000) + shared
    keep = keep_data, se.encrypt_to_store(keep_data, store, chunk_sizes=SMALL_SIZES)
    drop = drop_data, se.encrypt_to_store(drop_data, store, chunk_sizes=SMALL_SIZES)
    return store, keep, drop


def test_collect_garbage_deletes_only_old_unreferenced_chunks(two_files):
    store, (keep_data, keep_root), (drop_data, drop_root) = two_files
    needed = se.chunk_names(keep_root, store)
    unreferenced = set(store) - needed
    assert unreferenced
    young = se.collect_garbage(store, [keep_root], delete=True)  # default grace: an hour
    assert young.names == () and young.chunks_young == len(unreferenced)
    assert young.chunks_total == young.chunks_kept == len(needed) + len(unreferenced)
    assert young.chunks_referenced == len(needed) and set(store) == needed | unreferenced
    _age_all(store, 7200)
    dry = se.collect_garbage(store, iter([keep_root]))
    assert set(dry.names) == unreferenced and not dry.deleted
    assert dry.bytes_freed == sum(store.size(n) for n in unreferenced)
    assert set(store) == needed | unreferenced
    done = se.collect_garbage(store, [keep_root], delete=True, workers=3)
    assert set(done.names) == unreferenced and done.deleted and done.bytes_freed == dry.bytes_freed
    assert set(store) == needed and se.decrypt(keep_root, store) == keep_data


def test_an_encrypt_refreshes_chunks_so_gc_spares_them(two_files):
    store, (_, keep_root), (drop_data, drop_root) = two_files
    _age_all(store, 7200)
    se.encrypt_to_store(drop_data, store, chunk_sizes=SMALL_SIZES)  # the dropped file, again
    report = se.collect_garbage(store, [keep_root], delete=True)
    assert report.names == () and se.decrypt(drop_root, store) == drop_data


def test_collect_garbage_removes_old_leftover_temporaries(two_files):
    store, (_, keep_root), _ = two_files
    folder = os.path.join(store.path, next(iter(store))[:2])
    old, new = os.path.join(folder, ".tmp-killed"), os.path.join(folder, ".tmp-writing")
    for path in (old, new):
        with open(path, "wb") as handle:
            handle.write(b"part of a chunk")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert se.collect_garbage(store, [keep_root]).temp_files_removed == 1  # would be
    assert os.path.exists(old)
    assert se.collect_garbage(store, [keep_root], delete=True).temp_files_removed == 1
    assert not os.path.exists(old) and os.path.exists(new)
    assert se.collect_garbage(store, [keep_root], delete=True, grace=0).temp_files_removed == 1
    assert not os.path.exists(new)


def test_kept_maps_are_read_under_the_lock_and_a_busy_store_fails(two_files):
    store, (_, keep_root), _ = two_files

    def kept():
        assert store_lock_is_held(store.path)  # consumed only once gc holds the lock
        yield keep_root

    se.collect_garbage(store, kept(), delete=True, grace=0)
    with store.writing():
        started = time.monotonic()
        with pytest.raises(se.StoreBusyError, match=re.escape(store.lock_path)):
            se.collect_garbage(store, [keep_root], delete=True, grace=0, lock_wait=0.3)
        assert time.monotonic() - started >= 0.3


def test_collect_garbage_refuses_what_it_cannot_judge(two_files):
    store, (_, keep_root), (_, drop_root) = two_files
    top = drop_root.chunks[0].name
    os.unlink(store._path_of(top))
    before = set(store)
    with pytest.raises(se.ChunkNotFoundError) as caught:
        se.collect_garbage(store, [keep_root, drop_root], delete=True, grace=0)
    assert caught.value.name == top and set(store) == before
    backing = {n: store.get(n) for n in store}
    ageless = se.CallbackStore(
        get=backing.get, put=backing.__setitem__, delete=backing.pop, names=lambda: list(backing)
    )
    with pytest.raises(se.InvalidArgumentError, match="grace=0"):
        se.collect_garbage(ageless, [keep_root])
    report = se.collect_garbage(ageless, [keep_root], delete=True, grace=0)
    assert set(backing) == se.chunk_names(keep_root, store) and report.bytes_freed > 0
    for bad in (-1, "1h", float("nan")):
        with pytest.raises(se.InvalidArgumentError):
            se.collect_garbage(store, [keep_root], grace=bad)


# -- linked folders: gc and repair never reach out of the store ----------------------------


def _store_with_garbage(path, size=20_000):
    """A folder store holding one file and one unreferenced file, both old: (store, kept root, data)."""
    store = se.DirStore(path)
    data = os.urandom(size)
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    se.encrypt_to_store(os.urandom(size), store, chunk_sizes=SMALL_SIZES)
    _age_all(store, 7200)
    return store, root, data


def _foreign_prefix(ours: se.DirStore, theirs: se.DirStore) -> str:
    """A fan-out prefix that theirs holds chunks under and ours holds none under."""
    mine = {name[:2] for name in ours}
    return next(prefix for prefix in sorted({name[:2] for name in theirs}) if prefix not in mine)


def test_gc_never_enters_nor_deletes_through_a_linked_fanout_folder(tmp_path):
    ours, root, data = _store_with_garbage(tmp_path / "ours")
    theirs = se.DirStore(tmp_path / "theirs")
    se.encrypt_to_store(os.urandom(40_000), theirs, chunk_sizes=SMALL_SIZES)
    _age_all(theirs, 7200)
    prefix = _foreign_prefix(ours, theirs)
    outside = sorted(os.listdir(tmp_path / "theirs" / prefix))
    os.symlink(tmp_path / "theirs" / prefix, tmp_path / "ours" / prefix)
    report = se.collect_garbage(ours, [root], delete=True, grace=0)
    assert sorted(os.listdir(tmp_path / "theirs" / prefix)) == outside  # nothing deleted there
    assert report.names and report.skipped == (str(tmp_path / "ours" / prefix),)
    # Listing and scanning leave the linked folder out, and say so.
    assert not {name for name in ours if name.startswith(prefix)}
    assert not [entry for entry in ours.scan() if entry.name.startswith(prefix)]
    assert ours.skipped_folders() == [str(tmp_path / "ours" / prefix)]
    assert se.decrypt(root, ours) == data
    # Deleting or storing a chunk by name through the link is refused too, and what is
    # there counts as absent, as reads refuse it.
    with pytest.raises(se.StoreError, match="is a link"):
        ours.delete(outside[0])
    assert not ours.has(outside[0]) and outside[0] not in ours
    with pytest.raises(se.StoreError, match="is a link"):
        ours.put(outside[0], theirs.get(outside[0]))
    content = os.urandom(100)
    while hashlib.sha256(content).hexdigest()[:2] != prefix:
        content = os.urandom(100)
    with pytest.raises(se.StoreError, match="is a link"):
        ours.put(hashlib.sha256(content).hexdigest(), content)
    assert sorted(os.listdir(tmp_path / "theirs" / prefix)) == outside


def test_repair_never_moves_a_chunk_through_a_linked_fanout_folder(tmp_path):
    store, root, data = _store_with_garbage(tmp_path / "store")
    victim = level0_of(root, store).chunks[1].name
    # The fan-out folder holding a needed chunk is moved out of the store and linked back in.
    os.rename(tmp_path / "store" / victim[:2], tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", tmp_path / "store" / victim[:2])
    outside = sorted(os.listdir(tmp_path / "elsewhere"))
    report = se.verify(root, store, full=True)
    assert report.corrupt and all(e.name[:2] == victim[:2] for e in report.corrupt)
    assert all("leads out of the store" in e.reason for e in report.corrupt)
    with pytest.raises(se.StoreError, match="is a link"):
        se.verify(root, store, full=True, repair=True)
    assert sorted(os.listdir(tmp_path / "elsewhere")) == outside
    assert not os.path.lexists(store.quarantine_path) or not os.listdir(store.quarantine_path)


def test_repair_refuses_a_quarantine_that_is_a_link_or_not_a_folder(tmp_path):
    store, root, data = _store_with_garbage(tmp_path / "store")
    victim = level0_of(root, store).chunks[1].name
    path = tmp_path / "store" / victim[:2] / victim
    _break(path, "flip")
    damaged = path.read_bytes()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", store.quarantine_path)
    with pytest.raises(se.StoreError, match=re.escape(store.quarantine_path)):
        se.verify(root, store, full=True, repair=True)
    assert path.read_bytes() == damaged and os.listdir(tmp_path / "outside") == []
    os.unlink(store.quarantine_path)
    (tmp_path / "store" / "quarantine").write_text("a file, not a folder")
    with pytest.raises(se.StoreError, match=re.escape(store.quarantine_path)):
        se.verify(root, store, full=True, repair=True)
    assert path.read_bytes() == damaged
    os.unlink(store.quarantine_path)  # a real folder: the repair goes ahead
    report = se.verify(root, store, full=True, repair=True)
    assert report.quarantined == ((victim, f"moved to {store.quarantine_path}/{victim}"),)


# -- gc with maps of another store -------------------------------------------------------


def test_gc_refuses_a_map_whose_chunks_are_not_in_the_store(tmp_path):
    ours, root, data = _store_with_garbage(tmp_path / "ours")
    theirs = se.DirStore(tmp_path / "theirs")
    other = se.encrypt_to_store(os.urandom(250), theirs, chunk_sizes=SMALL_SIZES)  # at most 3 chunks
    assert other.level == 0  # its chunk names are all in the root: nothing fails to load
    before = set(ours)
    with pytest.raises(se.GcRefusedError) as caught:
        se.collect_garbage(ours, [other], delete=True, grace=0)
    assert caught.value.exit_code == 3 and isinstance(caught.value, se.DataMapError)
    assert caught.value.map_index is None and caught.value.missing == len(other.chunks)
    assert set(ours) == before
    # Even when told some chunks may be missing: none of them is here.
    with pytest.raises(se.GcRefusedError):
        se.collect_garbage(ours, [other], delete=True, grace=0, allow_missing=True)
    # Beside a map of this store, the foreign map is named by its place in keep.
    with pytest.raises(se.GcRefusedError) as caught:
        se.collect_garbage(ours, [root, other], delete=True, grace=0)
    assert caught.value.map_index == 1 and caught.value.missing == caught.value.needed == len(other.chunks)
    assert set(ours) == before


def test_gc_refuses_a_kept_map_with_missing_chunks_unless_allowed(tmp_path):
    store, root, data = _store_with_garbage(tmp_path / "store")
    needed = se.chunk_names(root, store)
    lost = level0_of(root, store).chunks[2].name
    store.delete(lost)
    before = set(store)
    with pytest.raises(se.GcRefusedError) as caught:
        se.collect_garbage(store, [root], delete=True, grace=0)
    assert (caught.value.map_index, caught.value.missing, caught.value.needed) == (0, 1, len(needed))
    assert set(store) == before
    report = se.collect_garbage(store, [root], delete=True, grace=0, allow_missing=True)
    assert report.names and set(store) == needed - {lost}


# -- reads that fail are not damage --------------------------------------------------------


class FlakyStore(se.DirStore):
    """A folder store whose reads of some chunks fail (EIO) or come back damaged, a set number of times.

    Like a disk or network file system with passing faults: the file on disk is sound throughout.
    """

    def __init__(self, path, *, failing=None, garbling=None):
        super().__init__(path)
        self.failing = dict(failing or {})  # name -> reads left that fail with EIO
        self.garbling = dict(garbling or {})  # name -> reads left that return flipped bytes
        self.reads = []

    def get_at_most(self, name, limit):
        self.reads.append(name)
        if self.failing.get(name, 0) > 0:
            self.failing[name] -= 1
            raise OSError(errno.EIO, os.strerror(errno.EIO), self._path_of(name))
        content = super().get_at_most(name, limit)
        if self.garbling.get(name, 0) > 0:
            self.garbling[name] -= 1
            return content[:10] + bytes([content[10] ^ 1]) + content[11:]
        return content


def _flaky(tmp_path, level):
    """(store path, root, data, victim at level): a file stored, the victim a chunk of that level."""
    plain = se.DirStore(tmp_path / "store")
    data = os.urandom(30_000)
    root = se.encrypt_to_store(data, plain, chunk_sizes=SMALL_SIZES)
    assert root.level >= 2
    return tmp_path / "store", root, data, _at(levels_of(root, plain), level, 1)


@pytest.mark.parametrize("level", [0, 1])
def test_verify_full_reports_unreadable_chunks_apart_and_goes_on(tmp_path, level):
    path, root, data, victim = _flaky(tmp_path, level)
    plain = se.DirStore(path)
    corrupt = level0_of(root, plain).chunks[-2].name  # a whole chunk: the last may be a few bytes
    _break(path / corrupt[:2] / corrupt, "flip")
    store = FlakyStore(path, failing={victim: 10**6})  # never readable
    report = se.verify(root, store, full=True)
    assert [e.name for e in report.unreadable] == [victim] and not report.ok
    assert report.unreadable[0].level == level and report.unreadable[0].index == 1
    assert "Input/output error" in report.unreadable[0].reason
    assert isinstance(report.unreadable[0], se.StoreError)
    assert not report.missing
    if level == 0:  # the rest of the file was checked: the corrupt chunk is found as well
        assert [e.name for e in report.corrupt] == [corrupt]
        assert report.checked == sum(len(m.chunks) for m in levels_of(root, plain)) and report.complete
    else:  # the levels below an unreadable map chunk are out of reach
        assert not report.complete
    # Repair sets the corrupt chunk aside and never the unreadable one.
    repaired = se.verify(root, store, full=True, repair=True)
    assert victim not in dict(repaired.quarantined) and (path / victim[:2] / victim).is_file()
    assert [e.name for e in repaired.unreadable] == [victim]


@pytest.mark.parametrize("fault", ["failing", "garbling"])
@pytest.mark.parametrize("level", [0, 1])
def test_repair_keeps_a_sound_chunk_whose_read_failed_in_passing(tmp_path, level, fault):
    path, root, data, victim = _flaky(tmp_path, level)
    content = (path / victim[:2] / victim).read_bytes()
    store = FlakyStore(path, **{fault: {victim: 1}})
    report = se.verify(root, store, full=True, repair=True)
    assert report.quarantined == () and not report.corrupt and not report.missing
    assert [e.name for e in report.unreadable] == [victim]
    if fault == "garbling":
        assert "then sound" in report.unreadable[0].reason
    assert (path / victim[:2] / victim).read_bytes() == content
    assert not os.path.lexists(se.DirStore(path).quarantine_path)
    assert se.verify(root, store, full=True).ok and se.decrypt(root, store) == data
