"""DirStore: the embedded default store, one file per chunk under a folder."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

from .._datamap import check_name, is_chunk_name
from .._errors import ChunkIntegrityError, ChunkNotFoundError, StoreBusyError, StoreError
from .._files import atomic_write, make_folders, shared_mode, sync_folder
from .locks import EXCLUSIVE, FLOCK_HOLDER, SHARED, FolderLockSpace, LockInfo, LockSet, list_locks
from .protocol import MAX_CHUNK_BYTES, ChunkEntry

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: the folder store locks with lock objects instead
    fcntl = None

_HEX = frozenset("0123456789abcdef")
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
    the lock-object protocol of buckets (:mod:`.locks`).
    Damaged chunks set aside by :meth:`quarantine` go to
    ``STORE/quarantine/``, which is not part of the store's names.
    """

    #: Requests at once: a write mostly waits on its flush to disk, so several overlap
    #: (8 wrote 1.2-1.6x faster than 2 on this project's 2-core machine; reads were even).
    io_concurrency = 8

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
                make_folders(self.path, durable=fsync)
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
        if os.path.islink(os.path.dirname(target)):
            raise StoreError(
                f"cannot store chunk {name}: {os.path.dirname(target)!r} is a link, "
                "not a folder of the store, and is not written through"
            )
        if _holds_content(target):
            return
        if os.path.lexists(target) and not os.path.isfile(target):
            self.quarantine(name)
        try:
            make_folders(os.path.dirname(target), durable=self.fsync)
            with atomic_write(
                target, prefix=self._TEMP_PREFIX, mode=self._file_mode, durable=self.fsync
            ) as temp:
                temp.write(data)
        except OSError as exc:
            raise StoreError(f"cannot store chunk {name} in {self.path!r}: {exc}") from exc

    def get(self, name: str) -> bytes:
        """The content under name; ChunkNotFoundError if absent, ChunkIntegrityError if it is not a regular file inside the store."""
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
        if not self._inside(real):
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
        """Whether a chunk file is there; an empty one counts as absent (no chunk is empty).

        So does one whose path leads out of the store (through a linked
        fan-out folder, say), which reads refuse.
        """
        path = self._path_of(name)
        return _holds_content(path) and self._inside(path)

    def _inside(self, path: str) -> bool:
        return os.path.commonpath([os.path.realpath(path), self._real_root()]) == self._real_root()

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
        """Remove the chunk file; never through a fan-out folder that is a link (StoreError)."""
        path = self._path_of(name)
        try:
            with _real_folder(os.path.dirname(path), f"delete chunk {name}") as folder:
                if folder is None:
                    return  # no such folder: no such chunk
                if folder == -1:
                    os.unlink(path)
                else:
                    os.unlink(name, dir_fd=folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete chunk {name} from {self.path!r}: {exc}") from exc

    def quarantine(self, name: str) -> str:
        """Move the chunk file into ``quarantine/``; says where ("moved to PATH").

        Both ends must be real folders of the store: a ``quarantine`` or a
        fan-out folder that is a link (or not a folder) is refused with
        StoreError naming it, and the chunk stays where it is, so that a
        repair never moves a file out of the store or one of another's in.
        """
        source = self._path_of(name)
        try:
            if not os.path.lexists(self.quarantine_path):
                make_folders(self.quarantine_path)
            with (
                _real_folder(os.path.dirname(source), f"set chunk {name} aside") as origin,
                _real_folder(self.quarantine_path, f"set chunk {name} aside") as quarantine,
            ):
                if origin is None or not os.path.lexists(source):
                    return "not in the store"
                if quarantine is None:
                    raise StoreError(f"cannot set chunk {name} aside: {self.quarantine_path!r} vanished")
                target_name = name
                serial = 0
                while os.path.lexists(os.path.join(self.quarantine_path, target_name)):
                    serial += 1
                    target_name = f"{name}.{serial}"
                os.replace(
                    name if origin != -1 else source,
                    target_name if quarantine != -1 else os.path.join(self.quarantine_path, target_name),
                    **_dir_fds(origin, quarantine),
                )
                target = os.path.join(self.quarantine_path, target_name)
        except FileNotFoundError:
            if not os.path.lexists(source):
                return "not in the store"
            raise StoreError(f"cannot move chunk {name} to {self.quarantine_path!r}") from None
        except OSError as exc:
            raise StoreError(f"cannot move chunk {name} to {self.quarantine_path!r}: {exc}") from exc
        # The new entry first: with the old one's removal flushed first, a power cut could lose the file.
        with contextlib.suppress(OSError):
            sync_folder(self.quarantine_path)
            sync_folder(os.path.dirname(source))
        return f"moved to {target}"

    def _fanout(self) -> list[str]:
        """The fan-out folders to list: real folders only, never a link (see :meth:`skipped_folders`)."""
        return [prefix for prefix, linked in self._fanout_entries() if not linked]

    def skipped_folders(self) -> list[str]:
        """Paths of the fan-out folders that listing, scanning and deleting leave alone: links.

        A fan-out folder that is a link (to another store's folder, say)
        holds nothing of this store's: reads already refuse a chunk file
        that leads out of the store, and listing never enters such a folder,
        so that garbage collection never deletes through it.
        """
        return [os.path.join(self.path, prefix) for prefix, linked in self._fanout_entries() if linked]

    def _fanout_entries(self) -> list[tuple[str, bool]]:
        """(name, is a link) of each entry named like a fan-out folder that is a folder or a link."""
        try:
            found = sorted(
                (entry.name, entry.is_symlink())
                for entry in os.scandir(self.path)
                if entry.is_symlink() or entry.is_dir(follow_symlinks=False)
            )
        except OSError as exc:
            raise StoreError(f"cannot list {self.path!r}: {exc}") from exc
        return [(prefix, linked) for prefix, linked in found if len(prefix) == 2 and _HEX.issuperset(prefix)]

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

    def begin_writing(self) -> AbstractContextManager[None]:
        """:meth:`writing`: a local lock costs no round trip, so it is taken before the block."""
        return self.writing()

    @contextlib.contextmanager
    def collecting(self, timeout: float = 60.0) -> Iterator[Any]:
        """Hold the store lock exclusive, so that no writer runs; StoreBusyError after timeout seconds.

        Yields the held lock: its ``removed`` lists the holder files of killed
        processes it cleared (gc reports them).
        """
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


#: Whether folders can be opened without following a link and used as dir_fd (POSIX).
_DIR_FDS = os.name == "posix" and {os.unlink, os.rename} <= os.supports_dir_fd  # os.replace too


@contextlib.contextmanager
def _real_folder(path: str, purpose: str) -> Iterator[int | None]:
    """A real folder at path, held open without following links: its descriptor (-1 where that cannot be done).

    None if nothing is at path. A link or anything but a folder is refused
    with StoreError naming it: a store never reaches through a link to change
    files (a link another process puts there afterwards is not followed either).
    """
    refusal = f"cannot {purpose}: {path!r} is a link or not a folder, and is not entered"
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        yield None
        return
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(refusal)
    if not _DIR_FDS:
        yield -1
        return
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        yield None
        return
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise StoreError(refusal) from None
        raise
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def _dir_fds(source: int | None, target: int | None) -> dict[str, int]:
    fds = {}
    if source is not None and source != -1:
        fds["src_dir_fd"] = source
    if target is not None and target != -1:
        fds["dst_dir_fd"] = target
    return fds
