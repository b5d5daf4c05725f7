"""Faults from outside: the command killed or signalled at random moments, gc racing encrypts.

Each test runs the real ``self-encryption`` command in subprocesses on a
folder store and checks what is left behind, and that the documented
recovery (gc, encrypt again, verify --full) brings everything back. The
moments are random but seeded, so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

import self_encryption as se

from helpers import own_lines

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and the flock store lock")

SCRIPT = pathlib.Path(sys.executable).with_name("self-encryption")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "self_encryption"]
SIZES = "16K,64K,256K"  # hundreds of chunks: many moments to be stopped at
SEED = 20261130
#: Big enough that a run lasts about a second on either backend.
FILE_SIZE = (16 << 20) if se.backend == "c" else (4 << 20)


def run(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, timeout=timeout)


def ok(*args) -> subprocess.CompletedProcess:
    result = run(*args)
    assert result.returncode == 0, result.stderr.decode()
    return result


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([*COMMAND, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def store_temporaries(store: pathlib.Path) -> list[pathlib.Path]:
    return list(store.glob("??/.tmp-*"))


def map_temporaries(folder: pathlib.Path) -> list[pathlib.Path]:
    return list(folder.glob(".*.sedm-*.partial"))  # as docs/command-line.md says to look for them


def fresh_file(folder: pathlib.Path, name: str = "f") -> bytes:
    """A new file of FILE_SIZE bytes, half random, half text: every chunk new to the store."""
    data = os.urandom(FILE_SIZE // 2) + os.urandom(8).hex().encode() * (FILE_SIZE // 32)
    (folder / name).write_bytes(data)
    return data


def written_bytes(pid: int) -> int | None:
    """Bytes the process has written so far (/proc/PID/io), None once it is gone."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def stop_mid_run(process: subprocess.Popen, low: int, high: int, timeout: float = 120) -> bool:
    """Freeze the process (SIGSTOP) once it has written low bytes; True if it is then mid-run.

    Mid-run means still alive with fewer than high bytes written: a signal
    sent now lands inside the work whatever the machine's load, since
    nothing runs until SIGCONT. False (the process resumed) when it had got
    past high, or finished, before it could be frozen.
    """
    deadline = time.monotonic() + timeout
    while True:
        written = written_bytes(process.pid)
        if written is None or process.poll() is not None:
            return False
        if written >= low:
            break
        assert time.monotonic() < deadline, f"the command wrote only {written} bytes in {timeout} s"
        time.sleep(0.002)
    process.send_signal(signal.SIGSTOP)
    written = written_bytes(process.pid)
    if process.poll() is None and written is not None and written < high:
        return True
    process.send_signal(signal.SIGCONT)
    return False


