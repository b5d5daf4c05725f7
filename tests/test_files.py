"""The atomic file write shared by chunks, data maps and decrypted outputs."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import self_encryption as se
from self_encryption import _files, _mapfile

SCRIPT = pathlib.Path(sys.executable).with_name("self-encryption")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "self_encryption"]


def _strace_or_skip() -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/bootstrap.sh installs it as root on Debian)")
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode(errors='replace').strip()}")


def _traced(trace: pathlib.Path, calls: str, code: str, *args: object) -> list[str]:
    """Run ``python -c code args`` under strace, tracing calls (with paths): a line for each call.

    A call another thread's call interrupted in the trace (``<unfinished ...>``,
    then ``<... resumed>``: more likely on a busy machine) is joined into one
    line, where it returned.
    """
    subprocess.run(
        ["strace", "-f", "-y", "-o", str(trace), "-e", f"trace={calls}", sys.executable, "-c", code]
        + [str(arg) for arg in args],
        check=True,
        timeout=300,
    )
    lines: list[str] = []
    started: dict[str, str] = {}  # by thread: the first half of a call interrupted
    for line in trace.read_text().splitlines():
        thread, _, call = line.partition(" ")
        if call.endswith(" <unfinished ...>"):
            started[thread] = call.removesuffix(" <unfinished ...>")
        elif (resumed := re.match(r"\s*<\.\.\. \w+ resumed>(.*)", call)) and thread in started:
            lines.append(f"{thread} {started.pop(thread)}{resumed.group(1)}")
        else:
            lines.append(line)
    return lines


def test_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with _files.atomic_write(str(target), prefix=".out.", suffix=".partial") as temp:
            temp.write(b"half")
            raise RuntimeError("stop")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out"]
    with _files.atomic_write(str(target), prefix=".out.", suffix=".partial", mode=0o600) as temp:
        temp.write(b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["out"]


def test_temp_file_sits_beside_the_target_with_its_name(tmp_path):
    target = tmp_path / "map.sedm"
    with _files.atomic_write(str(target), prefix=".sedm-") as temp:
        names = os.listdir(tmp_path)
        temp.write(b"x")
    assert len(names) == 1 and names[0].startswith(".sedm-")


def test_atomic_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    # Watch the real calls (each still runs): what was flushed, and when the rename came.
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        return real_fsync(descriptor)

    def replace(source, target):
        events.append(("rename", str(target)))
        return real_replace(source, target)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc to name the flushed descriptors")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "chunk"
    with _files.atomic_write(str(target), prefix=".tmp-") as temp:
        temp.write(b"content")
    monkeypatch.undo()
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "rename", "fsync"], events
    assert os.path.basename(events[0][1]).startswith(".tmp-")  # the temporary file's data
    assert events[1][1] == str(target)
    assert events[2][1] == str(tmp_path)  # the folder, so that the rename survives a crash
    assert target.read_bytes() == b"content"


def test_reserved_file_claims_its_space_first_and_fills_it_later(tmp_path):
    target = tmp_path / "file.sedm"
    reserved = _files.ReservedFile(target, prefix=_mapfile.map_temp_prefix(str(target)), size=432)
    names = os.listdir(tmp_path)
    assert len(names) == 1 and names[0].startswith(".file.sedm-") and names[0].endswith(".partial")
    temp = tmp_path / names[0]
    assert temp.stat().st_size == 432 and temp.stat().st_mode & 0o777 == 0o600
    assert not target.exists()
    reserved.commit(b"se1:map\n")
    assert target.read_bytes() == b"se1:map\n" and target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["file.sedm"]
    with pytest.raises(ValueError):
        reserved.commit(b"again")


def test_reserved_file_never_replaces_unless_asked(tmp_path):
    target = tmp_path / "m"
    with _files.ReservedFile(target, prefix=".m.", size=10, replace=False) as reserved:
        target.write_bytes(b"someone else's")  # appears while the work runs
        with pytest.raises(FileExistsError):
            reserved.commit(b"ours")
    assert target.read_bytes() == b"someone else's" and os.listdir(tmp_path) == ["m"]
    with _files.ReservedFile(target, prefix=".m.", size=10, replace=True) as reserved:
        reserved.commit(b"ours")
    assert target.read_bytes() == b"ours" and os.listdir(tmp_path) == ["m"]
    with _files.ReservedFile(target, prefix=".m.", size=10):
        pass  # not committed: the temporary goes
    assert os.listdir(tmp_path) == ["m"]


def test_reserved_file_fails_at_once_where_it_cannot_be_written(tmp_path):
    with pytest.raises(FileNotFoundError):
        _files.ReservedFile(tmp_path / "missing" / "m", prefix=".m.", size=10)
    with pytest.raises(IsADirectoryError):
        _files.ReservedFile(tmp_path, prefix=".m.", size=10)


def test_temporary_names_say_what_they_stand_for(tmp_path):
    assert _mapfile.map_temp_prefix(str(tmp_path / "photo.jpg.sedm")) == ".photo.jpg.sedm-"
    assert _mapfile.map_temp_prefix(str(tmp_path / "key")) == ".key.sedm-"
    long = _mapfile.map_temp_prefix(str(tmp_path / ("é" * 127 + ".sedm")))
    assert len(os.fsencode(long)) < 200  # room left for the random part and the suffix
    with _files.ReservedFile(tmp_path / ("é" * 127), prefix=long, size=1) as reserved:
        reserved.commit(b"x")


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_umask_is_read_without_changing_it():
    saved = os.umask(0o027)
    try:
        assert _files.current_umask() == 0o027
        assert _files.shared_mode() == 0o640
        assert os.umask(0o027) == 0o027  # unchanged
    finally:
        os.umask(saved)
    assert _files.shared_mode(0o022) == 0o644


def test_make_folders_creates_what_is_missing_and_nothing_else(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    _files.make_folders(target)
    assert target.is_dir()
    _files.make_folders(target)  # there already: nothing to do
    _files.make_folders(str(tmp_path / "a"), durable=False)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        _files.make_folders(tmp_path / "file")
    with pytest.raises(NotADirectoryError):
        _files.make_folders(tmp_path / "file" / "below")
    assert sorted(os.listdir(tmp_path)) == ["a", "file"]


@pytest.mark.skipif(sys.platform != "linux", reason="reads a Linux strace")
def test_make_folders_flushes_the_parent_of_each_folder_it_makes(tmp_path):
    # The real calls, as the kernel saw them: every mkdir is followed by an fsync of a
    # descriptor opened on its parent, and the last folder is flushed itself.
    _strace_or_skip()
    trace = tmp_path / "trace"
    target = tmp_path / "x" / "y" / "z"
    code = f"from self_encryption import _files; _files.make_folders({str(target)!r})"
    calls = []
    for line in _traced(trace, "mkdir,mkdirat,fsync", code):
        made = re.search(r'mkdir(?:at)?\((?:[^,]*, )?"([^"]+)"[^)]*\)\s+= 0', line)
        synced = re.search(r"fsync\(\d+<([^>]+)>\)\s+= 0", line)
        if made:
            calls.append(("mkdir", made.group(1)))
        elif synced:
            calls.append(("fsync", synced.group(1)))
    made_folders = [path for kind, path in calls if kind == "mkdir"]
    assert made_folders == [str(tmp_path / "x"), str(tmp_path / "x" / "y"), str(target)]
    for folder in made_folders:
        after = calls[calls.index(("mkdir", folder)) + 1 :]
        assert ("fsync", os.path.dirname(folder)) in after, (folder, calls)
    assert calls[-1] == ("fsync", str(target))


@pytest.mark.skipif(sys.platform != "linux", reason="strace's fault injection")
@pytest.mark.parametrize(
    ("error", "saved"),
    [("EIO", False), ("ENOSPC", False), ("EPERM", True), ("EOPNOTSUPP", True), ("ENOSYS", True)],
)
def test_only_a_file_system_without_links_gives_up_the_no_replace_save(tmp_path, error, saved):
    # link() made to fail for real (strace injects the error into the system call): only an
    # answer meaning "no hard links here" may fall back to check-then-rename; any other fails
    # the save, and the map goes to stderr instead of being written by the weaker rename.
    _strace_or_skip()
    data = os.urandom(5000)
    (tmp_path / "file").write_bytes(data)
    injected = [
        "strace",
        "-f",
        "-o",
        os.devnull,
        "-e",
        "trace=link,linkat",
        "-e",
        f"inject=link,linkat:error={error}",
    ]
    result = subprocess.run(
        [*injected, *COMMAND, "encrypt", str(tmp_path / "file"), "--store", str(tmp_path / "store"), "-q"],
        capture_output=True,
        timeout=120,
    )
    map_file = tmp_path / "file.sedm"
    if saved:
        assert result.returncode == 0, result.stderr.decode()
        assert se.decrypt(se.DataMap.load(map_file), se.DirStore(tmp_path / "store")) == data
    else:
        assert result.returncode == se.StoreError.exit_code, result.stderr.decode()  # an I/O error
        stderr = result.stderr.decode()
        assert "cannot write data map" in stderr and "Traceback" not in stderr
        printed = [line for line in stderr.splitlines() if line.startswith("se1:")]
        assert len(printed) == 1
        assert se.decrypt(se.DataMap.from_text(printed[0]), se.DirStore(tmp_path / "store")) == data
        assert not map_file.exists()
    assert sorted(os.listdir(tmp_path)) == (["file", "file.sedm", "store"] if saved else ["file", "store"])


@pytest.mark.skipif(sys.platform != "linux", reason="reads a Linux strace")
def test_a_large_decrypted_file_is_written_back_as_it_comes_and_flushed_at_the_end(tmp_path):
    # Every WRITEBACK_BYTES the kernel is asked to start writing (fadvise DONTNEED on the
    # range just written), so the fsync before the rename has little left to wait for;
    # the bytes and the final fsync are as before.
    _strace_or_skip()
    trace = tmp_path / "trace"
    data = os.urandom(1 << 20) * 80  # 80 MiB: two full write-back ranges and a tail
    source = tmp_path / "plain"
    source.write_bytes(data)
    store = tmp_path / "store"
    root = se.encrypt_file(str(source), se.DirStore(str(store)))
    mapfile = tmp_path / "plain.sedm"
    mapfile.write_text(root.to_text())
    out = tmp_path / "out"
    code = (
        "import self_encryption as se, sys; "
        "m = se.DataMap.from_text(open(sys.argv[1]).read()); "
        "se.decrypt_file(m, se.DirStore(sys.argv[2]), sys.argv[3])"
    )
    lines = _traced(trace, "fadvise64,fsync,rename,renameat,renameat2", code, mapfile, store, out)
    assert out.read_bytes() == data
    advised = [
        (int(m.group(1)), int(m.group(2)))
        for line in lines
        if (m := re.search(r"fadvise64\(\d+<[^>]*\.partial>, (\d+), (\d+), POSIX_FADV_DONTNEED\)", line))
    ]
    step = _files.WRITEBACK_BYTES
    assert advised[:2] == [(0, advised[0][1]), (advised[0][1], advised[1][1])]
    assert all(length >= step for _, length in advised) and len(advised) == len(data) // step
    synced = [i for i, line in enumerate(lines) if re.search(r"fsync\(\d+<[^>]*\.partial>\)", line)]
    renamed = [i for i, line in enumerate(lines) if "rename" in line and ".partial" in line]
    assert synced and renamed and synced[-1] < renamed[0]
