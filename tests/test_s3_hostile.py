"""S3Store against servers that misbehave on purpose: huge answers, and answers trickled a byte at a time.

Each server is a real socket server on 127.0.0.1 that counts what it managed
to send, so the tests measure the bytes the store let in.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time

import pytest

import self_encryption as se

pytest.importorskip("boto3", reason="boto3 is not installed (pip install .[test])")

CHUNK = b"a chunk of 1000 bytes" * 47 + b"..."
NAME = hashlib.sha256(CHUNK).hexdigest()


class RawServer:
    """Answers every request with answer(connection), one thread per connection; counts bytes sent."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.sent = 0
        self.requests = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    piece = connection.recv(65536)
                    if not piece:
                        return
                    request += piece
                head, _, body = request.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    field, _, value = line.partition(b":")
                    if field.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += connection.recv(65536)
                with self.lock:
                    self.requests += 1
                self.answer(self, connection, head.split(b" ")[0].decode())
            except OSError:
                return

    def send(self, connection: socket.socket, data: bytes) -> None:
        connection.sendall(data)
        with self.lock:
            self.sent += len(data)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def raw_server():
    servers: list[RawServer] = []

    def start(answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _store(url: str, **options) -> se.S3Store:
    return se.S3Store(
        "bucket",
        "c",
        endpoint_url=url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
        locks=False,
        **options,
    )


def _huge(declared: bool):
    """A GET answered with 3 GiB (announced, or sent until the client goes away without a length)."""

    def answer(server: RawServer, connection: socket.socket, method: str) -> None:
        length = f"Content-Length: {3 << 30}\r\n" if declared else "Connection: close\r\n"
        server.send(
            connection, f"HTTP/1.1 200 OK\r\n{length}Content-Type: binary/octet-stream\r\n\r\n".encode()
        )
        block = b"\0" * (1 << 20)
        for _ in range(3 << 10):
            server.send(connection, block)

    return answer


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_a_huge_answer_costs_at_most_the_expected_size(raw_server, declared):
    server = raw_server(_huge(declared))
    store = _store(server.url, retry_seconds=0, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(se.ChunkIntegrityError) as caught:
        store.get_at_most(NAME, len(CHUNK) + 1)
    assert caught.value.name == NAME
    if declared:
        assert "larger than the chunk can be" in str(caught.value)
    # A 1000-byte chunk cost what the socket buffers held when the store hung up, not 3 GiB.
    _settle(server)
    assert server.sent < 32 << 20, server.sent
    # get() (no size known) still refuses an answer announced larger than any chunk.
    if declared:
        with pytest.raises(se.ChunkIntegrityError, match="larger than the chunk can be"):
            store.get(NAME)
        _settle(server)
        assert server.sent < 64 << 20, server.sent
    assert time.monotonic() - started < 30


def _settle(server: RawServer) -> None:
    """Wait until the server's sending stopped (the client hung up)."""
    last = -1
    while last != server.sent:
        last = server.sent
        time.sleep(0.2)


def test_reads_through_a_map_ask_for_each_chunks_size(raw_server):
    """decrypt fetches a window with get_many_at_most, each chunk limited to its size in the map."""
    store = se.MemoryStore()
    data = bytes(range(256)) * 200
    root = se.encrypt_to_store(data, store, chunk_sizes=(1024, 4096, 16384))
    seen: dict[str, int] = {}

    class Limited(se.MemoryStore):
        def get_many(self, names):  # pragma: no cover - must not be used when sizes are known
            raise AssertionError("get_many used although the sizes are known")

        def get_many_at_most(self, limits):
            seen.update(limits)
            return {name: store.get(name) for name in limits}

        def get(self, name):
            return store.get(name)

        def has(self, name):
            return store.has(name)

    assert se.decrypt(root, Limited(), workers=2) == data
    sizes = {record.name: record.stored_size for record in root.chunks}
    assert seen and all(seen[name] == sizes[name] + 1 for name in seen if name in sizes)


def _trickle(headers_too: bool):
    """Answers one byte every 0.2 s: of the status line and headers, or of a 1000-byte body."""

    def answer(server: RawServer, connection: socket.socket, method: str) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(CHUNK)}\r\n\r\n".encode()
        payload = head + CHUNK
        start = 0 if headers_too else len(head)
        if start:
            server.send(connection, head)
        for index in range(start, len(payload)):
            server.send(connection, payload[index : index + 1])
            time.sleep(0.2)

    return answer


def _get_on_a_thread(store: se.S3Store, never: str) -> tuple[BaseException, float]:
    """What store.get_at_most(NAME) raised, on a thread of its own, and the seconds it took.

    Waited for 30 s at most (a trickled answer would take 200 s); never is the failure's message.
    """
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            store.get_at_most(NAME, len(CHUNK) + 1)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), never
    (error,) = outcome
    return error, time.monotonic() - started


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_trickling_server_is_cut_off_and_retry_for_bounds_the_whole_operation(raw_server, headers_too):
    server = raw_server(_trickle(headers_too))
    store = _store(server.url, request_timeout=1, retry_seconds=3, max_attempts=2)
    error, took = _get_on_a_thread(store, "the request was never cut off")
    assert isinstance(error, se.StoreError) and "no complete answer within" in str(error), error
    assert took < 12, took
    assert server.requests >= 2  # cut off, and tried again while retry_seconds lasted


