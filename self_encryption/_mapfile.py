"""Data map files: their suffix, where a map may be written, and claiming that place early.

A map file holds a root map's text form and a newline, readable by its
owner only. Its place is claimed before any chunk is stored
(:func:`reserve_map_file`), so that a destination that cannot be written
fails before the work and not after it.
"""

from __future__ import annotations

import errno
import os
import stat

from ._datamap import HEADER, MAX_ROOT_RECORDS, RECORD, TEXT_PREFIX, TRAILER_SIZE, DataMap
from ._errors import InvalidArgumentError
from ._files import ReservedFile, hidden_prefix

#: The suffix of a data map file: ``FILE.sedm`` holds the map of ``FILE``.
MAP_SUFFIX = ".sedm"

#: The longest text form of a root data map: "se1:" and the base64url of 4 records.
MAX_ROOT_TEXT = (
    len(TEXT_PREFIX) + (4 * (HEADER.size + MAX_ROOT_RECORDS * RECORD.size + TRAILER_SIZE) + 2) // 3
)


def looks_like_map(text: str) -> bool:
    """Whether text, white space aside, is a data map's text or JSON form rather than a file name.

    Such a string is a secret wherever it came from: it is never printed.
    """
    return text.strip().startswith((TEXT_PREFIX, "{"))


def map_temp_prefix(target: str) -> str:
    """``.NAME.sedm-``: temporaries of a data map file (NAME without its .sedm), then PARTIAL_SUFFIX."""
    base = os.path.basename(os.path.abspath(target))
    stem = base[: -len(MAP_SUFFIX)] if base.endswith(MAP_SUFFIX) and len(base) > len(MAP_SUFFIX) else base
    return hidden_prefix(os.path.join(os.path.dirname(os.path.abspath(target)), stem), "sedm-")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def map_destination(path: str | os.PathLike[str]) -> str:
    """The file a data map for ``path`` is written to: path itself, or the file a link there names.

    A map replaces only a regular file: a device, FIFO, socket or folder at
    ``path`` (or at the end of its links), or a link that leads nowhere, is
    refused with InvalidArgumentError, so that saving a map never replaces
    anything else. A link is followed, never replaced.
    """
    target = os.fspath(path)
    try:
        link = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError:
        return target  # the reservation reports what is wrong with the folder
    if not stat.S_ISLNK(link.st_mode):
        if not stat.S_ISREG(link.st_mode):
            raise InvalidArgumentError(f"cannot write data map {target}: it is {_kind(link.st_mode)}")
        return target
    try:
        final = os.stat(target)
    except OSError:
        raise InvalidArgumentError(
            f"cannot write data map {target}: it is a link that leads to no file"
        ) from None
    if not stat.S_ISREG(final.st_mode):
        raise InvalidArgumentError(f"cannot write data map {target}: it is a link to {_kind(final.st_mode)}")
    return os.path.realpath(target)


class ReservedMapFile(ReservedFile):
    """A data map file's place, claimed before encrypting: see :func:`reserve_map_file`."""

    def save(self, data_map: DataMap) -> None:
        """Write the map's text form (and a newline) into the reserved place and rename it in."""
        self.commit(data_map.to_text().encode("ascii") + b"\n")


def reserve_map_file(path: str | os.PathLike[str], *, replace: bool = False) -> ReservedMapFile:
    """Claim the file a data map will be saved to, before any chunk is stored.

    A temporary beside ``path`` (``.NAME.sedm-XXXXXXXX.partial``, mode 0600)
    receives a placeholder as large as the largest root map and is flushed
    to disk, so that a folder that cannot be written, or a full disk, fails
    now (OSError) and not after the work. ``save(data_map)`` then writes the
    map over it and renames it to ``path``; without ``replace`` an existing
    ``path`` is never replaced (FileExistsError). Only a regular file is
    replaced, and through a link the file it names (the link stays): see
    :func:`map_destination`. Use it as a context manager: leaving the block
    without saving removes the temporary.
    """
    target = os.fspath(path)
    if not replace and os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target)
    target = map_destination(target)
    return ReservedMapFile(
        target, prefix=map_temp_prefix(target), size=MAX_ROOT_TEXT + 1, mode=0o600, replace=replace
    )
