"""Where each path of a mount lives on disk, and what ``stat`` and ``ls`` show, without the store.

A mount shows either one map file (as a folder holding that one file) or a
folder of maps, mirrored: ``docs/a.txt.sedm`` appears as ``docs/a.txt``;
files without the suffix (temporaries, notes) do not appear. A file's size
comes from its root map, read from the map file (never from the store); its
times and owner come from the map file, its mode is the map file's owner
bits, so a writable mount shows 0600 files. Root maps are small and kept,
keyed by the map file's identity, so a repeated ``stat`` reads nothing.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from typing import Any, NamedTuple

import self_encryption as se

from ._fuse import FuseError

MAP_SUFFIX = se.MAP_SUFFIX
#: How many root maps are kept by their file's identity.
_KEPT_MAPS = 4096


class Identity(NamedTuple):
    """What changes when a map file is replaced or rewritten behind the mount."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> Identity:
        return cls(info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class MapTree:
    """The mapping between the mount's paths and the map files (and folders) under ``root``."""

    def __init__(self, source: str | os.PathLike[str]) -> None:
        source = os.path.abspath(os.fspath(source))
        if os.path.isdir(source):
            self.root, self.single = source, None
        elif os.path.isfile(source):
            name = os.path.basename(source)
            shown = name[: -len(MAP_SUFFIX)] if name.endswith(MAP_SUFFIX) and name != MAP_SUFFIX else name
            self.root, self.single = os.path.dirname(source), (shown, name)
        else:
            raise se.InvalidArgumentError(f"{source}: no such map file or folder")
        self._lock = threading.Lock()
        self._maps: dict[str, tuple[Identity, se.DataMap]] = {}

    # -- paths -----------------------------------------------------------------

    def _parts(self, path: str) -> list[str]:
        parts = [part for part in path.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise FuseError(errno.ENOENT)
        return parts

    def folder_of(self, path: str) -> str:
        """The folder on disk that the mount's folder ``path`` mirrors."""
        parts = self._parts(path)
        if self.single is not None and parts:
            raise FuseError(errno.ENOENT)
        return os.path.join(self.root, *parts)

    def map_path(self, path: str) -> str:
        """The map file that the mount's file ``path`` stands for (it may not exist yet)."""
        parts = self._parts(path)
        if not parts:
            raise FuseError(errno.EISDIR)
        if self.single is not None:
            if parts != [self.single[0]]:
                raise FuseError(errno.ENOENT if len(parts) == 1 else errno.ENOTDIR)
            return os.path.join(self.root, self.single[1])
        *folders, name = parts
        return os.path.join(self.root, *folders, name + MAP_SUFFIX)

    def is_folder(self, path: str) -> bool:
        if not self._parts(path):
            return True
        if self.single is not None:
            return False
        return os.path.isdir(self.folder_of(path))

    # -- listing -----------------------------------------------------------------

    def names(self, path: str) -> list[str]:
        """What ``ls`` shows in the mount's folder ``path``."""
        if self.single is not None:
            if self._parts(path):
                raise FuseError(errno.ENOTDIR)
            return [self.single[0]] if os.path.isfile(os.path.join(self.root, self.single[1])) else []
        folder = self.folder_of(path)
        shown: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        shown.append(entry.name)
                    elif entry.name.endswith(MAP_SUFFIX) and entry.name != MAP_SUFFIX:
                        shown.append(entry.name[: -len(MAP_SUFFIX)])
        except OSError as exc:
            raise FuseError(exc.errno or errno.EIO) from None
        return sorted(set(shown))

    # -- attributes ------------------------------------------------------------------

    def folder_attributes(self, path: str) -> dict[str, Any]:
        try:
            info = os.stat(self.folder_of(path))
        except OSError as exc:
            raise FuseError(exc.errno or errno.ENOENT) from None
        if not stat.S_ISDIR(info.st_mode):
            raise FuseError(errno.ENOENT)
        return _attributes(info, stat.S_IFDIR | stat.S_IMODE(info.st_mode), 0, links=2)

    def file_attributes(self, path: str, size: int | None = None) -> dict[str, Any]:
        """A file's attributes; ``size`` overrides the map's for a file being written."""
        map_path = self.map_path(path)
        try:
            info = os.stat(map_path)
        except OSError as exc:
            raise FuseError(exc.errno or errno.ENOENT) from None
        if not stat.S_ISREG(info.st_mode):
            raise FuseError(errno.ENOENT)
        if size is None:
            size = self.load(map_path, info).file_size
        return _attributes(info, stat.S_IFREG | (stat.S_IMODE(info.st_mode) & 0o700), size, links=1)

    def load(self, map_path: str, info: os.stat_result | None = None) -> se.DataMap:
        """The root map in ``map_path``, read again only when the file changed.

        A file that is not a data map raises EIO (and is logged by the caller).
        """
        try:
            if info is None:
                info = os.stat(map_path)
            identity = Identity.of(info)
            with self._lock:
                kept = self._maps.get(map_path)
            if kept is not None and kept[0] == identity:
                return kept[1]
            with open(map_path, "rb") as handle:
                identity = Identity.of(os.fstat(handle.fileno()))
                data_map = se.DataMap.from_file(handle)
        except OSError as exc:
            raise FuseError(exc.errno or errno.EIO) from None
        except se.DataMapError as exc:
            raise BadMapError(map_path, exc) from None
        with self._lock:
            if len(self._maps) >= _KEPT_MAPS:
                self._maps.clear()
            self._maps[map_path] = (identity, data_map)
        return data_map

    def forget(self, map_path: str) -> None:
        with self._lock:
            self._maps.pop(map_path, None)


class BadMapError(FuseError):
    """A map file that does not hold a data map: EIO, with the reason for the log."""

    def __init__(self, map_path: str, cause: se.DataMapError) -> None:
        super().__init__(errno.EIO)
        self.map_path = map_path
        self.reason = str(cause)


def _attributes(info: os.stat_result, mode: int, size: int, *, links: int) -> dict[str, Any]:
    return {
        "st_mode": mode,
        "st_nlink": links,
        "st_size": size,
        "st_uid": info.st_uid,
        "st_gid": info.st_gid,
        "st_atime": info.st_atime_ns,
        "st_mtime": info.st_mtime_ns,
        "st_ctime": info.st_ctime_ns,
        "st_blocks": (size + 511) // 512,
        "st_blksize": 1 << 20,
    }
