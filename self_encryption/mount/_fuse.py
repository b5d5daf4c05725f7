"""The one module that touches the FUSE binding (mfusepy over libfuse 3).

mfusepy is untyped ctypes; everything the rest of the package needs from it
goes through the few typed names here, so that swapping the binding means
changing this file only. It is imported lazily: without the ``[mount]``
extra or the system's libfuse, the package still imports and
:func:`missing` says what is absent.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import shutil
from typing import Any

import self_encryption as se

#: The binding's package name, as ``pip install`` knows it.
BINDING = "mfusepy"
#: The helper that unmounts a FUSE file system without root (from the fuse3 package).
UNMOUNT_HELPER = "fusermount3"


class FuseError(OSError):
    """An errno for the kernel: raised by an operation, returned to the caller as -errno."""

    def __init__(self, number: int) -> None:
        super().__init__(number, os.strerror(number))


def _module() -> Any:
    return importlib.import_module(BINDING)


def missing() -> str | None:
    """Why a mount cannot run here, in one sentence, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent (no FUSE in this kernel or container)"
    try:
        module = _module()
    except ImportError:
        return f"the FUSE binding is not installed: pip install 'self-encryption-cffi[mount]' ({BINDING})"
    except OSError as exc:  # the binding found no libfuse
        return f"libfuse is not installed (install the fuse3 package): {exc}"
    if getattr(module, "fuse_version_major", 3) != 3:
        return "libfuse 3 is needed (install the fuse3 package)"
    if shutil.which(UNMOUNT_HELPER) is None:
        return f"{UNMOUNT_HELPER} is not installed (install the fuse3 package)"
    return None


def address_of(buffer: Any) -> int:
    """Where the bytes of a writable buffer (a bytearray, or a view of one) are in memory."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def copy_into(address: int, data: Any, start: int, count: int) -> None:
    """Copy ``count`` bytes of ``data`` from ``start`` to memory at ``address``, without the GIL.

    ``data`` is bytes, or a writable buffer that stays alive (and is not
    resized) until this returns; a memoryview slice assignment would copy
    holding the GIL, which the threads opening chunks need meanwhile.
    """
    if count <= 0:
        return
    if start < 0 or start + count > len(data):
        raise ValueError("the range to copy lies outside the data")
    if not isinstance(data, bytes):
        try:
            ctypes.memmove(address, address_of(data) + start, count)
            return
        except TypeError:  # a read-only view
            data, start = bytes(memoryview(data)[start : start + count]), 0
    source = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
    ctypes.memmove(address, source + start, count)


def _binding(module: Any) -> Any:
    """The binding's FUSE class, with reads and writes that use libfuse's buffers in place.

    The binding's own read takes bytes back from the operation and copies
    them into libfuse's buffer; here the operation's ``read_into`` gets the
    buffer's address and copies each chunk's part straight into it. The
    binding's own write copies libfuse's buffer into bytes (holding the
    GIL) before the operation copies them again; here the operation gets a
    view of the buffer, valid until it returns (what it keeps, it copies).
    """

    class Binding(module.FUSE):  # type: ignore[misc]
        def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
            address = ctypes.cast(buf, ctypes.c_void_p).value or 0
            name = None if path is None else path.decode(self.encoding, self.errors)
            return int(self.operations.read_into(name, address, size, offset, fip.contents.fh))

        def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
            address = ctypes.cast(buf, ctypes.c_void_p).value or 0
            name = None if path is None else path.decode(self.encoding, self.errors)
            with memoryview((ctypes.c_char * size).from_address(address)).cast("B") as data:
                return int(self.operations.write(name, data, offset, fip.contents.fh))

    return Binding


def serve(operations: object, mountpoint: str, *, writable: bool, fsname: str, threads: int) -> None:
    """Mount ``operations`` at ``mountpoint`` and serve requests on many threads until unmounted.

    ``operations`` has the binding's path-based methods (getattr, read, ...);
    an OSError they raise reaches the caller as its errno. Returns when the
    file system is unmounted; the caller handles signals (see _runner).
    """
    module = _module()
    options: dict[str, Any] = {
        "foreground": True,
        "fsname": fsname,
        "subtype": "self-encryption",
        "default_permissions": True,
        "max_threads": threads,
        # Said explicitly: libfuse 3.14 logs a spurious error for the default ("invalid max threads").
        "max_idle_threads": threads,
        # Keep file pages in the kernel between opens unless the size or mtime changed
        # (a map file replaced behind the mount changes its mtime).
        "auto_cache": True,
    }
    if not writable:
        options["ro"] = True
    try:
        _binding(module)(operations, mountpoint, **options)
    except RuntimeError as exc:  # libfuse said why on standard error
        raise se.SelfEncryptionError(f"libfuse could not mount {mountpoint} (status {exc})") from None


def widen_read_ahead(mountpoint: str, kib: int = 1024) -> None:
    """Let the kernel read ahead ``kib`` KiB at a time on this mount instead of 128 (best effort).

    Larger kernel reads mean fewer requests, each crossing into Python once.
    The setting is the mount's backing device's read_ahead_kb in sysfs, which
    only root may write; elsewhere the default stays. Call it from a thread
    other than the one answering FUSE's init: it waits for the mount.
    """
    try:
        device = os.stat(mountpoint).st_dev
        setting = f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb"
        with open(setting, "w", encoding="ascii") as handle:
            handle.write(str(kib))
    except OSError:
        pass


def unmount(mountpoint: str) -> bool:
    """Detach the mount at once, even with files open in it (lazy unmount); True if it worked."""
    import subprocess

    try:
        done = subprocess.run(
            [UNMOUNT_HELPER, "-u", "-z", "-q", mountpoint],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
