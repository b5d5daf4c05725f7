"""Chunk stores: where sealed chunks live, keyed by their hex names.

A store needs ``put``, ``get``, ``has``, ``delete`` and iteration over its
names, and must be safe to call from several threads. Chunk content is
already encrypted and named by its own SHA-256, so a store may be anything
that keeps bytes: a folder, a bucket, a peer-to-peer network.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from ._errors import ChunkNotFoundError, InvalidArgumentError, SelfEncryptionError, StoreError
from ._format import is_chunk_name

_HEX = frozenset("0123456789abcdef")


def check_name(name: object) -> str:
    """The name itself if it is a chunk name; InvalidArgumentError otherwise."""
    if not is_chunk_name(name):
        raise InvalidArgumentError(f"not a chunk name (64 lowercase hex digits): {name!r}")
    return name


def store_call(what: str, name: str, function: Callable, *args):
    """One store operation; foreign exceptions become our StoreError.

    A KeyError from ``get`` means the chunk is absent.
    """
    try:
        return function(*args)
    except SelfEncryptionError:
        raise
    except KeyError:
        if what == "get":
            raise ChunkNotFoundError("chunk not found in the store", name=name) from None
        raise StoreError(f"the store failed to {what} chunk {name}: KeyError") from None
    except Exception as exc:
        raise StoreError(f"the store failed to {what} chunk {name}: {exc!r}") from exc


def put_if_absent(store, name: str, content) -> int:
    """Put content unless the store has it; returns the bytes written (0 if present)."""
    if store_call("check", name, store.has, name):
        return 0
    store_call("put", name, store.put, name, content)
    return len(content)


@runtime_checkable
class ChunkStore(Protocol):
    """What the encryptor and decryptor need from a place that keeps chunks."""

    def put(self, name: str, data: bytes) -> None:
        """Keep data under name; storing an existing name again is harmless."""

    def get(self, name: str) -> bytes:
        """The content under name; ChunkNotFoundError if there is none."""

    def has(self, name: str) -> bool:
        """Whether name is stored."""

    def delete(self, name: str) -> None:
        """Forget name; deleting an absent name is not an error."""

    def __iter__(self) -> Iterator[str]:
        """Every stored name, in no particular order."""


class MemoryStore:
    """A thread-safe in-memory store, for tests and small jobs."""

    def __init__(self) -> None:
        self._chunks: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes) -> None:
        check_name(name)
        content = bytes(data)
        with self._lock:
            self._chunks.setdefault(name, content)

    def get(self, name: str) -> bytes:
        with self._lock:
            content = self._chunks.get(check_name(name))
        if content is None:
            raise ChunkNotFoundError("chunk not found in the memory store", name=name)
        return content

    def has(self, name: str) -> bool:
        with self._lock:
            return check_name(name) in self._chunks

    def delete(self, name: str) -> None:
        with self._lock:
            self._chunks.pop(check_name(name), None)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._chunks))

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)


class CallbackStore:
    """A store made of plain functions, so any storage can serve in a few lines.

    ``get(name)`` returns the bytes, or None / raises KeyError when absent;
    ``put(name, data)`` keeps them. Without ``has``, presence is tested with
    ``get``; without ``delete`` or ``names`` those operations raise StoreError.
    """

    def __init__(
        self,
        get: Callable[[str], bytes | None],
        put: Callable[[str, bytes], object],
        has: Callable[[str], bool] | None = None,
        delete: Callable[[str], object] | None = None,
        names: Callable[[], object] | None = None,
    ) -> None:
        if not callable(get) or not callable(put):
            raise InvalidArgumentError("CallbackStore needs callable get and put")
        self._get, self._put, self._has = get, put, has
        self._delete, self._names = delete, names

    def put(self, name: str, data: bytes) -> None:
        self._put(check_name(name), data)

    def get(self, name: str) -> bytes:
        try:
            content = self._get(check_name(name))
        except KeyError:
            content = None
        if content is None:
            raise ChunkNotFoundError("chunk not found by the get callback", name=name)
        return content

    def has(self, name: str) -> bool:
        if self._has is not None:
            return bool(self._has(check_name(name)))
        try:
            self.get(name)
        except ChunkNotFoundError:
            return False
        return True

    def delete(self, name: str) -> None:
        if self._delete is None:
            raise StoreError("this CallbackStore was given no delete callback")
        self._delete(check_name(name))

    def __iter__(self) -> Iterator[str]:
        if self._names is None:
            raise StoreError("this CallbackStore was given no names callback")
        return iter(self._names())


class DirStore:
    """The embedded default store: one file per chunk under a folder.

    Chunks fan out into sub-folders named by the first two hex digits of
    their name. A write goes to a temporary file in the same sub-folder, is
    flushed to disk (unless ``fsync=False``) and renamed into place, so a
    reader never sees a partial chunk and several writers, threads or
    processes, may store the same chunk at once.
    """

    _TEMP_PREFIX = ".tmp-"

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, create: bool = True) -> None:
        self.path = os.fspath(path)
        self.fsync = fsync
        if create:
            try:
                os.makedirs(self.path, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create store folder {self.path!r}: {exc.strerror}") from exc
        if not os.path.isdir(self.path):
            raise StoreError(f"no store folder at {self.path!r}")

    def __repr__(self) -> str:
        return f"DirStore({self.path!r})"

    def _path_of(self, name: str) -> str:
        check_name(name)
        return os.path.join(self.path, name[:2], name)

    def put(self, name: str, data: bytes) -> None:
        target = self._path_of(name)
        if os.path.isfile(target):
            return
        folder = os.path.dirname(target)
        temp_path = None
        try:
            os.makedirs(folder, exist_ok=True)
            handle, temp_path = tempfile.mkstemp(prefix=self._TEMP_PREFIX, dir=folder)
            with os.fdopen(handle, "wb") as temp:
                temp.write(data)
                if self.fsync:
                    temp.flush()
                    os.fsync(temp.fileno())
            os.replace(temp_path, target)
            temp_path = None
            if self.fsync:
                _sync_folder(folder)
        except OSError as exc:
            raise StoreError(f"cannot store chunk {name} in {self.path!r}: {exc}") from exc
        finally:
            if temp_path is not None:
                try:
                    os.unlink(temp_path)
                except OSError:
                    pass

    def get(self, name: str) -> bytes:
        path = self._path_of(name)
        try:
            with open(path, "rb") as chunk:
                return chunk.read()
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk not found in {self.path!r}", name=name) from None
        except OSError as exc:
            raise StoreError(f"cannot read chunk {name} from {self.path!r}: {exc}") from exc

    def has(self, name: str) -> bool:
        return os.path.isfile(self._path_of(name))

    def size(self, name: str) -> int:
        """Bytes stored under name, without reading them."""
        try:
            return os.stat(self._path_of(name)).st_size
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk not found in {self.path!r}", name=name) from None
        except OSError as exc:
            raise StoreError(f"cannot read chunk {name} from {self.path!r}: {exc}") from exc

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path_of(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete chunk {name} from {self.path!r}: {exc}") from exc

    def __iter__(self) -> Iterator[str]:
        try:
            folders = sorted(entry.name for entry in os.scandir(self.path) if entry.is_dir())
        except OSError as exc:
            raise StoreError(f"cannot list {self.path!r}: {exc}") from exc
        for prefix in folders:
            if len(prefix) != 2 or not _HEX.issuperset(prefix):
                continue
            for entry in os.scandir(os.path.join(self.path, prefix)):
                name = entry.name
                if name.startswith(prefix) and is_chunk_name(name):
                    yield name

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)


def _sync_folder(folder: str) -> None:
    """Make a rename durable; folders cannot be opened for this on Windows."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