def test_request_timeout_is_checked():
    for bad in (0, -1, float("inf"), True, "3"):
        with pytest.raises(se.InvalidArgumentError, match="request_timeout"):
            _store("http://127.0.0.1:9", request_timeout=bad)


def _error_trickled(server: RawServer, connection: socket.socket, method: str) -> None:
    """A GET refused (500) quickly, its 1000-byte error body then trickled a byte every 0.2 s."""
    body = b"<Error><Code>InternalError</Code><Message>" + b"x" * 940 + b"</Message></Error>"
    server.send(
        connection, f"HTTP/1.1 500 Internal Server Error\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    for index in range(len(body)):
        server.send(connection, body[index : index + 1])
        time.sleep(0.2)


def test_a_trickled_error_body_is_cut_off_too(raw_server):
    # The status comes at once; the body of the error (read for its code) trickles. The
    # request's deadline covers that body as it covers a chunk's.
    server = raw_server(_error_trickled)
    store = _store(server.url, request_timeout=1, retry_seconds=3, max_attempts=2)
    error, took = _get_on_a_thread(store, "the error body was read with no deadline")
    assert isinstance(error, se.StoreError), error
    assert took < 12


def _error_reset(server: RawServer, connection: socket.socket, method: str) -> None:
    """A GET refused (500) with a 1000-byte error body, the connection reset after 20 of its bytes."""
    server.send(connection, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1000\r\n\r\n")
    server.send(connection, b"<Error><Code>Internal")
    # A zero linger makes close() send a reset, not an orderly end.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_connection_reset_inside_an_error_body_is_a_store_error(raw_server):
    # botocore reads an error's body outside its own error handling: urllib3's ProtocolError
    # came through as it was (a traceback at the command line).
    server = raw_server(_error_reset)
    store = _store(server.url, request_timeout=5, retry_seconds=1, max_attempts=2)
    error, _ = _get_on_a_thread(store, "a reset connection hung the get")
    assert isinstance(error, se.StoreError), repr(error)
    assert server.requests >= 2  # tried again: a reset is passing


def _error_flood(chunked: bool):
    """Every request refused (500) with an error body of 256 MiB, sent as fast as it is read."""
    block = b"<Error>" + b"x" * (1 << 20)

    def answer(server: RawServer, connection: socket.socket, method: str) -> None:
        length = 256 << 20
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % length
        server.send(connection, b"HTTP/1.1 500 Internal Server Error\r\n" + framing + b"\r\n\r\n")
        if method == "HEAD":
            return
        while length > 0:
            piece = block[:length]
            server.send(connection, b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            length -= len(piece)

    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_error_answer_s_body_is_read_no_further_than_a_bound(raw_server, chunked):
    # botocore reads an error's body whole, into memory: a server could hand it gigabytes.
    server = raw_server(_error_flood(chunked))
    store = _store(server.url, request_timeout=30, retry_seconds=1, max_attempts=2)
    for action in (
        lambda: store.get_at_most(NAME, len(CHUNK) + 1),
        lambda: store.put(NAME, CHUNK),
        lambda: list(store),
    ):
        before = server.sent
        with pytest.raises(se.StoreError):
            action()
        # Each attempt reads at most ERROR_ANSWER_BYTES (1 MiB); what else was sent sat in
        # socket buffers. Read whole, each of them would be 256 MiB.
        assert server.sent - before < 96 << 20, (server.sent - before) >> 20


def _success_flood(server: RawServer, connection: socket.socket, method: str) -> None:
    """Every request answered 200 with a 256 MiB body, sent as fast as it is read."""
    length = 256 << 20
    server.send(connection, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
    if method == "HEAD":
        return
    block = b"<ListBucketResult>" + b"x" * (1 << 20)
    while length > 0:
        server.send(connection, block[:length])
        length -= len(block[:length])


def test_an_answer_read_whole_is_read_no_further_than_a_bound(raw_server):
    # A PUT's answer and a listing's are read whole by botocore, into memory. A chunk GET is
    # streamed to a reader that stops at the chunk's size: it is not bounded here.
    server = raw_server(_success_flood)
    store = _store(server.url, request_timeout=30, retry_seconds=1, max_attempts=2)
    for action in (lambda: store.put(NAME, CHUNK), lambda: list(store)):
        before = server.sent
        with pytest.raises(se.StoreError):
            action()
        # At most 16 MiB an attempt; the rest sat in socket buffers. Read whole: 256 MiB each.
        assert server.sent - before < 160 << 20, (server.sent - before) >> 20


@pytest.mark.parametrize("length", [b"\xb2", b"\xb9\xb2", b"-5", b"1e3", b" "])
def test_a_content_length_that_is_no_number_is_no_traceback(raw_server, length):
    # "\xb2" is "²" to a header read as Latin-1: a digit to str.isdigit(), none to int().
    def answer(server: RawServer, connection: socket.socket, method: str) -> None:
        server.send(
            connection, b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\nConnection: close\r\n\r\n"
        )
        server.send(connection, CHUNK)
        connection.shutdown(socket.SHUT_WR)

    server = raw_server(answer)
    store = _store(server.url, retry_seconds=0, max_attempts=1)
    try:
        assert store.get_at_most(NAME, len(CHUNK) + 1) == CHUNK
    except se.SelfEncryptionError:
        pass  # refused as a store error is fine; a ValueError is not


class _CaughtError(Exception):
    pass


def _sent_by_botocore(client, bucket: str, key: str) -> tuple[str, str, str]:
    """The URL, signing scope (region/service) and algorithm of botocore's own HEAD of key, caught unsent."""

    def catch(request, **_):
        raise _CaughtError(request.url, request.headers["Authorization"])

    client.meta.events.register_first("before-send.s3.HeadObject", catch, unique_id="test-catch")
    try:
        with pytest.raises(_CaughtError) as caught:
            client.head_object(Bucket=bucket, Key=key)
    finally:
        client.meta.events.unregister("before-send.s3.HeadObject", unique_id="test-catch")
    url, authorization = caught.value.args
    authorization = authorization.decode() if isinstance(authorization, bytes) else authorization
    region, service = authorization.split("Credential=")[1].split(",")[0].split("/")[2:4]
    return url, f"{region}/{service}", authorization.split(" ")[0]


@pytest.mark.parametrize(
    "options",
    [
        dict(region_name="eu-west-1"),
        dict(region_name="us-east-1"),
        dict(region_name="ap-southeast-2", s3={"addressing_style": "virtual"}),
        dict(region_name="eu-west-1", s3={"addressing_style": "path"}),
        dict(region_name="us-east-1", s3={"us_east_1_regional_endpoint": "regional"}),
        dict(
            region_name="eu-central-1",
            endpoint_url="http://s3.example:9000",
            s3={"addressing_style": "virtual"},
        ),
    ],
    ids=["eu-west-1", "us-east-1", "virtual", "path", "regional", "custom-virtual"],
)
def test_the_direct_path_goes_where_botocore_goes(monkeypatch, options):
    # Nothing is sent: the store learns its way when made, and botocore's request is caught.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from botocore.config import Config

    options = dict(options)
    endpoint = options.pop("endpoint_url", None)
    region = options.pop("region_name")
    store = se.S3Store(
        "my-chunk-bucket",
        "some prefix+%é",
        endpoint_url=endpoint,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name=region,
        config=Config(**options),
        locks=False,
    )
    direct = store._direct
    assert direct is not None
    url, scope, _ = _sent_by_botocore(store._client, "my-chunk-bucket", store._key(NAME))
    assert (direct._base + NAME, f"{direct._region}/{direct._service}") == (url, scope)


def test_a_multi_region_access_point_is_signed_as_botocore_chooses(monkeypatch):
    # Its requests need SigV4A (botocore's endpoint rules say so): a signature version set
    # by the store would make botocore sign them with plain SigV4, which S3 refuses.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    mrap = "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap"
    store = se.S3Store(
        mrap, "c", aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1", locks=False
    )
    assert store._direct is None  # the direct path signs with SigV4 only
    from botocore.exceptions import MissingDependencyException

    try:
        _, _, algorithm = _sent_by_botocore(store._client, mrap, store._key(NAME))
    except MissingDependencyException:
        return  # SigV4A needs botocore[crt]: botocore chose it
    assert algorithm == "AWS4-ECDSA-P256-SHA256", algorithm


def test_a_content_length_botocore_cannot_read_is_a_store_error(raw_server):
    # botocore's own path (a client passed in, and every request but a chunk's): its parser
    # raises ValueError on such a header, which must reach the caller as a StoreError.
    def answer(server: RawServer, connection: socket.socket, method: str) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\nConnection: close\r\n\r\n")
        if method != "HEAD":
            server.send(connection, CHUNK)
        connection.shutdown(socket.SHUT_WR)

    import botocore.session

    server = raw_server(answer)
    client = botocore.session.Session().create_client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    )
    store = se.S3Store("bucket", "c", client=client, locks=False, retry_seconds=0, max_attempts=1)
    for action in (store.get, store.size):
        with pytest.raises(se.StoreError, match="unreadable answer") as caught:
            action(NAME)
        assert not isinstance(caught.value, ValueError)
