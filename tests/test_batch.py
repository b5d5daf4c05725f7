"""Stores that get several chunks at once: decrypt, readers and verify use get_many."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import pytest

import self_encryption as se

from helpers import SMALL_SIZES, levels_of


class Batching:
    """A memory store behind callbacks, counting get and get_many calls."""

    def __init__(self, store: se.MemoryStore, missing: set[str] = frozenset()) -> None:
        self.store, self.missing = store, set(missing)
        self.gets = self.batches = 0
        self.asked: list[int] = []
        self.lock = threading.Lock()

    def get(self, name):
        with self.lock:
            self.gets += 1
        return None if name in self.missing else self.store.get(name)

    def get_many(self, names):
        with self.lock:
            self.batches += 1
            self.asked.append(len(names))
        return {n: self.store.get(n) for n in names if n not in self.missing}

    def callback_store(self) -> se.CallbackStore:
        return se.CallbackStore(self.get, get_many=self.get_many)


@pytest.fixture
def stored():
    data = os.urandom(60_000)
    store = se.MemoryStore()
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    return data, root, store


@pytest.mark.parametrize("workers", [1, 4])
def test_decrypt_asks_for_windows_of_chunks(stored, workers):
    data, root, store = stored
    counting = Batching(store)
    assert se.decrypt(root, counting.callback_store(), workers=workers) == data
    chunks = sum(len(level.chunks) for level in levels_of(root, store))
    assert counting.batches > 0 and max(counting.asked) >= 8
    assert counting.gets + counting.batches < chunks / 4  # far fewer round trips than chunks
    assert sum(counting.asked) + counting.gets >= len(set(store))


@pytest.mark.parametrize("workers", [1, 3])
def test_decrypt_file_and_readers_through_get_many(stored, workers, tmp_path):
    data, root, store = stored
    counting = Batching(store)
    se.decrypt_file(root, counting.callback_store(), tmp_path / "out", workers=workers)
    assert (tmp_path / "out").read_bytes() == data
    with se.open(root, counting.callback_store(), workers=workers) as reader:
        pieces = []
        while piece := reader.read(3000):
            pieces.append(piece)
    assert b"".join(pieces) == data
    if workers > 1:
        assert counting.batches > 1


def test_a_chunk_missing_from_get_many_is_named(stored):
    data, root, store = stored
    victim = levels_of(root, store)[-1].chunks[20]
    counting = Batching(store, missing={victim.name})
    with pytest.raises(se.ChunkNotFoundError) as caught:
        se.decrypt(root, counting.callback_store())
    assert (caught.value.name, caught.value.index, caught.value.level) == (victim.name, 20, 0)
    report = se.verify(root, counting.callback_store(), full=True)
    assert [e.name for e in report.missing] == [victim.name] and counting.batches > 1
    # A read of a chunk that is there succeeds, even when its read-ahead window is not whole.
    with se.open(root, counting.callback_store(), workers=3) as reader:
        start = sum(c.plain_size for c in levels_of(root, store)[-1].chunks[:17])
        reader.seek(start)
        assert reader.read(10) == data[start : start + 10]


def test_get_many_must_return_a_mapping(stored):
    _, root, store = stored
    broken = se.CallbackStore(store.get, get_many=lambda names: [store.get(n) for n in names])
    with pytest.raises(se.StoreError, match="not a mapping"):
        se.decrypt(root, broken)
    with pytest.raises(se.InvalidArgumentError):
        se.CallbackStore(store.get, get_many="yes")


def test_a_damaged_chunk_raised_by_get_many_is_placed_and_the_rest_still_checked(stored):
    data, root, store = stored
    level0 = levels_of(root, store)[-1]
    victim, other = level0.chunks[12], level0.chunks[30]

    def get_many(names):
        for name in (victim.name, other.name):
            if name in names:
                raise se.ChunkIntegrityError("does not match its name", name=name)
        return {n: store.get(n) for n in names}

    def get(name):
        if name in (victim.name, other.name):
            return b"damaged"
        return store.get(name)

    with pytest.raises(se.ChunkIntegrityError) as caught:
        se.decrypt(root, se.CallbackStore(get, get_many=get_many))
    assert (caught.value.name, caught.value.index, caught.value.level) == (victim.name, 12, 0)
    report = se.verify(root, se.CallbackStore(get, get_many=get_many), full=True)
    assert sorted((e.index, e.name) for e in report.corrupt) == [(12, victim.name), (30, other.name)]


class FailingLookups(Mapping):
    """What a lazy get_many returns: a mapping that fetches on lookup, and whose fetch fails."""

    def __init__(self, names, error: Exception) -> None:
        self.names, self.error = list(names), error

    def __getitem__(self, name):
        raise self.error

    def __iter__(self):
        return iter(self.names)

    def __len__(self):
        return len(self.names)


@pytest.mark.parametrize("error", [RuntimeError("lazy fetch failed"), TypeError("bad"), ValueError("bad")])
def test_a_get_many_whose_lookups_fail_is_a_store_error_naming_the_chunk(stored, tmp_path, error):
    data, root, store = stored
    names = {record.name for level in levels_of(root, store) for record in level.chunks}
    failing = se.CallbackStore(store.get, get_many=lambda asked: FailingLookups(asked, error))

    def named_store_error(run) -> None:
        with pytest.raises(se.StoreError) as caught:
            run()
        assert type(error).__name__ in str(caught.value)
        assert any(name in str(caught.value) for name in names), caught.value

    named_store_error(lambda: se.decrypt(root, failing))
    named_store_error(lambda: se.decrypt_file(root, failing, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    named_store_error(lambda: se.open(root, failing).read())
    # verify reads a window that failed again chunk by chunk (with get, sound here) and reports
    # a chunk the store cannot read as unreadable instead of stopping: nothing escapes.
    assert se.verify(root, failing, full=True).ok

    def broken_get(name):
        raise error

    report = se.verify(root, se.CallbackStore(broken_get, get_many=failing.get_many), full=True)
    assert report.unreadable and not report.ok and not report.complete
    assert all(type(error).__name__ in e.reason and e.name in names for e in report.unreadable)


def test_a_key_error_from_get_many_names_the_chunk_it_carries(stored):
    data, root, store = stored
    level0 = levels_of(root, store)[-1]
    victim = level0.chunks[5]

    def get_many(names):
        if victim.name in names:
            raise KeyError(victim.name)
        return {n: store.get(n) for n in names}

    with pytest.raises(se.ChunkNotFoundError) as caught:
        se.decrypt(root, se.CallbackStore(store.get, get_many=get_many))
    assert (caught.value.name, caught.value.index, caught.value.level) == (victim.name, 5, 0)
