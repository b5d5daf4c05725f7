"""A TCP proxy on loopback that adds a fixed delay each way and counts HTTP requests.

    python benchmarks/latency_proxy.py --listen 127.0.0.1:9100 --to 127.0.0.1:9000 --rtt-ms 30

Each byte that enters the proxy leaves it ``rtt / 2`` later, in order, in
both directions: a link with a round trip of ``rtt`` and no bandwidth limit
of its own, as between a machine and a nearby cloud region. Bytes in flight
are not held back by the bytes behind them, so the delay does not shrink
throughput by itself; only waiting for answers does, as on a real network.

It also reads the client's side as HTTP/1.1 (request line, headers, a body
of Content-Length or chunked bytes) and counts requests by method, so a
benchmark can say how many requests a chunk costs. The counts are written
as JSON to ``--counts FILE`` on SIGUSR1 and at exit (the file replaced
whole), or read in process from :class:`Proxy`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import threading
import time


class _HttpCounter:
    """Counts requests in a client-to-server byte stream (HTTP/1.1, keep-alive)."""

    def __init__(self, counts: collections.Counter[str]) -> None:
        self.counts = counts
        self.buffer = bytearray()
        self.state = "head"  # head, body, chunk-size, chunk-data, trailers
        self.left = 0

    def _line(self) -> bytes | None:
        end = self.buffer.find(b"\r\n")
        if end < 0:
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.state in ("body", "chunk-data"):
                step = min(self.left, len(self.buffer))
                del self.buffer[:step]
                self.left -= step
                if self.left:
                    return
                self.state = "head" if self.state == "body" else "chunk-size"
            elif self.state == "chunk-size":
                line = self._line()
                if line is None:
                    return
                size = int(line.split(b";")[0].strip() or b"0", 16)
                self.state, self.left = ("chunk-data", size + 2) if size else ("trailers", 0)
            elif self.state == "trailers":
                line = self._line()
                if line is None:
                    return
                if not line:
                    self.state = "head"
            else:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
                del self.buffer[: end + 4]
                self.counts[head[0].split(" ", 1)[0]] += 1
                headers = {}
                for line in head[1:]:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    self.state = "chunk-size"
                else:
                    self.left = int(headers.get("content-length", "0") or 0)
                    self.state = "body" if self.left else "head"


class Proxy:
    """The proxy on a thread of its own: ``with Proxy(target, rtt) as proxy: proxy.url``."""

    def __init__(
        self, target: tuple[str, int], rtt_seconds: float, listen: tuple[str, int] = ("127.0.0.1", 0)
    ):
        self.target = target
        self.delay = rtt_seconds / 2
        self.listen = listen
        self.counts: collections.Counter[str] = collections.Counter()
        self.address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        assert self.address is not None
        return f"http://{self.address[0]}:{self.address[1]}"

    def __enter__(self) -> Proxy:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the latency proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def reset(self) -> None:
        self.counts.clear()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, *self.listen)
        self.address = server.sockets[0].getsockname()[:2]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        counter = _HttpCounter(self.counts)
        # A connection still open when the proxy stops is cancelled: that is its end, not an error.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(client_reader, server_writer, counter.feed),
                self._pipe(server_reader, client_writer, None),
                return_exceptions=True,
            )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(1 << 18)
                if watch is not None and data:
                    watch(data)
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(Exception):
                writer.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 0))
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--counts", help="write the request counts here as JSON on SIGUSR1 and at exit")
    args = parser.parse_args()
    stopped = threading.Event()
    with Proxy(args.to, args.rtt_ms / 1000, args.listen) as proxy:

        def dump(*_: object) -> None:
            if args.counts:
                # Whole or not at all: a reader waits for the file to appear, then reads it.
                with open(args.counts + ".tmp", "w", encoding="utf-8") as out:
                    json.dump(dict(proxy.counts), out)
                os.replace(args.counts + ".tmp", args.counts)

        signal.signal(signal.SIGUSR1, dump)
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        print(proxy.url, flush=True)
        try:
            while not stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        dump()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
