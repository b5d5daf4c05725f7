"""A bound on each S3 request's total time, so that a server trickling bytes cannot hold a request forever.

botocore's read timeout bounds the gap between two bytes, not a request:
a server sending one byte every 20 s never trips a 60 s read timeout. Here
each request attempt gets a deadline; a watchdog thread that sees it pass
shuts the attempt's socket down, which ends a read blocked on it at once,
and stops botocore's own retries of that attempt. The store then treats it
as any passing failure (retried until ``retry_seconds``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


class RequestDeadlineError(Exception):
    """A request attempt ran past its deadline (raised where botocore would try again)."""


class Watch:
    """One request attempt on one thread: its deadline and the connections it used."""

    def __init__(self, deadline: float, seconds: float) -> None:
        self.deadline = deadline
        self.seconds = seconds
        self.connections: list[Any] = []
        self.fired = False


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Deadlines:
    """Deadlines for the requests of one boto3 client; installed on it with :meth:`install`."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._changed = threading.Condition()
        self._watches: set[Watch] = set()
        self._thread: threading.Thread | None = None

    def install(self, client: Any) -> bool:
        """Make client's connections report to us; False if its botocore is not laid out as expected."""
        try:
            from botocore.awsrequest import (
                AWSHTTPConnection,
                AWSHTTPConnectionPool,
                AWSHTTPSConnection,
                AWSHTTPSConnectionPool,
            )

            classes = client._endpoint.http_session._pool_classes_by_scheme
        except (ImportError, AttributeError):
            return False
        if not isinstance(classes, dict):
            return False
        adopt = self._adopt

        class HTTPConnection(AWSHTTPConnection):  # type: ignore[misc]
            def request(self, *args: Any, **kwargs: Any) -> Any:
                adopt(self)
                return super().request(*args, **kwargs)

        class HTTPSConnection(AWSHTTPSConnection):  # type: ignore[misc]
            def request(self, *args: Any, **kwargs: Any) -> Any:
                adopt(self)
                return super().request(*args, **kwargs)

        class HTTPPool(AWSHTTPConnectionPool):  # type: ignore[misc]
            ConnectionCls = HTTPConnection

        class HTTPSPool(AWSHTTPSConnectionPool):  # type: ignore[misc]
            ConnectionCls = HTTPSConnection

        # The session's pool manager shares this dict: pools made from now on use our classes.
        classes.update({"http": HTTPPool, "https": HTTPSPool})
        client.meta.events.register("before-send.s3", self._before_send)
        return True

    def _adopt(self, connection: Any) -> None:
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            return
        with self._changed:
            watch.connections.append(connection)
            fired = watch.fired
        if fired:
            _shut(connection)

    def _before_send(self, **kwargs: Any) -> None:
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is not None and watch.fired:
            # botocore would try again (and pause first): the attempt's time is up.
            raise RequestDeadlineError(f"no complete answer within {watch.seconds:g} s")

    @contextlib.contextmanager
    def bound(self, seconds: float) -> Iterator[Watch]:
        """The requests this thread makes in the block end within seconds (their sockets are shut then)."""
        watch = Watch(time.monotonic() + seconds, seconds)
        with self._changed:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watchdog, name="self-encryption-s3-deadlines", daemon=True
                )
                self._thread.start()
            self._changed.notify()
        self._local.watch = watch
        try:
            yield watch
        finally:
            self._local.watch = None
            with self._changed:
                self._watches.discard(watch)

    def _watchdog(self) -> None:
        while True:
            expired: list[Watch] = []
            with self._changed:
                now = time.monotonic()
                waiting = [w for w in self._watches if not w.fired]
                for watch in waiting:
                    if watch.deadline <= now:
                        watch.fired = True
                        expired.append(watch)
                if not expired:
                    nearest = min((w.deadline for w in waiting), default=now + 60.0)
                    self._changed.wait(max(0.01, nearest - now))
                    continue
                connections = [c for watch in expired for c in watch.connections]
            for connection in connections:
                _shut(connection)
