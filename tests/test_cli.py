"""The self-encryption command, run as a real console script in subprocesses."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import self_encryption as se

from helpers import level0_of, own_lines

SCRIPT = pathlib.Path(sys.executable).with_name("self-encryption")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "self_encryption"]
SMALL = "64,256,1024"


def run(*args, input: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], input=input, capture_output=True, cwd=cwd, timeout=120)


def ok(*args, **kwargs) -> subprocess.CompletedProcess:
    result = run(*args, **kwargs)
    assert result.returncode == 0, result.stderr.decode()
    return result


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr.decode())
    lines = own_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("self-encryption: error: "), lines
    assert "Traceback" not in result.stderr.decode()
    return lines[0]


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


def _files(folder: pathlib.Path) -> dict[str, bytes]:
    sizes = {"empty": 0, "one": 1, "small": 5000, "medium": 120_000}
    files = {}
    for name, size in sizes.items():
        data = os.urandom(size // 2) + b"text " * (size // 10)
        data = data[:size] if len(data) >= size else data + bytes(size - len(data))
        (folder / name).write_bytes(data)
        files[name] = data
    return files


def test_round_trip_of_several_sizes(workdir):
    files = _files(workdir)
    store = workdir / "store"
    result = ok("encrypt", *[workdir / n for n in files], "--store", store, "--chunk-sizes", SMALL)
    summary = result.stdout.decode()
    for name, data in files.items():
        assert f"{workdir / name}: " in summary
        map_file = workdir / f"{name}.sedm"
        assert (map_file.stat().st_mode & 0o777) == 0o600
        assert map_file.read_text().startswith("se1:")
        ok("decrypt", map_file, "--store", store, "-o", workdir / f"{name}.out")
        assert (workdir / f"{name}.out").read_bytes() == data
    again = ok("encrypt", workdir / "medium", "--store", store, "--chunk-sizes", SMALL, "--json", "--force")
    report = json.loads(again.stdout)
    assert report["files"][0]["chunks_written"] == 0 and report["files"][0]["chunks_present"] > 0


def test_map_to_stdout_and_file_to_stdout(workdir):
    data = os.urandom(70_000)
    (workdir / "f").write_bytes(data)
    store = workdir / "s"
    text = ok("encrypt", workdir / "f", "--store", store, "-o", "-", "--chunk-sizes", SMALL).stdout
    assert text.decode().startswith("se1:") and text.count(b"\n") == 1
    assert ok("decrypt", "-", "--store", store, "-o", "-", input=text).stdout == data
    assert ok("decrypt", text.decode().strip(), "--store", store, "-o", "-").stdout == data
    from_stdin = ok(
        "encrypt", "-", "--store", store, "-o", workdir / "in.sedm", "--chunk-sizes", SMALL, input=data
    )
    assert (workdir / "in.sedm").read_text().strip() == text.decode().strip()
    assert from_stdin.returncode == 0


def test_options_change_the_map(workdir):
    data = b"compressible " * 20_000
    (workdir / "f").write_bytes(data)
    (workdir / "secret").write_bytes(b"team secret\n")
    plain = ok("encrypt", workdir / "f", "--store", workdir / "s", "-o", "-").stdout.strip()
    assert se.DataMap.from_text(plain.decode()) == se.encrypt(data)[0]
    raw = ok("encrypt", workdir / "f", "--store", workdir / "s", "-o", "-", "--no-compress").stdout.strip()
    assert se.DataMap.from_text(raw.decode()) == se.encrypt(data, compression_level=None)[0]
    keyed = ok(
        "encrypt",
        workdir / "f",
        "--store",
        workdir / "s",
        "-o",
        "-",
        "--secret-file",
        workdir / "secret",
        "--level",
        "9",
    ).stdout.strip()
    expected = se.encrypt(data, convergence_secret=b"team secret", compression_level=9)[0]
    assert se.DataMap.from_text(keyed.decode()) == expected
    sized = ok(
        "encrypt", workdir / "f", "--store", workdir / "s", "-o", "-", "--chunk-sizes", "1K,4K,16K"
    ).stdout.strip()
    assert se.DataMap.from_text(sized.decode()) == se.encrypt(data, chunk_sizes=(1024, 4096, 16384))[0]


@pytest.fixture
def stored(workdir):
    data = os.urandom(150_000)
    (workdir / "f").write_bytes(data)
    ok("encrypt", workdir / "f", "--store", workdir / "store", "--chunk-sizes", SMALL)
    return data, workdir / "f.sedm", workdir / "store"


def _level0(map_file, store_path):
    root = se.DataMap.from_text(map_file.read_text())
    store = se.DirStore(store_path)
    return root, level0_of(root, store), store


@pytest.mark.parametrize("offset, length", [(0, 10), (1000, 5000), (149_990, 100), (0, None), (200_000, 5)])
def test_cat_ranges(stored, offset, length):
    data, map_file, store = stored
    args = ["cat", map_file, "--store", store, "--offset", offset]
    if length is not None:
        args += ["--length", length]
    expected = data[offset:] if length is None else data[offset : offset + length]
    assert ok(*args).stdout == expected


def test_info(stored):
    data, map_file, store = stored
    shallow = json.loads(ok("info", map_file, "--json").stdout)
    assert shallow["file_size"] == len(data) and shallow["level"] >= 1
    deep = json.loads(ok("info", map_file, "--deep", "--store", store, "--json").stdout)
    assert [level["level"] for level in deep["levels"]] == list(range(shallow["level"], -1, -1))
    assert deep["levels"][-1]["content_size"] == len(data)
    assert deep["chunks"] == len(list(se.DirStore(store)))
    assert "root level" in ok("info", map_file).stdout.decode()
    one_line_error(run("info", map_file, "--deep"), 2)


def test_verify_quick_and_full(stored):
    data, map_file, store_path = stored
    assert "presumably stored" in ok("verify", map_file, "--store", store_path).stdout.decode()
    full = json.loads(ok("verify", map_file, "--store", store_path, "--full", "--json").stdout)
    assert full["ok"] and full["checked"] == len(list(se.DirStore(store_path)))
    root, level0, store = _level0(map_file, store_path)
    # Corrupt a middle chunk: quick mode only looks for presence, full mode opens it.
    middle = level0.chunks[5]
    path = store_path / middle.name[:2] / middle.name
    path.write_bytes(bytes(path.stat().st_size))
    result = run("verify", map_file, "--store", store_path, "--full")
    assert result.returncode == 5
    assert f"corrupt chunk 5 at level 0 (name {middle.name})" in result.stderr.decode()
    # Delete the first chunk: both modes name it.
    first = level0.chunks[0]
    (store_path / first.name[:2] / first.name).unlink()
    for mode in ([], ["--full"]):
        result = run("verify", map_file, "--store", store_path, *mode, "--json")
        assert result.returncode == (5 if mode else 4)
        problems = json.loads(result.stdout)["problems"]
        assert {"kind": "missing", "level": 0, "index": 0, "name": first.name} in [
            {k: p[k] for k in ("kind", "level", "index", "name")} for p in problems
        ]


def test_decrypt_names_a_missing_or_corrupt_chunk(stored):
    data, map_file, store_path = stored
    root, level0, store = _level0(map_file, store_path)
    victim = level0.chunks[3]
    path = store_path / victim.name[:2] / victim.name
    content = path.read_bytes()
    path.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    line = one_line_error(run("decrypt", map_file, "--store", store_path, "-o", store_path.parent / "o"), 5)
    assert f"chunk 3 at level 0 (name {victim.name[:12]}" in line
    assert line.startswith(f"self-encryption: error: {map_file}: corrupt") and "restore" in line
    assert not (store_path.parent / "o").exists()
    path.unlink()
    line = one_line_error(run("cat", map_file, "--store", store_path), 4)
    assert f"{map_file}: missing chunk 3 at level 0" in line and "check --store" in line


def test_gc_keeps_what_kept_maps_reach(workdir):
    store = workdir / "store"
    shared = os.urandom(60_000)
    keep_data, drop_data = shared + os.urandom(20_000), os.urandom(20_000) + shared
    (workdir / "keep").write_bytes(keep_data)
    (workdir / "drop").write_bytes(drop_data)
    ok("encrypt", workdir / "keep", workdir / "drop", "--store", store, "--chunk-sizes", SMALL)
    before = set(se.DirStore(store))
    # Just stored: younger than the default grace period of an hour, so nothing goes.
    young = json.loads(ok("gc", "--store", store, "--keep", workdir / "keep.sedm", "--json").stdout)
    assert young["unreferenced"] == 0 and young["young"] > 0 and young["grace"] == 3600
    dry = json.loads(
        ok("gc", "--store", store, "--keep", workdir / "keep.sedm", "--json", "--grace", "0").stdout
    )
    assert dry["unreferenced"] == young["young"] and not dry["deleted"]
    assert set(se.DirStore(store)) == before
    assert dry["bytes"] == sum((store / n[:2] / n).stat().st_size for n in dry["names"])
    done = ok("gc", "--store", store, "--keep", workdir / "keep.sedm", "--yes", "--grace", "0s")
    assert f"{dry['unreferenced']} unreferenced" in done.stdout.decode()
    assert set(se.DirStore(store)) == before - set(dry["names"])
    ok("decrypt", workdir / "keep.sedm", "--store", store, "-o", workdir / "keep.out")
    assert (workdir / "keep.out").read_bytes() == keep_data
    one_line_error(run("decrypt", workdir / "drop.sedm", "--store", store, "-o", workdir / "x"), 4)
    # Keeping both maps keeps everything that is left.
    assert (
        json.loads(
            ok("gc", "--store", store, "--keep", workdir / "keep.sedm", "--json", "--grace", "0").stdout
        )["unreferenced"]
        == 0
    )


def test_gc_refuses_when_a_kept_map_cannot_be_walked(stored):
    data, map_file, store_path = stored
    root = se.DataMap.from_text(map_file.read_text())
    top = root.chunks[0].name
    (store_path / top[:2] / top).unlink()
    before = set(se.DirStore(store_path))
    one_line_error(run("gc", "--store", store_path, "--keep", map_file, "--yes"), 4)
    assert set(se.DirStore(store_path)) == before


def test_bad_maps_missing_files_and_unwritable_outputs(workdir, stored):
    data, map_file, store = stored
    (workdir / "garbage.sedm").write_bytes(b"not a map at all")
    one_line_error(run("decrypt", workdir / "garbage.sedm", "--store", store, "-o", workdir / "o"), 3)
    damaged = map_file.read_text().strip()
    damaged = damaged[:20] + ("A" if damaged[20] != "A" else "B") + damaged[21:]
    (workdir / "damaged.sedm").write_text(damaged)
    one_line_error(run("info", workdir / "damaged.sedm"), 3)
    one_line_error(run("info", workdir / "no-such.sedm"), 6)
    one_line_error(run("encrypt", workdir / "no-such-file", "--store", store), 6)
    one_line_error(run("decrypt", map_file, "--store", store, "-o", workdir / "no" / "dir" / "out"), 6)
    one_line_error(run("decrypt", map_file, "--store", workdir / "no-store", "-o", workdir / "o"), 6)
    one_line_error(run("encrypt", workdir / "f", "--store", store, "-o", workdir / "no" / "map"), 6)
    one_line_error(run("encrypt", workdir / "f", "--store", "s3x://bucket"), 2)
    assert not (workdir / "o").exists()


def test_usage_errors_and_help():
    assert run().returncode == 2
    assert run("encrypt", "f").returncode == 2  # --store missing
    assert run("encrypt", "a", "b", "--store", "s", "-o", "m").returncode == 2
    assert run("encrypt", "a", "--store", "s", "--chunk-sizes", "1,2").returncode == 2
    assert run("encrypt", "a", "--store", "s", "--level", "3", "--no-compress").returncode == 2
    for command in ("encrypt", "decrypt", "cat", "info", "verify", "gc"):
        helped = ok(command, "--help").stdout.decode()
        assert "exit codes" in helped and "usage: self-encryption " + command in helped
    top = ok("--help").stdout.decode()
    assert all(c in top for c in ("encrypt", "decrypt", "cat", "info", "verify", "gc"))
    module = subprocess.run(
        [sys.executable, "-m", "self_encryption", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and se.__version__ in module.stdout


def test_bad_chunk_sizes_are_a_usage_error(workdir):
    (workdir / "f").write_bytes(b"x")
    line = one_line_error(
        run("encrypt", workdir / "f", "--store", workdir / "s", "--chunk-sizes", "64,300,1024"), 2
    )
    assert "power of two" in line


def test_memory_store_for_tests(workdir):
    (workdir / "f").write_bytes(b"hello" * 100)
    report = json.loads(
        ok("encrypt", workdir / "f", "--store", "memory:", "-o", workdir / "m", "--json").stdout
    )
    assert report["files"][0]["size"] == 500


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head")
def test_closed_pipe_is_not_an_error(stored):
    data, map_file, store = stored
    pipeline = subprocess.run(
        f"{' '.join(map(str, COMMAND))} cat {map_file} --store {store} | head -c 10",
        shell=True,
        capture_output=True,
        timeout=60,
    )
    assert pipeline.stdout == data[:10] and b"Traceback" not in pipeline.stderr


def test_option_errors_name_the_flag_and_sizes_read_plainly(workdir):
    (workdir / "one").write_bytes(b"x")
    bad_sizes = run("encrypt", workdir / "one", "--store", workdir / "s", "--chunk-sizes", "100,300,400")
    assert bad_sizes.returncode == 2
    message = bad_sizes.stderr.decode()
    assert "--chunk-sizes" in message and "chunk_sizes" not in message
    bad_level = run("encrypt", workdir / "one", "--store", workdir / "s", "--level", "0")
    assert bad_level.returncode == 2 and "--level" in bad_level.stderr.decode()
    assert "from 1 to 22" in bad_level.stderr.decode()
    done = ok("encrypt", workdir / "one", "--store", workdir / "s", "-o", workdir / "one.sedm")
    summary = done.stdout.decode()
    assert "1 byte in 1 chunk" in summary and "1 bytes" not in summary
    # Never a rate rounded to zero; "80 B/s" (a loaded machine) is a rate, not "0 B/s".
    assert not re.search(r"(?<![\d.])0 B/s", summary), summary


def test_json_maps_work_wherever_a_map_does(workdir):
    data = os.urandom(5000)
    (workdir / "f").write_bytes(data)
    store = workdir / "store"
    ok("encrypt", workdir / "f", "--store", store, "--chunk-sizes", SMALL)
    as_json = ok("info", workdir / "f.sedm", "--print-map", "json").stdout.decode()
    root = se.DataMap.from_json(as_json)
    assert root == se.DataMap.load(workdir / "f.sedm")
    (workdir / "f.json").write_text(as_json)
    ok("decrypt", workdir / "f.json", "--store", store, "-o", workdir / "out")
    assert (workdir / "out").read_bytes() == data
    assert run("verify", as_json, "--store", store).returncode == 0
    assert ok("decrypt", "-", "--store", store, "-o", "-", input=as_json.encode()).stdout == data
    assert ok("info", workdir / "f.json", "--print-map", "text").stdout.decode().strip() == root.to_text()


UPSTREAM_VECTORS = pathlib.Path(__file__).parent / "data" / "upstream"


@pytest.mark.parametrize("name", sorted(p.name for p in UPSTREAM_VECTORS.glob("v-*")))
def test_import_upstream_migrates_each_vector(workdir, name):
    pytest.importorskip("blake3")
    import hashlib
    import shutil

    vector = json.loads((UPSTREAM_VECTORS / name / "vector.json").read_text())
    folder = workdir / name
    shutil.copytree(UPSTREAM_VECTORS / name, folder)
    store = workdir / "store"
    document = json.loads(
        ok(
            "import-upstream", folder / "map.json", "--from", folder / "chunks", "--store", store, "--json"
        ).stdout
    )
    assert document["command"] == "import-upstream" and len(document["maps"]) == 1
    report = document["maps"][0]
    assert report["size"] == vector["size"] and report["data_map"] == str(folder / "map.sedm")
    restored = ok("decrypt", folder / "map.sedm", "--store", store, "-o", "-").stdout
    assert hashlib.sha256(restored).hexdigest() == vector["sha256"]
    assert run("verify", folder / "map.sedm", "--store", store, "--full").returncode == 0


def test_import_upstream_refuses_incomplete_sources(workdir):
    pytest.importorskip("blake3")
    import shutil

    folder = workdir / "v"
    shutil.copytree(UPSTREAM_VECTORS / "v-multi", folder)
    victim = sorted((folder / "chunks").iterdir())[1]
    victim.unlink()
    result = run(
        "import-upstream", folder / "map.json", "--from", folder / "chunks", "--store", workdir / "store"
    )
    assert result.returncode == se.ChunkNotFoundError.exit_code
    assert victim.name[:12] in result.stderr.decode()
    assert not (folder / "map.sedm").exists()
    (folder / "bad.json").write_text('{"chunk_identifiers": 3}')
    bad = run("import-upstream", folder / "bad.json", "--from", folder / "chunks", "--store", workdir / "s")
    assert bad.returncode == se.DataMapError.exit_code and "bad upstream data map" in bad.stderr.decode()


def _upstream_copies(workdir, *names):
    pytest.importorskip("blake3")
    import shutil

    chunks = workdir / "old-chunks"
    chunks.mkdir()
    maps = []
    for name in names:
        for chunk in (UPSTREAM_VECTORS / name / "chunks").iterdir():
            shutil.copy(chunk, chunks / chunk.name)
        target = workdir / "old-maps" / f"{name}.json"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(UPSTREAM_VECTORS / name / "map.json", target)
        maps.append(target)
    return maps, chunks


def test_import_upstream_takes_many_maps_in_one_call(workdir):
    import hashlib

    names = ("v-1KiB", "v-multi", "v-3max-plus-1")
    maps, chunks = _upstream_copies(workdir, *names)
    store = workdir / "store"
    document = json.loads(ok("import-upstream", *maps, "--from", chunks, "--store", store, "--json").stdout)
    assert document["command"] == "import-upstream" and document["store"] == str(store)
    assert [entry["upstream_map"] for entry in document["maps"]] == [str(m) for m in maps]
    for name, upstream_map, entry in zip(names, maps, document["maps"]):
        new_map = upstream_map.with_suffix(".sedm")  # MAP.json -> MAP.sedm beside it
        assert entry["data_map"] == str(new_map)
        restored = ok("decrypt", new_map, "--store", store, "-o", "-").stdout
        vector = json.loads((UPSTREAM_VECTORS / name / "vector.json").read_text())
        assert hashlib.sha256(restored).hexdigest() == vector["sha256"]
    # into another folder, with a line per map
    out = workdir / "new-maps"
    out.mkdir()
    result = ok("import-upstream", *maps, "--from", chunks, "--store", store, "--output-dir", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.sedm" for name in names)
    assert len(result.stdout.decode().splitlines()) == len(names)


def test_import_upstream_checks_every_map_and_destination_first(workdir):
    maps, chunks = _upstream_copies(workdir, "v-1KiB", "v-multi")
    store = workdir / "store"
    one_line_error(run("import-upstream", *maps, "--from", chunks, "--store", store, "-o", workdir / "x"), 2)
    # --json is one document on stdout: the map may not go there too
    refused = run("import-upstream", maps[0], "--from", chunks, "--store", store, "-o", "-", "--json")
    one_line_error(refused, 2)
    assert json.loads(refused.stdout)["exit_code"] == 2  # the refusal is that one document
    twin = workdir / "elsewhere" / maps[0].name
    twin.parent.mkdir()
    twin.write_bytes(maps[0].read_bytes())
    out = workdir / "out"
    out.mkdir()
    line = one_line_error(
        run("import-upstream", maps[0], twin, "--from", chunks, "--store", store, "--output-dir", out), 2
    )
    assert "would both write" in line
    (workdir / "old-maps" / "v-multi.sedm").write_text("taken")
    line = one_line_error(run("import-upstream", *maps, "--from", chunks, "--store", store), 2)
    assert "already exists" in line
    bad = workdir / "old-maps" / "bad.json"
    bad.write_text('{"chunk_identifiers": 3}')
    one_line_error(run("import-upstream", maps[0], bad, "--from", chunks, "--store", store, "--force"), 3)
    # nothing was done for any of them
    assert not store.exists() and not maps[0].with_suffix(".sedm").exists()
    one_line_error(
        run("import-upstream", *maps, "--from", chunks, "--store", store, "--output-dir", workdir / "no"), 2
    )


def test_import_upstream_json_reports_the_maps_done_and_the_failure(workdir):
    maps, chunks = _upstream_copies(workdir, "v-1KiB", "v-multi")
    victim = sorted(json.loads((UPSTREAM_VECTORS / "v-multi" / "vector.json").read_text())["chunk_files"])[0]
    if (UPSTREAM_VECTORS / "v-1KiB" / "chunks" / victim).exists():  # pragma: no cover - shared chunk
        pytest.skip("the vectors share a chunk")
    (chunks / victim).unlink()
    store = workdir / "store"
    result = run("import-upstream", *maps, "--from", chunks, "--store", store, "--json")
    line = one_line_error(result, se.ChunkNotFoundError.exit_code)
    assert "check --from" in line and victim[:12] in line
    document = json.loads(result.stdout)  # one document, errors included
    assert [entry["upstream_map"] for entry in document["maps"]] == [str(maps[0])]
    assert document["exit_code"] == se.ChunkNotFoundError.exit_code and victim[:12] in document["error"]
    assert maps[0].with_suffix(".sedm").exists() and not maps[1].with_suffix(".sedm").exists()


# -- the map is never lost nor silently replaced -------------------------------------------


def _chunk_files(store: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in store.rglob("*") if p.is_file() and p.name != ".lock"] if store.exists() else []


def test_encrypt_refuses_to_replace_a_map_without_force(workdir):
    (workdir / "a").write_bytes(os.urandom(3000))
    (workdir / "b").write_bytes(os.urandom(3000))
    (workdir / "b.sedm").write_text("precious\n")
    store = workdir / "store"
    line = one_line_error(run("encrypt", workdir / "a", workdir / "b", "--store", store), 2)
    assert str(workdir / "b.sedm") in line and "--force" in line
    # Refused before any work: a's map was not written, nothing was stored.
    assert (workdir / "b.sedm").read_text() == "precious\n" and not (workdir / "a.sedm").exists()
    assert _chunk_files(store) == []
    one_line_error(run("encrypt", workdir / "a", "--store", store, "-o", workdir / "b.sedm"), 2)
    one_line_error(run("encrypt", workdir / "a", "--store", store, "-o", workdir / "a"), 2)
    ok("encrypt", workdir / "a", workdir / "b", "--store", store, "--force")
    assert (workdir / "b.sedm").read_text().startswith("se1:")
    assert sorted(p.name for p in workdir.iterdir()) == ["a", "a.sedm", "b", "b.sedm", "store"]


def test_an_unwritable_map_destination_fails_before_anything_is_stored(workdir):
    (workdir / "f").write_bytes(os.urandom(50_000))
    store = workdir / "store"
    line = one_line_error(
        run("encrypt", workdir / "f", "--store", store, "-o", workdir / "missing" / "f.sedm"), 6
    )
    assert "nothing was stored" in line and str(workdir / "missing" / "f.sedm") in line
    assert _chunk_files(store) == []
    one_line_error(run("encrypt", workdir / "f", "--store", store, "-o", workdir), 2)  # a folder
    assert _chunk_files(store) == []


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 64 KiB tmpfs filled to the last byte (needs root and mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if tried.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {tried.stderr.strip()}")
    try:
        with open(mount / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 512)
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_for_the_map_fails_before_anything_is_stored(workdir, full_tmpfs):
    (workdir / "f").write_bytes(os.urandom(50_000))
    store = workdir / "store"
    line = one_line_error(run("encrypt", workdir / "f", "--store", store, "-o", full_tmpfs / "f.sedm"), 6)
    assert "No space left" in line and "nothing was stored" in line
    assert _chunk_files(store) == [] and sorted(os.listdir(full_tmpfs)) == ["filler"]
    os.truncate(full_tmpfs / "filler", 0)  # room again: the same command works
    ok("encrypt", workdir / "f", "--store", store, "-o", full_tmpfs / "f.sedm", "--chunk-sizes", SMALL)
    ok("verify", full_tmpfs / "f.sedm", "--store", store, "--full")


def test_a_map_that_cannot_be_saved_goes_to_stderr(workdir):
    data = os.urandom(100_000)
    store = workdir / "store"
    target = workdir / "maps" / "f.sedm"
    target.parent.mkdir()
    process = subprocess.Popen(
        [*COMMAND, "encrypt", "-", "--store", str(store), "-o", str(target), "--chunk-sizes", SMALL],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(data[:1000])
    process.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(target.parent.glob(".f.sedm-*.partial")):  # the place is claimed first
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    # The map's folder goes away while the work runs: saving will fail.
    for temp in target.parent.iterdir():
        temp.unlink()
    target.parent.rmdir()
    out, err = process.communicate(data[1000:], timeout=120)
    assert process.returncode == 6, err.decode()
    lines = own_lines(err)
    assert len(lines) == 2 and lines[0].startswith("self-encryption: warning: cannot write data map")
    assert str(target) in lines[0] and "keep it" in lines[0]
    root = se.DataMap.from_text(lines[1])
    assert se.decrypt(root, se.DirStore(store)) == data


def test_maps_stay_private_and_chunks_follow_the_umask(workdir):
    (workdir / "f").write_bytes(os.urandom(20_000))
    store = workdir / "store"
    result = subprocess.run(
        [*COMMAND, "encrypt", str(workdir / "f"), "--store", str(store), "--chunk-sizes", SMALL],
        capture_output=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (workdir / "f.sedm").stat().st_mode & 0o777 == 0o600
    assert {p.stat().st_mode & 0o777 for p in _chunk_files(store)} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in store.rglob("*") if p.is_dir()} == {0o755}


# -- repair ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_following_the_advice_for_a_corrupt_chunk_restores_the_file(stored, damage):
    data, map_file, store_path = stored
    root, level0, store = _level0(map_file, store_path)
    victim = level0.chunks[4]
    path = store_path / victim.name[:2] / victim.name
    content = path.read_bytes()
    path.write_bytes(
        {"flip": content[:-1] + bytes([content[-1] ^ 1]), "truncate": content[:5], "empty": b""}[damage]
    )
    out = store_path.parent / "out"
    line = one_line_error(run("decrypt", map_file, "--store", store_path, "-o", out), 5)
    assert "verify --full --repair" in line and "encrypt the file again with the same options" in line
    repaired = run("verify", map_file, "--store", store_path, "--full", "--repair")
    assert repaired.returncode == 5
    assert (
        f"{victim.name} set aside: moved to {store_path / 'quarantine' / victim.name}"
        in repaired.stderr.decode()
    )
    assert "encrypt the source file into this store again" in repaired.stderr.decode()
    assert not path.exists() and (store_path / "quarantine" / victim.name).exists()
    again = ok(
        "encrypt", store_path.parent / "f", "--store", store_path, "--chunk-sizes", SMALL, "--force", "--json"
    )
    assert json.loads(again.stdout)["files"][0]["chunks_written"] == 1
    ok("verify", map_file, "--store", store_path, "--full")
    ok("decrypt", map_file, "--store", store_path, "-o", out)
    assert out.read_bytes() == data


def test_check_existing_replaces_what_verify_would_find(stored):
    data, map_file, store_path = stored
    root, level0, store = _level0(map_file, store_path)
    victim = level0.chunks[2]
    path = store_path / victim.name[:2] / victim.name
    path.write_bytes(path.read_bytes()[:-3])
    plain = json.loads(
        ok(
            "encrypt",
            store_path.parent / "f",
            "--store",
            store_path,
            "--chunk-sizes",
            SMALL,
            "-o",
            "-",
            "--json",
        ).stdout.splitlines()[-1]
    )
    assert plain["files"][0]["chunks_written"] == 0  # present is trusted by default
    checked = ok(
        "encrypt",
        store_path.parent / "f",
        "--store",
        store_path,
        "--chunk-sizes",
        SMALL,
        "--force",
        "--check-existing",
    )
    assert "1 damaged replaced" in checked.stdout.decode()
    ok("verify", map_file, "--store", store_path, "--full")
    one_line_error(run("verify", map_file, "--store", store_path, "--repair"), 2)  # needs --full


# -- gc ----------------------------------------------------------------------------------


def test_gc_keeps_every_map_in_a_folder_and_waits_for_writers(workdir):
    store, maps = workdir / "store", workdir / "maps"
    (maps / "sub").mkdir(parents=True)
    for name, where in (("a", maps), ("b", maps / "sub"), ("c", workdir)):
        (workdir / name).write_bytes(os.urandom(20_000))
        ok("encrypt", workdir / name, "--store", store, "--chunk-sizes", SMALL, "-o", where / f"{name}.sedm")
    (maps / "notes.txt").write_text("not a map")
    c_only = se.chunk_names(se.DataMap.load(workdir / "c.sedm"), se.DirStore(store)) - set().union(
        *(se.chunk_names(se.DataMap.load(m), se.DirStore(store)) for m in maps.rglob("*.sedm"))
    )
    report = json.loads(ok("gc", "--store", store, "--keep", maps, "--grace", "0", "--yes", "--json").stdout)
    assert set(report["names"]) == c_only
    ok("verify", maps / "sub" / "b.sedm", "--store", store, "--full")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        line = one_line_error(run("gc", "--store", store, "--keep", maps, "--lock-wait", "0.5"), 6)
        assert "busy" in line and str(store / ".lock") in line and "--lock-wait" in line
    finally:
        holder.communicate(b"", timeout=30)
    for bad in ("1w", "-1", "soon"):
        assert run("gc", "--store", store, "--keep", maps, "--grace", bad).returncode == 2
    (workdir / "no-maps").mkdir()
    before = set(se.DirStore(store))
    line = one_line_error(
        run("gc", "--store", store, "--keep", workdir / "no-maps", "--yes", "--grace", "0"), 2
    )
    assert "no data map" in line and set(se.DirStore(store)) == before


_HOLD_LOCK = """
import sys, self_encryption as se
with se.DirStore(sys.argv[1]).writing():
    print("held", flush=True)
    sys.stdin.read()
