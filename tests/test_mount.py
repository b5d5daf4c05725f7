"""Read-only mounts in real FUSE: the tree, reads, a shared cache, faults and unmounting."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mounting import mounted, mounted_script, needs_fuse, wait_for

import self_encryption as se
from self_encryption.mount._cache import CachingStore

SIZES = (4096, 16384, 65536)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, bytes]:
    """A folder of maps (with a subfolder and a stray non-map file) over a folder store."""
    rng = random.Random(24)
    files = {
        "big.bin": rng.randbytes(700_000),
        "docs/a.txt": b"hello, mount\n" * 100,
        "docs/deeper/empty": b"",
    }
    store = se.DirStore(tmp_path / "store")
    for name, data in files.items():
        target = tmp_path / "maps" / (name + ".sedm")
        target.parent.mkdir(parents=True, exist_ok=True)
        se.encrypt_to_store(data, store, chunk_sizes=SIZES).save(target)
    (tmp_path / "maps" / "notes.txt").write_text("not a map")
    (tmp_path / "mnt").mkdir()
    return files


def chunk_files(store: Path) -> list[Path]:
    return [path for path in store.rglob("*") if path.is_file() and len(path.name) == 64]


@needs_fuse
def test_tree_is_mirrored_and_stat_needs_no_store(tmp_path: Path, tree: dict[str, bytes]) -> None:
    mnt = tmp_path / "mnt"
    with mounted(tmp_path / "maps", tmp_path / "store", mnt):
        # With the store gone, listing and stat still work: they read map files only.
        os.rename(tmp_path / "store", tmp_path / "away")
        assert sorted(os.listdir(mnt)) == ["big.bin", "docs"]
        assert sorted(os.listdir(mnt / "docs")) == ["a.txt", "deeper"]
        for name, data in tree.items():
            info = os.stat(mnt / name)
            assert info.st_size == len(data)
            assert info.st_mtime_ns == os.stat(tmp_path / "maps" / (name + ".sedm")).st_mtime_ns
            assert info.st_mode & 0o777 == 0o600
        with pytest.raises(OSError) as failure:
            (mnt / "big.bin").read_bytes()
        assert failure.value.errno == errno.EIO
        os.rename(tmp_path / "away", tmp_path / "store")
        for name, data in tree.items():
            assert (mnt / name).read_bytes() == data
        with pytest.raises(OSError) as refused:
            (mnt / "new").write_bytes(b"x")
        assert refused.value.errno == errno.EROFS


@needs_fuse
def test_one_map_file_and_fusermount_unmount(tmp_path: Path, tree: dict[str, bytes]) -> None:
    mnt = tmp_path / "mnt"
    with mounted(
        tmp_path / "maps" / "docs" / "a.txt.sedm", tmp_path / "store", mnt, how="fusermount"
    ) as mount:
        assert os.listdir(mnt) == ["a.txt"]
        assert (mnt / "a.txt").read_bytes() == tree["docs/a.txt"]
    assert "mounted" in mount.log()


@needs_fuse
def test_random_reads_and_eight_parallel_readers(tmp_path: Path, tree: dict[str, bytes]) -> None:
    mnt = tmp_path / "mnt"
    data = tree["big.bin"]
    with mounted(tmp_path / "maps", tmp_path / "store", mnt, "--cache", "1M", how="SIGINT"):
        with open(mnt / "big.bin", "rb") as handle:
            rng = random.Random(7)
            for _ in range(200):
                start = rng.randrange(len(data) + 10)
                length = rng.choice([1, 100, 4096, 70_000])
                handle.seek(start)
                assert handle.read(length) == data[start : start + length]
        results: list[bool] = []

        def reader(number: int) -> None:
            with open(mnt / "big.bin", "rb", buffering=0) as handle:
                block = 4096 * (number + 1)
                parts = []
                while piece := handle.read(block):
                    parts.append(piece)
            results.append(b"".join(parts) == data)

        threads = [threading.Thread(target=reader, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [True] * 8


@needs_fuse
def test_missing_chunk_is_eio_with_one_log_line(tmp_path: Path, tree: dict[str, bytes]) -> None:
    mnt = tmp_path / "mnt"
    data = tree["big.bin"]
    level0 = se.DataMap.load(tmp_path / "maps" / "big.bin.sedm")
    store = se.DirStore(tmp_path / "store")
    # Chunk records are in level 0 only for a small file; find the level-0 map either way.
    walked = list(se.walk_levels(level0, store))
    content = walked[-1]
    victim = content.chunks[len(content.chunks) // 2]
    start = sum(chunk.plain_size for chunk in content.chunks[: len(content.chunks) // 2])
    path = next(path for path in chunk_files(tmp_path / "store") if path.name == victim.name)
    path.unlink()
    with mounted(tmp_path / "maps", tmp_path / "store", mnt) as mount:
        with open(mnt / "big.bin", "rb", buffering=0) as handle:
            assert handle.read(1000) == data[:1000]  # before the gap: fine
            handle.seek(start + 10)
            began = time.monotonic()
            with pytest.raises(OSError) as failure:
                handle.read(100)
            assert failure.value.errno == errno.EIO
            assert time.monotonic() - began < 10
            handle.seek(len(data) - 50)
            assert handle.read(50) == data[-50:]  # after it: fine
        lines = [line for line in mount.log().splitlines() if victim.name in line]
    assert lines, mount.log()
    assert all("/big.bin" in line and "not found" in line for line in lines)


@needs_fuse
def test_corrupt_map_file_is_eio(tmp_path: Path, tree: dict[str, bytes]) -> None:
    (tmp_path / "maps" / "bad.sedm").write_bytes(b"se1:not a map at all")
    mnt = tmp_path / "mnt"
    with mounted(tmp_path / "maps", tmp_path / "store", mnt) as mount:
        with pytest.raises(OSError) as failure:
            os.stat(mnt / "bad")
        assert failure.value.errno == errno.EIO
        assert (mnt / "docs" / "a.txt").read_bytes() == tree["docs/a.txt"]
    assert "bad.sedm is not a data map" in mount.log()


HUNG_STORE = r"""
import logging, os, sys, threading
import self_encryption as se
from self_encryption.mount import mount

