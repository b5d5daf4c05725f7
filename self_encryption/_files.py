"""Writing a file so that it is either wholly there or not at all.

Chunks, data maps and decrypted outputs are all written the same way: into
a temporary file beside the target, flushed to disk, renamed over the
target, and the folder flushed so that the rename itself survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(target: str, *, prefix: str, suffix: str = "", mode: int | None = None,
                 durable: bool = True) -> Iterator[BinaryIO]:
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
            yield temp
            if durable:
                temp.flush()
                os.fsync(temp.fileno())
        if mode is not None:
            os.chmod(temp_path, mode)
        os.replace(temp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    if durable:
        sync_folder(folder)


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # elsewhere: set and restore it at once
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def sync_folder(folder: str) -> None:
    """Make a rename in folder durable; folders cannot be opened for this on Windows."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
