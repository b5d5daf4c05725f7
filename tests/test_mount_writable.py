"""Writable mounts in real FUSE: random operations against reference files, copies, SQLite, conflicts."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest
from mounting import CHUNK_SIZE_TUPLE, CHUNK_SIZES, mounted, needs_fuse, wait_for

import self_encryption as se

from helpers import store_lock_is_held

pytestmark = needs_fuse
WRITABLE = ("--writable", "--chunk-sizes", CHUNK_SIZES)


@pytest.fixture
def place(tmp_path: Path) -> Path:
    for name in ("maps", "mnt", "ref"):
        (tmp_path / name).mkdir()
    se.DirStore(tmp_path / "store")
    return tmp_path


def decrypted(place: Path, name: str) -> bytes:
    return se.decrypt(se.DataMap.load(place / "maps" / (name + ".sedm")), se.DirStore(place / "store"))


def same_trees(left: Path, right: Path) -> None:
    def listing(root: Path) -> dict[str, bytes | None]:
        return {
            str(path.relative_to(root)): (path.read_bytes() if path.is_file() else None)
            for path in sorted(root.rglob("*"))
        }

    assert listing(left) == listing(right)


class Fsx:
    """Seeded random operations on the same files in the mount and in a plain folder."""

    NAMES = ("f0", "f1", "d/f2")
    MAX_SIZE = 300_000

    def __init__(self, place: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.roots = (place / "mnt", place / "ref")
        self.handles: dict[str, tuple[int, int]] = {}
        self.done = 0

    def _open(self, name: str) -> tuple[int, int]:
        if name not in self.handles:
            self.handles[name] = tuple(  # type: ignore[assignment]
                os.open(root / name, os.O_RDWR | os.O_CREAT, 0o600) for root in self.roots
            )
        return self.handles[name]

    def close_all(self) -> None:
        for handles in self.handles.values():
            for handle in handles:
                os.close(handle)
        self.handles.clear()

    def step(self) -> None:
        rng = self.rng
        name = rng.choice(self.NAMES)
        mounted_fd, reference_fd = self._open(name)
        size = os.fstat(reference_fd).st_size
        operation = rng.choices(
            ["write", "append", "truncate", "read", "fsync", "close"], weights=[35, 12, 10, 30, 5, 8]
        )[0]
        if operation in ("write", "append"):
            offset = size if operation == "append" else rng.randrange(0, min(size + 5000, self.MAX_SIZE))
            data = rng.randbytes(rng.choice([1, 7, 100, 4096, 20_000]))
            data = data[: max(0, self.MAX_SIZE - offset)] or b"x"
            assert os.pwrite(mounted_fd, data, offset) == os.pwrite(reference_fd, data, offset)
        elif operation == "truncate":
            length = rng.randrange(0, self.MAX_SIZE) if rng.random() < 0.3 else rng.randrange(0, size + 1)
            os.ftruncate(mounted_fd, length)
            os.ftruncate(reference_fd, length)
        elif operation == "read":
            offset = rng.randrange(0, size + 100)
            length = rng.choice([1, 512, 4096, 65536])
            assert os.pread(mounted_fd, length, offset) == os.pread(reference_fd, length, offset), (
                name,
                offset,
            )
        elif operation == "fsync":
            os.fsync(mounted_fd)
        else:
            for handle in self.handles.pop(name):
                os.close(handle)
        assert (
            os.fstat(mounted_fd).st_size == os.fstat(reference_fd).st_size if operation != "close" else True
        )
        self.done += 1

    def check(self) -> None:
        for name in self.NAMES:
            mine, theirs = (root / name for root in self.roots)
            if theirs.exists():
                assert mine.read_bytes() == theirs.read_bytes(), name


def test_fsx_random_operations_across_remounts(place: Path) -> None:
    (place / "ref" / "d").mkdir()
    fsx = Fsx(place, seed=int(os.environ.get("MOUNT_FSX_SEED", "2024")))
    for round_number in range(4):
        with mounted(place / "maps", place / "store", place / "mnt", *WRITABLE):
            if round_number == 0:
                os.mkdir(place / "mnt" / "d")
            fsx.check()  # what the last round saved came back
            for _ in range(520):
                fsx.step()
            fsx.close_all()
            fsx.check()
    assert fsx.done >= 2000
    for name in Fsx.NAMES:
        assert decrypted(place, name) == (place / "ref" / name).read_bytes()
        assert os.stat(place / "maps" / (name + ".sedm")).st_mode & 0o777 == 0o600


def test_cp_and_tar_round_trips(place: Path) -> None:
    rng = random.Random(5)
    source = place / "src"
    for relative, size in (("a.bin", 200_000), ("b/c.txt", 10), ("b/d/e.bin", 90_000), ("empty", 0)):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(rng.randbytes(size))
    with tarfile.open(place / "tree.tar", "w") as archive:
        archive.add(source, arcname="t")
    mnt = place / "mnt"
    with mounted(place / "maps", place / "store", mnt, *WRITABLE):
        subprocess.run(["cp", "-r", str(source), str(mnt / "copy")], check=True, timeout=60)
        subprocess.run(["tar", "-x", "-f", str(place / "tree.tar"), "-C", str(mnt)], check=True, timeout=60)
    with mounted(place / "maps", place / "store", mnt, *WRITABLE):
        subprocess.run(["cp", "-r", str(mnt / "copy"), str(place / "back")], check=True, timeout=60)
        subprocess.run(
            ["tar", "-c", "-f", str(place / "back.tar"), "-C", str(mnt), "t"], check=True, timeout=60
        )
        os.rename(mnt / "copy" / "b", mnt / "copy" / "moved")
        assert (mnt / "copy" / "moved" / "d" / "e.bin").read_bytes() == (
            source / "b" / "d" / "e.bin"
        ).read_bytes()
        os.unlink(mnt / "copy" / "moved" / "c.txt")
        os.rename(mnt / "copy" / "moved" / "d" / "e.bin", mnt / "copy" / "e.bin")
        os.rmdir(mnt / "copy" / "moved" / "d")
        os.rmdir(mnt / "copy" / "moved")
        assert sorted(os.listdir(mnt / "copy")) == ["a.bin", "e.bin", "empty"]
    same_trees(source, place / "back")
    (place / "out").mkdir()
    subprocess.run(
        ["tar", "-x", "-f", str(place / "back.tar"), "-C", str(place / "out")], check=True, timeout=60
    )
    same_trees(source, place / "out" / "t")
    assert decrypted(place, "copy/e.bin") == (source / "b" / "d" / "e.bin").read_bytes()


def test_sqlite_database_survives_remount(place: Path) -> None:
    mnt = place / "mnt"
    with mounted(place / "maps", place / "store", mnt, *WRITABLE):
        with sqlite3.connect(mnt / "db.sqlite") as db:
            db.execute("create table t (n integer primary key, text text)")
            for batch in range(5):
                db.executemany(
                    "insert into t (text) values (?)", [(f"row {batch}-{i}" * 20,) for i in range(200)]
                )
                db.commit()
            db.execute("delete from t where n % 7 = 0")
            db.commit()
        db.close()
    with mounted(place / "maps", place / "store", mnt, *WRITABLE):
        db = sqlite3.connect(mnt / "db.sqlite")
        (count,) = db.execute("select count(*) from t").fetchone()
        assert count == 1000 - 1000 // 7
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        db.close()
    assert not (place / "maps" / "db.sqlite-journal.sedm").exists()


def test_unlink_keeps_chunks_and_conflicts_never_overwrite(place: Path) -> None:
    mnt = place / "mnt"
    store = place / "store"
    with mounted(place / "maps", store, mnt, *WRITABLE) as mount:
        (mnt / "gone").write_bytes(random.Random(1).randbytes(50_000))
        chunks = {path.name for path in store.rglob("*") if path.is_file()}
        os.unlink(mnt / "gone")
        assert not (place / "maps" / "gone.sedm").exists()
        assert {path.name for path in store.rglob("*") if path.is_file()} == chunks  # gc's business

        (mnt / "doc").write_bytes(b"first version\n")
        handle = os.open(mnt / "doc", os.O_RDWR)
        os.pwrite(handle, b"OURS", 0)
        # Someone else saves another version of the map while our copy is open.
        theirs = se.encrypt_to_store(b"their version\n", se.DirStore(store), chunk_sizes=CHUNK_SIZE_TUPLE)
        theirs.save(place / "maps" / "doc.sedm")
        os.close(handle)
        assert decrypted(place, "doc") == b"their version\n"
        conflicts = [name for name in os.listdir(place / "maps") if name.startswith("doc.conflict-")]
        assert len(conflicts) == 1
        saved = se.DataMap.load(place / "maps" / conflicts[0])
        assert se.decrypt(saved, se.DirStore(store)) == b"OURSt version\n"
        assert os.stat(place / "maps" / conflicts[0]).st_mode & 0o777 == 0o600
        # Through the mount: the name shows their version, the copy ours.
        assert (mnt / "doc").read_bytes() == b"their version\n"
        assert (mnt / conflicts[0].removesuffix(".sedm")).read_bytes() == b"OURSt version\n"
    assert "changed behind the mount" in mount.log()


def test_a_file_being_written_holds_the_store_lock_until_saved(place: Path) -> None:
    mnt = place / "mnt"
    with mounted(place / "maps", place / "store", mnt, *WRITABLE):
        handle = os.open(mnt / "growing", os.O_WRONLY | os.O_CREAT, 0o600)
        assert not store_lock_is_held(place / "store")
        os.write(handle, random.Random(2).randbytes(200_000))  # streamed: chunks stored, no map yet
        assert store_lock_is_held(place / "store")  # so a gc waits
        os.fsync(handle)
        assert not store_lock_is_held(place / "store")
        os.write(handle, b"more")  # in place now
        os.close(handle)
        assert not store_lock_is_held(place / "store")
    assert decrypted(place, "growing") == random.Random(2).randbytes(200_000) + b"more"


def test_kill_9_loses_only_unsaved_writes(place: Path) -> None:
    mnt = place / "mnt"
    with mounted(place / "maps", place / "store", mnt, *WRITABLE) as mount:
        handle = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(handle, b"saved " * 1000, 0)
        os.fsync(handle)
        os.pwrite(handle, b"LOST", 0)
        mount.process.send_signal(signal.SIGKILL)
        mount.process.wait(timeout=30)
        with contextlib.suppress(OSError):  # the file system behind it is gone
            os.close(handle)
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False, timeout=30)
        wait_for(lambda: not os.path.ismount(mnt), "the dead mount to go")
        mount.process.returncode = 0  # killed on purpose
    assert decrypted(place, "f") == b"saved " * 1000
