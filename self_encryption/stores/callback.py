"""CallbackStore: a store made of plain functions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from .._datamap import check_name, is_chunk_name
from .._errors import ChunkNotFoundError, InvalidArgumentError, StoreError

#: Callback calls at once by default: enough to hide a 100 ms round trip at disk speeds.
DEFAULT_CONCURRENCY = 32


class CallbackStore:
    """A store made of plain functions, so any storage can serve in a few lines.

    ``get(name)`` returns the bytes, or None / raises KeyError or
    FileNotFoundError when absent; ``put(name, data)`` keeps them (a store
    without it can only be read, which is all decryption needs). Without
    ``has``, presence is tested with ``get``; without ``delete`` or
    ``names`` those operations raise StoreError. Names from ``names`` are
    checked. ``get_many(names)``, when given, returns a mapping of name to
    bytes for the names it has (leaving out the missing ones); readers then
    ask for a window of chunks in one call. ``mtime(name)`` (seconds since
    the epoch) and ``touch(name)`` (refresh it; return False if absent) let
    gc judge chunk ages; without them gc runs only with ``grace=0``.

    ``concurrency`` says how many callback calls may run at once (from as
    many threads): the default, 32, keeps enough requests in flight to
    hide a 100 ms round trip to a store far away; pass 1 for callbacks that
    are not thread-safe (they are then called one at a time, whatever the
    number of workers).
    """

    def __init__(
        self,
        get: Callable[[str], bytes | None],
        put: Callable[[str, bytes], object] | None = None,
        has: Callable[[str], bool] | None = None,
        delete: Callable[[str], object] | None = None,
        names: Callable[[], Iterable[str]] | None = None,
        get_many: Callable[[list[str]], Mapping[str, bytes]] | None = None,
        mtime: Callable[[str], float] | None = None,
        touch: Callable[[str], object] | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if not callable(get) or (put is not None and not callable(put)):
            raise InvalidArgumentError("CallbackStore needs a callable get (and put, when given)")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(
                f"CallbackStore's concurrency must be a positive int, not {concurrency!r}"
            )
        #: Calls that may run at once (the engine never makes more).
        self.io_concurrency = concurrency
        self._get, self._put, self._has = get, put, has
        self._delete, self._names = delete, names
        if get_many is not None:
            if not callable(get_many):
                raise InvalidArgumentError("CallbackStore's get_many must be callable")
            self.get_many = get_many  # readers ask for several chunks at once when it is there
        if mtime is not None:
            self.mtime = lambda name: mtime(check_name(name))
        if touch is not None:
            self.touch = lambda name: touch(check_name(name)) is not False

    def put(self, name: str, data: bytes) -> None:
        """Keep data under name through the put callback (refused when none was given)."""
        if self._put is None:
            raise StoreError("this CallbackStore was given no put callback: it can only be read")
        self._put(check_name(name), data)

    def get(self, name: str) -> bytes:
        """The content under name, from the get callback; None or a KeyError there means absent (ChunkNotFoundError)."""
        try:
            content = self._get(check_name(name))
        except (KeyError, FileNotFoundError):  # the natural ways to say "no such chunk"
            content = None
        if content is None:
            raise ChunkNotFoundError("chunk not found by the get callback", name=name)
        return content

    def has(self, name: str) -> bool:
        """Whether name is stored: the has callback, else a get."""
        if self._has is not None:
            return bool(self._has(check_name(name)))
        try:
            self.get(name)
        except ChunkNotFoundError:
            return False
        return True

    def delete(self, name: str) -> None:
        """Forget name through the delete callback (refused when none was given)."""
        if self._delete is None:
            raise StoreError("this CallbackStore was given no delete callback")
        self._delete(check_name(name))

    def __iter__(self) -> Iterator[str]:
        if self._names is None:
            raise StoreError("this CallbackStore was given no names callback")
        return self._checked_names()

    def _checked_names(self) -> Iterator[str]:
        assert self._names is not None  # checked in __iter__
        for name in self._names():
            if not is_chunk_name(name):
                raise StoreError(f"the names callback gave {name!r}, which is not a chunk name")
            yield name

    def writing(self) -> AbstractContextManager[Any]:
        """No lock: callbacks have none to offer."""
        return contextlib.nullcontext()

    def begin_writing(self) -> AbstractContextManager[Any]:
        """:meth:`writing` (no lock to take)."""
        return self.writing()

    def collecting(self, timeout: float) -> AbstractContextManager[Any]:
        """No lock of its own: gc then relies on the grace period, or on the callbacks' own locking."""
        return contextlib.nullcontext()
