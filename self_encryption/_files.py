"""Writing a file so that it is either wholly there or not at all.

Chunks, data maps and decrypted outputs are all written the same way: into
a temporary file beside the target, flushed to disk, renamed over the
target, and the folder flushed so that the rename itself survives a crash.
A :class:`ReservedFile` does the same in two steps, claiming the space
before the content exists. This module also names those temporaries and
reads the process's umask, so that files meant to be shared honour it, and
creates folders so that they, too, survive a power cut.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

#: The suffix of every temporary that stands for a data map or a decrypted file.
PARTIAL_SUFFIX = ".partial"
#: How many bytes of the target's name a temporary's name repeats (names are at most 255 bytes).
_NAME_BYTES = 150


@contextlib.contextmanager
def atomic_write(
    target: str, *, prefix: str, suffix: str = "", mode: int | None = None, durable: bool = True
) -> Iterator[BinaryIO]:
    """A binary file that replaces ``target`` when the block ends without error.

    The temporary file is named ``prefix...suffix`` in target's folder and is
    removed on any error. ``mode``, when given, is set before the rename;
    ``durable=False`` skips both flushes (for callers that trade safety
    against a power cut for speed).
    """
    folder = os.path.dirname(os.path.abspath(target))
    handle, temp_path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        with os.fdopen(handle, "wb") as temp:
            if mode is not None:
                _set_mode(temp.fileno(), temp_path, mode)
            yield temp
            if durable:
                temp.flush()
                os.fsync(temp.fileno())
        os.replace(temp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    if durable:
        sync_folder(folder)


#: Bytes written to a large file between two requests to start writing them back (see written_back).
WRITEBACK_BYTES = 32 << 20


def written_back(file: BinaryIO) -> Callable[[Any], int]:
    """file.write, asking the kernel every WRITEBACK_BYTES to start writing back what it was given.

    A file that is fsynced at the end (a decrypted file, by atomic_write)
    otherwise waits then for the disk to take all of it at once; written
    back as it comes, the disk works beside the decryption. Where there is
    no posix_fadvise (macOS, Windows) it is file.write itself.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return file.write
    descriptor = file.fileno()
    done = [0, 0]  # bytes written, bytes asked to be written back

    def write(data: Any) -> int:
        count = file.write(data)
        done[0] += count
        if done[0] - done[1] >= WRITEBACK_BYTES:
            file.flush()
            # DONTNEED starts writeback of the range (dirty pages are kept until written).
            with contextlib.suppress(OSError):
                advise(descriptor, done[1], done[0] - done[1], os.POSIX_FADV_DONTNEED)
            done[1] = done[0]
        return count

    return write