def signal_mid_run(
    start_run, signum: int, rng: random.Random, *, low: float = 0.03, high: float = 0.35, tries: int = 8
) -> subprocess.Popen:
    """Start runs until one is frozen mid-run, then send it signum and let it go on.

    The moment is random but seeded: once the run has written a share of
    FILE_SIZE drawn from [low, high / 2]. Runs that got past high first are
    waited for and started again (on a loaded machine a run can be fast).
    """
    for _ in range(tries):
        process = start_run()
        at = int(FILE_SIZE * rng.uniform(low, high / 2))
        if stop_mid_run(process, at, int(FILE_SIZE * high)):
            process.send_signal(signum)
            process.send_signal(signal.SIGCONT)
            return process
        process.communicate(timeout=300)
        assert process.returncode == 0, "a run that was not signalled failed"
    raise AssertionError(f"no run could be frozen mid-run in {tries} tries")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A folder holding k, the small file whose map every test keeps."""
    work = tmp_path_factory.mktemp("faults")
    (work / "k").write_bytes(os.urandom(100_000))
    return {"work": work}


@pytest.fixture
def place(setup, tmp_path):
    """A fresh store and maps folder holding the kept map of k: (store, maps)."""
    store, maps = tmp_path / "store", tmp_path / "maps"
    maps.mkdir()
    ok("encrypt", setup["work"] / "k", "--store", store, "-o", maps / "k.sedm", "--chunk-sizes", SIZES, "-q")
    return store, maps


def _encrypt_args(store, maps):
    return (
        "encrypt",
        maps.parent / "f",
        "--store",
        store,
        "-o",
        maps / "f.sedm",
        "--force",
        "--chunk-sizes",
        SIZES,
        "-q",
    )


def _recover_and_check(store, maps) -> dict:
    """The documented recovery (docs/command-line.md): gc removes leftovers, encrypt again, verify --full."""
    report = json.loads(ok("gc", "--store", store, "--keep", maps, "--grace", "0", "--yes", "--json").stdout)
    assert store_temporaries(store) == []
    ok(*_encrypt_args(store, maps))
    ok("verify", maps / "f.sedm", "--store", store, "--full")
    ok("verify", maps / "k.sedm", "--store", store, "--full")
    return report


def test_kill_9_during_encrypt(setup, place):
    store, maps = place
    rng = random.Random(SEED)
    outcomes = []
    for trial in range(4):
        fresh_file(maps.parent)
        process = signal_mid_run(lambda: start(*_encrypt_args(store, maps)), signal.SIGKILL, rng)
        process.wait(timeout=60)
        left = (len(store_temporaries(store)), len(map_temporaries(maps)))
        outcomes.append((process.returncode, *left))
        if process.returncode == -signal.SIGKILL and not (maps / "f.sedm").exists():
            assert left[1] == 1, (trial, outcomes)  # the map's claimed place stays behind
        report = _recover_and_check(store, maps)
        assert report["temp_files"] == left[0], (trial, outcomes)
        for temp in map_temporaries(maps):  # the documented clean-up: remove them by hand
            temp.unlink()
        (maps / "f.sedm").unlink()
    print(f"kill -9 during encrypt, (exit, store temporaries, map temporaries): {outcomes}")
    assert [code for code, *_ in outcomes].count(-signal.SIGKILL) == 4, outcomes


def test_kill_9_during_decrypt(setup, place):
    store, maps = place
    data = fresh_file(maps.parent)
    ok(*_encrypt_args(store, maps))
    rng = random.Random(SEED + 1)
    out = maps.parent / "out"
    killed = 0
    for _ in range(3):
        process = signal_mid_run(
            lambda: start("decrypt", maps / "f.sedm", "--store", store, "-o", out, "-q"), signal.SIGKILL, rng
        )
        process.wait(timeout=60)
        if out.exists():  # it finished first: then it is whole
            assert out.read_bytes() == data
            out.unlink()
            continue
        killed += 1
        leftovers = list(maps.parent.glob(".*.partial"))  # never a partial file under the real name
        assert len(leftovers) == 1 and leftovers[0].name.startswith(".out."), leftovers
        leftovers[0].unlink()  # the documented clean-up: remove them by hand
    ok("decrypt", maps / "f.sedm", "--store", store, "-o", out)
    print(f"kill -9 during decrypt: {killed} of 3 killed before the end")
    assert out.read_bytes() == data and killed == 3


def _signalled(process: subprocess.Popen, signum: int) -> tuple[bool, bytes]:
    """Whether the signal stopped the command (else it had finished its work first)."""
    _, err = process.communicate(timeout=120)
    if process.returncode in (0, -signum):  # done; the signal came at the very end, or after
        return False, err
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, err.decode()
    message = {"SIGTERM": "terminated (SIGTERM)", "SIGHUP": "hung up (SIGHUP)"}[name]
    assert own_lines(err) == [f"self-encryption: error: {message}"]
    return True, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_during_encrypt_clean_up(setup, place, signum):
    store, maps = place
    rng = random.Random(SEED + signum)
    stopped = 0
    for _ in range(3):
        fresh_file(maps.parent)
        process = signal_mid_run(lambda: start(*_encrypt_args(store, maps)), signum, rng)
        interrupted, _ = _signalled(process, signum)
        if interrupted:
            stopped += 1
            # Workers stopped, temporaries and the map's claimed place removed, no map.
            assert store_temporaries(store) == [] and map_temporaries(maps) == []
            assert not (maps / "f.sedm").exists()
        report = _recover_and_check(store, maps)
        assert report["temp_files"] == 0
        (maps / "f.sedm").unlink()
    print(f"{signal.Signals(signum).name} during encrypt: {stopped} of 3 stopped before the end")
    assert stopped == 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_during_decrypt_clean_up(setup, place, signum):
    store, maps = place
    data = fresh_file(maps.parent)
    ok(*_encrypt_args(store, maps))
    out = maps.parent / "out"
    rng = random.Random(SEED + 10 * signum)
    stopped = 0
    for _ in range(2):
        process = signal_mid_run(
            lambda: start("decrypt", maps / "f.sedm", "--store", store, "-o", out, "-q"), signum, rng
        )
        interrupted, _ = _signalled(process, signum)
        if interrupted:
            stopped += 1
            assert not out.exists() and list(maps.parent.glob(".*.partial")) == []
        else:
            assert out.read_bytes() == data
            out.unlink()
    print(f"{signal.Signals(signum).name} during decrypt: {stopped} of 2 stopped before the end")
    assert stopped == 2


def test_gc_racing_encrypts_never_takes_what_a_new_map_needs(setup, place, tmp_path):
    """gc --grace 0 in a loop while files are encrypted: only the store lock protects them.

    Half the trials encrypt a new file; the other half encrypt again a file
    whose map was just removed, so that its chunks are garbage that gc is
    deleting while the encrypt finds them present.
    """
    store, maps = place
    rng = random.Random(SEED + 99)
    stop = threading.Event()
    gc_runs: list[dict] = []
    failures: list[str] = []

    def gc_loop() -> None:
        while not stop.is_set():
            result = run(
                "gc",
                "--store",
                store,
                "--keep",
                maps,
                "--grace",
                "0",
                "--yes",
                "--json",
                "--lock-wait",
                "120",
            )
            if result.returncode != 0:
                failures.append(result.stderr.decode())
                return
            gc_runs.append(json.loads(result.stdout))

    collector = threading.Thread(target=gc_loop)
    collector.start()
    try:
        size = max(FILE_SIZE // 4, 1 << 20)
        files = []
        for trial in range(6):
            if trial % 2 == 0:  # a new file
                path = tmp_path / f"new{trial}"
                path.write_bytes(os.urandom(size))
                files.append(path)
            else:  # a file stored before, whose map is gone: its chunks are garbage
                path = files[-1]
                (maps / f"{path.name}.sedm").unlink()
                time.sleep(rng.uniform(0, 0.5))
            ok(
                "encrypt",
                path,
                "--store",
                store,
                "-o",
                maps / f"{path.name}.sedm",
                "--chunk-sizes",
                SIZES,
                "-q",
            )
            # Verified while gc keeps running: the map is in the kept folder now.
            ok("verify", maps / f"{path.name}.sedm", "--store", store, "--full")
    finally:
        stop.set()
        collector.join(timeout=300)
    assert not failures, failures
    print(f"gc race: {len(gc_runs)} gc runs deleted {sum(len(r['names']) for r in gc_runs)} chunks")
    assert len(gc_runs) >= 3 and sum(len(r["names"]) for r in gc_runs) > 0  # gc did delete garbage
    for path in files:
        ok("verify", maps / f"{path.name}.sedm", "--store", store, "--full")
