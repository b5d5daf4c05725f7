"""Bounds on each S3 request: its total time, and the bytes of an error's answer.

botocore's read timeout bounds the gap between two bytes, not a request:
a server sending one byte every 20 s never trips a 60 s read timeout. Here
each request attempt gets a deadline; a watchdog thread that sees it pass
shuts the attempt's socket down, which ends a read blocked on it at once,
and stops botocore's own retries of that attempt. The store then treats it
as any passing failure (retried until ``retry_seconds``).

botocore also reads some bodies whole, into memory: every error's (to find
its code) and every answer of an operation that returns no stream (a
listing, a PUT's, a HEAD's). A server that answered with gigabytes would
have them held. No more than ``ERROR_ANSWER_BYTES`` of an error's body is
read here (an S3 error is well under a kilobyte), nor more than
``WHOLE_ANSWER_BYTES`` of an answer read whole (a listing of 1,000 keys is
about a megabyte); past that the answer is refused as a broken connection
is, and the store tries again. A streamed body (a GET of a chunk) is left to
its reader, which reads no more than the chunk can be.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

#: The most of an error answer's body read (S3's are XML of a few hundred bytes).
ERROR_ANSWER_BYTES = 1 << 20
#: The most of a successful answer read whole (not streamed): a listing of 1,000 keys is about 1 MiB.
WHOLE_ANSWER_BYTES = 16 << 20


class RequestDeadlineError(Exception):
    """A request attempt ran past its deadline (raised where botocore would try again)."""


class Watch:
    """The requests of one store operation on one thread: the deadline of the HTTP attempt under way."""

    def __init__(self, seconds: float, ends_at: float | None) -> None:
        #: The longest an HTTP attempt may take, and when the whole operation should be over.
        self.seconds = seconds
        self.ends_at = ends_at
        self.deadline = float("inf")  # armed when an attempt starts (before-send)
        self.bound = seconds
        self.connections: list[Any] = []
        self.fired = False
        self.attempts = 0


def _shut(connection: Any, watch: Watch) -> None:
    # A connection another request has taken meanwhile (back in the pool, then reused) is not ours.
    if getattr(connection, "_self_encryption_watch", None) is not watch:
        return
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
        # When the watchdog wakes next: a deadline armed later needs no wake-up call
        # (most do not, as every attempt gets the same bound), which spares a thread
        # switch for each request.
        self._wake_at = float("-inf")

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
        try:
            bounded_answer = _bounded_answer_class()
        except (ImportError, AttributeError):
            return False
        adopt = self._adopt
        bound = self._bound_answer

        class HTTPConnection(AWSHTTPConnection):  # type: ignore[misc]
            def request(self, *args: Any, **kwargs: Any) -> Any:
                adopt(self)
                return super().request(*args, **kwargs)

            def getresponse(self, *args: Any, **kwargs: Any) -> Any:
                return bound(super().getresponse(*args, **kwargs), bounded_answer)

        class HTTPSConnection(AWSHTTPSConnection):  # type: ignore[misc]
            def request(self, *args: Any, **kwargs: Any) -> Any:
                adopt(self)
                return super().request(*args, **kwargs)

            def getresponse(self, *args: Any, **kwargs: Any) -> Any:
                return bound(super().getresponse(*args, **kwargs), bounded_answer)

        class HTTPPool(AWSHTTPConnectionPool):  # type: ignore[misc]
            ConnectionCls = HTTPConnection

        class HTTPSPool(AWSHTTPSConnectionPool):  # type: ignore[misc]
            ConnectionCls = HTTPSConnection

        # The session's pool manager shares this dict: pools made from now on use our classes.
        classes.update({"http": HTTPPool, "https": HTTPSPool})
        # Last: adaptive mode's rate limiter may pause in before-send, and that pause is not the server's.
        client.meta.events.register("before-call.s3", self._before_call)
        client.meta.events.register_last("before-send.s3", self._before_send)
        client.meta.events.register("needs-retry.s3", self._after_attempt)
        return True

    def _before_call(self, model: Any = None, **kwargs: Any) -> None:
        """An operation starts on this thread: whether its answer is streamed or read whole."""
        self.expect(streamed=bool(getattr(model, "has_streaming_output", True)))

    def expect(self, *, streamed: bool) -> None:
        """Say whether this thread's next answers are streamed to a reader or read whole by botocore."""
        self._local.streamed = streamed

    def _bound_answer(self, answer: Any, bounded_answer: type) -> Any:
        """answer, made to read no more of its body than it may hold (see the module's text)."""
        if type(answer) is not bounded_answer.__mro__[1]:  # not urllib3 2's HTTPResponse: left as it is
            return answer
        if getattr(answer, "status", 200) >= 300:
            limit = ERROR_ANSWER_BYTES
        elif not getattr(self._local, "streamed", True):  # unknown: as a stream, whose reader bounds it
            limit = WHOLE_ANSWER_BYTES
        else:
            return answer
        bounded: Any = answer
        bounded.__class__ = bounded_answer  # the same object and state; reads are counted
        bounded._self_encryption_limit = limit
        return bounded

    def _adopt(self, connection: Any) -> None:
        watch: Watch | None = getattr(self._local, "watch", None)
        connection._self_encryption_watch = watch
        if watch is not None:
            with self._changed:
                watch.connections.append(connection)

    def _before_send(self, **kwargs: Any) -> None:
        """An HTTP attempt starts: arm its deadline."""
        self.arm()

    def arm(self) -> Watch | None:
        """An HTTP attempt on this thread starts: arm its deadline; the watch armed (None outside bound()).

        RequestDeadlineError if an attempt was already cut off and the operation's time is spent.
        """
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            return None
        now = time.monotonic()
        if watch.fired and watch.ends_at is not None and now >= watch.ends_at:
            # botocore would try again, but the operation's time is spent.
            raise RequestDeadlineError(f"no complete answer within {watch.bound:g} s")
        bound = watch.seconds
        if watch.ends_at is not None:
            bound = min(bound, max(1.0, watch.ends_at - now))
        with self._changed:
            watch.bound = bound
            watch.deadline = now + bound
            watch.fired = False
            watch.connections = []
            watch.attempts += 1
            if watch.deadline < self._wake_at:
                self._changed.notify()
        return watch

    def _after_attempt(self, **kwargs: Any) -> None:
        """An HTTP attempt answered: disarm, unless a body is still to be read from it."""
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            return
        response = kwargs.get("response")
        operation = kwargs.get("operation")
        answered = (
            kwargs.get("caught_exception") is None
            and response is not None
            and getattr(response[0], "status_code", 500) < 300
        )
        if response is not None:
            self.answered(watch, streaming=answered and getattr(operation, "has_streaming_output", False))
        else:
            self.disarm(watch)

    def answered(self, watch: Watch, *, streaming: bool) -> None:
        """The server answered the attempt: disarm, unless its body is still to be read (streaming)."""
        watch.fired = False  # whatever follows is about that answer
        if not streaming:
            self.disarm(watch)

    def disarm(self, watch: Watch) -> None:
        with self._changed:
            watch.deadline = float("inf")
            watch.connections = []

    @contextlib.contextmanager
    def bound(self, seconds: float, ends_at: float | None = None) -> Iterator[Watch]:
        """Each HTTP attempt this thread makes in the block ends within seconds (its socket is shut then).

        With ends_at (a time.monotonic() value), an attempt started late gets
        only what is left until then (at least a second), and botocore does
        not start another after one was cut off past it.
        """
        watch = Watch(seconds, ends_at)
        with self._changed:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watchdog, name="self-encryption-s3-deadlines", daemon=True
                )
                self._thread.start()
        outer = getattr(self._local, "watch", None)
        self._local.watch = watch
        try:
            yield watch
        finally:
            self._local.watch = outer
            with self._changed:
                self._watches.discard(watch)

    def _watchdog(self) -> None:
        while True:
            expired: list[tuple[Any, Watch]] = []
            with self._changed:
                now = time.monotonic()
                for watch in self._watches:
                    if watch.deadline <= now:
                        watch.fired = True
                        watch.deadline = float("inf")
                        expired += [(connection, watch) for connection in watch.connections]
                if not expired:
                    nearest = min((w.deadline for w in self._watches), default=float("inf"))
                    pause = min(60.0, max(0.01, nearest - now))
                    self._wake_at = now + pause
                    self._changed.wait(pause)
                    self._wake_at = float("-inf")  # awake: every deadline armed now is seen
                    continue
            for connection, watch in expired:
                _shut(connection, watch)


