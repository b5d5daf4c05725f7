"""A store wrapper that keeps recently fetched chunks for every file of a mount.

Readers of different files, and different handles of one file, share it;
it is bounded in bytes (the least recently used chunks go first). It holds
chunks as stored (encrypted), so what it keeps is no more secret than the
store itself. Its lock is never held during a store call: a store that
hangs on one chunk blocks only the reads that need that chunk.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

#: The default bound of the shared chunk cache. The kernel's page cache already
#: keeps opened file pages; this one serves chunks to other handles and after
#: the kernel dropped them. Larger costs fresh memory on every long read.
DEFAULT_CACHE_BYTES = 64 << 20


class CachingStore:
    """``store`` with a shared, byte-bounded cache in front of its reads; writes go straight through."""

    def __init__(self, store: Any, limit: int = DEFAULT_CACHE_BYTES) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"the cache size must be a non-negative number of bytes, not {limit!r}")
        self.inner = store
        self.limit = limit
        self._lock = threading.Lock()
        self._chunks: OrderedDict[str, bytes] = OrderedDict()
        self._held = 0
        self.hits = 0
        self.misses = 0
        if callable(getattr(store, "get_many", None)):
            # Only then: a store without it is read one chunk a request, many requests at once,
            # which a get_many that looped over get() here would serialize.
            self.get_many = self._get_many

    @property
    def io_concurrency(self) -> int | None:
        """The store's own: how many requests readers and writers keep in flight at once."""
        declared = getattr(self.inner, "io_concurrency", None)
        return declared() if callable(declared) else declared

    @property
    def held(self) -> int:
        """Bytes in the cache now."""
        return self._held

    def _cached(self, name: str) -> bytes | None:
        with self._lock:
            content = self._chunks.get(name)
            if content is None:
                self.misses += 1
                return None
            self._chunks.move_to_end(name)
            self.hits += 1
            return content

    def _keep(self, name: str, content: object) -> None:
        if not isinstance(content, (bytes, bytearray, memoryview)):
            return
        data = bytes(content)
        if len(data) > self.limit // 4:  # one huge chunk must not empty the cache
            return
        with self._lock:
            if name in self._chunks:
                return
            self._chunks[name] = data
            self._held += len(data)
            while self._held > self.limit:
                _, dropped = self._chunks.popitem(last=False)
                self._held -= len(dropped)

    def get(self, name: str, *, keep: bool = True) -> Any:
        content = self._cached(name)
        if content is None:
            content = self.inner.get(name)
            if keep:
                self._keep(name, content)
        return content

    def get_at_most(self, name: str, limit: int, *, keep: bool = True) -> Any:
        content = self._cached(name)
        if content is not None:
            return content[:limit]
        reader = getattr(self.inner, "get_at_most", None)
        content = reader(name, limit) if callable(reader) else self.inner.get(name)
        if keep and content is not None and len(content) < limit:  # the whole chunk, not a cut one
            self._keep(name, content)
        return content

    def passing(self) -> Passing:
        """This cache's reads for a sequential reader's read-ahead: what is cached is served, what is fetched is not kept.

        A file read from start to end would otherwise push each of its
        chunks through the cache, evicting what random reads and other files
        use, for nothing: the kernel keeps the pages it was given. Keeping
        them also costs the reader about a tenth of its time (fresh memory
        for every chunk instead of memory just freed).
        """
        return Passing(self)

    def _get_many(self, names: list[str], *, keep: bool = True) -> Mapping[str, Any]:
        found: dict[str, Any] = {}
        wanted = []
        for name in names:
            content = self._cached(name)
            if content is None:
                wanted.append(name)
            else:
                found[name] = content
        if wanted:
            fetched = self.inner.get_many(wanted)
            for name, content in fetched.items():
                if keep:
                    self._keep(name, content)
                found[name] = content
        return found

    def has(self, name: str) -> bool:
        with self._lock:
            if name in self._chunks:
                return True
        return bool(self.inner.has(name))

    def put(self, name: str, data: bytes) -> None:
        self.inner.put(name, data)

    def touch(self, name: str) -> bool:
        toucher = getattr(self.inner, "touch", None)
        return bool(toucher(name)) if callable(toucher) else bool(self.inner.has(name))

    def delete(self, name: str) -> None:
        with self._lock:
            dropped = self._chunks.pop(name, None)
            if dropped is not None:
                self._held -= len(dropped)
        self.inner.delete(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def writing(self) -> AbstractContextManager[Any]:
        """The store's writer lock, when it has one (gc waits while it is held)."""
        method = getattr(self.inner, "writing", None)
        return method() if callable(method) else contextlib.nullcontext()


class Passing:
    """The reads of a CachingStore that keep nothing they fetch (see :meth:`CachingStore.passing`)."""

    def __init__(self, cache: CachingStore) -> None:
        self.cache = cache
        if callable(getattr(cache, "get_many", None)):
            self.get_many = functools.partial(cache._get_many, keep=False)

    @property
    def io_concurrency(self) -> int | None:
        return self.cache.io_concurrency

    def get(self, name: str) -> Any:
        return self.cache.get(name, keep=False)

    def get_at_most(self, name: str, limit: int) -> Any:
        return self.cache.get_at_most(name, limit, keep=False)
