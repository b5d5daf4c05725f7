"""The examples and the guides' code run as written: a real server, real HTTP requests."""

from __future__ import annotations

import http.client
import os
import pathlib
import sys
import threading

import pytest

import self_encryption as se

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import web_app  # noqa: E402 - from the examples folder


@pytest.fixture
def service(tmp_path):
    store = se.DirStore(tmp_path / "store")
    server = web_app.serve(store, str(tmp_path / "maps.sqlite"), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, store, str(tmp_path / "maps.sqlite")
    finally:
        server.shutdown()
        server.server_close()


def _request(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_upload_download_and_ranges(service):
    server, store, _ = service
    data = os.urandom(3 << 20) + b"text " * 100_000
    assert _request(server, "PUT", "/files/a.bin", data)[0] == 201
    status, headers, body = _request(server, "GET", "/files/a.bin")
    assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
    for spec, expected in [
        ("bytes=0-1023", data[:1024]),
        ("bytes=3145000-3146000", data[3145000:3146001]),
        ("bytes=-500", data[-500:]),
        (f"bytes={len(data) - 10}-", data[-10:]),
    ]:
        status, headers, body = _request(server, "GET", "/files/a.bin", headers={"Range": spec})
        assert (status, body) == (206, expected), spec
        assert headers["Content-Range"].endswith(f"/{len(data)}")
    status, headers, _ = _request(server, "GET", "/files/a.bin", headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    assert _request(server, "GET", "/files/missing")[0] == 404


def test_the_maps_in_the_table_are_what_collect_garbage_keeps(service):
    server, store, db = service
    for name in ("one", "two"):
        assert _request(server, "PUT", f"/files/{name}", os.urandom(300_000))[0] == 201
    extra = se.encrypt_to_store(os.urandom(300_000), store)  # a file no row names
    garbage = se.chunk_names(extra, store)
    report = se.collect_garbage(store, list(web_app.MapTable(db).all()), delete=True, grace=0)
    assert set(report.names) == garbage
    for name in ("one", "two"):
        assert _request(server, "GET", f"/files/{name}")[0] == 200


def test_many_readers_at_once(service):
    server, _, _ = service
    data = os.urandom(2 << 20)
    assert _request(server, "PUT", "/files/shared", data)[0] == 201
    results = []

    def read(offset: int) -> None:
        spec = f"bytes={offset}-{offset + 65535}"
        results.append((offset, _request(server, "GET", "/files/shared", headers={"Range": spec})[2]))

    threads = [threading.Thread(target=read, args=(n * 200_000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [(n * 200_000, data[n * 200_000 : n * 200_000 + 65536]) for n in range(8)]
