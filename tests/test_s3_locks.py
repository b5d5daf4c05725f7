"""Many machines, one bucket: the S3 store's lock objects against a real S3 server (rclone serve s3).

Machines are processes with host names of their own ($SELF_ENCRYPTION_HOST);
a machine whose clock is off runs under faketime.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import test_s3

import self_encryption as se
from self_encryption.stores.locks import LockSet, list_locks, remove_stale

boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install .[test])")
# The fixtures of test_s3: a real S3 server (rclone serve s3), and a fresh bucket on it.
s3_server, bucket, SMALL = test_s3.s3_server, test_s3.bucket, test_s3.SMALL

#: A machine of the race: encrypts files (some content shared by every machine) until told to stop,
#: saving each map while it still holds the writer lock, and now and then deleting a map of its own,
#: so that gc has real garbage to take.
WRITER = r"""
import os, pathlib, random, sys
import self_encryption as se
bucket, prefix, maps, stop, seed, locks = sys.argv[1:7]
store = se.S3Store(bucket, prefix, locks=locks == "1")
rng = random.Random(int(seed))
shared = random.Random(0).randbytes(60_000)
maps = pathlib.Path(maps)
host = os.environ["SELF_ENCRYPTION_HOST"]
mine = []
count = 0
while not os.path.exists(stop):
    start = rng.randrange(0, 40_000)
    data = rng.randbytes(rng.randrange(2_000, 20_000)) + shared[start : start + rng.randrange(5_000, 20_000)]
    with store.writing():
        root = se.encrypt_to_store(data, store, chunk_sizes=(1024, 4096, 16384), workers=2)
        target = maps / f"{host}-{count}.sedm"
        temporary = maps / f".{host}-{count}.tmp"
        root.save(temporary)
        os.replace(temporary, target)
    mine.append(target)
    count += 1
    if len(mine) > 2 and rng.random() < 0.4:
        mine.pop(rng.randrange(len(mine) - 1)).unlink()
print(count)
"""


#: ``self-encryption ARGS`` run N times in one process; stops at the first failure.
GC_LOOP = r"""
import sys
from self_encryption.cli import main
for _ in range(int(sys.argv[1])):
    code = main(sys.argv[2:])
    sys.stdout.flush()
    if code:
        sys.exit(code)