"""


def test_gc_skips_a_kept_map_deleted_while_it_runs(workdir):
    # gc lists --keep FOLDER, then reads each map: one deleted in between is no longer kept.
    from self_encryption.cli import gc_cmd

    maps = workdir / "maps"
    maps.mkdir()
    for name in ("a", "b"):
        (workdir / name).write_bytes(os.urandom(3000))
        ok(
            "encrypt",
            workdir / name,
            "--store",
            workdir / "s",
            "-o",
            maps / f"{name}.sedm",
            "--chunk-sizes",
            SMALL,
        )
    current: list[str] = []
    kept = gc_cmd.kept_maps([str(maps)], current)
    first = next(kept)
    (maps / "b.sedm").unlink()
    assert list(kept) == [] and first == se.DataMap.load(maps / "a.sedm")


def test_store_concurrency_changes_how_many_requests_run_not_the_result(tmp_path):
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 << 20) + bytes(2 << 20))
    maps = []
    for n in (1, 5):
        store = tmp_path / f"store{n}"
        ok("encrypt", source, "--store", store, "-o", tmp_path / f"{n}.sedm", "--store-concurrency", n)
        maps.append((tmp_path / f"{n}.sedm").read_text())
        ok(
            "decrypt",
            tmp_path / f"{n}.sedm",
            "--store",
            store,
            "-o",
            tmp_path / f"out{n}",
            "--store-concurrency",
            3,
        )
        assert (tmp_path / f"out{n}").read_bytes() == source.read_bytes()
        piece = ok("cat", tmp_path / f"{n}.sedm", "--store", store, "--store-concurrency", 2).stdout
        assert piece == source.read_bytes()
        assert sorted(os.listdir(store)) == sorted(os.listdir(tmp_path / "store1"))
    assert maps[0] == maps[1]
    refused = run("encrypt", source, "--store", tmp_path / "s", "--store-concurrency", "0")
    assert refused.returncode == 2 and b"--store-concurrency: must be at least 1" in refused.stderr


def _other_store_file(workdir, name: str, size: int) -> tuple[pathlib.Path, pathlib.Path]:
    """A file encrypted into a store of its own: (map file, store)."""
    (workdir / name).write_bytes(os.urandom(size))
    store = workdir / f"{name}-store"
    ok("encrypt", workdir / name, "--store", store, "--chunk-sizes", SMALL)
    return workdir / f"{name}.sedm", store


def test_gc_refuses_a_map_of_another_store(workdir, stored):
    data, map_file, store = stored
    foreign, _ = _other_store_file(workdir, "foreign", 250)  # at most 3 chunks: every chunk name in the root
    before = set(se.DirStore(store))
    secret = foreign.read_text().strip()
    for extra in ([], ["--allow-missing"]):
        result = run("gc", "--store", store, "--keep", foreign, "--yes", "--grace", "0", *extra)
        line = one_line_error(result, 3)
        assert "another store" in line and "refusing" in line and secret not in result.stderr.decode()
        assert set(se.DirStore(store)) == before
    # Beside a map of this store: named, with how many of its chunks are missing.
    needed = len(se.DataMap.load(foreign).chunks)
    line = one_line_error(
        run("gc", "--store", store, "--keep", map_file, foreign, "--yes", "--grace", "0"), 3
    )
    assert f"{foreign}: {needed} of its {needed} chunks are not in the store" in line
    assert "--allow-missing" in line and set(se.DirStore(store)) == before


def test_gc_with_missing_chunks_needs_allow_missing(workdir, stored):
    data, map_file, store = stored
    root, level0, _ = _level0(map_file, store)
    lost = level0.chunks[3].name
    (store / lost[:2] / lost).unlink()
    (workdir / "g").write_bytes(os.urandom(20_000))
    ok("encrypt", workdir / "g", "--store", store, "--chunk-sizes", SMALL)
    before = set(se.DirStore(store))
    line = one_line_error(run("gc", "--store", store, "--keep", map_file, "--yes", "--grace", "0"), 3)
    assert f"{map_file}: 1 of its" in line and set(se.DirStore(store)) == before
    report = json.loads(
        ok(
            "gc", "--store", store, "--keep", map_file, "--yes", "--grace", "0", "--allow-missing", "--json"
        ).stdout
    )
    assert report["names"] and set(se.DirStore(store)) == before - set(report["names"])
    assert set(se.DirStore(store)) == se.chunk_names(root, se.DirStore(store)) - {lost}


def test_gc_and_verify_never_reach_through_linked_folders(workdir, stored):
    data, map_file, store = stored
    _, other = _other_store_file(workdir, "other", 60_000)
    (workdir / "g").write_bytes(os.urandom(20_000))
    ok("encrypt", workdir / "g", "--store", store, "--chunk-sizes", SMALL)
    ours = {name[:2] for name in se.DirStore(store)}
    prefix = next(p for p in sorted({n[:2] for n in se.DirStore(other)}) if p not in ours)
    theirs = sorted(os.listdir(other / prefix))
    os.symlink(other / prefix, store / prefix)
    done = ok("gc", "--store", store, "--keep", map_file, "--yes", "--grace", "0")
    assert sorted(os.listdir(other / prefix)) == theirs
    assert f"skipped {store / prefix}: a link" in done.stdout.decode()
    report = json.loads(ok("gc", "--store", store, "--keep", map_file, "--grace", "0", "--json").stdout)
    assert report["skipped"] == [str(store / prefix)] and report["unreferenced"] == 0
    ok("verify", map_file, "--store", store, "--full")
    ok("info", map_file, "--store", store, "--deep")
    # A quarantine that leads out of the store: the repair is refused and the damaged chunk stays.
    _, level0, _ = _level0(map_file, store)
    victim = level0.chunks[2].name
    path = store / victim[:2] / victim
    damaged = path.read_bytes()[:-1]
    path.write_bytes(damaged)
    (workdir / "outside").mkdir()
    os.symlink(workdir / "outside", store / "quarantine")
    line = one_line_error(run("verify", map_file, "--store", store, "--full", "--repair"), 6)
    assert str(store / "quarantine") in line
    assert path.read_bytes() == damaged and os.listdir(workdir / "outside") == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root, to run as nobody")
def test_verify_repair_keeps_a_chunk_it_cannot_read():
    # A real read error on a real file: a chunk file of mode 000, read by an unprivileged user
    # (root reads through any mode). It fails with EACCES until the mode is put back: an I/O
    # error that passes, not damage. (pytest's own folders are closed to other users.)
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        _verify_as_nobody(pathlib.Path(folder) / "shared")


def _verify_as_nobody(top: pathlib.Path) -> None:
    top.mkdir()
    data = os.urandom(40_000)
    (top / "f").write_bytes(data)
    ok("encrypt", top / "f", "--store", top / "store", "--chunk-sizes", SMALL)
    for folder, _, files in os.walk(top):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.chown(name, 65534, 65534)
    _, level0, _ = _level0(top / "f.sedm", top / "store")
    victim = level0.chunks[1].name
    path = top / "store" / victim[:2] / victim
    os.chmod(path, 0)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *COMMAND]
    argv = [*as_nobody, "verify", top / "f.sedm", "--store", top / "store", "--full", "--json"]
    for extra in ([], ["--repair"]):
        result = subprocess.run([*map(str, argv), *extra], capture_output=True, timeout=120)
        assert result.returncode == 6, result.stderr.decode()
        report = json.loads(result.stdout)
        assert report["unreadable"] == [victim] and report["quarantined"] == []
        assert [p["kind"] for p in report["problems"]] == ["unreadable"]
        assert path.exists() and not (top / "store" / "quarantine").exists()
    plain = subprocess.run([*map(str, argv[:-1])], capture_output=True, timeout=120)
    assert plain.returncode == 6 and "1 chunk could not be read" in plain.stdout.decode()
    os.chmod(path, 0o644)
    assert subprocess.run([*map(str, argv)], capture_output=True, timeout=120).returncode == 0
