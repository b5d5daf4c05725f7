"""Data maps on the command line (self_encryption/cli/maps.py and the parser in cli/options.py).

Where a map may be written (only an absent or regular file, through links),
that decrypt never writes over the map it reads, and that a map given as
text is never printed, however it reached the parser. Real files, FIFOs,
sockets, links and a character device made with mknod.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import stat
import subprocess
import sys

import pytest

import self_encryption as se

SCRIPT = pathlib.Path(sys.executable).with_name("self-encryption")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "self_encryption"]
SMALL = "64,256,1024"
UPSTREAM_VECTOR = pathlib.Path(__file__).parent / "data" / "upstream" / "v-1KiB"


def run(*args, input: bytes | None = None, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *map(str, args)],
        input=input,
        stdin=stdin,
        capture_output=True,
        timeout=120,
    )


def error_line(result: subprocess.CompletedProcess, code: int) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == code, (result.returncode, stderr)
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


def chunk_files(store: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in store.rglob("*") if p.is_file() and p.name != ".lock"] if store.exists() else []


# -- where a map may be written ------------------------------------------------------------

#: Each kind of destination a map must never replace, made at a path; returns its file type test.
KINDS = ["fifo", "device", "socket", "folder", "dangling link", "link to a fifo", "link to a folder"]


def _make(kind: str, path: pathlib.Path, holder: list[socket.socket]):
    if kind == "fifo":
        os.mkfifo(path)
        return stat.S_ISFIFO
    if kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a character device needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a device like /dev/null, in tmp
        return stat.S_ISCHR
    if kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        holder.append(server)
        return stat.S_ISSOCK
    if kind == "folder":
        path.mkdir()
        return stat.S_ISDIR
    if kind == "dangling link":
        path.symlink_to(path.parent / "nowhere")
        return stat.S_ISLNK
    if kind == "link to a fifo":
        os.mkfifo(path.parent / "fifo")
        path.symlink_to(path.parent / "fifo")
        return stat.S_ISLNK
    assert kind == "link to a folder"
    (path.parent / "folder").mkdir()
    path.symlink_to(path.parent / "folder")
    return stat.S_ISLNK


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["-o", "default name"])
def test_encrypt_force_never_replaces_what_is_not_a_file(tmp_path, kind, how):
    source = tmp_path / "f"
    source.write_bytes(os.urandom(5000))
    target = tmp_path / "f.sedm" if how == "default name" else tmp_path / "target"
    sockets: list[socket.socket] = []
    is_kind = _make(kind, target, sockets)
    store = tmp_path / "store"
    output = ["-o", target] if how == "-o" else []
    try:
        line = error_line(
            run("encrypt", source, "--store", store, *output, "--force", "--chunk-sizes", SMALL), 2
        )
    finally:
        for server in sockets:
            server.close()
    assert str(target) in line and "cannot write data map" in line, line
    assert is_kind(os.lstat(target).st_mode), "the destination was replaced"
    assert chunk_files(store) == [], "refused only after chunks were stored"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_encrypt_force_through_a_link_writes_the_file_it_names(tmp_path):
    source = tmp_path / "f"
    data = os.urandom(5000)
    source.write_bytes(data)
    (tmp_path / "maps").mkdir()
    real = tmp_path / "maps" / "real.sedm"
    real.write_text("old map\n")
    link = tmp_path / "link.sedm"
    link.symlink_to(real)
    store = tmp_path / "store"
    result = run("encrypt", source, "--store", store, "-o", link, "--force", "--chunk-sizes", SMALL)
    assert result.returncode == 0, result.stderr.decode()
    assert link.is_symlink() and os.readlink(link) == str(real), "the link was replaced"
    assert real.read_text().startswith("se1:")
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    restored = run("decrypt", link, "--store", store, "-o", "-")
    assert restored.returncode == 0 and restored.stdout == data
    # Without --force the link counts as an existing map.
    assert "--force" in error_line(run("encrypt", source, "--store", store, "-o", link), 2)
    # "-o -" still prints the map.
    printed = run("encrypt", source, "--store", store, "-o", "-", "--chunk-sizes", SMALL)
    assert printed.returncode == 0 and printed.stdout.decode().startswith("se1:")


@pytest.fixture
def upstream_vector(tmp_path):
    pytest.importorskip("blake3")
    folder = tmp_path / "upstream"
    shutil.copytree(UPSTREAM_VECTOR, folder)
    return folder


@pytest.mark.parametrize("kind", ["fifo", "device", "dangling link", "folder"])
def test_import_upstream_never_replaces_what_is_not_a_file(tmp_path, upstream_vector, kind):
    target = tmp_path / "target"
    is_kind = _make(kind, target, [])
    store = tmp_path / "store"
    map_json, chunks = upstream_vector / "map.json", upstream_vector / "chunks"
    line = error_line(
        run("import-upstream", map_json, "--from", chunks, "--store", store, "-o", target, "--force"), 2
    )
    assert str(target) in line, line
    assert is_kind(os.lstat(target).st_mode)
    assert chunk_files(store) == []


def test_import_upstream_through_a_link_writes_the_file_it_names(tmp_path, upstream_vector):
    real = tmp_path / "real.sedm"
    real.write_text("old\n")
    link = tmp_path / "link.sedm"
    link.symlink_to(real)
    store = tmp_path / "store"
    map_json, chunks = upstream_vector / "map.json", upstream_vector / "chunks"
    result = run("import-upstream", map_json, "--from", chunks, "--store", store, "-o", link, "--force")
    assert result.returncode == 0, result.stderr.decode()
    assert link.is_symlink() and real.read_text().startswith("se1:")


# -- decrypt never writes over its own map -------------------------------------------------


@pytest.fixture
def stored(tmp_path):
    data = os.urandom(20_000)
    (tmp_path / "f").write_bytes(data)
    store = tmp_path / "store"
    result = run("encrypt", tmp_path / "f", "--store", store, "--chunk-sizes", SMALL)
    assert result.returncode == 0, result.stderr.decode()
    return tmp_path / "f.sedm", store, data


@pytest.mark.parametrize(
    "how", ["same path", "other path", "symlink", "hard link", "standard input", "standard output"]
)
def test_decrypt_refuses_to_write_over_the_map_it_reads(tmp_path, stored, how):
    map_file, store, data = stored
    before = map_file.read_bytes()
    source, output, stdin = str(map_file), str(map_file), None
    if how == "other path":
        (tmp_path / "sub").mkdir()
        output = str(tmp_path / "sub" / ".." / map_file.name)
    elif how == "symlink":
        output = str(tmp_path / "link")
        os.symlink(map_file, output)
    elif how == "hard link":
        output = str(tmp_path / "hard")
        os.link(map_file, output)
    elif how == "standard input":
        source = "-"
        stdin = open(map_file, "rb")
    try:
        if how == "standard output":  # decrypt MAP -o - >> MAP
            with open(map_file, "ab") as stdout:
                result = subprocess.run(
                    [*COMMAND, "decrypt", source, "--store", str(store), "-o", "-"],
                    stdout=stdout,
                    stderr=subprocess.PIPE,
                    timeout=120,
                )
        else:
            result = run("decrypt", source, "--store", store, "-o", output, stdin=stdin)
    finally:
        if stdin is not None:
            stdin.close()
    line = error_line(result, 2)
    assert "data map being read" in line, line
    assert map_file.read_bytes() == before
    # Another output is fine.
    result = run("decrypt", map_file, "--store", store, "-o", tmp_path / "out")
    assert result.returncode == 0 and (tmp_path / "out").read_bytes() == data


# -- a map given as text is never printed ----------------------------------------------------


def _assert_no_map(output: bytes, *maps: str) -> None:
    for text in maps:
        body = text.strip()
        body = body[len("se1:") :] if body.startswith("se1:") else body
        for piece in (body[i : i + 16] for i in range(0, max(len(body) - 16, 1), 8)):
            assert piece.encode() not in output, (piece, output)


@pytest.mark.parametrize(
    "shape", [" {text}", "\n{text}", "{text}\n", " {text} ", " {json}", "\n{json}\n", "\t{short}"]
)
def test_a_map_with_white_space_around_it_is_read_and_never_printed(tmp_path, stored, shape):
    map_file, store, data = stored
    root = se.DataMap.load(map_file)
    text = shape.format(text=root.to_text(), json=root.to_json(), short=root.to_text()[:-8])
    empty = tmp_path / "empty-store"
    empty.mkdir()
    for args in (
        ["info", text],
        ["decrypt", text, "--store", empty, "-o", tmp_path / "o"],
        ["verify", text, "--store", store],
        ["gc", "--store", store, "--keep", text],
    ):
        result = run(*args)
        _assert_no_map(result.stdout + result.stderr, text)
        if "{short}" in shape:
            assert result.returncode == se.DataMapError.exit_code, result.stderr
            assert "<data map>" in result.stderr.decode()
        else:
            assert "cannot read data map" not in result.stderr.decode()
    if "{short}" not in shape:
        restored = run("decrypt", text, "--store", store, "-o", "-")
        assert restored.returncode == 0 and restored.stdout == data


def test_argument_errors_never_print_a_map(tmp_path, stored):
    map_file, store, _ = stored
    root = se.DataMap.load(map_file)
    text, other, json_map = root.to_text(), se.encrypt(b"other file" * 50)[0].to_text(), root.to_json()
    cases = [
        ["decrypt", text, other, "--store", store, "-o", tmp_path / "o"],  # a second map
        ["decrypt", text, " " + other, "--store", store, "-o", tmp_path / "o"],
        ["info", text, json_map],
        ["info", map_file, "--print-map", text],  # invalid choice
        ["info", map_file, "--print-map=" + text],
        [text, "--store", store],  # not a command
        [" " + text],
        ["\n" + text],
        ["decrypt", map_file, "--store", store, "-o", tmp_path / "o", "--workers", "\n" + text],
        ["gc", "--store", store, "--keep", map_file, "--grace", text],
        ["cat", map_file, "--store", store, "--offset", " " + text],
        ["encrypt", map_file, "--store", store, "--chunk-sizes", text],
        ["verify", map_file, "--store", store, "--unknown=" + json_map],
        ["verify", map_file, "--store", store, "--re=" + text],  # ambiguous option
        ["encrypt", map_file, "--store", store, "--chunk-sizes", "64,256," + text],
        ["encrypt", map_file, "--store", store, "--level", "\n" + text],
    ]
    for args in cases:
        result = run(*args)
        assert result.returncode == 2, (args[:1], result.stderr)
        assert b"<data map>" in result.stderr, (args[:1], result.stderr)
        _assert_no_map(result.stdout + result.stderr, text, other, json_map)


def test_a_map_given_where_a_path_belongs_is_never_printed(tmp_path, stored):
    # Any message, not only the parser's: here the store folder named by a map's text.
    map_file, store, _ = stored
    text = " " + se.DataMap.load(map_file).to_text()
    for args in (
        ["verify", map_file, "--store", text],
        ["decrypt", map_file, "--store", text, "-o", tmp_path / "o"],
        ["import-upstream", text, "--from", tmp_path, "--store", store],
    ):
        result = run(*args)
        assert result.returncode != 0 and b"<data map>" in result.stderr, (args[0], result.stderr)
        _assert_no_map(result.stdout + result.stderr, text)
