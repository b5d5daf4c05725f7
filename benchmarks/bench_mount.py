"""Reading and writing through a FUSE mount against the command line's decrypt and encrypt.

    python benchmarks/bench_mount.py [--size MiB] [--quick] [--scratch DIR]

One run, one file of random bytes (1 GiB by default; --quick: 64 MiB):

- sequential read of the file through a read-only mount (1 MiB reads)
  against ``self-encryption decrypt MAP -o - > /dev/null``;
- ``cp`` of the file into a writable mount (a fresh store) against
  ``self-encryption encrypt`` (another fresh store), timed one right after
  the other;
- a 1-byte overwrite in the middle with ``dd conv=notrunc``: seconds until
  dd (and so the close that saves the map) returns, and chunks added to the store;
- random 4 KiB reads through the mount: median and 99th percentile, cold
  (first touch after mounting) and warm (the same offsets again).

Figures are ratios within this run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "self_encryption"]


def timed(command: list[str], **kwargs: object) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - started


def files_in(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


class Mounted:
    def __init__(self, maps: Path, store: Path, mountpoint: Path, *extra: str) -> None:
        mountpoint.mkdir(exist_ok=True)
        self.mountpoint = mountpoint
        command = [*CLI, "mount", str(maps), str(mountpoint), "--store", str(store), *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.ismount(mountpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the mount did not start")
            time.sleep(0.02)

    def __enter__(self) -> Path:
        return self.mountpoint

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["fusermount3", "-u", str(self.mountpoint)], check=False)
        self.process.wait(timeout=120)


def read_all(path: Path) -> float:
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while handle.read(1 << 20):
            pass
    return time.perf_counter() - started


def random_reads(path: Path, offsets: list[int]) -> list[float]:
    seconds = []
    descriptor = os.open(path, os.O_RDONLY)
    try:
        for offset in offsets:
            started = time.perf_counter()
            os.pread(descriptor, 4096, offset)
            seconds.append(time.perf_counter() - started)
    finally:
        os.close(descriptor)
    return seconds


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1e3:7.3f} ms, p99 {p99 * 1e3:7.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="MiB (default 1024; 64 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a 64 MiB file")
    parser.add_argument("--scratch", default=tempfile.gettempdir(), help="folder for stores and files")
    args = parser.parse_args()
    size_mib = args.size or (64 if args.quick else 1024)
    size = size_mib << 20
    with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
        work = Path(folder)
        source = work / "file.bin"
        with open(source, "wb") as out:
            for _ in range(size_mib):
                out.write(os.urandom(1 << 20))
            # On disk before anything is timed: the kernel would otherwise write it back
            # about 30 s later, in the middle of whichever phase runs then.
            out.flush()
            os.fsync(out.fileno())
        (work / "maps").mkdir()
        map_file = work / "maps" / "file.bin.sedm"
        print(f"file: {size_mib} MiB of random bytes")

        subprocess.run(
            [*CLI, "encrypt", "-q", "--store", str(work / "store"), str(source), "-o", str(map_file)],
            check=True,
        )
        decrypt = timed(
            [*CLI, "decrypt", str(map_file), "--store", str(work / "store"), "-o", "-"],
            stdout=subprocess.DEVNULL,
        )
        with Mounted(work / "maps", work / "store", work / "mnt") as mnt:
            read = read_all(mnt / "file.bin")
        print(f"decrypt -o - > /dev/null   {size_mib / decrypt:8.1f} MiB/s")
        print(f"read through the mount     {size_mib / read:8.1f} MiB/s   ratio {decrypt / read:.2f}x")

        rng = random.Random(1)
        offsets = [rng.randrange(0, size - 4096) for _ in range(300)]
        with Mounted(work / "maps", work / "store", work / "mnt") as mnt:
            cold = random_reads(mnt / "file.bin", offsets)
            warm = random_reads(mnt / "file.bin", offsets)
        print(f"random 4 KiB reads, cold   {percentiles(cold)}")
        print(f"random 4 KiB reads, warm   {percentiles(warm)}")

        # Timed right before cp, into a fresh store of its own: both write every chunk with
        # an fsync, and the disk's write speed drifts over a run (by a third and more on a
        # shared virtual disk between the start of a run and its end).
        encrypt = timed(
            [
                *CLI,
                "encrypt",
                "-q",
                "--store",
                str(work / "store1"),
                str(source),
                "-o",
                str(work / "file1.sedm"),
            ]
        )
        (work / "maps2").mkdir()
        (work / "store2").mkdir()
        with Mounted(work / "maps2", work / "store2", work / "mnt", "--writable") as mnt:
            copy = timed(["cp", str(source), str(mnt / "copy.bin")])
            before = files_in(work / "store2")
            middle = size // 2
            edit = timed(
                [
                    "dd",
                    "if=/dev/zero",
                    f"of={mnt / 'copy.bin'}",
                    "bs=1",
                    "count=1",
                    f"seek={middle}",
                    "conv=notrunc",
                ],
                stderr=subprocess.DEVNULL,
            )
            added = files_in(work / "store2") - before
        print(f"encrypt                    {size_mib / encrypt:8.1f} MiB/s")
        print(f"cp into a writable mount   {size_mib / copy:8.1f} MiB/s   ratio {encrypt / copy:.2f}x")
        print(f"1-byte overwrite + close   {edit:8.3f} s, {added} new chunks in the store")
    return 0


if __name__ == "__main__":
    sys.exit(main())
