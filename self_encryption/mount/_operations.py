"""The file system a mount serves: FUSE's path-based operations over a MapTree, a store and open files.

Every operation turns our errors into an errno for the kernel: a chunk that
is missing or corrupt, or a store that fails, gives EIO and one log line
naming the file and the chunk; a map file that is not a data map gives EIO
and one log line naming it. Nothing here holds a lock while it waits for
the store, except a writer's own lock (other files go on).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import self_encryption as se

from ._files import Writer, save_all
from ._fuse import FuseError, copy_into
from ._reading import Reading
from ._tree import BadMapError, Identity, MapTree

log = logging.getLogger("self_encryption.mount")

_F = TypeVar("_F", bound=Callable[..., Any])


class Settings(NamedTuple):
    """What a mount does beyond its maps and store (see self_encryption.mount.mount)."""

    writable: bool
    options: dict[str, Any]  # encryption options of new files and edits
    workers: int | None  # read-ahead threads per open file
    save_every: int


def _errors(operation: _F) -> _F:
    """Turn what an operation raises into an errno, logging the failures a user must hear of."""

    @functools.wraps(operation)
    def guarded(self: FileSystem, path: str | None, *args: Any) -> Any:
        try:
            return operation(self, path, *args)
        except BadMapError as exc:
            log.error("%s: %s is not a data map: %s", path, exc.map_path, exc.reason)
            raise
        except OSError:
            raise
        except se.ChunkError as exc:
            log.error("%s: %s", path, exc)
            raise FuseError(errno.EIO) from None
        except se.SelfEncryptionError as exc:
            log.error("%s: %s", path, exc)
            raise FuseError(errno.EIO) from None

    return guarded  # type: ignore[return-value]


class FileSystem:
    """The operations the FUSE binding calls, by path; file handles are small integers."""

    use_ns = True  # times are integers of nanoseconds

    def __init__(
        self, tree: MapTree, store: Any, settings: Settings, on_ready: Callable[[], object] | None = None
    ) -> None:
        self.tree = tree
        self._on_ready = on_ready
        self._folder = os.getcwd()
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._handles: dict[int, Reading | Writer] = {}
        self._next_handle = 1
        self._writers: dict[str, Writer] = {}  # by mount path

    # -- bookkeeping ---------------------------------------------------------------

    def _add_handle(self, opened: Reading | Writer) -> int:
        with self._lock:
            number = self._next_handle
            self._next_handle += 1
            self._handles[number] = opened
            if isinstance(opened, Writer):
                opened.handles += 1
            return number

    def _handle(self, number: int) -> Reading | Writer:
        with self._lock:
            opened = self._handles.get(number)
        if opened is None:
            raise FuseError(errno.EBADF)
        return opened

    def _writer(self, path: str, *, new: bool = False) -> Writer:
        """The one writer of path, made on first need (new: the file is being created)."""
        map_path = self.tree.map_path(path)
        with self._lock:
            writer = self._writers.get(path)
        if writer is not None:
            return writer
        if new:
            data_map, identity = None, None
        else:
            info = _stat(map_path)
            data_map, identity = self.tree.load(map_path, info), Identity.of(info)
        writer = Writer(
            path, map_path, self.store, data_map, identity, self.settings.options, self.settings.save_every
        )
        writer.on_conflict = self._drop_writer
        with self._lock:
            return self._writers.setdefault(path, writer)

    def _writer_at(self, path: str) -> Writer | None:
        with self._lock:
            return self._writers.get(path)

    def _drop_writer(self, writer: Writer) -> None:
        with self._lock:
            if self._writers.get(writer.path) is writer:
                del self._writers[writer.path]

    def _check_writable(self) -> None:
        if not self.settings.writable:
            raise FuseError(errno.EROFS)

    def save_everything(self) -> None:
        """Save what every open writer holds (at unmount)."""
        with self._lock:
            writers = list(self._writers.values())
        save_all(writers)

    # -- attributes and folders -----------------------------------------------------

    @_errors
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if self.tree.is_folder(path):
            return self.tree.folder_attributes(path)
        writer = self._writer_at(path)
        attributes = self.tree.file_attributes(path, None if writer is None else writer.size)
        if writer is not None:
            attributes["st_mtime"] = max(attributes["st_mtime"], writer.modified_ns)
        return attributes

    @_errors
    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self.tree.names(path)]

    @_errors
    def statfs(self, path: str) -> dict[str, int]:
        info = os.statvfs(self.tree.root)
        fields = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")
        return {name: getattr(info, name) for name in fields}

    @_errors
    def mkdir(self, path: str, mode: int) -> None:
        self._check_writable()
        os.mkdir(self.tree.folder_of(path), mode & 0o7777)

    @_errors
    def rmdir(self, path: str) -> None:
        self._check_writable()
        os.rmdir(self.tree.folder_of(path))

    @_errors
    def chmod(self, path: str, mode: int) -> None:
        self._check_writable()
        if self.tree.is_folder(path):
            os.chmod(self.tree.folder_of(path), mode & 0o7777)
            return
        os.chmod(self.tree.map_path(path), mode & 0o700)  # a map opens its file: never for others
        self._refresh(path)

    @_errors
    def chown(self, path: str, uid: int, gid: int) -> None:
        self._check_writable()
        target = self.tree.folder_of(path) if self.tree.is_folder(path) else self.tree.map_path(path)
        os.chown(target, uid, gid)
        self._refresh(path)

    @_errors
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        self._check_writable()
        given = times if times is not None else _now_times()
        if self.tree.is_folder(path):
            os.utime(self.tree.folder_of(path), ns=given)
            return
        os.utime(self.tree.map_path(path), ns=given)
        writer = self._writer_at(path)
        if writer is not None:
            writer.set_times(given)

    def _refresh(self, path: str) -> None:
        writer = self._writer_at(path)
        if writer is not None:
            writer.refresh()

    # -- names -----------------------------------------------------------------------

    @_errors
    def unlink(self, path: str) -> None:
        self._check_writable()
        map_path = self.tree.map_path(path)
        os.unlink(map_path)  # the chunks stay: removing unreferenced ones is gc's business
        self.tree.forget(map_path)
        writer = self._writer_at(path)
        if writer is not None:
            writer.abandon()
            self._drop_writer(writer)

    @_errors
    def rename(self, old: str, new: str) -> None:
        self._check_writable()
        if self.tree.is_folder(old):
            os.rename(self.tree.folder_of(old), self.tree.folder_of(new))
            self._move_writers(old, new, folder=True)
            return
        target = self.tree.map_path(new)
        if os.path.isdir(self.tree.folder_of(new)) if self.tree.single is None else False:
            raise FuseError(errno.EISDIR)
        os.replace(self.tree.map_path(old), target)
        replaced = self._writer_at(new)
        if replaced is not None:
            replaced.abandon()
            self._drop_writer(replaced)
        self._move_writers(old, new, folder=False)

    def _move_writers(self, old: str, new: str, *, folder: bool) -> None:
        with self._lock:
            moved = [
                writer
                for path, writer in self._writers.items()
                if path == old or (folder and path.startswith(old.rstrip("/") + "/"))
            ]
            for writer in moved:
                del self._writers[writer.path]
                writer.path = new + writer.path[len(old) :]
                writer.map_path = self.tree.map_path(writer.path)
                self._writers[writer.path] = writer
        for writer in moved:
            writer.refresh()

    # -- files -------------------------------------------------------------------------

    @_errors
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        self._check_writable()
        map_path = self.tree.map_path(path)
        if not os.path.isdir(os.path.dirname(map_path)):
            raise FuseError(errno.ENOENT)
        writer = self._writer(path, new=True)
        with writer.lock:
            writer.save("created")  # the file exists from now on, empty, like any other
        return self._add_handle(writer)

    @_errors
    def open(self, path: str, flags: int) -> int:
        wants_write = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if wants_write:
            self._check_writable()
            writer = self._writer(path)
            if flags & os.O_TRUNC:
                writer.truncate(0)
            return self._add_handle(writer)
        shared = self._writer_at(path)
        if shared is not None:
            return self._add_handle(shared)
        map_path = self.tree.map_path(path)
        reading = Reading(path, self.tree.load(map_path), self.store, self.settings.workers)
        return self._add_handle(reading)

    @_errors
    def read_into(self, path: str | None, address: int, size: int, offset: int, fh: int) -> int:
        """Copy the bytes at [offset, offset + size) to libfuse's buffer at ``address``; returns how many."""
        opened = self._handle(fh)
        if isinstance(opened, Reading):
            return opened.read_into(address, size, offset)
        data = opened.read(size, offset)
        copy_into(address, data, 0, len(data))
        return len(data)

    @_errors
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        # The binding registers a read callback only for an operation named read; _fuse's
        # binding then calls read_into instead.
        return self._handle(fh).read(size, offset)

    @_errors
    def write(self, path: str | None, data: memoryview, offset: int, fh: int) -> int:
        # data is libfuse's buffer (see _fuse._binding): the writer copies what it keeps.
        opened = self._handle(fh)
        if not isinstance(opened, Writer):
            raise FuseError(errno.EBADF)
        return opened.write(data, offset)

    @_errors
    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._check_writable()
        writer = self._writer(path)
        with self._lock:
            writer.handles += 1  # held while truncating, so that no close drops it meanwhile
        try:
            writer.truncate(length)
        finally:
            self._let_go(writer)

    @_errors
    def fsync(self, path: str, datasync: int, fh: int) -> None:
        opened = self._handle(fh)
        if isinstance(opened, Writer):
            opened.save("fsync")

    @_errors
    def flush(self, path: str, fh: int) -> None:
        # close(2) waits for flush, not for release: the last close saves here, so that
        # the map file is saved when close returns.
        opened = self._handle(fh)
        if isinstance(opened, Writer) and opened.handles <= 1:
            opened.save("close")

    @_errors
    def release(self, path: str, fh: int) -> None:
        with self._lock:
            opened = self._handles.pop(fh, None)
        if isinstance(opened, Reading):
            opened.close()
        elif isinstance(opened, Writer):
            self._let_go(opened)

    def _let_go(self, writer: Writer) -> None:
        """One handle less; the last one saves and forgets the writer."""
        with self._lock:
            writer.handles -= 1
            last = writer.handles <= 0
        if last:
            with writer.lock:
                writer.save("close")
                with self._lock:
                    if writer.handles <= 0:
                        self._drop_writer_locked(writer)

    def _drop_writer_locked(self, writer: Writer) -> None:
        if self._writers.get(writer.path) is writer:
            del self._writers[writer.path]

    def init(self, path: str) -> None:
        # libfuse moved the process to / as it started serving: go back, so that a
        # store opened by a relative path still finds its folder.
        os.chdir(self._folder)
        # The kernel's first request: the mount is in place (no thread polls for it).
        if self._on_ready is not None:
            self._on_ready()

    def destroy(self, path: str) -> None:
        self.save_everything()


def _stat(map_path: str) -> os.stat_result:
    try:
        info = os.stat(map_path)
    except OSError as exc:
        raise FuseError(exc.errno or errno.ENOENT) from None
    if stat.S_ISDIR(info.st_mode):
        raise FuseError(errno.EISDIR)
    return info


def _now_times() -> tuple[int, int]:
    import time

    now = time.time_ns()
    return now, now
