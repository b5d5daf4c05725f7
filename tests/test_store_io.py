"""Store requests on a pool of their own: the concurrency a store declares, and bytes in flight capped."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

import self_encryption as se
from self_encryption.stores.access import access

SIZES = (4096, 16384, 65536)
WAIT = 60  # seconds a barrier waits on a loaded machine before the test fails


class Recorder:
    """A dict-backed store that records how many calls, and bytes of puts, are in flight at once.

    ``barrier`` (with ``blocking``, the names it applies to) makes calls on
    those names wait until that many are in flight together: the call
    fails (BrokenBarrierError) unless the engine really makes them at once.
    """

    def __init__(self, *, concurrency: int | None = None, delay: float = 0.0) -> None:
        if concurrency is not None:
            self.io_concurrency = concurrency
        self.chunks: dict[str, bytes] = {}
        self.delay = delay
        self.lock = threading.Lock()
        self.calls = self.most_calls = 0
        self.put_bytes = self.most_put_bytes = 0
        self.barrier: threading.Barrier | None = None
        self.blocking: set[str] = set()
        self.threads: set[int] = set()

    def _enter(self, name: str, size: int = 0) -> None:
        with self.lock:
            self.calls += 1
            self.most_calls = max(self.most_calls, self.calls)
            self.put_bytes += size
            self.most_put_bytes = max(self.most_put_bytes, self.put_bytes)
            self.threads.add(threading.get_ident())
            barrier = self.barrier if name in self.blocking else None
            self.blocking.discard(name)
        if barrier is not None:
            barrier.wait(WAIT)
        if self.delay:
            time.sleep(self.delay)

    def _leave(self, size: int = 0) -> None:
        with self.lock:
            self.calls -= 1
            self.put_bytes -= size

    def put(self, name: str, data: bytes) -> None:
        size = memoryview(data).nbytes
        self._enter(name, size)
        try:
            self.chunks[name] = bytes(data)
        finally:
            self._leave(size)

    def get(self, name: str) -> bytes:
        self._enter(name)
        try:
            if name not in self.chunks:
                raise KeyError(name)
            return self.chunks[name]
        finally:
            self._leave()

    def has(self, name: str) -> bool:
        self._enter(name)
        try:
            return name in self.chunks
        finally:
            self._leave()

    def delete(self, name: str) -> None:
        self.chunks.pop(name, None)

    def __iter__(self):
        return iter(list(self.chunks))


def _names(data: bytes) -> list[str]:
    """The level-0 chunk names of data, as encrypting it gives them."""
    encryptor = se.Encryptor(se.MemoryStore(), chunk_sizes=SIZES, workers=1)
    encryptor.write(data)
    encryptor.finish()
    assert encryptor.level0 is not None
    return [record.name for record in encryptor.level0.chunks]


@pytest.mark.parametrize("concurrency", [3, 8])
def test_puts_and_gets_run_as_many_at_once_as_the_store_declares(concurrency):
    data = os.urandom(40 * SIZES[1])
    names = _names(data)
    assert len(set(names)) > 2 * concurrency
    store = Recorder(concurrency=concurrency)
    # The first chunk puts wait for each other: they pass only if `concurrency` are in flight.
    store.barrier = threading.Barrier(concurrency)
    store.blocking = set(names[2 : 2 + concurrency])  # 0 and 1 are stored last, by finish()
    root = se.encrypt_to_store(data, store, chunk_sizes=SIZES, workers=2)
    assert not store.blocking  # every one was put, together
    assert store.most_calls == concurrency  # never more than declared
    store.barrier = threading.Barrier(concurrency)
    store.blocking = set(names[:concurrency])
    store.most_calls = 0
    assert se.decrypt(root, store, workers=2) == data
    assert not store.blocking
    assert store.most_calls == concurrency
    store.barrier = threading.Barrier(concurrency)
    store.blocking = set(names[1 : 1 + concurrency])  # read ahead after the first read
    with se.open(root, store, workers=1) as reader:
        assert reader.read(10) == data[:10]
        assert reader.read() == data[10:]
    assert not store.blocking


def test_a_store_that_is_not_thread_safe_sees_one_call_at_a_time():
    data = os.urandom(30 * SIZES[1])
    backing: dict[str, bytes] = {}
    calls = {"now": 0, "most": 0}
    lock = threading.Lock()

    def guarded(function):
        def call(*args):
            with lock:
                calls["now"] += 1
                calls["most"] = max(calls["most"], calls["now"])
            try:
                time.sleep(0.002)  # long enough for another thread to come in, were it let
                return function(*args)
            finally:
                with lock:
                    calls["now"] -= 1

        return call

    store = se.CallbackStore(
        guarded(backing.get), guarded(backing.__setitem__), has=guarded(backing.__contains__), concurrency=1
    )
    root = se.encrypt_to_store(data, store, chunk_sizes=SIZES, workers=4)
    assert se.decrypt(root, store, workers=4) == data
    with se.open(root, store, workers=4) as reader:
        assert reader.read() == data
    assert calls["most"] == 1
    # The same callbacks declared able to serve 6 at once are called so.
    calls["most"] = 0
    store = se.CallbackStore(guarded(backing.get), guarded(backing.__setitem__), concurrency=6)
    assert se.decrypt(root, store, workers=2) == data
    assert 1 < calls["most"] <= 6


def test_bytes_in_flight_to_the_store_stay_under_the_cap():
    data = os.urandom(60 * SIZES[1])
    cap = 2 * SIZES[2]  # a few chunks' worth: the cap, not the 16 requests, is what binds
    store = Recorder(concurrency=16, delay=0.01)
    tuned = access(store, needs=("put", "has")).tuned(max_io_bytes=cap)
    encryptor = se.Encryptor(tuned, chunk_sizes=SIZES, workers=2)
    encryptor.write(data)
    root = encryptor.finish()
    assert SIZES[2] < store.most_put_bytes <= cap  # several puts at once, never more bytes than the cap
    assert se.decrypt(root, store) == data


def test_output_and_counts_are_the_same_at_every_concurrency():
    data = os.urandom(25 * SIZES[1]) + bytes(20 * SIZES[1])  # some chunks repeat
    expected = se.MemoryStore()
    root = se.encrypt_to_store(data, expected, chunk_sizes=SIZES, workers=1, store_concurrency=1)
    for workers, concurrency in [(1, 4), (2, 1), (2, 3), (4, 32)]:
        store = Recorder(concurrency=concurrency)
        encryptor = se.Encryptor(store, chunk_sizes=SIZES, workers=workers)
        encryptor.write(data)
        assert encryptor.finish() == root
        assert store.chunks == {name: expected.get(name) for name in expected}
        again = se.Encryptor(store, chunk_sizes=SIZES, workers=workers, store_concurrency=concurrency)
        again.write(data)
        assert again.finish() == root
        assert again.stats.chunks_written == 0
        assert again.stats.chunks_present == encryptor.stats.chunks
        for name, content in store.chunks.items():
            assert hashlib.sha256(content).hexdigest() == name


class OneRequest(Recorder):
    """A store that puts a chunk unless present, in one call; counts its calls by kind."""

    def __init__(self) -> None:
        super().__init__(concurrency=4)
        self.counts = {"put_if_absent": 0, "has": 0, "put": 0}
        self.refreshed: list[str] = []

    def put_if_absent(self, name: str, data: bytes) -> bool:
        with self.lock:
            self.counts["put_if_absent"] += 1
            if name in self.chunks:
                self.refreshed.append(name)
                return False
            self.chunks[name] = bytes(data)
            return True

    def has(self, name: str) -> bool:
        self.counts["has"] += 1
        return super().has(name)

    def put(self, name: str, data: bytes) -> None:
        self.counts["put"] += 1
        super().put(name, data)


def test_a_store_that_puts_unless_present_gets_one_call_a_chunk():
    data = os.urandom(20 * SIZES[1])
    store = OneRequest()
    first = se.Encryptor(store, chunk_sizes=SIZES, workers=2)
    first.write(data)
    root = first.finish()
    assert store.counts == {"put_if_absent": first.stats.chunks, "has": 0, "put": 0}
    assert first.stats.chunks_written == len(store.chunks) and first.stats.chunks_present == 0
    again = se.Encryptor(store, chunk_sizes=SIZES, workers=2)
    again.write(data)
    assert again.finish() == root
    assert again.stats.chunks_written == 0 and again.stats.chunks_present == first.stats.chunks
    assert sorted(store.refreshed) == sorted(store.chunks)  # every present chunk was refreshed
    # check_existing reads present chunks back: that takes has and get, not the one call.
    checked = se.Encryptor(store, chunk_sizes=SIZES, workers=2, check_existing=True)
    checked.write(data)
    assert checked.finish() == root
    assert store.counts["has"] == first.stats.chunks


def test_bad_store_concurrency():
    for bad in (0, -1, 1.5, True, "4"):
        with pytest.raises(se.InvalidArgumentError):
            se.encrypt_to_store(b"x" * 10, se.MemoryStore(), store_concurrency=bad)
        with pytest.raises(se.InvalidArgumentError):
            se.CallbackStore(dict().get, concurrency=bad)
    store = Recorder(concurrency=0)
    with pytest.raises(se.InvalidArgumentError, match="io_concurrency"):
        se.encrypt_to_store(b"x" * 10, store)
