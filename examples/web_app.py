"""A small file service over self-encryption: upload, download and HTTP Range, maps in SQLite.

    python examples/web_app.py --store STORE [--db maps.sqlite] [--port 8000]

    curl -T photo.jpg http://127.0.0.1:8000/files/photo.jpg      # upload
    curl http://127.0.0.1:8000/files/photo.jpg -o photo.jpg       # download
    curl -r 0-1023 http://127.0.0.1:8000/files/photo.jpg          # the first KiB

It is a plain WSGI application on the standard library, so that it runs as
it is; the same few calls fit any framework (see docs/web-app.md for an
async one). The chunks go to any store; the data maps, which open the
files, are rows of a SQLite table that only this service reads.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import self_encryption as se

#: Bytes handed to the client at a time when streaming a download.
PIECE = 1 << 20

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class MapTable:
    """Data maps kept as rows: name -> the map's text form (``se1:...``)."""

    def __init__(self, path: str) -> None:
        # One connection per thread: sqlite3 connections are not shared across threads.
        self._path = path
        self._local = threading.local()
        with self._connection() as db:
            db.execute("CREATE TABLE IF NOT EXISTS maps (name TEXT PRIMARY KEY, map TEXT NOT NULL)")

    def _connection(self) -> sqlite3.Connection:
        if not hasattr(self._local, "db"):
            self._local.db = sqlite3.connect(self._path)
        return self._local.db

    def save(self, name: str, data_map: se.DataMap) -> None:
        with self._connection() as db:
            db.execute("INSERT OR REPLACE INTO maps VALUES (?, ?)", (name, data_map.to_text()))

    def load(self, name: str) -> se.DataMap | None:
        row = self._connection().execute("SELECT map FROM maps WHERE name = ?", (name,)).fetchone()
        return None if row is None else se.DataMap.from_text(row[0])

    def all(self) -> Iterator[se.DataMap]:
        for (text,) in self._connection().execute("SELECT map FROM maps"):
            yield se.DataMap.from_text(text)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``bytes=`` range, None for the whole file; ValueError if unsatisfiable."""
    if not header:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # not a form we serve: answer with the whole file, as RFC 9110 allows
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), size if last == "" else min(size, int(last) + 1)
    if start >= size or start >= end:
        raise ValueError("range not satisfiable")
    return start, end


def _stream(reader: se.ChunkReader, start: int, end: int) -> Iterator[bytes]:
    """The bytes [start, end) of a reader, a piece at a time; closes the reader at the end."""
    try:
        reader.seek(start)
        left = end - start
        while left > 0:
            piece = reader.read(min(PIECE, left))
            if not piece:
                break
            left -= len(piece)
            yield piece
    finally:
        reader.close()


class App:
    """The WSGI application: PUT and GET of /files/NAME."""

    def __init__(self, store: Any, maps: MapTable) -> None:
        self.store = store
        self.maps = maps

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = re.fullmatch(r"/files/([\w.-]+)", environ.get("PATH_INFO", ""))
        if match is None:
            return self._answer(start_response, "404 Not Found", b"no such path\n")
        name = match.group(1)
        method = environ["REQUEST_METHOD"]
        if method == "PUT":
            return self._upload(environ, start_response, name)
        if method in ("GET", "HEAD"):
            return self._download(environ, start_response, name, head=method == "HEAD")
        return self._answer(start_response, "405 Method Not Allowed", b"PUT or GET\n")

    def _upload(self, environ: dict[str, Any], start_response: StartResponse, name: str) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"]
        # The request body goes through as it arrives: memory stays bounded whatever the size.
        with se.Encryptor(self.store, total_size=length) as encryptor:
            left = length
            while left > 0:
                block = body.read(min(left, 8 << 20))
                if not block:
                    break
                encryptor.write(block)
                left -= len(block)
        if left:
            return self._answer(start_response, "400 Bad Request", b"the body ended early\n")
        assert encryptor.data_map is not None
        self.maps.save(name, encryptor.data_map)
        return self._answer(start_response, "201 Created", b"stored\n")

    def _download(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, *, head: bool
    ) -> Iterable[bytes]:
        data_map = self.maps.load(name)
        if data_map is None:
            return self._answer(start_response, "404 Not Found", b"no such file\n")
        size = data_map.file_size
        try:
            wanted = _byte_range(environ.get("HTTP_RANGE"), size)
        except ValueError:
            start_response("416 Range Not Satisfiable", [("Content-Range", f"bytes */{size}")])
            return [b""]
        start, end = wanted or (0, size)
        headers = [("Content-Length", str(end - start)), ("Accept-Ranges", "bytes")]
        if wanted:
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        start_response("206 Partial Content" if wanted else "200 OK", headers)
        if head:
            return [b""]
        # A reader per request: one reader serves one thread at a time.
        return _stream(se.open(data_map, self.store), start, end)

    @staticmethod
    def _answer(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


class ThreadingServer(ThreadingMixIn, WSGIServer):
    """Each request on a thread of its own, as a production WSGI server would run them."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """No access log on stderr."""


def serve(store: Any, db: str, host: str = "127.0.0.1", port: int = 8000) -> WSGIServer:
    """A server for the app, not yet started (``serve_forever()`` runs it)."""
    return make_server(host, port, App(store, MapTable(db)), ThreadingServer, QuietHandler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a folder, s3://BUCKET/PREFIX or memory:")
    parser.add_argument("--db", default="maps.sqlite", help="the SQLite file of data maps")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = serve(se.open_store(args.store), args.db, port=args.port)
    print(f"serving on http://127.0.0.1:{server.server_port}/files/NAME")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
