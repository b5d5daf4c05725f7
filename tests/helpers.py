"""Helpers shared by the tests: small options, threads, backend switching, map levels."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import self_encryption as se
from self_encryption import _backend

#: Chunk sizes small enough that a few KiB make many chunks and several levels.
SMALL_SIZES = (64, 256, 1024)
#: Chunk sizes for reading tests: a 600 kB file in some tens of chunks.
READ_SIZES = (4096, 16384, 65536)


def in_threads(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """function(item) for every item, each on a thread of its own, all at once.

    Results come back in item order; an exception in any thread is raised here.
    """
    items = list(items)
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(function, items))


@contextlib.contextmanager
def using(backend) -> Iterator[None]:
    """Run the public API on the given backend module for a while."""
    saved = _backend.active
    _backend.active = backend
    try:
        yield
    finally:
        _backend.active = saved


def levels_of(root: se.DataMap, store) -> list[se.DataMap]:
    """Every level of a root, root first, through the public walk."""
    return list(se.walk_levels(root, store))


def level0_of(root: se.DataMap, store) -> se.DataMap:
    """The level-0 map of a root."""
    return levels_of(root, store)[-1]


class CountingStore(se.MemoryStore):
    """A memory store that counts and can fail its k-th get or put."""

    def __init__(self, fail_get: int | None = None, fail_put: int | None = None) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.puts: list[str] = []
        self._fail_get, self._fail_put = fail_get, fail_put
        self._counter = threading.Lock()

    def get(self, name):
        with self._counter:
            self.gets.append(name)
            failing = len(self.gets) == self._fail_get
        if failing:
            raise ConnectionError("injected get failure")
        return super().get(name)

    def put(self, name, data):
        with self._counter:
            self.puts.append(name)
            failing = len(self.puts) == self._fail_put
        if failing:
            raise ConnectionError("injected put failure")
        super().put(name, data)


def store_lock_is_held(path) -> bool:
    """Whether someone holds a folder store's lock (tried exclusively, without waiting)."""
    import fcntl
    import os

    descriptor = os.open(os.path.join(path, ".lock"), os.O_RDONLY | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def own_lines(stderr: bytes) -> list[str]:
    """stderr without the import-time RuntimeWarning of an install without the C core."""
    lines = stderr.decode().strip().splitlines()
    return [
        line
        for index, line in enumerate(lines)
        if "RuntimeWarning" not in line
        and not (index and "RuntimeWarning" in lines[index - 1] and line.startswith("  "))
    ]
