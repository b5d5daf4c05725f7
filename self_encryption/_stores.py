"""Chunk stores: where sealed chunks live, keyed by their hex names.

A store needs ``put``, ``get``, ``has``, ``delete`` and iteration over its
names, and must be safe to call from several threads. Chunk content is
already encrypted and named by its own SHA-256, so a store may be anything
that keeps bytes: a folder, a bucket, a peer-to-peer network.

Our stores also have the optional methods that keeping a store healthy
needs (see :class:`MaintainedStore`); the helpers here fall back to
something safe when a store lacks them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from ._buffers import Buffer
from ._datamap import check_name, is_chunk_name
from ._errors import (
    ChunkIntegrityError,
    ChunkNotFoundError,
    InvalidArgumentError,
    SelfEncryptionError,
    StoreBusyError,
    StoreError,
)
from ._files import atomic_write, shared_mode, sync_folder
from ._lock_objects import EXCLUSIVE, FLOCK_HOLDER, SHARED, FolderLockSpace, LockInfo, LockSet, list_locks

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: the folder store locks with lock objects instead
    fcntl = None

T = TypeVar("T")

_HEX = frozenset("0123456789abcdef")


#: The largest stored chunk the format allows: a kind byte and max_size (2**31) bytes.
MAX_CHUNK_BYTES = (1 << 31) + 1
#: O_NONBLOCK lets a FIFO open without a writer (it is then refused as not a regular file).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _read_at_most(descriptor: int, limit: int) -> bytes:
    parts = []
    left = limit
    while left > 0:
        piece = os.read(descriptor, min(left, 8 << 20))
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def store_call(what: str, name: str, function: Callable[..., T], *args: Any) -> T:
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
        hint = ""
        if "thread" in str(exc).lower():  # sqlite3 and many drivers say so
            hint = (
                "; this store seems unable to serve several threads at once: "
                "pass workers=1 (--workers 1 on the command line)"
            )
        raise StoreError(f"the store failed to {what} chunk {name}: {exc!r}{hint}") from exc


def put_if_absent(store: Any, name: str, content: Buffer, *, check: bool = False) -> int:
    """Put content unless the store has it; returns the bytes written (0 if present)."""
    return store_chunk(store, name, content, check=check)[0]


def store_chunk(store: Any, name: str, content: Buffer, *, check: bool = False) -> tuple[int, bool]:
    """Make sure the store holds content under name: (bytes written, whether a damaged copy was replaced).

    A chunk already present has its modification time refreshed (``touch``)
    before it counts as stored, so that a garbage collection judging age
    sees it as new; if it vanished meanwhile, it is put. With ``check``,
    a present chunk is read back and checked against its name first, and a
    damaged or unreadable one is set aside (``quarantine``) and replaced.
    """
    if store_call("check", name, store.has, name):
        if check and not chunk_is_sound(store, name):
            set_aside(store, name)
            store_call("put", name, store.put, name, content)
            return memoryview(content).nbytes, True
        refresh = getattr(store, "touch", None)
        if refresh is None or store_call("touch", name, refresh, name):
            return 0, False
    store_call("put", name, store.put, name, content)
    return memoryview(content).nbytes, False


def chunk_is_sound(store: Any, name: str) -> bool:
    """Whether the store gives back content whose SHA-256 is name.

    A chunk that is absent, fails its store's own check or cannot be read
    (a StoreError) is not sound.
    """
    try:
        content = store_call("get", name, store.get, name)
    except (ChunkNotFoundError, ChunkIntegrityError, StoreError):
        return False
    return content is not None and hashlib.sha256(content).hexdigest() == name


def set_aside(store: Any, name: str) -> str:
    """Move a damaged chunk out of the way (``quarantine``), or delete it; says what was done."""
    quarantine = getattr(store, "quarantine", None)
    if callable(quarantine):
        return str(store_call("quarantine", name, quarantine, name))
    delete = getattr(store, "delete", None)
    if not callable(delete):
        raise StoreError(
            f"cannot set damaged chunk {name} aside: the store can neither quarantine nor delete it"
        )
    store_call("delete", name, delete, name)
    return "deleted"


def writing(store: Any) -> AbstractContextManager[Any]:
    """The store's shared writer lock (``store.writing()``), or nothing if it has none."""
    method = getattr(store, "writing", None)
    return method() if callable(method) else contextlib.nullcontext()


def collecting(store: Any, timeout: float) -> AbstractContextManager[Any]:
    """The store's exclusive collector lock (``store.collecting(timeout)``), or nothing."""
    method = getattr(store, "collecting", None)
    return method(timeout) if callable(method) else contextlib.nullcontext()


