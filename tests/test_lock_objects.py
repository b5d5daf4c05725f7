"""The lock-object protocol on a folder: who holds a folder store, and the lock where there is no flock."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

import self_encryption as se
from self_encryption.stores import folder as folder_store
from self_encryption.stores.locks import DEFAULT_STALE, FolderLockSpace, LockSet, list_locks, stale_period


def _command() -> list[str]:
    beside = pathlib.Path(sys.executable).with_name("self-encryption")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "self_encryption"]


def _wait_until(condition, seconds: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def no_flock(monkeypatch):
    """The folder store as on Windows: no fcntl, so its lock is made of lock files."""
    monkeypatch.setattr(folder_store, "fcntl", None)


def test_without_flock_gc_and_writers_exclude_each_other(tmp_path, no_flock):
    gc_side = se.DirStore(tmp_path / "s")
    writer_side = se.DirStore(tmp_path / "s")
    writer_side._locks.host = "writer-host"
    with writer_side.writing():
        with pytest.raises(se.StoreBusyError, match=r"held by a writer \(host writer-host, pid \d+\)"):
            with gc_side.collecting(0.3):
                pass
        root = se.encrypt_to_store(os.urandom(30_000), writer_side, chunk_sizes=(1024, 4096, 16384))
    # A writer that starts while gc holds the store waits until gc is done.
    entered = threading.Event()
    with gc_side.collecting(1.0):

        def write() -> None:
            with writer_side.writing():
                entered.set()

        thread = threading.Thread(target=write)
        thread.start()
        assert not entered.wait(0.5)
        assert [lock.kind for lock in list_locks(gc_side.lock_space())] == ["exclusive"]
    thread.join(10)
    assert entered.is_set()
    report = se.collect_garbage(gc_side, [root], delete=True, grace=0)
    assert report.names == () and se.verify(root, gc_side, full=True).ok
    assert list_locks(gc_side.lock_space()) == []


def test_without_flock_a_killed_writer_blocks_gc_until_stale(tmp_path):
    store_path = tmp_path / "s"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, self_encryption as se\n"
            "from self_encryption.stores import folder as folder_store\n"
            "folder_store.fcntl = None\n"
            "store = se.DirStore(sys.argv[1])\n"
            "with store.writing():\n"
            "    print('held', flush=True); sys.stdin.read()\n",
            str(store_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "SELF_ENCRYPTION_LOCK_STALE": "2", "SELF_ENCRYPTION_HOST": "doomed"},
    )
    assert holder.stdout.readline() == b"held\n"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    saved_fcntl = folder_store.fcntl
    folder_store.fcntl = None
    try:
        store = se.DirStore(store_path)
        with pytest.raises(se.StoreBusyError, match=rf"host doomed, pid {holder.pid}"):
            with store.collecting(0.2):
                pass
        _wait_until(lambda: all(lock.stale for lock in list_locks(store.lock_space())), 20, "staleness")
        report = se.collect_garbage(store, [], delete=True, grace=0, lock_wait=5)
        (removed,) = report.stale_locks_removed
        assert "host doomed" in removed and f"pid {holder.pid}" in removed
    finally:
        folder_store.fcntl = saved_fcntl


@pytest.mark.skipif(folder_store.fcntl is None, reason="flock is POSIX only")
def test_locks_lists_who_holds_a_folder_store_and_gc_clears_what_a_killed_writer_left(tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "SELF_ENCRYPTION_HOST": "folder-writer"}
    writer = subprocess.Popen(
        [*_command(), "encrypt", "-", "-o", tmp_path / "f.sedm", "--store", store],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    writer.stdin.write(b"x" * 1000)
    writer.stdin.flush()
    _wait_until(lambda: (store / ".locks").is_dir() and list_locks(FolderLockSpace(str(store / ".locks"))))
    listed = subprocess.run([*_command(), "locks", "--store", store, "--json"], capture_output=True, env=env)
    assert listed.returncode == 0, listed.stderr
    (lock,) = json.loads(listed.stdout)["locks"]
    assert (lock["kind"], lock["host"], lock["pid"]) == ("shared", "folder-writer", writer.pid)
    busy = subprocess.run(
        [*_command(), "gc", "--store", store, "--keep", tmp_path / "none.sedm", "--lock-wait", "0.2"],
        capture_output=True,
    )
    assert busy.returncode == 6 and b"held by a writer (host folder-writer" in busy.stderr, busy.stderr
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    # flock went with the process; its holder file stayed, and gc (which now gets the lock) clears it.
    assert len(list_locks(FolderLockSpace(str(store / ".locks")))) == 1
    report = se.collect_garbage(se.DirStore(store), [], delete=True, grace=0, lock_wait=5)
    assert len(report.stale_locks_removed) == 1 and "folder-writer" in report.stale_locks_removed[0]
    assert list_locks(FolderLockSpace(str(store / ".locks"))) == []


def test_busy_folder_store_names_its_holder(tmp_path):
    if folder_store.fcntl is None:
        pytest.skip("flock is POSIX only")
    store = se.DirStore(tmp_path / "s")
    store._locks.host = "here"
    with store.writing():
        with pytest.raises(se.StoreBusyError, match=rf"held by a writer \(host here, pid {os.getpid()}\)"):
            with se.DirStore(tmp_path / "s").collecting(0.1):
                pass


def test_stale_period_setting(monkeypatch):
    monkeypatch.delenv("SELF_ENCRYPTION_LOCK_STALE", raising=False)
    assert stale_period() == DEFAULT_STALE == 1800
    monkeypatch.setenv("SELF_ENCRYPTION_LOCK_STALE", "2.5")
    assert stale_period() == 2.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("SELF_ENCRYPTION_LOCK_STALE", bad)
        with pytest.raises(se.InvalidArgumentError):
            stale_period()
    assert stale_period(60) == 60
    # The period travels in the lock's name, so others judge the lock by it.
    space = FolderLockSpace("unused")
    lock_id, _ = LockSet(space, stale_after=7)._new("shared")
    assert lock_id.startswith("shared-7-")
