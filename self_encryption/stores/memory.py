"""MemoryStore: chunks in a dict, for tests and small jobs."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from .._datamap import check_name
from .._errors import ChunkNotFoundError
from .protocol import ChunkEntry


class MemoryStore:
    """A thread-safe in-memory store, for tests and small jobs."""

    #: A request costs a dict lookup: made by the thread that needs it, one at a time.
    io_concurrency = 1

    def __init__(self) -> None:
        self._chunks: dict[str, bytes] = {}
        self._times: dict[str, float] = {}
        #: Chunks set aside by quarantine(), by name.
        self.quarantined: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes) -> None:
        """Keep a copy of data under name; a name already held keeps its first content."""
        check_name(name)
        content = bytes(data)
        with self._lock:
            if name not in self._chunks:
                self._chunks[name] = content
                self._times[name] = time.time()

    def get(self, name: str) -> bytes:
        """The content under name; ChunkNotFoundError if there is none."""
        with self._lock:
            content = self._chunks.get(check_name(name))
        if content is None:
            raise ChunkNotFoundError("chunk not found in the memory store", name=name)
        return content

    def has(self, name: str) -> bool:
        """Whether name is held."""
        with self._lock:
            return check_name(name) in self._chunks

    def delete(self, name: str) -> None:
        """Forget name; an absent name is not an error."""
        with self._lock:
            self._chunks.pop(check_name(name), None)
            self._times.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._chunks))

    def mtime(self, name: str) -> float:
        """When name was put or last refreshed (seconds since the epoch); ChunkNotFoundError if absent."""
        with self._lock:
            stamp = self._times.get(check_name(name))
        if stamp is None:
            raise ChunkNotFoundError("chunk not found in the memory store", name=name)
        return stamp

    def touch(self, name: str) -> bool:
        """Refresh name's time, as a present chunk is refreshed by an encrypt; False if it is absent."""
        with self._lock:
            if check_name(name) not in self._chunks:
                return False
            self._times[name] = time.time()
            return True

    def quarantine(self, name: str) -> str:
        """Move a damaged chunk into ``quarantined`` (out of the store); says what was done."""
        with self._lock:
            content = self._chunks.pop(check_name(name), None)
            self._times.pop(name, None)
            if content is None:
                return "not in the store"
            self.quarantined[name] = content
        return "moved to the memory store's quarantined chunks"

    def scan(self) -> Iterator[ChunkEntry]:
        """Every chunk held, with its size and time, as gc lists a store."""
        with self._lock:
            entries = [ChunkEntry(n, len(c), self._times[n]) for n, c in self._chunks.items()]
        return iter(entries)

    def writing(self) -> AbstractContextManager[Any]:
        """No lock: one process holds a memory store."""
        return contextlib.nullcontext()

    def begin_writing(self) -> AbstractContextManager[Any]:
        """:meth:`writing` (no lock to take)."""
        return self.writing()

    def collecting(self, timeout: float) -> AbstractContextManager[Any]:
        """No lock: one process holds a memory store, so gc has nothing to wait for."""
        return contextlib.nullcontext()

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)