class ChunkEntry(NamedTuple):
    """One stored chunk, as ``scan()`` lists them."""

    name: str
    #: Bytes stored, or None when the store lists names only.
    size: int | None
    #: Seconds since the epoch at which it was last stored or refreshed (None: not known).
    mtime: float | None


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

    # A store may also offer get_many(names) -> Mapping[str, bytes], the names it
    # has among those asked; decryption, readers and verify use it when present.


class MaintainedStore(ChunkStore, Protocol):
    """The optional methods our stores add, for garbage collection and repair.

    A store without them still works: it is simply not locked, chunk ages
    are unknown (gc then needs ``grace=0``) and damaged chunks are deleted
    rather than set aside.
    """

    def writing(self) -> AbstractContextManager[Any]:
        """Held (shared) by every writer while it stores chunks."""

    def collecting(self, timeout: float) -> AbstractContextManager[Any]:
        """Held (exclusive) by gc; StoreBusyError after timeout seconds of waiting."""

    def mtime(self, name: str) -> float:
        """When name was last stored or refreshed, in seconds since the epoch."""

    def touch(self, name: str) -> bool:
        """Refresh name's modification time; False if it is not there."""

    def quarantine(self, name: str) -> str:
        """Move a damaged chunk out of the store's names; says what was done ("moved to PATH")."""

    def scan(self) -> Iterator[ChunkEntry]:
        """(name, size, mtime) of every stored chunk."""


class MemoryStore:
    """A thread-safe in-memory store, for tests and small jobs."""

    def __init__(self) -> None:
        self._chunks: dict[str, bytes] = {}
        self._times: dict[str, float] = {}
        #: Chunks set aside by quarantine(), by name.
        self.quarantined: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes) -> None:
        check_name(name)
        content = bytes(data)
        with self._lock:
            if name not in self._chunks:
                self._chunks[name] = content
                self._times[name] = time.time()

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
            self._times.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._chunks))

    def mtime(self, name: str) -> float:
        with self._lock:
            stamp = self._times.get(check_name(name))
        if stamp is None:
            raise ChunkNotFoundError("chunk not found in the memory store", name=name)
        return stamp

    def touch(self, name: str) -> bool:
        with self._lock:
            if check_name(name) not in self._chunks:
                return False
            self._times[name] = time.time()
            return True

    def quarantine(self, name: str) -> str:
        with self._lock:
            content = self._chunks.pop(check_name(name), None)
            self._times.pop(name, None)
            if content is None:
                return "not in the store"
            self.quarantined[name] = content
        return "moved to the memory store's quarantined chunks"

    def scan(self) -> Iterator[ChunkEntry]:
        with self._lock:
            entries = [ChunkEntry(n, len(c), self._times[n]) for n, c in self._chunks.items()]
        return iter(entries)

    def writing(self) -> AbstractContextManager[Any]:
        """No lock: one process holds a memory store."""
        return contextlib.nullcontext()

    def collecting(self, timeout: float) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)


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
    gc judge chunk ages; without them gc runs only with ``grace=0``. The
    callbacks are called from several threads at once unless the caller
    passes ``workers=1``.
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
    ) -> None:
        if not callable(get) or (put is not None and not callable(put)):
            raise InvalidArgumentError("CallbackStore needs a callable get (and put, when given)")
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
        if self._put is None:
            raise StoreError("this CallbackStore was given no put callback: it can only be read")
        self._put(check_name(name), data)

    def get(self, name: str) -> bytes:
        try:
            content = self._get(check_name(name))
        except (KeyError, FileNotFoundError):  # the natural ways to say "no such chunk"
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

    def collecting(self, timeout: float) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()