"""


def _command() -> list[str]:
    beside = pathlib.Path(sys.executable).with_name("self-encryption")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "self_encryption"]


def _env(s3_server, **extra: str) -> dict[str, str]:
    env = {**os.environ, **s3_server["env"]}
    env.pop("SELF_ENCRYPTION_LOCK_STALE", None)
    env.update(extra)
    return env


def _cli(s3_server, *args, prefix: list[str] | None = None, timeout: float = 60, **env: str):
    return subprocess.run(
        [*(prefix or []), *_command(), *map(str, args)],
        capture_output=True,
        env=_env(s3_server, **env),
        timeout=timeout,
    )


def _wait_until(condition, seconds: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _race(s3_server, bucket, tmp_path, *, locks: bool, gc_runs: int = 20) -> dict:
    """Three machines encrypting against a gc --grace 0 --yes loop; what was lost, and what gc did."""
    maps = tmp_path / "maps"
    maps.mkdir()
    stop = tmp_path / "stop"
    url = f"s3://{bucket}/race"
    store = se.S3Store(bucket, "race", locks=locks)
    # One map to keep from the start, so that --keep MAPS is never an empty folder.
    se.encrypt_to_store(b"seed map" * 1000, store, **SMALL).save(maps / "seed.sedm")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, bucket, "race", maps, stop, str(seed), "1" if locks else "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(s3_server, SELF_ENCRYPTION_HOST=f"machine-{seed}"),
        )
        for seed in (1, 2, 3)
    ]
    deleted = gc_refused = 0
    try:
        _wait_until(lambda: len(list(maps.glob("machine-*.sedm"))) >= 3, 60, "the machines' first maps")
        if locks:
            # The command line's gc, run gc_runs times in one process (an interpreter start each
            # time would cost more than the runs).
            loop = subprocess.run(
                [sys.executable, "-c", GC_LOOP, str(gc_runs), "gc", "--store", url, "--keep", maps]
                + [
                    "--grace",
                    "0",
                    "--yes",
                    "--json",
                    "--lock-wait",
                    "60",
                    "--endpoint-url",
                    s3_server["url"],
                ],
                capture_output=True,
                env=_env(s3_server, SELF_ENCRYPTION_HOST="collector"),
                timeout=300,
            )
            assert loop.returncode == 0, loop.stderr.decode()[-2000:]
            reports = [json.loads(line) for line in loop.stdout.splitlines()]
            assert len(reports) == gc_runs
            deleted = sum(report["unreferenced"] for report in reports)
        else:
            # The control: the same collection without locks, through the library.
            def kept():
                for path in sorted(maps.glob("*.sedm")):
                    try:
                        yield se.DataMap.load(path)
                    except FileNotFoundError:
                        continue

            for _ in range(gc_runs):
                try:
                    report = se.collect_garbage(store, kept(), delete=True, grace=0)
                except se.ChunkNotFoundError:  # a kept map lost a level: gc refuses, the loss is done
                    gc_refused += 1
                    continue
                deleted += len(report.names)
    finally:
        stop.touch()
        outcomes = [writer.communicate(timeout=120) for writer in writers]
    for writer, (_, err) in zip(writers, outcomes):
        assert writer.returncode == 0, err.decode()[-2000:]
    written = sum(int(out) for out, _ in outcomes)
    lost = [
        path.name
        for path in sorted(maps.glob("*.sedm"))
        if not se.verify(se.DataMap.load(path), store, full=True).ok
    ]
    kept_maps = len(list(maps.glob("*.sedm")))
    return {"written": written, "deleted": deleted, "lost": lost, "kept": kept_maps, "gc_refused": gc_refused}


def test_three_machines_racing_a_gc_loop_lose_nothing(s3_server, bucket, tmp_path):
    outcome = _race(s3_server, bucket, tmp_path, locks=True)
    print(outcome)
    assert outcome["lost"] == [], outcome
    # The race was real: the machines wrote while gc ran, and gc deleted what they let go.
    assert outcome["written"] >= 20 and outcome["deleted"] > 0, outcome
    assert list_locks(se.S3Store(bucket, "race").lock_space()) == []


@pytest.mark.skipif(
    os.environ.get("SELF_ENCRYPTION_LOCK_CONTROL") != "1",
    reason="control experiment: the same race without locks loses chunks (SELF_ENCRYPTION_LOCK_CONTROL=1)",
)
def test_control_without_locks_the_race_loses_chunks(s3_server, bucket, tmp_path):
    outcome = _race(s3_server, bucket, tmp_path, locks=False, gc_runs=40)
    print(outcome)
    assert outcome["lost"], outcome


def _start_writer(s3_server, url, tmp_path, host: str, stale: str):
    """An encrypt from a pipe that holds the writer lock while it waits for more input."""
    writer = subprocess.Popen(
        [
            *_command(),
            "encrypt",
            "-",
            "-o",
            tmp_path / "unsaved.sedm",
            "--store",
            url,
            "--chunk-sizes",
            "16K,64K,256K",
            "--endpoint-url",
            s3_server["url"],
            "--lock-stale",
            stale,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(s3_server, SELF_ENCRYPTION_HOST=host),
    )

    def feed() -> None:
        # 9 MiB: the command reads 8 MiB at a time, so it uploads while it waits for the rest.
        with contextlib.suppress(OSError):
            writer.stdin.write(os.urandom(9 << 20))
            writer.stdin.flush()

    threading.Thread(target=feed, daemon=True).start()
    return writer


def test_a_killed_writer_blocks_gc_until_its_lock_is_stale_then_gc_removes_only_garbage(
    s3_server, bucket, tmp_path
):
    url = f"s3://{bucket}/c"
    store = se.S3Store(bucket, "c")
    keep_data = os.urandom(200_000)
    keep = se.encrypt_to_store(keep_data, store, **SMALL)
    keep.save(tmp_path / "keep.sedm")
    garbage = se.encrypt_to_store(os.urandom(100_000), store, **SMALL)
    kept_names = se.chunk_names(keep, store)
    garbage_names = se.chunk_names(garbage, store) - kept_names
    writer = _start_writer(s3_server, url, tmp_path, "killed-host", "4")
    space = store.lock_space()
    _wait_until(lambda: len(set(store)) > len(kept_names | garbage_names) + 20, 60, "the writer's uploads")
    assert [lock.host for lock in list_locks(space, details=True)] == ["killed-host"]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    unsaved = set(store) - kept_names - garbage_names  # chunks of a map that was never saved
    gc = ("gc", "--store", url, "--keep", tmp_path / "keep.sedm", "--grace", "0", "--yes", "--json")
    busy = _cli(s3_server, *gc, "--lock-wait", "0.5", "--endpoint-url", s3_server["url"])
    assert busy.returncode == 6, busy.stderr.decode()
    message = busy.stderr.decode()
    assert "is busy" in message and "host killed-host" in message and f"pid {writer.pid}" in message
    assert "refreshed" in message and "s ago" in message
    assert garbage_names <= set(store)  # nothing deleted
    listed = _cli(s3_server, "locks", "--store", url, "--json", "--endpoint-url", s3_server["url"])
    (lock,) = json.loads(listed.stdout)["locks"]
    assert (lock["host"], lock["pid"], lock["kind"]) == ("killed-host", writer.pid, "shared")
    _wait_until(lambda: all(lock.stale for lock in list_locks(space)), 30, "the lock to go stale")
    done = _cli(s3_server, *gc, "--lock-wait", "10", "--endpoint-url", s3_server["url"])
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    # Only garbage went, and all of it. The server may list a PUT that was in flight at
    # the kill only once it has written it: such a chunk is garbage too (its map was
    # never saved), and may be missing from unsaved.
    deleted = set(report["names"])
    assert garbage_names | unsaved <= deleted and not deleted & kept_names
    assert len(report["stale_locks_removed"]) == 1 and "killed-host" in report["stale_locks_removed"][0]
    assert set(store) == kept_names and list_locks(space) == []
    assert se.decrypt(keep, store) == keep_data


def test_locks_command_lists_and_removes_stale_locks(s3_server, bucket):
    url = f"s3://{bucket}/p"
    store = se.S3Store(bucket, "p")
    base = ("locks", "--store", url, "--endpoint-url", s3_server["url"])
    empty = _cli(s3_server, *base)
    assert empty.returncode == 0 and b"no locks in s3://" in empty.stdout
    # A lock left by a holder that is gone (its object is never refreshed), and a live one.
    dead = LockSet(store.lock_space(), stale_after=1, host="gone-host")
    lock_id, body = dead._new("shared")
    store.lock_space().create(lock_id, body)
    with se.S3Store(bucket, "p", host="live-host").writing():
        _wait_until(lambda: any(lock.stale for lock in list_locks(store.lock_space())), 10, "staleness")
        listed = _cli(s3_server, *base)
        assert listed.returncode == 0, listed.stderr
        text = listed.stdout.decode()
        assert "host gone-host" in text and "(stale)" in text and "host live-host" in text
        assert "--remove-stale" in text
        removed = _cli(s3_server, *base, "--remove-stale", "--json")
        outcome = json.loads(removed.stdout)
        assert [lock["host"] for lock in outcome["removed"]] == ["gone-host"]
        assert [lock["host"] for lock in outcome["locks"]] == ["live-host"]
        live = outcome["locks"][0]["id"]
        unknown = _cli(s3_server, *base, "--remove", "shared-1-" + "0" * 32)
        assert unknown.returncode == 2 and b"no lock" in unknown.stderr
    assert [lock.host for lock in list_locks(store.lock_space())] == []
    assert live  # released when the writer was done
    assert remove_stale(store.lock_space()) == []


def test_a_writer_waits_for_gc_and_gc_for_writers(s3_server, bucket, tmp_path):
    gc_side = se.S3Store(bucket, "w", host="gc-host")
    writer_side = se.S3Store(bucket, "w", host="writer-host", lock_wait=0.5)
    with gc_side.collecting(5):
        with pytest.raises(se.StoreBusyError, match="held by a garbage collection \\(host gc-host"):
            with writer_side.writing():
                pass
        # The writer withdrew its own lock object: only gc's is there.
        assert [lock.kind for lock in list_locks(gc_side.lock_space())] == ["exclusive"]
        # encrypt --lock-wait gives up the same way, with exit 6 naming gc's machine.
        (tmp_path / "f").write_bytes(b"data" * 1000)
        gave_up = _cli(
            s3_server,
            "encrypt",
            tmp_path / "f",
            "--store",
            f"s3://{bucket}/w",
            "--lock-wait",
            "0.5",
            "--endpoint-url",
            s3_server["url"],
        )
        assert gave_up.returncode == 6 and b"held by a garbage collection (host gc-host" in gave_up.stderr
        assert not (tmp_path / "f.sedm").exists()
    with writer_side.writing():
        with pytest.raises(se.StoreBusyError, match="held by a writer \\(host writer-host"):
            with gc_side.collecting(0.3):
                pass
        # Writers nest: an Encryptor inside the CLI's writing() shares its lock object.
        with writer_side.writing():
            assert len(list_locks(gc_side.lock_space())) == 1
            root = se.encrypt_to_store(b"chunk data" * 500, writer_side, **SMALL)
        # Chunk listings, verify and gc never take lock objects for chunks.
        assert set(gc_side) == se.chunk_names(root, gc_side)
        assert se.verify(root, gc_side, full=True).ok
    assert se.collect_garbage(gc_side, [root], delete=True, grace=0).names == ()
    assert list_locks(gc_side.lock_space()) == []


def test_a_writer_may_take_its_lock_beside_its_first_work(s3_server, bucket):
    # begin_writing() (what encrypt uses) returns at once: the lock's two round trips overlap
    # the first chunks' sealing, and each put or refresh waits for it. A writer that never
    # needed it gives it up on the way out, without waiting for a gc to finish.
    gc_side = se.S3Store(bucket, "e", host="gc-host")
    writer_side = se.S3Store(bucket, "e", host="writer-host", lock_wait=0.5)
    name = hashlib.sha256(b"x").hexdigest()
    with gc_side.collecting(5):
        with writer_side.begin_writing():
            with pytest.raises(se.StoreBusyError, match="held by a garbage collection \\(host gc-host"):
                writer_side.put(name, b"x")
            with pytest.raises(se.StoreBusyError, match="host gc-host"):
                writer_side.touch(name)  # a refresh protects a chunk only under the lock: it waits too
        assert name not in set(gc_side)
        patient = se.S3Store(bucket, "e", host="patient")  # waits while gc's lock is live
        started = time.monotonic()
        with patient.begin_writing():
            pass
        assert time.monotonic() - started < 4  # gave up at once (a pause and a request at most)
        assert [lock.kind for lock in list_locks(gc_side.lock_space())] == ["exclusive"]
    with writer_side.begin_writing():
        writer_side.put(name, b"x")  # waits for the lock: held from here to the end of the block
        assert [lock.kind for lock in list_locks(gc_side.lock_space())] == ["shared"]
        with pytest.raises(se.StoreBusyError, match="held by a writer \\(host writer-host"):
            with gc_side.collecting(0.3):
                pass
    assert list_locks(gc_side.lock_space()) == []
    assert name in set(gc_side)
    # writing() inside begin_writing() is held when its block starts, as it promises: here it
    # waits for a gc that holds the store until a moment after the writer came.
    patient = se.S3Store(bucket, "e", host="patient")  # waits while gc's lock is live
    taken, done = threading.Event(), threading.Event()

    def collect() -> None:
        with gc_side.collecting(5):
            taken.set()
            done.wait(60)

    collector = threading.Thread(target=collect)
    collector.start()
    assert taken.wait(60)
    with patient.begin_writing():
        threading.Timer(0.5, done.set).start()
        with patient.writing():
            assert [lock.kind for lock in list_locks(gc_side.lock_space())] == ["shared"]
    collector.join(60)
    assert list_locks(gc_side.lock_space()) == []


def test_a_failed_early_lock_is_taken_again_by_the_next_writer(s3_server, bucket):
    # Writer A's early take gives up on a gc (lock_wait); once the gc is done, writer B on
    # the same store object, while A is still inside, takes the lock afresh instead of
    # failing with A's old error.
    gc_side = se.S3Store(bucket, "f", host="gc-host")
    shared = se.S3Store(bucket, "f", host="writers", lock_wait=0.3)
    name = hashlib.sha256(b"y").hexdigest()
    with contextlib.ExitStack() as writer_a:
        with gc_side.collecting(5):
            writer_a.enter_context(shared.begin_writing())
            with pytest.raises(se.StoreBusyError, match="host gc-host"):
                shared.put(name, b"y")
        assert list_locks(gc_side.lock_space()) == []
        with shared.begin_writing():  # writer B
            shared.put(name, b"y")
            assert [lock.kind for lock in list_locks(gc_side.lock_space())] == ["shared"]
    assert list_locks(gc_side.lock_space()) == [] and name in set(gc_side)


def _faketime() -> str:
    found = shutil.which("faketime")
    if found is None:
        pytest.skip("faketime is not installed (apt-get install faketime)")
    return found


def test_a_machine_whose_clock_is_off_breaks_neither_the_lock_nor_the_grace_period(
    s3_server, bucket, tmp_path
):
    faketime = _faketime()
    url = f"s3://{bucket}/t"
    store = se.S3Store(bucket, "t")
    keep = se.encrypt_to_store(os.urandom(20_000), store, **SMALL)
    keep.save(tmp_path / "keep.sedm")
    young = se.encrypt_to_store(os.urandom(40_000), store, **SMALL)
    young_names = se.chunk_names(young, store) - se.chunk_names(keep, store)
    gc = (
        "gc",
        "--store",
        url,
        "--keep",
        tmp_path / "keep.sedm",
        "--yes",
        "--json",
        "--endpoint-url",
        s3_server["url"],
    )

    # An hour off, a machine cannot even sign its requests: S3 servers refuse them (as AWS does),
    # and gc stops before it deletes anything.
    hour = _cli(s3_server, *gc, "--grace", "30m", prefix=[faketime, "-f", "+1h"])
    assert hour.returncode == 6 and b"403" in hour.stderr, hour.stderr
    assert young_names <= set(store)

    # Ten minutes ahead (inside the signing window): by its own clock the new chunks are
    # ten minutes old; by the server's they are seconds old, and stay.
    ahead = _cli(s3_server, *gc, "--grace", "5m", prefix=[faketime, "-f", "+10m"])
    assert ahead.returncode == 0, ahead.stderr
    assert json.loads(ahead.stdout)["names"] == [] and young_names <= set(store)

    # A writer's lock refreshed seconds ago is live, whatever the judge's clock says; its stale
    # period (60 s) is long past by a clock ten minutes ahead.
    with se.S3Store(bucket, "t", host="honest-clock", lock_stale=60).writing():
        blocked = _cli(s3_server, *gc, "--grace", "0", "--lock-wait", "0.5", prefix=[faketime, "-f", "+10m"])
        assert blocked.returncode == 6 and b"host honest-clock" in blocked.stderr, blocked.stderr
    # ...and a lock taken by a machine ten minutes behind is live for an honest gc.
    holder = subprocess.Popen(
        [
            faketime,
            "-f",
            "-10m",
            sys.executable,
            "-c",
            "import sys, self_encryption as se\n"
            "with se.S3Store(sys.argv[1], 't', host='slow-clock', lock_stale=60).writing():\n"
            "    print('held', flush=True); sys.stdin.read()\n",
            bucket,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_env(s3_server),
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(se.StoreBusyError, match="host slow-clock"):
            se.collect_garbage(store, [keep], grace=0, lock_wait=0.5)
    finally:
        holder.communicate(b"", timeout=30)
    assert holder.returncode == 0

    # Ten minutes behind: by its own clock the chunks are not stored yet; by the server's they
    # are older than a 2 s grace period, and go.
    stamped = max(store.mtime(name) for name in young_names)
    _wait_until(lambda: store.now() - stamped >= 3, 10, "the chunks to age on the server")
    behind = _cli(s3_server, *gc, "--grace", "2", prefix=[faketime, "-f", "-10m"])
    assert behind.returncode == 0, behind.stderr
    assert set(json.loads(behind.stdout)["names"]) == young_names
