"""Open files of a mount: read-only handles, and one writer per file being written.

A handle opened for reading only is a Reading (see _reading). Every handle
that may write a file shares that file's one :class:`Writer`, which holds
the file's content (a
:class:`self_encryption.SelfEncryptor`, or a stream while the file only
grows from empty: see _content); a read-only handle opened while a writer
exists reads through the writer, so it sees the unsaved bytes.

A writer saves (flushes its content, then replaces the map file
atomically, mode 0600) on fsync, on the last close, when more than
``save_every`` bytes were written in place since the last save (so an
editor's memory stays bounded), and when the mount ends. It holds
the store's writer lock from the flush until the map is saved, so a gc
never sees the new chunks unreferenced. If the map file changed behind the
mount since this writer last read or saved it, the save never replaces it:
the map is saved beside it as a conflict copy, and the log says so.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import self_encryption as se

from ._content import Content
from ._fuse import FuseError
from ._tree import MAP_SUFFIX, Identity

log = logging.getLogger("self_encryption.mount")

#: A writer saves once this many bytes were written since its last save.
DEFAULT_SAVE_EVERY = 64 << 20


class Writer:
    """One file open for writing: its encryptor, where it saves, and what its map file looked like."""

    def __init__(
        self,
        path: str,
        map_path: str,
        store: Any,
        data_map: se.DataMap | None,
        identity: Identity | None,
        options: dict[str, Any],
        save_every: int,
    ) -> None:
        self.path = path
        self.map_path = map_path
        self.identity = identity  # of the map file as last read or saved; None: not yet saved
        self.handles = 0
        self.unlinked = False
        self.modified_ns = time.time_ns()
        self._store = store
        self._content = Content(store, data_map, options)
        self._save_every = save_every
        self._unsaved = 0  # bytes written since the last save
        self._dirty = data_map is None
        self._times: tuple[int, int] | None = None  # set by utimens after the last write
        self.lock = threading.RLock()
        #: Called (holding self.lock) once a save went to a conflict copy: from then on this
        #: writer serves only the handles it has, and the name shows the other version.
        self.on_conflict: Callable[[Writer], None] | None = None

    @property
    def size(self) -> int:
        return self._content.size

    def read(self, size: int, offset: int) -> bytes:
        with self.lock:
            return self._content.read(offset, size)

    def write(self, data: bytes | memoryview, offset: int) -> int:
        """Write data at offset; data may be reused once this returns (the content copies it)."""
        with self.lock:
            written = self._content.write(data, offset)
            self._changed(written)
            if self._unsaved >= self._save_every and not self._content.streaming:
                self.save("written")
            return written

    def truncate(self, size: int) -> None:
        with self.lock:
            self._content.truncate(size)
            self._changed(0)

    def abandon(self) -> None:
        """The file was removed: nothing of it will be saved (a stream lets go of the store's lock)."""
        with self.lock:
            self.unlinked = True
            self._content.abandon()

    def _changed(self, count: int) -> None:
        self._dirty = True
        self._unsaved += count
        self._times = None
        self.modified_ns = time.time_ns()

    def set_times(self, times: tuple[int, int]) -> None:
        """Times given by utimens: kept across the next save, which would otherwise make them now."""
        with self.lock:
            self._times = times
            self.refresh()

    def refresh(self) -> None:
        """Take the map file as it is now as ours (after our own rename, utime or chmod of it)."""
        with self.lock:
            with contextlib.suppress(OSError):
                self.identity = Identity.of(os.stat(self.map_path))

    def save(self, why: str) -> None:
        """Store what changed and save the map, unless nothing changed or the file was unlinked."""
        with self.lock:
            if self.unlinked or not self._dirty:
                return
            with se.writer_lock(self._store):
                data_map = self._content.flush()
                target = self._save_map(data_map)
            self._dirty = False
            self._unsaved = 0
            if self._times is not None:
                with contextlib.suppress(OSError):
                    os.utime(target, ns=self._times)
            self.map_path = target
            self.refresh()
            log.debug("%s: saved (%s)", self.path, why)

    def _save_map(self, data_map: se.DataMap) -> str:
        """Save into the map file, or beside it when it changed behind the mount; returns where."""
        try:
            now: Identity | None = Identity.of(os.stat(self.map_path))
        except FileNotFoundError:
            now = None
        if now == self.identity or (self.identity is None and now is None):
            with se.reserve_map_file(self.map_path, replace=True) as reserved:
                reserved.save(data_map)
            return self.map_path
        for attempt in range(1000):
            target = conflict_path(self.map_path, attempt)
            try:
                with se.reserve_map_file(target) as reserved:
                    reserved.save(data_map)
            except FileExistsError:
                continue
            what = "changed" if now is not None else "was removed"
            if self.on_conflict is not None:
                self.on_conflict(self)
            log.warning(
                "%s: the map file %s behind the mount; saved this version as %s",
                self.path,
                what,
                os.path.basename(target),
            )
            return target
        raise FuseError(errno.EEXIST)


def conflict_path(map_path: str, attempt: int) -> str:
    """``NAME.conflict-YYYYMMDDTHHMMSSZ[-N].sedm`` beside ``NAME.sedm``."""
    folder, name = os.path.split(map_path)
    stem = name[: -len(MAP_SUFFIX)] if name.endswith(MAP_SUFFIX) else name
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    extra = f"-{attempt}" if attempt else ""
    return os.path.join(folder, f"{stem}.conflict-{stamp}{extra}{MAP_SUFFIX}")


def save_all(writers: list[Writer]) -> None:
    """Save every writer that has unsaved changes, logging (not raising) what fails."""
    for writer in writers:
        try:
            writer.save("unmount")
        except (OSError, se.SelfEncryptionError) as exc:
            log.error("%s: could not save: %s", writer.path, exc)
