"""Running a real FUSE mount in its own process for the mount tests, and waiting on it without sleeps."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from self_encryption.mount import missing

REASON = missing()
needs_fuse = pytest.mark.skipif(REASON is not None, reason=f"no FUSE mount possible here: {REASON}")

#: Test chunk sizes for files made through a writable mount: several chunks in a few hundred KiB.
CHUNK_SIZES = "4K,16K,64K"
CHUNK_SIZE_TUPLE = (4096, 16384, 65536)
DEADLINE = 30.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll condition until it holds; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class Mount:
    """A mount process and what it logged."""

    def __init__(self, process: subprocess.Popen[bytes], mountpoint: Path, log: Path) -> None:
        self.process = process
        self.mountpoint = mountpoint
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, how: str = "SIGTERM", timeout: float = 15.0) -> float:
        """Unmount (by signal or fusermount3 -u) and wait for the process; returns the seconds it took."""
        start = time.monotonic()
        if how == "fusermount":
            subprocess.run(["fusermount3", "-u", str(self.mountpoint)], check=True, timeout=timeout)
        else:
            self.process.send_signal(getattr(signal, how))
        self.process.wait(timeout=timeout)
        return time.monotonic() - start


def _start(command: list[str], mountpoint: Path, log: Path) -> Mount:
    out = open(log, "wb")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    mount = Mount(process, mountpoint, log)
    try:
        wait_for(lambda: os.path.ismount(mountpoint) or process.poll() is not None, "the mount")
    except AssertionError:
        process.kill()
        raise
    if process.poll() is not None:
        raise AssertionError(f"the mount ended at once ({process.returncode}): {mount.log()}")
    return mount


@contextlib.contextmanager
def mounted(
    maps: Path, store: Path | str, mountpoint: Path, *args: str, how: str = "SIGTERM", log: Path | None = None
) -> Iterator[Mount]:
    """``self-encryption mount`` in a process; unmounted (cleanly, exit 0) when the block ends."""
    command = [
        sys.executable,
        "-m",
        "self_encryption",
        "mount",
        str(maps),
        str(mountpoint),
        "--store",
        str(store),
    ]
    log = log or mountpoint.parent / f"{mountpoint.name}.log"
    mount = _start([*command, *args], mountpoint, log)
    try:
        yield mount
        if mount.process.poll() is None:
            mount.stop(how)
    finally:
        force_unmount(mount)
    assert mount.process.returncode == 0, mount.log()
    assert not os.path.ismount(mountpoint)


@contextlib.contextmanager
def mounted_script(script: str, mountpoint: Path, *args: str) -> Iterator[Mount]:
    """A mount made by a Python script (given as text) that calls self_encryption.mount.mount."""
    log = mountpoint.parent / f"{mountpoint.name}.log"
    mount = _start([sys.executable, "-c", script, str(mountpoint), *args], mountpoint, log)
    try:
        yield mount
    finally:
        force_unmount(mount)


def force_unmount(mount: Mount) -> None:
    if mount.process.poll() is None:
        mount.process.kill()
        mount.process.wait(timeout=30)
    if os.path.ismount(mount.mountpoint):
        subprocess.run(["fusermount3", "-u", "-z", str(mount.mountpoint)], check=False, timeout=30)