mountpoint, maps, store_path, hang_file, flag = sys.argv[1:]
inner = se.DirStore(store_path)
hang_names = set(open(hang_file).read().split())
never = threading.Event()

def get(name):
    if name in hang_names:
        open(flag, "a").close()  # the test waits for this: a read is now stuck
        never.wait()
    return inner.get(name)

logging.basicConfig(level=logging.INFO, format="%(message)s")
store = se.CallbackStore(get=get, put=inner.put, has=inner.has)
mount(maps, store, mountpoint, on_ready=lambda: print("mounted", flush=True))
print("unmounted", flush=True)
"""


@needs_fuse
def test_hung_store_blocks_neither_other_files_nor_unmount(tmp_path: Path, tree: dict[str, bytes]) -> None:
    mnt = tmp_path / "mnt"
    store = se.DirStore(tmp_path / "store")
    names: set[str] = set()
    for level in se.walk_levels(se.DataMap.load(tmp_path / "maps" / "big.bin.sedm"), store):
        names.update(chunk.name for chunk in level.chunks)
    (tmp_path / "hang").write_text("\n".join(names))
    flag = tmp_path / "stuck"
    args = (str(tmp_path / "maps"), str(tmp_path / "store"), str(tmp_path / "hang"), str(flag))
    with mounted_script(HUNG_STORE, mnt, *args) as mount:
        reader = subprocess.Popen(
            [sys.executable, "-c", f"open({str(mnt / 'big.bin')!r}, 'rb').read()"],
            stderr=subprocess.PIPE,
        )
        wait_for(flag.exists, "a read stuck on the store")
        assert (mnt / "docs" / "a.txt").read_bytes() == tree["docs/a.txt"]  # other files go on
        took = mount.stop("SIGTERM", timeout=20)
        assert mount.process.returncode == 0, mount.log()
        assert took < 10, f"unmount took {took:.1f} s"
        assert not os.path.ismount(mnt)
        reader.wait(timeout=20)  # the stuck read failed instead of hanging
        assert reader.returncode != 0


@needs_fuse
def test_cli_refuses_a_missing_maps_folder(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    (tmp_path / "store").mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "self_encryption",
            "mount",
            str(tmp_path / "nope"),
            str(tmp_path / "mnt"),
            "--store",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == se.InvalidArgumentError.exit_code
    assert done.stderr.decode().count("\n") == 1
    assert "no such map file or folder" in done.stderr.decode()


def test_cache_is_bounded_and_shared() -> None:
    inner = se.MemoryStore()
    data = random.Random(3).randbytes(400_000)
    root = se.encrypt_to_store(data, inner, chunk_sizes=SIZES)
    cache = CachingStore(inner, limit=200_000)
    first = se.ChunkReader(root, cache).read()
    misses = cache.misses
    assert first == data and cache.held <= 200_000
    with se.ChunkReader(root, cache) as again:
        again.seek(len(data) - 1000)
        assert again.read() == data[-1000:]
    assert cache.hits > 0 and cache.misses - misses <= 2
    with pytest.raises(ValueError):
        CachingStore(inner, limit=-1)
