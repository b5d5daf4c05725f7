"""Hostile maps, stores and paths: our error, bounded memory, no hang, nothing clobbered.

Each test stands for a finding of the adversarial review; the memory and hang
cases run in a child process, measured from outside (peak RSS, a deadline).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import socketserver
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import zstandard

import self_encryption as se
from self_encryption import _backend, _chunking, _options
from self_encryption.cli import maps, options

from helpers import SMALL_SIZES, level0_of, levels_of

#: Peak memory a rejection may take above the process's baseline (the issue's bound).
MEMORY_BOUND = 64 << 20
SEED = hashlib.sha256(b"hostile").digest()


def _sealed(kind: int, body: bytes, plain_size: int, seeds=(SEED,)):
    """A one-record level-0 map and its chunk, with any payload we like."""
    backend = _backend.active
    content, name = backend.seal(seeds[0], seeds[0], seeds[0], kind, body)
    record = se.ChunkInfo(plain_size, len(content), seeds[0], name.hex())
    return se.DataMap(0, plain_size, (record,)), {name.hex(): bytes(content)}


def _in_child(code: str, store_dir, data_map: se.DataMap | None = None, timeout: float = 60) -> dict:
    """Run code in a fresh Python: it may use `store`, `root` and `se`; returns its report.

    The report says which exception escaped (if any) and the peak RSS above
    the baseline taken right before the code ran.
    """
    script = (
        textwrap.dedent("""
        import json, sys
        import self_encryption as se
        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        store = se.DirStore(sys.argv[1], create=False)
        root = se.DataMap.from_text(sys.argv[2]) if sys.argv[2] else None
        base = hwm()
        error = None
        try:
    """)
        + textwrap.indent(textwrap.dedent(code), "            ")
        + textwrap.dedent("""
        except BaseException as exc:
            error = type(exc).__name__ + ("" if isinstance(exc, se.SelfEncryptionError) else " (foreign)")
        print(json.dumps({"error": error, "peak": hwm() - base}))
    """)
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(store_dir), data_map.to_text() if data_map else ""],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _put_all(folder, chunks: dict) -> se.DirStore:
    store = se.DirStore(folder)
    for name, content in chunks.items():
        store.put(name, content)
    return store


# -- memory taken on a map's word --------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from /proc")
@pytest.mark.parametrize("case", ["claimed file size", "claimed stored size", "unsized zstd frame"])
@pytest.mark.parametrize("read", ["open().read()", "decrypt_file", "decrypt", "verify full"])
def test_memory_follows_verified_bytes_not_claims(tmp_path, case, read):
    if case == "claimed file size":  # one record claiming 4 GiB, nothing in the store
        record = se.ChunkInfo((1 << 32) - 1, (1 << 32) - 1, SEED, "ab" * 32)
        data_map, chunks = se.DataMap(0, (1 << 32) - 1, (record,)), {}
    elif case == "claimed stored size":  # a real small chunk, a record saying 4 GiB
        small, chunks = _sealed(0x00, b"x" * 100, 100)
        record = small.chunks[0]
        fake = se.ChunkInfo((1 << 32) - 2, (1 << 32) - 1, record.key_seed, record.name)
        data_map = se.DataMap(0, (1 << 32) - 2, (fake,))
    else:  # a zstd frame without a content size, a record claiming 4 GiB of plaintext
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(1 << 20))
        data_map, chunks = _sealed(0x01, frame, (1 << 32) - 1)
    _put_all(tmp_path / "store", chunks)
    code = {
        "open().read()": "se.open(root, store).read()",
        "decrypt_file": f"se.decrypt_file(root, store, {str(tmp_path / 'out')!r})",
        "decrypt": "se.decrypt(root, store)",
        "verify full": "assert not se.verify(root, store, full=True).ok; raise se.ChunkIntegrityError('reported')",
    }[read]
    report = _in_child(code, tmp_path / "store", data_map)
    assert report["error"] in ("ChunkNotFoundError", "ChunkIntegrityError"), report
    assert report["peak"] < MEMORY_BOUND, report
    assert not (tmp_path / "out").exists()


def test_level_1_root_cannot_claim_more_content_than_its_file_needs():
    # The review's case: a level-1 root of a 5-byte file holding a 1 GiB "map".
    content = 32 + 72 * ((1 << 30) // 72)  # a well-formed size, about 1 GiB
    quarter = (content - 32) // 4
    records = tuple(
        se.ChunkInfo(size, 100, SEED, "cd" * 32) for size in (quarter, quarter, quarter, quarter + 32)
    )
    with pytest.raises(se.DataMapError, match="more than the map of a 5-byte file"):
        se.DataMap(1, 5, records)
    raw = bytearray(se.DataMap(1, 10**9, records).to_bytes())
    raw[8:16] = (5).to_bytes(8, "little")  # file_size 5, checksum redone
    raw[-4:] = hashlib.sha256(bytes(raw[:-4])).digest()[:4]
    with pytest.raises(se.DataMapError):
        se.DataMap.from_bytes(bytes(raw))


@pytest.mark.parametrize("file_size", [2**64 - 1, 2**40])
def test_huge_claimed_file_size_at_level_1_is_our_error(file_size):
    record = se.ChunkInfo(32 + 72 * 5, 400, SEED, "ef" * 32)
    root = se.DataMap(1, file_size, (record,))
    with pytest.raises(se.ChunkNotFoundError):
        se.open(root, se.MemoryStore()).read()
    with pytest.raises(se.ChunkNotFoundError):
        se.open(root, se.MemoryStore()).read(10)


def test_cli_reads_no_more_than_a_map_can_be(tmp_path):
    huge = tmp_path / "huge.sedm"
    with open(huge, "wb") as handle:
        handle.truncate(3 << 30)  # sparse: reading it whole would take 3 GiB
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "self_encryption", "info", str(huge)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == se.DataMapError.exit_code
    assert "too large to be a root data map" in result.stderr
    assert time.monotonic() - started < 30


# -- one verdict for one payload ---------------------------------------------------------


def _trailing_payload_chunk():
    data = os.urandom(200) + bytes(4000)
    frame = zstandard.ZstdCompressor().compress(data)
    return data, _sealed(0x01, frame + b"\x00junk", len(data))


def test_bytes_after_the_frame_are_refused_on_every_read_path(tmp_path):
    data, (data_map, chunks) = _trailing_payload_chunk()
    store = _put_all(tmp_path / "store", chunks)
    attempts = {
        "decrypt": lambda: se.decrypt(data_map, store),
        "decrypt_file": lambda: se.decrypt_file(data_map, store, tmp_path / "out"),
        "open().read()": lambda: se.open(data_map, store).read(),
        "SelfEncryptor.read": lambda: se.SelfEncryptor(store, data_map).read(0, 10),
    }
    for label, attempt in attempts.items():
        with pytest.raises(se.ChunkIntegrityError, match="after its zstd frame"):
            attempt()
            pytest.fail(f"{label} accepted bytes after the frame")
    report = se.verify(data_map, store, full=True)
    assert [e.name for e in report.corrupt] == [data_map.chunks[0].name]
    map_file = tmp_path / "m.sedm"
    data_map.save(map_file)
    for command in (["cat"], ["decrypt", "-o", str(tmp_path / "o2")], ["verify", "--full"]):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "self_encryption",
                *command,
                str(map_file),
                "--store",
                str(tmp_path / "store"),
            ],
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == se.ChunkIntegrityError.exit_code, (command, result.stderr)


# -- no hangs ------------------------------------------------------------------------------


@pytest.fixture
def stored_file(tmp_path):
    data = os.urandom(20_000)
    store = se.DirStore(tmp_path / "store")
    root = se.encrypt_to_store(data, store, chunk_sizes=SMALL_SIZES)
    assert root.level >= 1
    map_file = tmp_path / "f.sedm"
    root.save(map_file)
    return data, root, store, map_file


def _chunk_path(store: se.DirStore, name: str) -> str:
    return os.path.join(store.path, name[:2], name)


@pytest.mark.parametrize("where", ["file chunk", "map chunk"])
@pytest.mark.parametrize("replacement", ["fifo", "link to /dev/zero", "link out of the store"])
def test_odd_chunk_files_are_corrupt_not_hangs(stored_file, tmp_path, where, replacement):
    data, root, store, map_file = stored_file
    levels = levels_of(root, store)
    victim = (levels[-1] if where == "file chunk" else levels[-2]).chunks[1].name
    path = _chunk_path(store, victim)
    os.unlink(path)
    if replacement == "fifo":
        os.mkfifo(path)
    elif replacement == "link to /dev/zero":
        os.symlink("/dev/zero", path)
    else:
        outside = tmp_path / "outside"
        outside.write_bytes(b"x" * 100)
        os.symlink(outside, path)
    for command in (["verify"], ["verify", "--full"], ["decrypt", "-o", str(tmp_path / "out")], ["cat"]):
        if command == ["verify"] and where == "file chunk":
            continue  # quick verify asks for presence only: it does not open file chunks
        result = subprocess.run(
            [sys.executable, "-m", "self_encryption", *command, str(map_file), "--store", store.path],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == se.ChunkIntegrityError.exit_code, (command, result.stderr)
        assert victim[:12] in result.stderr


class _HangingS3(http.server.BaseHTTPRequestHandler):
    """Answers that the bucket exists, then never answers an object GET."""

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.server.hung.set()
        time.sleep(600)

    def log_message(self, *args):
        pass


def test_ctrl_c_stops_decrypt_promptly_with_a_worker_stuck_in_the_store(tmp_path):
    pytest.importorskip("boto3")
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HangingS3)
    server.daemon_threads = True
    server.hung = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data_map, _ = _sealed(0x00, b"x" * 100, 100)
    map_file = tmp_path / "m.sedm"
    data_map.save(map_file)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "self_encryption",
                "decrypt",
                str(map_file),
                "--store",
                "s3://bucket",
                "--endpoint-url",
                f"http://127.0.0.1:{server.server_address[1]}",
                "--workers",
                "4",
                "-o",
                str(tmp_path / "out"),
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert server.hung.wait(60), "the decrypt never reached the store"
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = child.communicate(timeout=30)
        assert time.monotonic() - started < 5
        assert child.returncode == 130 and "interrupted" in stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.sedm"]  # no partial output
    finally:
        server.shutdown()


# -- destinations respected -----------------------------------------------------------------


def _decrypt_cli(map_file, store, output, **kwargs):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "self_encryption",
            "decrypt",
            str(map_file),
            "--store",
            store.path,
            "-o",
            str(output),
        ],
        timeout=60,
        **kwargs,
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_device_is_written_to_never_replaced(stored_file, tmp_path):
    _, _, store, map_file = stored_file
    device = tmp_path / "full"
    os.symlink("/dev/full", device)
    result = _decrypt_cli(map_file, store, "/dev/full", capture_output=True, text=True)
    assert result.returncode == se.StoreError.exit_code  # ENOSPC: an I/O error
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    result = _decrypt_cli(map_file, store, "/dev/null", capture_output=True)
    assert result.returncode == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert os.path.islink(device)


def test_a_fifo_is_written_as_a_stream(stored_file, tmp_path):
    data, _, store, map_file = stored_file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
    reader.start()
    assert _decrypt_cli(map_file, store, fifo).returncode == 0
    reader.join(30)
    assert received == [data] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_link_to_standard_output_stays_a_link(stored_file, tmp_path):
    data, _, store, map_file = stored_file
    link = tmp_path / "out-link"
    os.symlink("/proc/self/fd/1", link)
    result = _decrypt_cli(map_file, store, link, capture_output=True)
    assert result.returncode == 0 and result.stdout == data
    assert os.readlink(link) == "/proc/self/fd/1"


def test_a_link_to_a_file_replaces_the_file_not_the_link(stored_file, tmp_path):
    data, _, store, map_file = stored_file
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    os.symlink(real, link)
    assert _decrypt_cli(map_file, store, link).returncode == 0
    assert os.path.islink(link) and real.read_bytes() == data


def test_modes_of_decrypted_files(stored_file, tmp_path):
    data, root, store, _ = stored_file
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"old")
    existing.chmod(0o640)
    se.decrypt_file(root, store, existing)
    assert existing.read_bytes() == data and stat.S_IMODE(existing.stat().st_mode) == 0o640
    old = os.umask(0o027)
    try:
        se.decrypt_file(root, store, tmp_path / "new.bin")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640


def test_a_dangling_link_is_refused(stored_file, tmp_path):
    _, root, store, _ = stored_file
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(se.InvalidArgumentError, match="link to a missing file"):
        se.decrypt_file(root, store, tmp_path / "dangling")


# -- secrets stay put ---------------------------------------------------------------------------


def test_cli_never_prints_a_map_it_was_given(stored_file, tmp_path):
    _, root, store, _ = stored_file
    text = root.to_text()
    store.delete(level0_of(root, store).chunks[0].name)
    runs = [
        ["verify", text, "--store", store.path],
        ["verify", text, "--store", store.path, "--full"],
        ["decrypt", text, "--store", store.path, "-o", str(tmp_path / "o")],
        ["cat", text, "--store", store.path],
        ["info", text],
        ["gc", "--store", store.path, "--keep", text],
        ["gc", "--store", store.path, "--keep", text[:-3] + "AAA"],
        ["verify", text[:-3] + "AAA", "--store", store.path],
    ]
    encoded = text[len("se1:") :]
    for args in runs:
        result = subprocess.run(
            [sys.executable, "-m", "self_encryption", *args], capture_output=True, timeout=60
        )
        output = result.stdout + result.stderr
        for piece in (encoded[i : i + 24] for i in range(0, len(encoded) - 24, 24)):
            assert piece.encode() not in output, (args, output)


def test_progress_label_never_holds_map_text():
    assert maps.map_label("se1:" + "A" * 400) == options.MAP_PLACEHOLDER
    assert maps.map_label("-") == "standard input"
    assert maps.map_label("file.sedm") == "file.sedm"


def test_no_repr_shows_a_secret():
    secret = b"my very secret convergence secret"
    options = _options.make_options(convergence_secret=secret)
    assert secret.decode() not in repr(options) and repr(secret) not in repr(options)
    data_map, _ = se.encrypt(b"x" * 5000, convergence_secret=secret, chunk_sizes=SMALL_SIZES)
    for seed in (c.key_seed for c in data_map.chunks):
        assert seed.hex() not in repr(data_map) and repr(seed) not in repr(data_map)
    kept = [key for key in _chunking._tables]
    assert all(secret not in key[1] for key in kept)
    assert all(hashlib.sha256(secret).digest() != key[1] for key in kept)


# -- the smaller findings --------------------------------------------------------------------------


def test_a_mapping_whose_lookup_raises_other_errors_gives_a_store_error():
    data_map, chunks = se.encrypt(b"y" * 3000, chunk_sizes=SMALL_SIZES)

    class Strange(dict):
        def __getitem__(self, name):
            raise ValueError("bad lookup")

    with pytest.raises(se.StoreError, match="bad lookup"):
        se.decrypt(data_map, Strange({c.name: c.content for c in chunks}))


def test_a_non_contiguous_buffer_from_a_store_is_read():
    data = os.urandom(3000)
    data_map, chunks = se.encrypt(data, chunk_sizes=SMALL_SIZES)

    def strided(name):
        content = next(c.content for c in chunks if c.name == name)
        doubled = bytearray(2 * len(content))
        doubled[::2] = content
        return memoryview(doubled)[::2]

    assert se.decrypt(data_map, se.CallbackStore(strided)) == data


def test_callback_store_names_are_checked():
    store = se.CallbackStore(lambda name: None, names=lambda: ["ab" * 32, "../../etc/passwd"])
    with pytest.raises(se.StoreError, match="not a chunk name"):
        list(store)


def test_callback_store_can_only_read_without_put_and_file_not_found_means_missing():
    def get(name):
        raise FileNotFoundError(name)

    store = se.CallbackStore(get)
    data_map, _ = se.encrypt(b"z" * 3000, chunk_sizes=SMALL_SIZES)
    with pytest.raises(se.ChunkNotFoundError):
        se.decrypt(data_map, store)
    with pytest.raises(se.StoreError, match="no put callback"):
        store.put("ab" * 32, b"x")