def _bounded_answer_class() -> type:
    """urllib3's HTTPResponse, reading no more of a body than its _self_encryption_limit."""
    from urllib3.exceptions import ProtocolError
    from urllib3.response import HTTPResponse

    class BoundedAnswer(HTTPResponse):
        _self_encryption_read = 0
        _self_encryption_limit = ERROR_ANSWER_BYTES

        def read(
            self, amt: int | None = None, decode_content: bool | None = None, cache_content: bool = False
        ) -> bytes:
            room = self._self_encryption_limit + 1 - self._self_encryption_read
            data = super().read(room if amt is None else min(amt, room), decode_content, cache_content)
            self._count(len(data))
            return data

        def read_chunked(
            self, amt: int | None = None, decode_content: bool | None = None
        ) -> Generator[bytes, None, None]:
            for piece in super().read_chunked(amt, decode_content):
                self._count(len(piece))
                yield piece

        def _count(self, size: int) -> None:
            self._self_encryption_read += size
            limit = self._self_encryption_limit
            if self._self_encryption_read <= limit:
                return
            # As urllib3 does after a failed read: the connection is dropped, not reused.
            if self._original_response is not None:
                self._original_response.close()
            if self._connection is not None:
                self._connection.close()
            self.release_conn()
            what = "an error answer" if self.status >= 300 else "an answer read whole"
            raise ProtocolError(f"{what} longer than {limit} bytes (not S3's)")

    return BoundedAnswer