def sync_folder(folder: str) -> None:
    """Make a rename in folder durable; folders cannot be opened for this on Windows."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def make_folders(path: str | os.PathLike[str], *, durable: bool = True) -> None:
    """Create the folder path and its missing parents, and make each creation survive a power cut.

    Like ``os.makedirs(path, exist_ok=True)``, but folders are made top
    down and, after each, its parent is flushed: on a file system that does
    not order metadata for us, a folder's entry in its parent is durable
    only once the parent was fsynced, and a chunk or map flushed inside an
    unflushed folder would vanish with it. The last folder is flushed too.
    A folder another process creates at the same moment counts as ours
    (it may not have flushed the parent yet). ``durable=False`` only creates.
    """
    target = os.path.abspath(os.fspath(path))
    missing = []
    folder = target
    while not os.path.lexists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not missing and not os.path.isdir(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target)
    for folder in reversed(missing):  # below something that is not a folder, mkdir says so
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
        if durable:
            sync_folder(os.path.dirname(folder))
    if durable and missing:
        sync_folder(target)


def _set_mode(descriptor: int, path: str, mode: int) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(descriptor, mode)
    else:  # Windows: only the read-only bit exists
        os.chmod(path, mode)


def hidden_prefix(target: str, tag: str = "") -> str:
    """``.NAME.TAG``: the start of a temporary's name beside target, NAME being target's name.

    NAME is cut to a length that keeps the whole temporary name a valid file name.
    """
    name = os.fsencode(os.path.basename(os.path.abspath(target)))[:_NAME_BYTES]
    return f".{os.fsdecode(name)}.{tag}"


_R = TypeVar("_R", bound="ReservedFile")


class ReservedFile:
    """A file's place claimed before its content is known, filled in later.

    The temporary beside ``target`` (named ``prefix...suffix``, mode 0600)
    receives ``size`` placeholder bytes and is flushed to disk at once, so a
    folder that cannot be written, or a disk without room, fails here,
    before any work was done. :meth:`commit` writes the content over the
    placeholder and renames it into place (over an existing target only
    with ``replace``); :meth:`discard` removes the temporary. As a context
    manager it discards on any exit that did not commit.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        prefix: str,
        suffix: str = PARTIAL_SUFFIX,
        size: int,
        mode: int = 0o600,
        replace: bool = True,
    ) -> None:
        self.target = os.path.abspath(os.fspath(target))
        self.replace = replace
        self._mode = mode
        self._folder = os.path.dirname(self.target)
        if os.path.isdir(self.target):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.target)
        handle, self.temp_path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self._folder)
        self._file: BinaryIO | None = os.fdopen(handle, "r+b")
        try:
            note = b"self-encryption: this file is being written\n"
            self._file.write((note + b" " * size)[: max(size - 1, 0)] + b"\n"[:size])
            self._file.flush()
            os.fsync(self._file.fileno())
        except BaseException:
            self.discard()
            raise

    def commit(self, content: bytes) -> None:
        """Write content over the placeholder, flush it and rename it to the target.

        Without ``replace``, an existing target is left alone and
        FileExistsError is raised. On any error the temporary is removed.
        """
        if self._file is None:
            raise ValueError("this ReservedFile was already committed or discarded")
        try:
            temp, self._file = self._file, None
            with temp:
                temp.seek(0)
                temp.write(content)
                temp.truncate()
                _set_mode(temp.fileno(), self.temp_path, self._mode)
                temp.flush()
                os.fsync(temp.fileno())
            if self.replace:
                os.replace(self.temp_path, self.target)
            else:
                self._rename_exclusive()
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self.temp_path)
            raise
        sync_folder(self._folder)

    def _rename_exclusive(self) -> None:
        """Rename without replacing: a hard link fails if the target exists.

        Only a file system that has no hard links falls back to checking,
        then renaming (which gives up the promise against a writer racing
        us); any other failure of link() fails the commit.
        """
        try:
            os.link(self.temp_path, self.target)
        except FileExistsError:
            raise
        except OSError as exc:
            if not _links_unsupported(exc):
                raise
            if os.path.lexists(self.target):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), self.target) from None
            os.replace(self.temp_path, self.target)
            return
        os.unlink(self.temp_path)

    def discard(self) -> None:
        """Remove the temporary, unless commit() already renamed it."""
        temp, self._file = self._file, None
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.close()
            with contextlib.suppress(OSError):
                os.unlink(self.temp_path)

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()


#: What link() answers on a file system without hard links. EPERM: Linux's word for it (FAT,
#: exFAT, some FUSE file systems); EOPNOTSUPP/ENOTSUP and ENOSYS: network and FUSE file systems
#: that do not implement it; EXDEV: the temporary lies beside the target, so only a file
#: system that refuses links (some FUSE and union file systems) answers it; EMLINK: our temporary
#: has one link, so a file system refusing a second one has no hard links at all. Anything else
#: (EIO, ENOSPC, EROFS, EACCES...) is a failure of this save, not a missing feature.
_NO_HARD_LINKS = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "EOPNOTSUPP", "ENOTSUP", "ENOSYS", "EXDEV", "EMLINK")
    if hasattr(errno, name)
)
#: Windows' own codes for the same: ERROR_INVALID_FUNCTION and ERROR_NOT_SUPPORTED (FAT, shares).
_NO_HARD_LINKS_WINDOWS = frozenset({1, 50})


def _links_unsupported(exc: OSError) -> bool:
    """Whether a failed link() means the file system has no hard links (not that the link failed)."""
    return exc.errno in _NO_HARD_LINKS or getattr(exc, "winerror", None) in _NO_HARD_LINKS_WINDOWS


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's file-creation mask, read without changing it where possible.

    Linux shows it in /proc/self/status; elsewhere it is set and restored
    under a lock (other threads creating files at that instant would see
    the same mask, since it is put back unchanged).
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def shared_mode(umask: int | None = None) -> int:
    """The mode of a new file readable as the umask allows: 0o666 less the umask (0644 under 022)."""
    return 0o666 & ~(current_umask() if umask is None else umask)
