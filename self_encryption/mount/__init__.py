"""Mount data maps as a folder of ordinary files: read-only, or writable with ``writable=True``.

``mount(maps, store, mountpoint)`` serves the files behind one map file or
a folder of maps (``docs/a.txt.sedm`` appears as ``docs/a.txt``) until the
mount is unmounted (``fusermount3 -u``, :func:`unmount`, or SIGINT, SIGTERM
or SIGHUP when called from the main thread). It needs the ``[mount]`` extra
and the system's FUSE 3 (the fuse3 package); :func:`missing` says why a
mount cannot run here. See docs/mount.md.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import self_encryption as se

from . import _fuse, _runner
from ._cache import DEFAULT_CACHE_BYTES, CachingStore
from ._files import DEFAULT_SAVE_EVERY
from ._operations import FileSystem, Settings
from ._tree import MapTree

__all__ = ["DEFAULT_CACHE_BYTES", "DEFAULT_SAVE_EVERY", "missing", "mount", "unmount"]

log = logging.getLogger("self_encryption.mount")
#: Threads serving requests at once (one waiting on a slow store does not hold the others).
THREADS = 16


def missing() -> str | None:
    """Why a mount cannot run on this machine (one sentence), or None when it can."""
    return _fuse.missing()


def unmount(mountpoint: str | os.PathLike[str]) -> bool:
    """Detach a mount made by :func:`mount`, even with files open in it; True if it worked."""
    return _fuse.unmount(os.path.abspath(os.fspath(mountpoint)))


def mount(
    maps: str | os.PathLike[str],
    store: se.ChunkStore,
    mountpoint: str | os.PathLike[str],
    *,
    writable: bool = False,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    convergence_secret: bytes | str = b"",
    compression_level: int | None = se.DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = se.DEFAULT_CHUNK_SIZES,
    workers: int | None = None,
    save_every: int = DEFAULT_SAVE_EVERY,
    on_ready: Callable[[], object] | None = None,
) -> None:
    """Serve the files behind ``maps`` (a map file or a folder of maps) at ``mountpoint`` until unmounted.

    Reads fetch only the chunks they need, through one chunk cache of at
    most ``cache_bytes`` shared by every open file; on sequential reads,
    ``workers`` threads per open file open the chunks ahead (default: one
    per CPU core) while the store's own number of requests fetch them. With ``writable``, files can be created, written, truncated,
    renamed and removed: new files and edits are encrypted with ``convergence_secret``, ``compression_level``
    and ``chunk_sizes``; a file's map is saved on fsync, on its last close,
    every ``save_every`` bytes written, and at unmount. ``on_ready``, if
    given, is called with no argument once the kernel has
    mounted the file system (from a FUSE thread).
    """
    reason = missing()
    if reason is not None:
        raise se.InvalidArgumentError(f"cannot mount: {reason}")
    mountpoint = os.path.abspath(os.fspath(mountpoint))
    if not os.path.isdir(mountpoint):
        raise se.InvalidArgumentError(f"mount point {mountpoint} is not a folder")
    if writable and not isinstance(store, se.ChunkStore):
        raise se.InvalidArgumentError("a writable mount needs a chunk store (get, put, has, delete, listing)")
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
        raise se.InvalidArgumentError(f"save_every must be a positive number of bytes, not {save_every!r}")
    options: dict[str, Any] = {
        "convergence_secret": convergence_secret,
        "compression_level": compression_level,
        "chunk_sizes": chunk_sizes,
    }
    se.SelfEncryptor(se.MemoryStore(), **options)  # a bad option fails here, before mounting
    try:
        cached = CachingStore(store, cache_bytes)
    except ValueError as exc:
        raise se.InvalidArgumentError(str(exc)) from None
    tree = MapTree(maps)

    def ready() -> None:
        threading.Thread(target=_fuse.widen_read_ahead, args=(mountpoint,), daemon=True).start()
        if on_ready is not None:
            on_ready()

    operations = FileSystem(tree, cached, Settings(writable, options, workers, save_every), ready)

    saved = threading.Lock()
    done: list[bool] = []

    def save_once() -> None:
        with saved:
            if not done:
                done.append(True)
                operations.save_everything()

    def serve() -> None:
        _fuse.serve(operations, mountpoint, writable=writable, fsname=_fsname(maps), threads=THREADS)

    _runner.serve_until_unmounted(serve, mountpoint, on_exit=save_once)


def _fsname(maps: str | os.PathLike[str]) -> str:
    # Shown in /proc/mounts to every user: the folder's name, never a map's content.
    name = os.path.basename(os.path.abspath(os.fspath(maps))) or "maps"
    return "self-encryption:" + "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
