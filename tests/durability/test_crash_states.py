"""Power loss at any moment of a command leaves no map without its chunks and no half output.

Each command runs as a user runs it, under strace; crashstates.py replays
the trace over a strict POSIX model and checks every crash state (see there).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import self_encryption as se

import crashstates

SCRIPT = pathlib.Path(sys.executable).with_name("self-encryption")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "self_encryption"]
#: Small chunks, so that a few kilobytes make a map of several levels.
SMALL = "64,256,1024"
UPSTREAM = pathlib.Path(__file__).parent.parent / "data" / "upstream"


@pytest.fixture(scope="module")
def strace_ok():
    problem = crashstates.strace_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def work(tmp_path, strace_ok):
    return pathlib.Path(os.path.realpath(tmp_path))


def run(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, cwd=cwd, timeout=120)


def traced(work: pathlib.Path, *args) -> tuple[subprocess.CompletedProcess, str, crashstates.Tree]:
    """Run the command under strace in work; (result, trace, work's tree as it was before)."""
    before = crashstates.Tree(str(work))
    trace_file = work.parent / f"{work.name}.trace"
    command = [*crashstates.strace_command(str(trace_file)), *COMMAND, *map(str, args)]
    result = subprocess.run(command, capture_output=True, cwd=work, timeout=300)
    if result.returncode != 0 and b"seccomp" in result.stderr:  # an strace without --seccomp-bpf
        command = [*crashstates.strace_command(str(trace_file), seccomp=False), *COMMAND, *map(str, args)]
        result = subprocess.run(command, capture_output=True, cwd=work, timeout=300)
    return result, trace_file.read_text(errors="replace"), before


def assert_sound(report: crashstates.Report) -> None:
    assert not report.problems, report.summary()


def encrypted(work: pathlib.Path, name: str, size: int, store: pathlib.Path) -> bytes:
    data = os.urandom(size // 2) + bytes(size - size // 2)
    (work / name).write_bytes(data)
    result = run("encrypt", work / name, "--store", store, "--chunk-sizes", SMALL, "-q", cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    return data


def test_encrypt_into_a_new_store(work):
    (work / "file").write_bytes(os.urandom(6000) + bytes(6000))
    store = work / "new" / "folders" / "store"
    result, trace, before = traced(work, "encrypt", work / "file", "--store", store, "--chunk-sizes", SMALL)
    assert result.returncode == 0, result.stderr.decode()
    assert se.DataMap.load(work / "file.sedm").level >= 1  # a map of several levels
    report = crashstates.check(trace, before, stores=[str(store)])
    assert_sound(report)
    assert report.maps_decrypted > 0  # some crash states had the map, and it opened


def test_decrypt_to_a_new_file(work):
    store = work / "store"
    data = encrypted(work, "file", 9000, store)
    result, trace, before = traced(work, "decrypt", work / "file.sedm", "--store", store, "-o", work / "out")
    assert result.returncode == 0, result.stderr.decode()
    assert (work / "out").read_bytes() == data
    report = crashstates.check(trace, before, stores=[str(store)], outputs={str(work / "out"): data})
    assert_sound(report)
    assert report.outputs_complete > 0


def test_gc_deleting_what_a_removed_map_used(work):
    store = work / "store"
    encrypted(work, "kept", 5000, store)
    encrypted(work, "dropped", 5000, store)
    (work / "dropped.sedm").unlink()
    result, trace, before = traced(
        work, "gc", "--store", store, "--keep", work / "kept.sedm", "--yes", "--grace", "0"
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "0 unreferenced" not in result.stdout.decode()
    report = crashstates.check(trace, before, stores=[str(store)])
    assert_sound(report)
    assert report.maps_decrypted > 0


def test_verify_repair_moving_a_damaged_chunk_aside(work):
    store = work / "store"
    encrypted(work, "sound", 5000, store)
    encrypted(work, "damaged", 5000, store)
    sound = se.chunk_names(se.DataMap.load(work / "sound.sedm"), se.DirStore(store))
    victim = next(
        name
        for name in sorted(se.chunk_names(se.DataMap.load(work / "damaged.sedm"), se.DirStore(store)))
        if name not in sound
    )
    chunk_file = store / victim[:2] / victim
    chunk_file.write_bytes(b"\xff" + chunk_file.read_bytes()[1:])
    result, trace, before = traced(
        work, "verify", work / "damaged.sedm", "--store", store, "--full", "--repair"
    )
    assert result.returncode == se.ChunkIntegrityError.exit_code, result.stderr.decode()
    assert (store / "quarantine" / victim).exists()
    report = crashstates.check(trace, before, stores=[str(store)])
    assert_sound(report)  # the damaged chunk is never lost on its way to quarantine/
    assert report.maps_decrypted > 0  # the sound map stays whole throughout


def test_import_upstream_into_a_new_store(work):
    pytest.importorskip("blake3", reason="the [upstream] extra (blake3) is not installed")
    pytest.importorskip("brotli", reason="the [upstream] extra (brotli) is not installed")
    shutil.copytree(UPSTREAM / "v-1KiB", work / "up")  # three upstream chunks
    store = work / "ours" / "store"
    result, trace, before = traced(
        work, "import-upstream", work / "up" / "map.json", "--from", work / "up" / "chunks",
        "--store", store, "--chunk-sizes", SMALL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    report = crashstates.check(trace, before, stores=[str(store)])
    assert_sound(report)
    assert report.maps_decrypted > 0
