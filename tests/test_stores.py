"""Chunk stores: the protocol, the memory and folder stores, callbacks."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

import self_encryption as se

from helpers import SMALL_SIZES, in_threads, level0_of, levels_of


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
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != tmp_path / ".lock"]
    assert (tmp_path / ".lock").is_file()  # the store lock, taken by writers
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
    assert set(puts[first - len(data_map.chunks) : first]) == {c.name for c in data_map.chunks}


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


def test_a_store_that_cannot_serve_threads_points_to_concurrency_1(tmp_path):
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
    with pytest.raises(se.StoreError, match=r"concurrency=1\)\), or pass store_concurrency=1"):
        se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES, workers=4)
    # Bound to its thread: one worker and one request at a time keep every call in it.
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES, workers=1, store_concurrency=1)
    assert se.decrypt(root, store, workers=1, store_concurrency=1) == data
    alone = se.CallbackStore(get, put, concurrency=1)
    assert se.decrypt(root, alone, workers=1) == data
    with se.open(root, alone, workers=1) as reader:
        assert reader.read() == data


# -- health: ages, refreshing, quarantine, repair, locks, modes -----------------------


def _age(store, name: str, seconds: float) -> None:
    """Make a stored chunk look stored seconds ago."""
    if isinstance(store, se.DirStore):
        stamp = os.stat(store._path_of(name)).st_mtime - seconds
        os.utime(store._path_of(name), (stamp, stamp))
    else:
        store._times[name] -= seconds


@pytest.mark.parametrize("kind", ["memory", "dir"])
def test_mtime_touch_and_scan(kind, tmp_path):
    store = se.MemoryStore() if kind == "memory" else se.DirStore(tmp_path / "s")
    name, content = _chunk(b"aging")
    with pytest.raises(se.ChunkNotFoundError):
        store.mtime(name)
    assert store.touch(name) is False
    store.put(name, content)
    assert abs(store.mtime(name) - time.time()) < 5
    _age(store, name, 7200)
    assert time.time() - store.mtime(name) > 7000
    assert [tuple(e) for e in store.scan()] == [(name, len(content), store.mtime(name))]
    store.put(name, content)  # a put of a present chunk changes nothing...
    assert time.time() - store.mtime(name) > 7000
    assert store.touch(name) is True  # ...a touch makes it new
    assert time.time() - store.mtime(name) < 5


def test_re_encrypting_refreshes_every_present_chunk(tmp_path):
    store = se.DirStore(tmp_path)
    data = os.urandom(20_000)
    se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    for name in list(store):
        _age(store, name, 7200)
    again = se.Encryptor(store, chunk_sizes=SMALL_SIZES)
    again.write(data)
    again.finish()
    assert again.stats.chunks_written == 0
    assert all(time.time() - store.mtime(name) < 60 for name in store)


def test_an_empty_chunk_file_counts_as_absent_and_is_replaced(tmp_path):
    store = se.DirStore(tmp_path)
    data = os.urandom(20_000)
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    victim = level0_of(root, store).chunks[3].name
    path = tmp_path / victim[:2] / victim
    path.write_bytes(b"")  # a crash of a store without fsync can leave this
    assert not store.has(victim) and victim not in store
    with pytest.raises(se.ChunkIntegrityError):
        se.decrypt(root, store)
    encryptor = se.Encryptor(store, chunk_sizes=SMALL_SIZES)
    encryptor.write(data)
    assert encryptor.finish() == root
    assert encryptor.stats.chunks_written == 1
    assert path.stat().st_size > 0 and se.decrypt(root, store) == data


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "folder"])
def test_check_existing_reads_back_and_replaces_damaged_chunks(tmp_path, damage):
    store = se.DirStore(tmp_path)
    data = os.urandom(20_000)
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    victim = level0_of(root, store).chunks[2].name
    path = tmp_path / victim[:2] / victim
    content = path.read_bytes()
    if damage == "flip":
        path.write_bytes(content[:10] + bytes([content[10] ^ 0x40]) + content[11:])
    elif damage == "truncate":
        path.write_bytes(content[:-7])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # unreadable: a folder where the chunk file should be
        path.unlink()
        path.mkdir()
    # Without the check, a present (non-empty) chunk is trusted.
    encryptor = se.Encryptor(store, chunk_sizes=SMALL_SIZES, check_existing=True)
    encryptor.write(data)
    assert encryptor.finish() == root
    assert encryptor.stats.chunks_written == 1
    # An empty file or a folder is not a chunk: the store says it is absent, and replaces it.
    assert encryptor.stats.chunks_repaired == (0 if damage in ("empty", "folder") else 1)
    assert path.read_bytes() == content and se.decrypt(root, store) == data
    if damage != "empty":
        assert os.listdir(store.quarantine_path) == [victim]  # set aside, not destroyed
    assert set(store) == {c.name for m in levels_of(root, store) for c in m.chunks}


def test_check_existing_on_a_memory_store():
    store = se.MemoryStore()
    data = os.urandom(20_000)
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    victim = root.chunks[0].name
    store._chunks[victim] = b"garbage"
    assert se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES, check_existing=True) == root
    assert store.get(victim) != b"garbage" and store.quarantined == {victim: b"garbage"}
    assert se.decrypt(root, store) == data


def test_quarantine_moves_aside_and_out_of_the_names(tmp_path):
    store = se.DirStore(tmp_path)
    name, content = _chunk(b"soon damaged")
    store.put(name, content)
    for round_ in range(2):
        store.put(name, content)
        action = store.quarantine(name)
        expected = tmp_path / "quarantine" / (name if round_ == 0 else f"{name}.1")
        assert action == f"moved to {expected}" and expected.read_bytes() == content
        assert not store.has(name) and list(store) == [] and list(store.scan()) == []
    assert store.quarantine(name) == "not in the store"


def test_leftover_temporaries_are_listed_and_removed_by_age(tmp_path):
    store = se.DirStore(tmp_path)
    name, content = _chunk(b"x")
    store.put(name, content)
    old = tmp_path / name[:2] / ".tmp-old"
    new = tmp_path / name[:2] / ".tmp-new"
    old.write_bytes(b"half a chunk")
    new.write_bytes(b"being written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sorted(os.path.basename(p) for p, _ in store.temporaries()) == [".tmp-new", ".tmp-old"]
    assert store.remove_temporaries(3600, delete=False) == 1 and old.exists()
    assert store.remove_temporaries(3600) == 1
    assert not old.exists() and new.exists() and list(store) == [name]


_HOLD_LOCK = """
import sys, self_encryption as se
store = se.DirStore(sys.argv[1])
with store.writing():
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.skipif(os.name != "posix", reason="the store lock is POSIX flock")
def test_store_lock_shared_by_writers_exclusive_for_gc(tmp_path):
    store = se.DirStore(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        with store.writing():  # writers share it
            pass
        started = time.monotonic()
        with pytest.raises(se.StoreBusyError) as caught:
            with store.collecting(0.5):
                pass
        assert time.monotonic() - started >= 0.5
        assert str(tmp_path / ".lock") in str(caught.value) and "busy" in str(caught.value)
        assert isinstance(caught.value, se.StoreError) and caught.value.exit_code == 6
    finally:
        holder.communicate(b"", timeout=30)
    with store.collecting(5):
        # While gc holds it, a writer waits.
        acquired = threading.Event()

        def write() -> None:
            with store.writing():
                acquired.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not acquired.wait(0.5)
    assert acquired.wait(10)
    writer.join()


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize(
    "umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)]
)
def test_chunk_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, folder_mode):
    saved = os.umask(umask)
    try:
        store = se.DirStore(tmp_path / "s")
        se.encrypt_to_store(os.urandom(5000), store, chunk_sizes=SMALL_SIZES)
    finally:
        os.umask(saved)
    files = [p for p in (tmp_path / "s").rglob("*") if p.is_file() and p.name != ".lock"]
    folders = [p for p in (tmp_path / "s").rglob("*") if p.is_dir()]
    assert files and folders
    assert {p.stat().st_mode & 0o777 for p in files} == {file_mode}
    assert {p.stat().st_mode & 0o777 for p in folders} == {folder_mode}
