"""The trace reader and the strict POSIX model of crashstates.py, on hand-written traces."""

from __future__ import annotations

import os

import pytest

import self_encryption as se

import crashstates


def test_a_call_split_over_two_lines_is_one_operation():
    trace = (
        '7 mkdir("/r/a", 0777 <unfinished ...>\n'
        "8 fsync(3</r> <unfinished ...>\n"
        "7 <... mkdir resumed>)              = 0\n"
        "8 <... fsync resumed>)              = 0\n"
        '7 rename("/r/x", "/r/y") = -1 ENOENT (No such file or directory)\n'
        '7 openat(AT_FDCWD</r>, "b", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 4</r/b>\n'
        '7 write(4</r/b>, ""..., 10) = 10\n'
        '7 linkat(AT_FDCWD</r>, "b", 4</r/a>, "c", 0) = 0\n'
        '7 unlinkat(AT_FDCWD</r>, "a", AT_REMOVEDIR) = 0\n'
    )
    ops = crashstates.read_trace(trace)
    # The fsync began before the mkdir returned: it does not cover it, so it comes first.
    assert ops == [
        crashstates.Op("fsync", "/r"),
        crashstates.Op("mkdir", "/r/a"),
        crashstates.Op("create", "/r/b"),
        crashstates.Op("write", "/r/b"),
        crashstates.Op("write", "/r/b"),
        crashstates.Op("link", "/r/b", "/r/a/c"),
        crashstates.Op("rmdir", "/r/a"),
    ]


@pytest.mark.parametrize("flush_store_folder", [False, True])
def test_a_map_in_a_flushed_folder_needs_its_chunk_folder_flushed_too(tmp_path, flush_store_folder):
    # What the store did before make_folders, written out by hand: the fan-out folder's
    # own entry is never flushed, so a crash after the map's folder was flushed finds the
    # map and not its chunk.
    root = os.path.realpath(tmp_path)
    source = se.MemoryStore()
    data_map = se.encrypt_to_store(os.urandom(3000), source)
    os.makedirs(os.path.join(root, "store"))
    tree = crashstates.Tree(root)
    lines = []
    for name in source:
        folder = f"{root}/store/{name[:2]}"
        os.makedirs(folder, exist_ok=True)
        with open(f"{folder}/{name}", "wb") as handle:
            handle.write(source.get(name))
        lines += [
            f'1 mkdir("{folder}", 0777) = 0',
            f'1 openat(AT_FDCWD<{root}>, "{folder}/.tmp", O_RDWR|O_CREAT|O_EXCL, 0600) = 3<{folder}/.tmp>',
            f'1 write(3<{folder}/.tmp>, ""..., 99) = 99',
            f"1 fsync(3<{folder}/.tmp>) = 0",
            f'1 rename("{folder}/.tmp", "{folder}/{name}") = 0',
            f"1 fsync(4<{folder}>) = 0",
        ]
        if flush_store_folder:
            lines.append(f"1 fsync(5<{root}/store>) = 0")
    data_map.save(os.path.join(root, "f.sedm"))
    lines += [
        f'1 openat(AT_FDCWD<{root}>, "{root}/.f.sedm-1.partial", O_RDWR|O_CREAT|O_EXCL, 0600) = 3<{root}/.f.sedm-1.partial>',
        f'1 write(3<{root}/.f.sedm-1.partial>, ""..., 99) = 99',
        f"1 fsync(3<{root}/.f.sedm-1.partial>) = 0",
        f'1 rename("{root}/.f.sedm-1.partial", "{root}/f.sedm") = 0',
        f"1 fsync(3<{root}>) = 0",
    ]
    report = crashstates.check("\n".join(lines) + "\n", tree, stores=[f"{root}/store"])
    if flush_store_folder:
        assert not report.problems, report.summary()
        assert report.maps_decrypted > 0
    else:
        assert report.problems and "which does not exist" in report.problems[0], report.summary()


def test_a_rename_before_the_content_is_flushed_is_caught(tmp_path):
    root = os.path.realpath(tmp_path)
    tree = crashstates.Tree(root)
    (tmp_path / "out").write_bytes(b"all of it")
    trace = (
        f'1 openat(AT_FDCWD<{root}>, "{root}/.out.partial", O_RDWR|O_CREAT|O_EXCL, 0600) = 3<{root}/.out.partial>\n'
        f'1 write(3<{root}/.out.partial>, ""..., 9) = 9\n'
        f'1 rename("{root}/.out.partial", "{root}/out") = 0\n'
        f"1 fsync(4<{root}>) = 0\n"
        f"1 fsync(3<{root}/out>) = 0\n"
    )
    report = crashstates.check(trace, tree, stores=[], outputs={f"{root}/out": b"all of it"})
    assert any("output out exists but is not complete" in problem for problem in report.problems)
    assert report.outputs_complete > 0  # once the file was flushed too


def test_the_model_must_agree_with_the_disk(tmp_path):
    root = os.path.realpath(tmp_path)
    tree = crashstates.Tree(root)
    (tmp_path / "made").mkdir()  # the trace does not say so: an operation was missed
    with pytest.raises(crashstates.TraceError):
        crashstates.check("", tree, stores=[])
