"""SelfEncryptor: POSIX-like edits whose every flush equals encrypt() of the content."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import self_encryption as se

from helpers import SMALL_SIZES, in_threads, level0_of, store_lock_is_held

SMALL = dict(chunk_sizes=SMALL_SIZES)


class CountingStore(se.MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.puts: list[str] = []
        self._guard = threading.Lock()

    def get(self, name):
        with self._guard:
            self.gets.append(name)
        return super().get(name)

    def put(self, name, data):
        with self._guard:
            self.puts.append(name)
        super().put(name, data)


def _all_names(root, store) -> set[str]:
    return se.chunk_names(root, store)


class Edits(RuleBasedStateMachine):
    """Random writes, reads, truncates and flushes against a bytearray model."""

    def __init__(self) -> None:
        super().__init__()
        self.store = se.MemoryStore()
        initial = os.urandom(3000)
        self.model = bytearray(initial)
        root = se.encrypt_to_store(initial, self.store, **SMALL)
        self.editor = se.SelfEncryptor(self.store, root, **SMALL)

    @rule(position=st.integers(0, 5000), data=st.binary(min_size=1, max_size=700))
    def write(self, position, data):
        assert self.editor.write(data, position) == len(data)
        if position > len(self.model):
            self.model.extend(bytes(position - len(self.model)))
        self.model[position : position + len(data)] = data

    @rule(position=st.integers(0, 5000), length=st.integers(0, 2000))
    def read(self, position, length):
        assert self.editor.read(position, length) == bytes(self.model[position : position + length])

    @rule(size=st.integers(0, 5000))
    def truncate(self, size):
        self.editor.truncate(size)
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    @rule()
    def flush(self):
        root = self.editor.flush()
        assert root == se.encrypt(bytes(self.model), **SMALL)[0]
        assert se.decrypt(root, self.store) == self.model

    @precondition(lambda self: len(self.model) > 0)
    @rule(pattern=st.binary(min_size=1, max_size=8), position=st.integers(0, 4000))
    def small_edit(self, pattern, position):
        position = min(position, len(self.model) - 1)
        self.write(position, pattern)

    @invariant()
    def size_matches(self):
        assert self.editor.size == len(self.model)

    def teardown(self):
        root = self.editor.close()
        assert root == se.encrypt(bytes(self.model), **SMALL)[0]
        assert se.decrypt(root, self.store) == self.model


Edits.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestEdits = Edits.TestCase


def test_new_file_from_nothing():
    store = se.MemoryStore()
    with se.SelfEncryptor(store, **SMALL) as editor:
        assert editor.size == 0 and editor.read(0, 10) == b""
        editor.write(b"hello", 10)
        assert editor.read(0, 100) == bytes(10) + b"hello"
    assert editor.data_map == se.encrypt(bytes(10) + b"hello", **SMALL)[0]
    with pytest.raises(se.SelfEncryptionError, match="closed"):
        editor.read(0, 1)


def test_opening_fetches_nothing_and_reads_fetch_only_their_chunks():
    data = os.urandom(60_000)
    store = CountingStore()
    root = se.encrypt_to_store(data, store, **SMALL)
    editor = se.SelfEncryptor(store, root, **SMALL)
    assert store.gets == [] and editor.size == len(data)
    map_names = _all_names(root, store) - {c.name for c in level0_of(root, store).chunks}
    store.gets.clear()
    assert editor.read(30_000, 10) == data[30_000:30_010]
    data_gets = [n for n in store.gets if n not in map_names]
    assert len(data_gets) in (1, 2)


def test_one_byte_in_the_middle_of_64_mib():
    data = os.urandom(64 << 20)
    store = CountingStore()
    old_root = se.encrypt_to_store(data, store)
    old_names = _all_names(old_root, store)
    store.gets.clear()
    store.puts.clear()
    editor = se.SelfEncryptor(store, old_root)
    middle = len(data) // 2
    editor.write(bytes([data[middle] ^ 0xFF]), middle)
    new_root = editor.flush()
    gets_by_flush = list(store.gets)
    changed = bytearray(data)
    changed[middle] ^= 0xFF
    assert new_root == se.encrypt(bytes(changed))[0]
    new_names = _all_names(new_root, store)
    assert set(store.puts) == new_names - old_names
    assert len(store.puts) == len(new_names - old_names)
    level0 = level0_of(new_root, store)
    data_puts = [n for n in store.puts if n in {c.name for c in level0.chunks}]
    assert len(data_puts) == 3  # the changed chunk and the two whose pads depend on it
    old_map_names = old_names - {c.name for c in level0_of(old_root, store).chunks}
    data_gets = {n for n in gets_by_flush if n not in old_map_names}
    assert len(data_gets) == 3  # the chunk merged, and the two re-sealed after it
    assert se.decrypt(new_root, store) == changed


def test_edits_at_the_start_and_the_end_reseal_the_wraparound():
    data = os.urandom(20_000)
    store = se.MemoryStore()
    root = se.encrypt_to_store(data, store, **SMALL)
    editor = se.SelfEncryptor(store, root, **SMALL)
    editor.write(b"X", len(data) - 1)
    editor.write(b"Y", 0)
    changed = b"Y" + data[1:-1] + b"X"
    assert editor.flush() == se.encrypt(changed, **SMALL)[0]
    editor.truncate(5000)
    assert editor.flush() == se.encrypt(changed[:5000], **SMALL)[0]
    editor.truncate(9000)
    assert editor.close() == se.encrypt(changed[:5000] + bytes(4000), **SMALL)[0]


def test_bad_arguments():
    editor = se.SelfEncryptor(se.MemoryStore(), **SMALL)
    for call in (
        lambda: editor.read(-1, 1),
        lambda: editor.read(0, -1),
        lambda: editor.write(b"x", -1),
        lambda: editor.truncate(-5),
        lambda: editor.write("text", 0),
        lambda: editor.read(1.5, 1),
    ):
        with pytest.raises(se.InvalidArgumentError):
            call()
    with pytest.raises(se.InvalidArgumentError):
        se.SelfEncryptor(object())
    with pytest.raises(se.InvalidArgumentError):
        se.SelfEncryptor(se.MemoryStore(), "se1:AAAA")


def test_threads_share_one_editor():
    store = se.MemoryStore()
    editor = se.SelfEncryptor(store, **SMALL)
    editor.write(bytes(8000), 0)

    def writer(offset):
        for i in range(20):
            editor.write(bytes([offset + i]) * 10, offset * 100 + i * 10)

    in_threads(writer, range(4))
    expected = bytearray(8000)
    for k in range(4):
        for i in range(20):
            expected[k * 100 + i * 10 : k * 100 + i * 10 + 10] = bytes([k + i]) * 10
    assert editor.read(0, 8000) == expected
    assert editor.close() == se.encrypt(bytes(expected), **SMALL)[0]


@pytest.mark.skipif(os.name != "posix", reason="the store lock is POSIX flock")
def test_flush_stores_under_the_store_lock(tmp_path):
    held = []

    class Watched(se.DirStore):
        def put(self, name, data):
            held.append(store_lock_is_held(self.path))
            super().put(name, data)

    store = Watched(tmp_path)
    root = se.encrypt_to_store(os.urandom(20_000), store, **SMALL)
    assert held and all(held)
    held.clear()
    with se.SelfEncryptor(store, root, **SMALL) as editor:
        editor.write(b"changed", 10_000)
        assert not store_lock_is_held(tmp_path)
        editor.flush()
        assert not store_lock_is_held(tmp_path)
    assert held and all(held)


# -- the window between storing an edit's chunks and saving its map -----------------------------

GC = [sys.executable, "-m", "self_encryption", "gc"]


def _edited(tmp_path):
    """A stored file, its map saved, and an editor with a change: (store, map file, editor, new content)."""
    store = se.DirStore(tmp_path / "store")
    data = bytearray(os.urandom(30_000))
    root = se.encrypt_to_store(bytes(data), store, **SMALL)
    map_file = tmp_path / "f.sedm"
    map_file.write_text(root.to_text() + "\n")
    editor = se.SelfEncryptor(store, root, **SMALL)
    change = os.urandom(3000)
    editor.write(change, 10_000)
    data[10_000:13_000] = change
    return store, map_file, editor, bytes(data)


def _gc(store, map_file) -> subprocess.Popen:
    return subprocess.Popen(
        [*GC, "--store", store.path, "--keep", map_file, "--grace", "0", "--yes", "--lock-wait", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_gc_between_a_flush_and_saving_its_map_deletes_the_new_chunks(tmp_path):
    # The window flush(save_to=...) closes: after a plain flush, the lock is released before the
    # caller saves the map, and a collection then sees the new chunks as unused.
    store, map_file, editor, content = _edited(tmp_path)
    new_root = editor.flush()
    collector = _gc(store, map_file)
    assert collector.wait(120) == 0, collector.stderr.read()
    assert se.verify(new_root, store, full=True).missing


def _holds_open(pid: int, path: str) -> bool:
    try:
        return any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="watches the collector through /proc")
def test_flush_save_to_holds_the_writer_lock_until_the_map_is_saved(tmp_path, monkeypatch):
    store, map_file, editor, content = _edited(tmp_path)
    arrived, go = threading.Event(), threading.Event()
    save = se.ReservedMapFile.save

    def save_when_told(reserved, data_map):  # the map is about to be written: the window
        arrived.set()
        assert go.wait(120)
        save(reserved, data_map)

    monkeypatch.setattr(se.ReservedMapFile, "save", save_when_told)
    results, errors = [], []

    def flush():
        try:
            results.append(editor.flush(save_to=map_file))
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
            arrived.set()

    flusher = threading.Thread(target=flush)
    flusher.start()
    collector = None
    try:
        assert arrived.wait(120) and not errors, errors
        assert store_lock_is_held(store.path)  # the new chunks are stored, the map not yet saved
        collector = _gc(store, map_file)
        lock = os.path.realpath(store.lock_path)
        deadline = time.monotonic() + 120
        while not _holds_open(collector.pid, lock) and collector.poll() is None:
            assert time.monotonic() < deadline, "gc never opened the store lock"
            time.sleep(0.01)
        assert collector.poll() is None  # it waits for the editor's lock
    finally:
        go.set()
        flusher.join(120)
    assert not errors, errors
    assert collector.wait(120) == 0, collector.stderr.read()
    new_root = results[0]
    assert se.DataMap.load(map_file) == new_root and os.stat(map_file).st_mode & 0o777 == 0o600
    assert se.verify(new_root, store, full=True).ok and se.decrypt(new_root, store) == content
    assert editor.close() == new_root


def test_flush_save_to_claims_the_map_file_before_storing(tmp_path):
    store, map_file, editor, content = _edited(tmp_path)
    before = set(store)
    with pytest.raises(se.StoreError, match="no-such-folder"):
        editor.flush(save_to=tmp_path / "no-such-folder" / "f.sedm")
    assert set(store) == before  # nothing stored
    with pytest.raises(se.StoreError, match="f.sedm"):
        editor.flush(save_to=map_file, replace=False)
    new_root = editor.close(save_to=tmp_path / "g.sedm")
    assert se.DataMap.load(tmp_path / "g.sedm") == new_root and se.decrypt(new_root, store) == content
    with pytest.raises(se.SelfEncryptionError, match="closed"):
        editor.close(save_to=map_file)
