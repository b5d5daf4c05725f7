"""Chunk stores: the protocol, the memory and folder stores, callbacks."""

from __future__ import annotations

import hashlib
import multiprocessing
import os

import pytest

import self_encryption as se

from helpers import SMALL_SIZES, in_threads


def _chunk(text: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(text).hexdigest(), text


def _dict_callback_store(backing: dict) -> se.CallbackStore:
    return se.CallbackStore(
        get=backing.get,
        put=backing.__setitem__,
        has=backing.__contains__,
        delete=lambda name: backing.pop(name, None),
        names=lambda: list(backing),
    )


@pytest.fixture(params=["memory", "dir", "callback"])
def store(request, tmp_path):
    if request.param == "memory":
        return se.MemoryStore()
    if request.param == "dir":
        return se.DirStore(tmp_path / "store")
    return _dict_callback_store({})


def test_protocol_operations(store):
    assert isinstance(store, se.ChunkStore)
    name, content = _chunk(b"hello")
    other, other_content = _chunk(b"world")
    assert not store.has(name)
    with pytest.raises(se.ChunkNotFoundError) as caught:
        store.get(name)
    assert caught.value.name == name
    store.put(name, content)
    store.put(name, content)  # idempotent
    store.put(other, bytearray(other_content))
    assert store.has(name) and store.get(name) == content
    assert bytes(store.get(other)) == other_content
    assert sorted(store) == sorted([name, other])
    store.delete(name)
    store.delete(name)  # absent: not an error
    assert not store.has(name) and list(store) == [other]


@pytest.mark.parametrize("bad", ["", "ab", "AB" * 32, "../" + "a" * 61, "g" * 64, b"a" * 64, None])
def test_bad_names_are_refused(store, bad):
    for call in (lambda: store.put(bad, b"x"), lambda: store.get(bad), lambda: store.has(bad)):
        with pytest.raises(se.InvalidArgumentError):
            call()


def test_round_trip_through_each_store(store):
    data = os.urandom(30_000)
    data_map = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    assert se.decrypt(data_map, store) == data


def test_dir_store_layout_and_no_temporaries(tmp_path):
    store = se.DirStore(tmp_path)
    data_map = se.encrypt_to_store(os.urandom(20_000), store, chunk_sizes=SMALL_SIZES)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(p.parent.name == p.name[:2] and p.parent.parent == tmp_path for p in files)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in files)
    assert sorted(store) == sorted(p.name for p in files)
    assert data_map.chunks[0].name in store
    # Stray files are not chunks.
    (tmp_path / "ab").mkdir(exist_ok=True)
    (tmp_path / "ab" / ".tmp-123").write_bytes(b"partial")
    (tmp_path / "README").write_text("not a chunk")
    assert sorted(store) == sorted(p.name for p in files)


def test_dir_store_reopens(tmp_path):
    data = os.urandom(5000)
    data_map = se.encrypt_to_store(data, se.DirStore(tmp_path / "s"), chunk_sizes=SMALL_SIZES)
    assert se.decrypt(data_map, se.DirStore(tmp_path / "s")) == data


def test_dir_store_errors(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(se.StoreError):
        se.DirStore(afile)
    store = se.DirStore(tmp_path / "s")
    name, content = _chunk(b"abc")
    (tmp_path / "s" / name[:2]).write_text("a file where a folder should be")
    with pytest.raises(se.StoreError, match=name):
        store.put(name, content)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_dir_store_read_only(tmp_path):
    store = se.DirStore(tmp_path / "s")
    os.chmod(tmp_path / "s", 0o500)
    try:
        with pytest.raises(se.StoreError):
            store.put(*_chunk(b"x"))
    finally:
        os.chmod(tmp_path / "s", 0o700)


def test_dir_store_concurrent_writers_threads(tmp_path):
    store = se.DirStore(tmp_path)
    shared = os.urandom(40_000)
    files = [shared + os.urandom(3000) for _ in range(6)]
    maps = in_threads(lambda data: se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES), files)
    for data, data_map in zip(files, maps):
        assert se.decrypt(data_map, store) == data
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def _write_chunks(path: str, payloads: list[bytes]) -> None:
    store = se.DirStore(path)
    for payload in payloads:
        store.put(*_chunk(payload))


def test_dir_store_concurrent_writers_processes(tmp_path):
    payloads = [os.urandom(64) * 100 for _ in range(30)]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_chunks, args=(str(tmp_path), payloads)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    store = se.DirStore(tmp_path)
    assert sorted(store) == sorted(_chunk(p)[0] for p in payloads)
    assert all(store.get(_chunk(p)[0]) == p for p in payloads)


def test_encrypt_to_store_puts_only_new_chunks():
    puts, backing = [], {}

    def put(name, data):
        puts.append(name)
        backing[name] = bytes(data)

    store = se.CallbackStore(get=backing.get, put=put)
    data = os.urandom(20_000)
    data_map = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    first = len(puts)
    assert first == len(se.encrypt(data, chunk_sizes=SMALL_SIZES)[1])
    assert se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES) == data_map
    assert len(puts) == first
    # A file sharing most of its content stores only its own new chunks.
    se.encrypt_to_store(data + b"tail", store, chunk_sizes=SMALL_SIZES)
    assert 0 < len(puts) - first < first // 2
    # Root chunks are put last: every put before them is a lower level.
    assert set(puts[first - len(data_map.chunks):first]) == {c.name for c in data_map.chunks}


def test_callback_store_without_optional_callbacks():
    backing = {}
    store = se.CallbackStore(get=lambda name: backing[name], put=backing.__setitem__)
    name, content = _chunk(b"x")
    assert not store.has(name)  # KeyError from get means absent
    store.put(name, content)
    assert store.has(name)
    with pytest.raises(se.StoreError, match="delete"):
        store.delete(name)
    with pytest.raises(se.StoreError, match="names"):
        list(store)
    with pytest.raises(se.InvalidArgumentError):
        se.CallbackStore(get=None, put=backing.__setitem__)  # type: ignore[arg-type]


def test_a_store_that_cannot_serve_threads_points_to_workers_1(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "chunks.db")  # usable only from the thread that made it
    db.execute("create table chunks (name text primary key, content blob)")

    def put(name, data):
        db.execute("insert or ignore into chunks values (?, ?)", (name, bytes(data)))

    def get(name):
        row = db.execute("select content from chunks where name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    store = se.CallbackStore(get, put)
    data = os.urandom(20_000)
    with pytest.raises(se.StoreError, match="workers=1"):
        se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES, workers=4)
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES, workers=1)
    assert se.decrypt(root, store, workers=1) == data
