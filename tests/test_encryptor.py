"""The Encryptor and the encrypt entry points: streams equal one-shot output, files, stats, failures."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import self_encryption as se
from self_encryption import _backend, _chunking, _options

import reference
from helpers import SMALL_SIZES, CountingStore, in_threads, store_lock_is_held

SMALL = dict(chunk_sizes=SMALL_SIZES)


def _expected(data, **options):
    return reference.encrypt(_backend.active, data, _options.make_options(**options))


def _write_in_pieces(encryptor, data, sizes):
    view, offset, turn = memoryview(data), 0, 0
    while offset < len(data):
        size = sizes[turn % len(sizes)] if sizes else len(data)
        encryptor.write(view[offset : offset + size])
        offset += size
        turn += 1


@settings(max_examples=80)
@given(
    data=st.binary(max_size=12_000),
    sizes=st.lists(st.integers(1, 3000), max_size=8),
    workers=st.sampled_from([1, 3]),
    level=st.sampled_from([None, 3]),
)
def test_stream_equals_one_shot(data, sizes, workers, level):
    store = se.MemoryStore()
    encryptor = se.Encryptor(store, workers=workers, compression_level=level, **SMALL)
    _write_in_pieces(encryptor, data, sizes)
    root = encryptor.finish()
    expected_root, expected_chunks = _expected(data, compression_level=level, **SMALL)
    assert root == expected_root
    assert {name: store.get(name) for name in store} == expected_chunks
    in_memory_root, in_memory_chunks = se.encrypt(data, compression_level=level, **SMALL)
    assert in_memory_root == root and reference.as_dict(in_memory_chunks) == expected_chunks
    assert encryptor.stats.bytes_read == len(data)
    assert encryptor.stats.chunks_written == len(expected_chunks)


@pytest.mark.parametrize("pieces", [[1], [4095, 1 << 20, 7], [(4 << 20) + 1]])
def test_stream_equals_one_shot_default_sizes(pieces):
    data = os.urandom(6 << 20) + b"text " * 200_000
    store = se.MemoryStore()
    with se.Encryptor(store, workers=2) as encryptor:
        _write_in_pieces(encryptor, data, pieces if pieces != [1] else [1 << 16, 1])
    root, chunks = _expected(data)
    assert encryptor.data_map == root
    assert {name: store.get(name) for name in store} == chunks


def test_encryptor_lifecycle():
    store = se.MemoryStore()
    encryptor = se.Encryptor(store, **SMALL)
    encryptor.write(b"abc" * 1000)
    root = encryptor.finish()
    assert encryptor.data_map == root and encryptor.level0.level == 0
    with pytest.raises(se.SelfEncryptionError, match="finished"):
        encryptor.write(b"more")
    with pytest.raises(se.SelfEncryptionError, match="finished"):
        encryptor.finish()
    with pytest.raises(se.InvalidArgumentError):
        se.Encryptor(object())
    with pytest.raises(se.InvalidArgumentError):
        se.Encryptor(store, chunk_sizes=(1, 2, 3))


def test_error_inside_context_stops_without_a_root():
    store = CountingStore()
    with pytest.raises(RuntimeError):
        with se.Encryptor(store, workers=2, **SMALL) as encryptor:
            encryptor.write(os.urandom(50_000))
            raise RuntimeError("caller gave up")
    assert encryptor.data_map is None
    with pytest.raises(se.SelfEncryptionError, match="failed"):
        encryptor.write(b"x")


@pytest.mark.parametrize("workers", [0, -1, 2.0, "2", True])
def test_bad_worker_counts(workers):
    with pytest.raises(se.InvalidArgumentError, match="workers"):
        se.encrypt(b"abc", workers=workers)
    with pytest.raises(se.InvalidArgumentError, match="workers"):
        se.decrypt(se.encrypt(b"abc")[0], {}, workers=workers)


def test_progress_and_stats():
    data = os.urandom(40_000)
    store = se.MemoryStore()
    seen = []
    encryptor = se.Encryptor(
        store,
        progress=lambda done, total: seen.append((done, total)),
        total_size=len(data),
        workers=2,
        **SMALL,
    )
    encryptor.write(data)
    root = encryptor.finish()
    assert seen[-1] == (len(data), len(data))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    first = encryptor.stats
    assert first.chunks_present == 0 and first.chunks_written == len(store)
    assert first.bytes_written == sum(len(store.get(n)) for n in store)
    again = se.Encryptor(store, **SMALL)
    again.write(data)
    assert again.finish() == root
    assert again.stats.chunks_written == 0 and again.stats.bytes_written == 0
    assert again.stats.chunks_present == first.chunks
    decrypted = []
    assert se.decrypt(root, store, progress=lambda d, t: decrypted.append((d, t))) == data
    assert decrypted[-1] == (len(data), len(data))
    in_memory = []
    assert se.encrypt(data, progress=lambda d, t: in_memory.append((d, t)), **SMALL)[0] == root
    assert in_memory[-1] == (len(data), len(data))


@pytest.mark.parametrize("size", [0, 1, 70_000])
def test_files_round_trip(tmp_path, size):
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    store = se.DirStore(tmp_path / "store")
    progress = []
    root = se.encrypt_file(source, store, progress=lambda d, t: progress.append((d, t)), **SMALL)
    assert root == se.encrypt(data, **SMALL)[0]
    assert se.encrypt_file(io.BytesIO(data), store, **SMALL) == root
    assert se.encrypt_file(str(source), store, workers=1, **SMALL) == root
    if size:
        assert progress[-1] == (size, size)
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    assert se.decrypt_file(root, store, target, workers=2) == size
    assert target.read_bytes() == data
    sink = io.BytesIO()
    assert se.decrypt_file(root, store, sink) == size and sink.getvalue() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]


def test_encrypt_file_from_a_reader_without_readinto():
    class Chunky:
        def __init__(self, data):
            self._data, self._at = data, 0

        def read(self, size):
            piece = self._data[self._at : self._at + min(size, 777)]
            self._at += len(piece)
            return piece

    data = os.urandom(30_000)
    assert se.encrypt_file(Chunky(data), se.MemoryStore(), **SMALL) == se.encrypt(data, **SMALL)[0]


def test_bad_file_arguments(tmp_path):
    store = se.MemoryStore()
    with pytest.raises(se.InvalidArgumentError):
        se.encrypt_file(42, store)
    with pytest.raises(FileNotFoundError):
        se.encrypt_file(tmp_path / "missing", store)
    root = se.encrypt_to_store(b"abc", store)
    with pytest.raises(se.InvalidArgumentError, match="folder"):
        se.decrypt_file(root, store, tmp_path)
    with pytest.raises(se.InvalidArgumentError):
        se.decrypt_file(root, store, 3.5)


@pytest.mark.parametrize("failing", [1, 2, 5, 20])
@pytest.mark.parametrize("workers", [1, 2])
def test_failing_put_surfaces_our_error(tmp_path, failing, workers):
    data = os.urandom(30_000)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    store = CountingStore(fail_put=failing)
    with pytest.raises(se.StoreError, match="injected put failure"):
        se.encrypt_file(source, store, workers=workers, **SMALL)
    with pytest.raises(se.StoreError):
        se.encrypt_to_store(data, CountingStore(fail_put=failing), workers=workers, **SMALL)


def test_concurrent_file_encryption_into_one_dir_store(tmp_path):
    store = se.DirStore(tmp_path / "store")
    shared = os.urandom(200_000)
    files = []
    for i in range(4):
        path = tmp_path / f"f{i}"
        path.write_bytes(os.urandom(1000 * i) + shared + os.urandom(5000))
        files.append(path)
    roots = in_threads(lambda path: se.encrypt_file(path, store, workers=2, **SMALL), files)
    for path, root in zip(files, roots):
        assert se.decrypt(root, store) == path.read_bytes()


@pytest.mark.parametrize("method", ["scan", "chains"])
@pytest.mark.parametrize("how", ["owned buffer", "stream of writes", "file"])
def test_cuts_scanned_on_the_pool_give_the_same_output(tmp_path, monkeypatch, how, method):
    # More than two scan segments with small chunk sizes, so the pool scans ahead;
    # or segments of a few chunks each, cut as chains.
    if method == "chains":
        monkeypatch.setattr(_chunking, "CHAIN_SEGMENT", 0)
        monkeypatch.setattr(_chunking, "CHAIN_CHUNKS", 4)
    data = os.urandom(1 << 20) + b"text-like line of words\n" * 60_000 + bytes(300_000)
    expected = _expected(data, **SMALL)
    if how == "owned buffer":
        root, chunks = se.encrypt(data, workers=3, **SMALL)
        got = (root, {c.name: c.content for c in chunks})
    else:
        store = se.MemoryStore()
        if how == "file":
            (tmp_path / "f").write_bytes(data)
            root = se.encrypt_file(tmp_path / "f", store, workers=2, **SMALL)
        else:
            with se.Encryptor(store, workers=2, **SMALL) as encryptor:
                for start in range(0, len(data), 3_000_000):
                    encryptor.write(data[start : start + 3_000_000])
            root = encryptor.data_map
        got = (root, {name: store.get(name) for name in store})
    assert got == expected


@pytest.mark.skipif(os.name != "posix", reason="the store lock is POSIX flock")
def test_an_encryptor_holds_the_store_lock_until_it_is_done(tmp_path):
    store = se.DirStore(tmp_path)
    assert not store_lock_is_held(tmp_path)
    encryptor = se.Encryptor(store, **SMALL)
    assert store_lock_is_held(tmp_path)
    encryptor.write(os.urandom(5000))
    encryptor.finish()
    assert not store_lock_is_held(tmp_path)
    with pytest.raises(RuntimeError):
        with se.Encryptor(store, **SMALL) as failing:
            failing.write(os.urandom(5000))
            assert store_lock_is_held(tmp_path)
            raise RuntimeError("stop")
    assert not store_lock_is_held(tmp_path)
    se.encrypt_to_store(b"x" * 3000, store, **SMALL)
    assert not store_lock_is_held(tmp_path)


def test_encrypt_file_passes_check_existing_on(tmp_path):
    store = se.DirStore(tmp_path / "store")
    data = os.urandom(20_000)
    (tmp_path / "f").write_bytes(data)
    root = se.encrypt_file(tmp_path / "f", store, **SMALL)
    victim = root.chunks[-1].name  # a map chunk
    path = tmp_path / "store" / victim[:2] / victim
    path.write_bytes(path.read_bytes()[::-1])
    assert se.encrypt_file(tmp_path / "f", store, **SMALL) == root
    assert not se.verify(root, store, full=True).ok  # trusted as present
    assert se.encrypt_file(tmp_path / "f", store, check_existing=True, **SMALL) == root
    assert se.verify(root, store, full=True).ok and se.decrypt(root, store) == data