class DirStore:
    """The embedded default store: one file per chunk under a folder.

    Chunks fan out into sub-folders named by the first two hex digits of
    their name. A write goes to a temporary file in the same sub-folder, is
    flushed to disk (unless ``fsync=False``) and renamed into place, so a
    reader never sees a partial chunk and several writers, threads or
    processes, may store the same chunk at once. Chunk files and folders
    get the modes the umask (read when the store is opened) gives new files,
    0644 and 0755 under umask 022, so that a store can be shared.

    ``STORE/.lock`` is the store lock: writers hold it shared
    (:meth:`writing`), garbage collection exclusive (:meth:`collecting`).
    Each holder also keeps a small file naming it (host, process id) in
    ``STORE/.locks/``, so ``self-encryption locks`` can say who holds the
    store. Where there is no flock (Windows), those files are the lock, by
    the lock-object protocol of buckets (:mod:`._lock_objects`).
    Damaged chunks set aside by :meth:`quarantine` go to
    ``STORE/quarantine/``, which is not part of the store's names.
    """

    _TEMP_PREFIX = ".tmp-"
    LOCK_NAME = ".lock"
    LOCKS_NAME = ".locks"
    QUARANTINE_NAME = "quarantine"

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, create: bool = True) -> None:
        self.path = os.fspath(path)
        self._root: str | None = None
        self.fsync = fsync
        if create:
            try:
                os.makedirs(self.path, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create store folder {self.path!r}: {exc.strerror}") from exc
        if not os.path.isdir(self.path):
            raise StoreError(f"no store folder at {self.path!r}")
        self._file_mode = shared_mode()
        self.lock_path = os.path.join(self.path, self.LOCK_NAME)
        self._locks = LockSet(self.lock_space())
        # Writers of this store object share one flock and one holder file (writing() nests:
        # the command line holds it around an Encryptor, which takes it too).
        self._writer_guard = threading.Lock()
        self._writers = 0
        self._writer_hold = contextlib.ExitStack()
        self.quarantine_path = os.path.join(self.path, self.QUARANTINE_NAME)

    def __repr__(self) -> str:
        return f"DirStore({self.path!r})"

    def _path_of(self, name: str) -> str:
        check_name(name)
        return os.path.join(self.path, name[:2], name)

    def put(self, name: str, data: bytes) -> None:
        """Store data under name; an empty file there (never a chunk) is replaced.

        Anything else in the chunk's place that is not a file (a folder, a
        dangling link) is first moved into the quarantine folder.
        """
        target = self._path_of(name)
        if _holds_content(target):
            return
        if os.path.lexists(target) and not os.path.isfile(target):
            self.quarantine(name)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with atomic_write(
                target, prefix=self._TEMP_PREFIX, mode=self._file_mode, durable=self.fsync
            ) as temp:
                temp.write(data)
        except OSError as exc:
            raise StoreError(f"cannot store chunk {name} in {self.path!r}: {exc}") from exc

    def get(self, name: str) -> bytes:
        return self.get_at_most(name, MAX_CHUNK_BYTES + 1)

    def get_at_most(self, name: str, limit: int) -> bytes:
        """The content under name, reading no more than limit bytes of it.

        Readers pass the size the data map expects plus one, so a chunk
        file replaced by something larger costs one byte more than the
        chunk, not the whole file. Only regular files inside the store are
        read: a FIFO, a device or a link leading out of the store is
        reported as a corrupt chunk, and opening never waits for a writer.
        """
        path = self._path_of(name)
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._real_root()]) != self._real_root():
            raise ChunkIntegrityError("chunk file is a link that leads out of the store", name=name)
        try:
            descriptor = os.open(real, _READ_FLAGS)
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk not found in {self.path!r}", name=name) from None
        except OSError as exc:
            raise StoreError(f"cannot read chunk {name} from {self.path!r}: {exc}") from exc
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise ChunkIntegrityError("chunk is not a regular file", name=name)
            return _read_at_most(descriptor, limit)
        except OSError as exc:
            raise StoreError(f"cannot read chunk {name} from {self.path!r}: {exc}") from exc
        finally:
            os.close(descriptor)

    def _real_root(self) -> str:
        if self._root is None:
            self._root = os.path.realpath(self.path)
        return self._root

    def has(self, name: str) -> bool:
        """Whether a chunk file is there; an empty one counts as absent (no chunk is empty)."""
        return _holds_content(self._path_of(name))

    def size(self, name: str) -> int:
        """Bytes stored under name, without reading them."""
        return self._stat(name).st_size

    def mtime(self, name: str) -> float:
        """When the chunk was stored or last refreshed (:meth:`touch`)."""
        return self._stat(name).st_mtime

    def _stat(self, name: str) -> os.stat_result:
        try:
            return os.stat(self._path_of(name))
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk not found in {self.path!r}", name=name) from None
        except OSError as exc:
            raise StoreError(f"cannot read chunk {name} from {self.path!r}: {exc}") from exc

    def touch(self, name: str) -> bool:
        """Set the chunk's modification time to now; False if it is not there."""
        try:
            os.utime(self._path_of(name))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot refresh chunk {name} in {self.path!r}: {exc}") from exc
        return True

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path_of(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete chunk {name} from {self.path!r}: {exc}") from exc

    def quarantine(self, name: str) -> str:
        """Move the chunk file into ``quarantine/``; says where ("moved to PATH")."""
        source = self._path_of(name)
        try:
            os.makedirs(self.quarantine_path, exist_ok=True)
            target = os.path.join(self.quarantine_path, name)
            serial = 0
            while os.path.lexists(target):
                serial += 1
                target = os.path.join(self.quarantine_path, f"{name}.{serial}")
            os.replace(source, target)
        except FileNotFoundError:
            if not os.path.lexists(source):
                return "not in the store"
            raise StoreError(f"cannot move chunk {name} to {self.quarantine_path!r}") from None
        except OSError as exc:
            raise StoreError(f"cannot move chunk {name} to {self.quarantine_path!r}: {exc}") from exc
        with contextlib.suppress(OSError):
            sync_folder(os.path.dirname(source))
            sync_folder(self.quarantine_path)
        return f"moved to {target}"

    def _fanout(self) -> list[str]:
        try:
            folders = sorted(entry.name for entry in os.scandir(self.path) if entry.is_dir())
        except OSError as exc:
            raise StoreError(f"cannot list {self.path!r}: {exc}") from exc
        return [prefix for prefix in folders if len(prefix) == 2 and _HEX.issuperset(prefix)]

    def __iter__(self) -> Iterator[str]:
        for prefix in self._fanout():
            for entry in os.scandir(os.path.join(self.path, prefix)):
                name = entry.name
                if name.startswith(prefix) and is_chunk_name(name):
                    yield name

    def scan(self) -> Iterator[ChunkEntry]:
        """(name, size, mtime) of every chunk file, from one listing."""
        for prefix in self._fanout():
            for entry in os.scandir(os.path.join(self.path, prefix)):
                name = entry.name
                if name.startswith(prefix) and is_chunk_name(name):
                    try:
                        info = entry.stat()
                    except FileNotFoundError:  # deleted since the listing
                        continue
                    yield ChunkEntry(name, info.st_size, info.st_mtime)

    def temporaries(self) -> Iterator[tuple[str, float]]:
        """(path, mtime) of every temporary file a write left in the fan-out folders."""
        for prefix in self._fanout():
            for entry in os.scandir(os.path.join(self.path, prefix)):
                if entry.name.startswith(self._TEMP_PREFIX):
                    try:
                        yield entry.path, entry.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:
                        continue

    def remove_temporaries(self, older_than: float, *, delete: bool = True) -> int:
        """Remove (or with delete=False only count) temporaries unchanged for older_than seconds.

        A write in progress keeps changing its temporary; one left by a
        killed process stays as it was. Returns how many there were.
        """
        cutoff = time.time() - older_than
        count = 0
        for path, mtime in list(self.temporaries()):
            if mtime > cutoff:
                continue
            if delete:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StoreError(f"cannot remove temporary file {path!r}: {exc}") from exc
            count += 1
        return count

    def lock_space(self) -> FolderLockSpace:
        """The folder of lock-holder files (``self-encryption locks`` lists it)."""
        return FolderLockSpace(os.path.join(self.path, self.LOCKS_NAME))

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the store lock shared while storing chunks, waiting out a running gc."""
        if fcntl is None:
            with self._locks.shared():
                yield
            return
        with self._writer_guard:
            if self._writers == 0:
                with contextlib.ExitStack() as hold:
                    descriptor = self._open_lock()
                    hold.callback(os.close, descriptor)
                    fcntl.flock(descriptor, fcntl.LOCK_SH)
                    hold.enter_context(self._locks.announce(SHARED))
                    self._writer_hold = hold.pop_all()
            self._writers += 1
        try:
            yield
        finally:
            with self._writer_guard:
                self._writers -= 1
                if self._writers == 0:
                    self._writer_hold.close()

    @contextlib.contextmanager
    def collecting(self, timeout: float = 60.0) -> Iterator[Any]:
        """Hold the store lock exclusive, so that no writer runs; StoreBusyError after timeout seconds."""
        if fcntl is None:
            with self._locks.exclusive(timeout) as held:
                yield held
            return
        descriptor = self._open_lock()
        try:
            deadline = time.monotonic() + max(0.0, timeout)
            pause = 0.01
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StoreBusyError(
                            f"store {self.path!r} is busy: its lock {self.lock_path!r} is held "
                            f"by {self._holders()}; waited {timeout:g} s"
                        ) from None
                    time.sleep(min(pause, left))
                    pause = min(pause * 2, 0.25)
            # Nobody else holds the flock now: any holder file of it left is a killed process's.
            # (Lock files of machines without flock are not ours to judge: a folder store is
            # locked by flock, or by lock files, not by both at once.)
            leftovers = [
                lock
                for lock in list_locks(self.lock_space(), details=True)
                if lock.id.startswith(FLOCK_HOLDER)
            ]
            for leftover in leftovers:
                self.lock_space().delete(leftover.id)
            with self._locks.announce(EXCLUSIVE) as held:
                held.removed = leftovers
                yield held
        finally:
            os.close(descriptor)

    def _holders(self) -> str:
        """Who holds the store lock, from the holder files: "a writer (host H, pid P), ..." """
        try:
            holders: list[LockInfo] = list_locks(self.lock_space(), details=True)
        except StoreError:
            holders = []
        if not holders:
            return "a writer (an encrypt is running)"
        return "; ".join(holder.describe() for holder in holders[:3])

    def _open_lock(self) -> int:
        try:
            return os.open(self.lock_path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise StoreError(f"cannot open the store lock {self.lock_path!r}: {exc.strerror or exc}") from exc

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)


def _holds_content(path: str) -> bool:
    """A regular file with at least one byte at path."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size > 0
