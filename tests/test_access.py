"""StoreAccess: what the engine asks of a store, and the safe fallbacks where a store offers less."""

from __future__ import annotations

import hashlib
import os

import pytest

import self_encryption as se
from self_encryption.stores.access import StoreAccess, access


def _chunk(data: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(data).hexdigest(), data


class Minimal:
    """Only the required methods of a store, over a dict."""

    def __init__(self) -> None:
        self.chunks: dict[str, bytes] = {}
        self.gets = 0

    def put(self, name, data):
        self.chunks[name] = bytes(data)

    def get(self, name):
        self.gets += 1
        return self.chunks[name]

    def has(self, name):
        return name in self.chunks

    def delete(self, name):
        self.chunks.pop(name, None)

    def __iter__(self):
        return iter(list(self.chunks))


def test_a_minimal_store_gets_safe_fallbacks():
    store = Minimal()
    name, data = _chunk(b"x" * 100)
    wrapped = access(store)
    assert wrapped.store_chunk(name, data) == (100, False)
    assert wrapped.store_chunk(name, data) == (0, False)  # present: no touch to refresh it, not put again
    assert wrapped.size(name) == 100 and store.gets == 1  # no size(): read to measure
    assert wrapped.size("0" * 64) is None
    assert [entry.name for entry in wrapped.entries()] == [name]  # no scan(): names only
    assert not wrapped.tells_age and not wrapped.batched
    assert wrapped.remove_temporaries(0, delete=True) == 0
    with wrapped.writing(), wrapped.collecting(1.0):
        pass  # no locks: nothing held
    assert wrapped.set_aside(name) == "deleted"  # no quarantine(): deleted
    assert not wrapped.has(name)


def test_a_mapping_is_read_by_name_only():
    name, data = _chunk(b"y" * 10)

    class MappingWithMethods(dict):
        def get_many(self, names):  # a mapping's own method, not a store's
            raise AssertionError("a mapping is not asked for windows")

    wrapped = access(MappingWithMethods({name: data}))
    assert not wrapped.batched
    assert wrapped.get(name) == data
    with pytest.raises(se.ChunkNotFoundError):
        wrapped.get("0" * 64)
    with pytest.raises(se.StoreError, match="put"):
        wrapped.put(name, data)


def test_writers_need_put_and_has():
    with pytest.raises(se.InvalidArgumentError, match="put"):
        access({}, needs=("put", "has"))

    class WriteOnly:
        def put(self, name, data):
            pass

        def has(self, name):
            return False

    assert isinstance(access(WriteOnly(), needs=("put", "has")), StoreAccess)
    with pytest.raises(se.InvalidArgumentError, match="check_existing"):
        se.Encryptor(WriteOnly(), check_existing=True)
    assert isinstance(access(se.MemoryStore(), needs=("put", "has")), StoreAccess)
    with pytest.raises(se.InvalidArgumentError, match="chunks must be"):
        access(42)


def test_get_reads_no_more_than_the_map_says(tmp_path):
    store = se.DirStore(tmp_path / "store")
    name, data = _chunk(os.urandom(5000))
    store.put(name, data)
    assert len(access(store).get(name, 100)) == 101  # one byte more than asked: enough to see it is wrong
    assert access(store).get(name) == data


def test_a_window_leaves_out_absent_chunks_and_names_failures():
    present, data = _chunk(b"z" * 20)
    absent = "1" * 64
    memory = {present: data}
    wrapped = access(
        se.CallbackStore(memory.get, get_many=lambda names: {n: memory[n] for n in names if n in memory})
    )
    assert wrapped.get_window([present, absent, present]) == {present: data}

    def broken(names):
        raise OSError("connection reset")

    failing = access(se.CallbackStore(memory.get, get_many=broken))
    with pytest.raises(se.StoreError, match=f"{present} and others.*connection reset"):
        failing.get_window([present, absent])


def test_a_window_with_sizes_reads_at_most_each_size_where_the_store_can():
    present, data = _chunk(b"v" * 40)
    asked: list[object] = []

    class Bounded(Minimal):
        def get_many(self, names):
            asked.append(("get_many", list(names)))
            return {n: self.chunks[n] for n in names if n in self.chunks}

        def get_many_at_most(self, limits):
            asked.append(("get_many_at_most", dict(limits)))
            return {n: self.chunks[n][: limits[n]] for n in limits if n in self.chunks}

    store = Bounded()
    store.put(present, data)
    wrapped = access(store)
    assert wrapped.get_window([present, present], {present: 40}) == {present: data}
    assert wrapped.get_window([present]) == {present: data}  # sizes unknown: the whole object
    assert asked == [("get_many_at_most", {present: 41}), ("get_many", [present])]


def test_clock_lock_space_and_stale_locks_come_from_the_store_where_it_has_them(tmp_path):
    import time

    assert access(Minimal()).clock() is time.time  # no now(): this machine's clock
    with pytest.raises(se.InvalidArgumentError, match="has no locks"):
        access(Minimal()).lock_space()

    class Ahead(Minimal):
        def now(self):
            return time.time() + 3600  # a server an hour ahead

    assert 3590 < access(Ahead()).clock()() - time.time() < 3610
    folder = se.DirStore(tmp_path / "store")
    assert access(folder).lock_space().where == os.path.join(folder.path, ".locks")
    with access(folder).collecting(1.0) as stale:
        assert stale == ()  # nothing left behind by a killed holder
    with access(Minimal()).collecting(1.0) as stale:
        assert stale == ()


def test_unreadable_as_damaged_turns_read_failures_into_damage():
    name, data = _chunk(b"w" * 30)

    def get(asked):
        raise OSError("I/O error")

    wrapped = access(se.CallbackStore(get))
    with pytest.raises(se.StoreError):
        wrapped.get(name)
    with pytest.raises(se.ChunkIntegrityError, match="unreadable") as caught:
        wrapped.unreadable_as_damaged().get(name)
    assert caught.value.name == name
    assert not wrapped.is_sound(name)


def test_a_plain_get_function_is_a_read_only_store():
    # Upstream's callers hand over a function get(name) -> bytes: it is taken
    # wherever a store is read, and refused where one is written.
    data = os.urandom(300_000)
    data_map, chunks = se.encrypt(data)
    held = {chunk.name: chunk.content for chunk in chunks}
    asked: list[str] = []

    def get(name: str) -> bytes:
        asked.append(name)
        return held[name]

    assert se.decrypt(data_map, get) == data
    with se.open(data_map, get) as reader:
        reader.seek(1000)
        assert reader.read(5000) == data[1000:6000]
    assert se.verify(data_map, get, full=True).ok
    assert set(asked) == set(held)
    del held[sorted(held)[0]]
    with pytest.raises(se.ChunkNotFoundError):
        se.decrypt(data_map, get)
    assert not se.verify(data_map, get).ok

    def fails(name: str) -> bytes:
        raise OSError("connection reset")

    with pytest.raises(se.StoreError, match="connection reset"):
        se.decrypt(data_map, fails)
    with pytest.raises(se.InvalidArgumentError):
        se.encrypt_to_store(data, get)
    with pytest.raises(se.InvalidArgumentError, match="get"):
        se.decrypt(data_map, 42)
