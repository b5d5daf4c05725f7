"""A chunk store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage, R2, B2...).

Chunk ``name`` lives at key ``prefix + name``. Names are the SHA-256 of the
content, so any number of machines can write to one bucket at once: equal
content lands on the same key with the same bytes, and de-duplicates.
Needs boto3: ``pip install self-encryption-cffi[s3]``.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import functools
import gc
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from .._buffers import Buffer
from .._datamap import check_name, is_chunk_name
from .._errors import ChunkIntegrityError, ChunkNotFoundError, InvalidArgumentError, StoreError
from .._workers import result as wait_for
from .._workers import running
from .locks import LockSet, LockSpace
from .protocol import MAX_CHUNK_BYTES, ChunkEntry
from .s3_deadlines import Deadlines, RequestDeadlineError
from .s3_direct import TURNS_OFF, Answer, DirectRequests, content_length
from .s3_locks import LOCK_FOLDER, S3LockSpace, answer_time
from .s3_requests import (
    MAX_ATTEMPTS,
    REQUEST_SECONDS,
    RETRY_SECONDS,
    S3Requests,
    botocore_errors,
    sha256_checksum,
)

T = TypeVar("T")

#: Requests in flight at once by default: enough to hide a 100 ms round trip at 150 MB/s
#: where a new chunk costs two (HEAD, then PUT, on a server without conditional writes).
DEFAULT_CONCURRENCY = 64
#: Where the conditional-write probe writes (not a chunk name: never listed as one).
_PROBE_PREFIX = ".self-encryption-probe/"


class S3Store(S3Requests):
    """Chunks as objects under ``prefix`` in ``bucket``.

    Credentials and region come from boto3's usual chain (environment,
    shared config, instance roles); ``endpoint_url`` (or the
    ``AWS_ENDPOINT_URL`` environment variable) points at a non-AWS server.
    Pass ``client`` to bring a configured boto3 S3 client of your own. The
    connection pool holds ``max_workers`` connections, so one store serves
    that many threads at once. Throttling, 5xx answers, timeouts and lost
    connections are retried: botocore first makes ``max_attempts`` quick
    attempts (adaptive mode), and then the store goes on trying, with
    pauses growing to 10 s, until ``retry_seconds`` have passed since the
    request began (0: no more than botocore's attempts); then StoreError.
    Each attempt is cut off after ``request_timeout`` seconds however the
    server paces its bytes, and never outlives what is left of
    ``retry_seconds`` (by more than a second), so ``retry_seconds`` bounds
    the whole operation.
    A botocore ``config`` in ``client_options`` is merged over these
    settings.

    Writers and gc lock the store with lock objects under ``PREFIX/locks/``
    (see :mod:`self_encryption.stores.locks`): ``lock_stale`` is the stale
    period this store's locks declare (default 30 minutes, or
    ``$SELF_ENCRYPTION_LOCK_STALE``), ``lock_wait`` how long a writer waits
    for a running gc (None: while gc's lock is live), ``host`` the host name
    the locks carry (default ``$SELF_ENCRYPTION_HOST``, else the machine's).
    ``locks=False`` turns the lock off, leaving gc only its grace period.

    ``concurrency`` is how many requests the engine keeps in
    flight (default 64, which hides a 100 ms round trip where a new chunk
    costs two requests; more for a store further away or a faster link).

    A new chunk costs one request where the server refuses a second
    conditional write (``If-None-Match: *``), which is found out once,
    by a probe object written twice; elsewhere a HEAD comes first.

    With the store's own client, a chunk's HEAD, GET and PUT skip
    botocore's per-request pipeline: each is signed by botocore's SigV4
    signer (a body with its name, which is its SHA-256, as its payload
    hash) and sent on the client's connections (see
    :mod:`self_encryption.stores.s3_direct`). Any answer but success, a
    missing object or a refused conditional write is asked again through
    botocore, whose ``max_attempts`` then follow that first attempt.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        max_workers: int | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        retry_seconds: float = RETRY_SECONDS,
        request_timeout: float = REQUEST_SECONDS,
        locks: bool = True,
        lock_stale: float | None = None,
        lock_wait: float | None = None,
        host: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        **client_options: Any,
    ) -> None:
        if not bucket or not isinstance(bucket, str):
            raise InvalidArgumentError("S3Store needs a bucket name")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be a positive int, not {concurrency!r}")
        #: Requests the engine keeps in flight at once.
        self.io_concurrency = concurrency
        self._conditional: bool | None = None  # whether conditional writes are refused: probed once
        self._probing = threading.Lock()
        self._early_probe: Future[bool] | None = None  # the probe started by writing()
        self._checksums = True  # until the server refuses the ChecksumSHA256 header
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be a positive int, not {max_attempts!r}")
        if (
            isinstance(retry_seconds, bool)
            or not isinstance(retry_seconds, (int, float))
            or not 0 <= retry_seconds < float("inf")
        ):
            raise InvalidArgumentError(
                f"retry_seconds must be a number of seconds >= 0, not {retry_seconds!r}"
            )
        if (
            isinstance(request_timeout, bool)
            or not isinstance(request_timeout, (int, float))
            or not 0 < request_timeout < float("inf")
        ):
            raise InvalidArgumentError(
                f"request_timeout must be a number of seconds > 0, not {request_timeout!r}"
            )
        self.request_timeout = float(request_timeout)
        self._deadlines = Deadlines()
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.retry_seconds = float(retry_seconds)
        with _collector_paused():
            self._errors = botocore_errors()
            self._init_requests()
            pool = max(32, concurrency + 2, 2 * (max_workers or os.cpu_count() or 1) + 2)
            made_for_us = client is None
            if client is None:
                client = _new_client(endpoint_url, max_attempts, pool, client_options)
            self._client = client
            self._deadlines.install(client)
            #: Chunk HEADs, GETs and PUTs skip botocore's pipeline (see s3_direct), on our own client only.
            self._direct = DirectRequests.for_client(client, bucket, self.prefix) if made_for_us else None
        self._locks = (
            LockSet(S3LockSpace(self), stale_after=lock_stale, host=host, wait=lock_wait) if locks else None
        )
        # Requests one get_many() makes at once: as many as the workers' share of the pool.
        self._fetchers = max(4, min(16, 2 * (max_workers or os.cpu_count() or 1)))

    #: get_many() is GETs on a pool: a reader with its own request pool asks for chunks one by one.
    gets_side_by_side = True

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def put(self, name: str, data: Buffer) -> None:
        """Store data under name. Writing the same chunk again is harmless."""
        key = self._key(name)
        body = _body(data)
        if self._locks is not None:
            self._locks.check()  # a writer that lost its lock stops before gc may take it as stale
        self._call("put", key, lambda: self._put_object(key, body, name))

    def put_if_absent(self, name: str, data: Buffer) -> bool:
        """Put data unless the chunk is stored, else refresh it (:meth:`touch`): True if data was put.

        Where the server honours ``If-None-Match: *`` (:meth:`conditional_writes`)
        a new chunk costs one request and a present one two (the refused
        PUT, then the refresh); elsewhere a HEAD comes first, as ``has``,
        and so it does until the probe has answered: the first chunks do
        not wait for its round trips.
        """
        if not self._conditional_known():
            if self.has(name) and self.touch(name):
                return False
            self.put(name, data)
            return True
        key = self._key(name)
        body = _body(data)
        if self._locks is not None:
            self._locks.check()  # as put: a writer that lost its lock stops before gc may take it as stale

        def conditional_put() -> bool:
            try:
                self._put_object(key, body, name, if_absent=True)
            except self._errors.ClientError as exc:
                if self._refused(exc):
                    return False
                raise
            return True

        if self._call("put", key, conditional_put):
            return True
        if self.touch(name):  # present: refreshed, so that gc's grace protects it
            return False
        self.put(name, data)  # it vanished between the two requests
        return True

    def _put_object(self, key: str, body: bytes | bytearray, name: str, *, if_absent: bool = False) -> None:
        """One PUT with the chunk's name as its ChecksumSHA256, unless the server refused that header.

        A server that checks checksums (S3) then refuses a body damaged on
        its way, and botocore computes no checksum of its own (through
        botocore, over HTTPS, the body's hash is then not signed; on the
        direct path the name is). Some servers refuse the header itself
        (400): this store then sends its bodies without it. With
        ``if_absent``, ``If-None-Match: *`` (a refusal is a ClientError).
        Tried on the direct path first.
        """
        if self._put_directly(name, body, if_absent):
            return
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        if self._checksums:
            try:
                self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ChecksumSHA256=sha256_checksum(name), **extra
                )
                return
            except self._errors.ClientError as exc:
                if not _checksum_header_refused(exc):
                    raise
                self._checksums = False
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)

    def _put_directly(self, name: str, body: bytes | bytearray, if_absent: bool) -> bool:
        """Whether the direct path stored the chunk (False: ask botocore); ClientError for a refused if_absent."""
        headers = {"If-None-Match": "*"} if if_absent else {}
        if self._checksums:
            headers["x-amz-checksum-sha256"] = sha256_checksum(name)
        answer = self._directly("PUT", name, body=body, body_sha256=name, headers=headers)
        if answer is None:
            return False
        if answer.status < 300:
            return True
        error = answer.error()
        if if_absent and answer.status == 412:
            raise self._errors.ClientError(error, "PutObject")
        # Whether this PUT carried the header: another's refusal may have turned it off meanwhile.
        if "x-amz-checksum-sha256" in headers and _checksum_header_refused(
            self._errors.ClientError(error, "PutObject")
        ):
            self._checksums = False
            return self._put_directly(name, body, if_absent)
        self._turn_off(answer)
        return False

    def _directly(self, method: str, name: str, **options: Any) -> Answer | None:
        """One attempt on the direct path (see s3_direct); None where the store must ask botocore instead.

        Runs inside :meth:`_call`, whose deadline covers the attempt. A
        failure to connect or to read goes back to botocore, which then
        makes its quick attempts; one cut off by its deadline is raised.
        """
        direct = self._direct
        if direct is None:
            return None
        watch = self._deadlines.arm()
        self._deadlines.expect(streamed=bool(options.get("stream")))
        try:
            answer = direct.send(method, name, **options)
        except self._errors.caught:
            if watch is not None and watch.fired:
                raise
            return None
        if watch is not None:
            self._deadlines.answered(watch, streaming=answer.raw is not None)
        return answer

    def _turn_off(self, answer: Answer) -> None:
        """After an answer the direct path did not expect: stop using it if it says its way is wrong."""
        if answer.status in TURNS_OFF:
            self._direct = None

    def _refused(self, exc: Exception) -> bool:
        """Whether a conditional PUT was refused because the object exists (412, or 409 for one racing)."""
        if not isinstance(exc, self._errors.ClientError):
            return False
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(exc.response.get("Error", {}).get("Code"))
        return status in (409, 412) or code in {"PreconditionFailed", "ConditionalRequestConflict"}

    def conditional_writes(self) -> bool:
        """Whether the server refuses a PUT with ``If-None-Match: *`` onto an existing object.

        Found out once per store by a probe: an object written twice with
        the header under ``PREFIX.self-encryption-probe/``. It counts only
        if the second write was refused (412) and the object still holds
        the first content: some servers accept the header and overwrite
        (rclone serve s3 1.x). Any failure of the probe says no.
        """
        with self._probing:
            if self._conditional is None:
                early = self._early_probe
                self._conditional = wait_for(early) if early is not None else self._probe()
            return self._conditional

    def _conditional_known(self) -> bool:
        """Whether the probe has found conditional writes refused; False while it runs (started if need be).

        A HEAD then a PUT is right on every server, so a writer need not wait.
        """
        if self._conditional is not None:
            return self._conditional
        early = self._early_probe
        if early is None:
            self._probe_early()
            return False
        return self.conditional_writes() if early.done() else False

    def _probe_early(self) -> None:
        """Start the probe on a thread of its own, so that its round trips overlap taking the lock."""
        with self._probing:
            if self._conditional is not None or self._early_probe is not None:
                return
            early: Future[bool] = Future()
            self._early_probe = early

        def run() -> None:
            try:
                self._probe(early.set_result)
            except BaseException as exc:  # the probe says False on any store failure; this is a bug
                if not early.done():
                    early.set_exception(exc)

        threading.Thread(target=run, name="self-encryption-s3-probe", daemon=True).start()

    def _probe(self, answer: Callable[[bool], None] | None = None) -> bool:
        """Write a probe object twice with the header; answer(result) is called before it is deleted.

        Its requests together get request_timeout seconds (each attempt is
        cut off at the deadline), so a server that never answers makes the
        probe say no rather than hang whoever waits for it.
        """
        key = f"{self.prefix}{_PROBE_PREFIX}{uuid.uuid4().hex}"
        client, bucket = self._client, self.bucket
        failures = (*self._errors.caught, RequestDeadlineError)
        result = False
        with self._deadlines.bound(self.request_timeout, time.monotonic() + self.request_timeout):
            try:
                client.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")
                try:
                    client.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
                    refused = False
                except self._errors.ClientError as exc:
                    refused = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412
                # Refused and still the first content: a server that answers 412 yet overwrote says no.
                result = refused and client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first"
            except failures:
                result = False
            finally:
                if answer is not None:
                    answer(result)  # the writers need not wait for the clean-up
                with contextlib.suppress(*failures):
                    client.delete_object(Bucket=bucket, Key=key)
        return result

    def get(self, name: str) -> bytes:
        """The chunk's content, checked against its name."""
        return self.get_at_most(name, MAX_CHUNK_BYTES + 1)

    def get_at_most(self, name: str, limit: int) -> bytes:
        """The chunk's content, checked against its name, reading no more than limit bytes of the object.

        Readers pass the size the data map expects plus one: an object that
        announces more (Content-Length) is refused before its body is read,
        and one that sends more costs one byte more than the chunk, never
        what the server sends.
        """
        content = self.fetch_at_most(name, limit)
        if hashlib.sha256(content).hexdigest() != name:
            raise ChunkIntegrityError(
                f"object s3://{self.bucket}/{self._key(name)} does not match its name", name=name
            )
        return content

    def fetch_at_most(self, name: str, limit: int) -> bytes:
        """:meth:`get_at_most` without the check against the name, for readers that check it themselves."""
        key = self._key(name)

        def fetch() -> bytes:
            direct = self._directly("GET", name, stream=True)
            if direct is not None:
                if direct.status == 200:
                    return read(direct.raw, content_length(direct.headers))
                if direct.status == 404:  # as botocore's answer would say: no second GET to learn it
                    raise self._errors.ClientError(direct.error(), "GetObject")
                if direct.raw is not None:  # a success but 200: not read, so closed (its connection dropped)
                    direct.raw.close()
                self._turn_off(direct)  # botocore asks again and explains
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            return read(answer["Body"], answer.get("ContentLength"))

        def read(body: Any, length: Any) -> bytes:
            try:
                if isinstance(length, int) and length > limit:
                    raise ChunkIntegrityError(
                        f"object s3://{self.bucket}/{key} is {length} bytes, larger than the chunk "
                        f"can be ({limit - 1})",
                        name=name,
                    )
                content = bytes(body.read(limit))
                if isinstance(length, int) and len(content) < length:
                    # Cut short (the connection dropped, or the request ran out of time): passing.
                    raise self._errors.IncompleteReadError(actual_bytes=len(content), expected_bytes=length)
                return content
            finally:
                body.close()  # drops the connection when bytes are left unread

        try:
            content = self._call("get", key, fetch)
        except self._errors.ClientError as exc:  # only a missing object gets here
            raise ChunkNotFoundError(f"no object s3://{self.bucket}/{key}", name=name) from exc
        return content

    def _head(self, name: str) -> dict[str, Any] | None:
        key = self._key(name)
        try:
            head: dict[str, Any] = self._call(
                "head", key, lambda: self._client.head_object(Bucket=self.bucket, Key=key)
            )
            return head
        except self._errors.ClientError:
            return None

    def get_many(self, names: list[str]) -> dict[str, bytes]:
        """Several chunks at once, fetched concurrently: those found, by name.

        Readers ask for a window of chunks through this, so a network round
        trip is paid once a window rather than once a chunk. Each object is
        checked against its name as by :meth:`get`; missing ones are left out.
        """
        return self.get_many_at_most({name: MAX_CHUNK_BYTES + 1 for name in names})

    def get_many_at_most(self, limits: dict[str, int]) -> dict[str, bytes]:
        """:meth:`get_many`, reading no more than limits[name] bytes of each object."""
        wanted = list(limits)
        if len(wanted) <= 1:
            return {
                name: content
                for name in wanted
                if (content := self._get_or_none(name, limits[name])) is not None
            }
        # Stopped as every pool of the package is: after an interrupt, requests
        # stuck on a dead server get the grace period, and are then left behind.
        pool = ThreadPoolExecutor(
            max_workers=min(len(wanted), self._fetchers), thread_name_prefix="self-encryption-s3"
        )
        with running(pool):
            found = list(pool.map(lambda name: self._get_or_none(name, limits[name]), wanted))
        return {name: content for name, content in zip(wanted, found) if content is not None}

    def _get_or_none(self, name: str, limit: int) -> bytes | None:
        try:
            return self.get_at_most(name, limit)
        except ChunkNotFoundError:
            return None

    def has(self, name: str) -> bool:
        """Whether the object is there (a HEAD request)."""
        key = self._key(name)

        def head() -> bool:
            direct = self._directly("HEAD", name)
            if direct is not None:
                if direct.status in (200, 404):
                    return direct.status == 200
                self._turn_off(direct)
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True

        try:
            found: bool = self._call("head", key, head)
        except self._errors.ClientError:  # only a missing object gets here
            found = False
        if not found:
            self._wait_for_check()  # so a missing bucket is not taken for a missing chunk
        return found

    def _head_or_missing(self, name: str) -> dict[str, Any]:
        head = self._head(name)
        if head is None:
            raise ChunkNotFoundError(f"no object s3://{self.bucket}/{self._key(name)}", name=name)
        return head

    def size(self, name: str) -> int:
        """The object's size in bytes (a HEAD request); ChunkNotFoundError if it is absent."""
        return int(self._head_or_missing(name)["ContentLength"])

    def mtime(self, name: str) -> float:
        """The object's LastModified, in seconds since the epoch (whole seconds on most servers)."""
        return float(self._head_or_missing(name)["LastModified"].timestamp())

    def touch(self, name: str) -> bool:
        """Refresh the object's LastModified by copying it onto itself; False if it is not there.

        The copy happens inside the server (no chunk bytes travel). Our
        objects carry no metadata of their own, so replacing it keeps them
        as they were.
        """
        key = self._key(name)
        source = {"Bucket": self.bucket, "Key": key}
        if self._locks is not None:
            self._locks.check()  # a refresh protects the chunk from gc only under the writers' lock
        try:
            self._call(
                "refresh",
                key,
                lambda: self._client.copy_object(
                    Bucket=self.bucket, Key=key, CopySource=source, MetadataDirective="REPLACE"
                ),
            )
        except self._errors.ClientError:
            return False
        return True

    def delete(self, name: str) -> None:
        """Delete the object; an absent one is not an error."""
        key = self._key(name)
        with contextlib.suppress(self._errors.ClientError):  # missing: nothing to do
            self._call("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key))

    def quarantine(self, name: str) -> str:
        """Delete a damaged object (a bucket has no place to set it aside); says what was done.

        The object is read again first and kept if it now matches its
        name, so a chunk is never deleted because of a passing failure
        (one that persists raises StoreError, and nothing is deleted).
        """
        where = f"s3://{self.bucket}/{self._key(name)}"
        try:
            self.get(name)
        except ChunkIntegrityError:
            self.delete(name)
            return f"deleted {where}"
        except ChunkNotFoundError:
            return "not in the store"
        return f"kept {where}: it reads back sound now"

    def _pages(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            options: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
            if token:
                options["ContinuationToken"] = token
            list_page = functools.partial(self._client.list_objects_v2, **options)
            try:
                page = self._call("list", self.prefix or "/", list_page)
            except self._errors.ClientError as exc:
                raise self._fail("list", self.prefix or "/", exc) from exc
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def __iter__(self) -> Iterator[str]:
        for entry in self.scan():
            yield entry.name

    def scan(self) -> Iterator[ChunkEntry]:
        """(name, size, LastModified) of every chunk object, from the listing."""
        for page in self._pages():
            for item in page.get("Contents", ()):
                name = item["Key"][len(self.prefix) :]
                # Lock objects (PREFIX/locks/...) and clock probes are never chunks.
                if not name.startswith(LOCK_FOLDER) and is_chunk_name(name):
                    yield ChunkEntry(name, item["Size"], item["LastModified"].timestamp())

    def writing(self) -> AbstractContextManager[Any]:
        """A shared lock object under PREFIX/locks/, kept fresh while held; waits out a running gc."""
        self._probe_early()  # the first chunk's PUT needs its answer: ask while the lock is taken
        return contextlib.nullcontext() if self._locks is None else self._locks.shared()

    def begin_writing(self) -> AbstractContextManager[Any]:
        """:meth:`writing`, taken while the block starts its work (its two round trips are hidden).

        Each put and refresh in the block first waits until the lock is
        held, which waits out a running gc (StoreBusyError after
        ``lock_wait``). A block that never needed it gives it up.
        """
        self._probe_early()
        return contextlib.nullcontext() if self._locks is None else self._locks.shared(early=True)

    def collecting(self, timeout: float = 60.0) -> AbstractContextManager[Any]:
        """An exclusive lock object; StoreBusyError naming the holders after timeout seconds."""
        return contextlib.nullcontext() if self._locks is None else self._locks.exclusive(timeout)

    def lock_space(self) -> LockSpace:
        """Where this store's lock objects live (``self-encryption locks`` lists them)."""
        return S3LockSpace(self)

    def now(self) -> float:
        """The server's current time, in seconds since the epoch: the clock its LastModified stamps follow.

        Taken from the Date header of an answer (whole seconds, so up to a
        second early: ages judged against it err young), or where a server
        sends none, from the stamp of a probe object written for the purpose.
        """
        answer = self._call("clock", "", lambda: self._client.head_bucket(Bucket=self.bucket))
        stamp = answer_time(answer)
        if stamp is not None:
            return stamp
        key = f"{self.prefix}.clock-{os.urandom(8).hex()}"  # neither a chunk nor a lock
        self._call("probe", key, lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=b""))
        try:
            head = self._call("probe", key, lambda: self._client.head_object(Bucket=self.bucket, Key=key))
            return float(head["LastModified"].timestamp())
        finally:
            with contextlib.suppress(self._errors.ClientError, StoreError):
                self._call("probe", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key))

    def check(self, *, create: bool = False, background: bool = False) -> None:
        """Raise StoreError unless the bucket can be reached; with ``create``, make a missing bucket.

        With ``background`` the check runs on a thread of its own, beside
        the store's first requests, which then do not wait a round trip for
        it. Its failure is then raised by the first request that fails (in
        place of that request's own error, which says less: a missing bucket
        looks like a missing chunk), or else by the next request after it.
        A request refused because the bucket did not exist yet is tried
        again once the check has made it.
        """
        if not background:
            self._check_now(create)
            return
        check: Future[None] = Future()

        def run() -> None:
            try:
                self._check_now(create)
            except BaseException as exc:
                check.set_exception(exc)
            else:
                check.set_result(None)
                self._check = None  # passed: requests no longer look at it

        self._check = check
        threading.Thread(target=run, name="self-encryption-s3-check", daemon=True).start()

    def _check_now(self, create: bool) -> None:
        try:
            self._call("check", "", lambda: self._client.head_bucket(Bucket=self.bucket))
        except self._errors.ClientError as exc:
            if not self._missing(exc) and str(exc.response.get("Error", {}).get("Code")) != "NoSuchBucket":
                raise self._fail("check", "", exc) from exc
            if not create:
                raise StoreError(
                    f"bucket {self.bucket} does not exist (at {self._client.meta.endpoint_url}): "
                    "check the name and --endpoint-url, or create it"
                ) from None
            self._call("create", "", lambda: self._client.create_bucket(Bucket=self.bucket))
            self._bucket_made_at = time.monotonic()


#: Answers that say a body did not match its checksum: a damaged body, not a refused header.
_DIGEST_ERRORS = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector while botocore loads and builds a client.

    That makes some hundred thousand objects, none of them garbage, and the
    collector would walk them over and over meanwhile: about a sixth of a
    store's setup (49 of 280 ms here; 21 with it held, one pass once it
    runs again), paid by every command. It runs again afterwards if it ran
    before; another thread's cycles wait that long.
    """
    was_running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_running:
            gc.enable()


def _new_client(
    endpoint_url: str | None, max_attempts: int, pool: int, client_options: dict[str, Any]
) -> Any:
    """A botocore S3 client with the store's settings; a setting botocore refuses is our own error."""
    # botocore's own session makes the same client as boto3's, a tenth of a second sooner.
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    options: dict[str, Any] = {}
    if "request_checksum_calculation" in Config.OPTION_DEFAULTS:  # botocore >= 1.36
        # A chunk PUT carries its name as ChecksumSHA256 (see put), so botocore adds no
        # CRC32 of its own; reads check names, not S3 checksums.
        options.update(
            request_checksum_calculation="when_required", response_checksum_validation="when_required"
        )
    config = Config(
        retries={"total_max_attempts": max_attempts, "mode": "adaptive"},
        max_pool_connections=pool,
        parameter_validation=False,  # every parameter is made here, checked as it is
        **options,
    )
    client_options = dict(client_options)
    if client_options.get("config") is not None:
        config = config.merge(client_options.pop("config"))
    session = botocore.session.Session()
    _parse_times_quickly(session)
    try:
        client = session.create_client(
            "s3",
            endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
            **{**client_options, "config": config},
        )
    except ValueError as exc:  # "Invalid endpoint: ..."
        raise InvalidArgumentError(f"S3 settings refused: {exc}") from None
    except BotoCoreError as exc:  # a profile not found, a region that is no region...
        raise StoreError(f"cannot make an S3 client: {exc}") from None
    _send_bodies_at_once(client)
    return client


def _checksum_header_refused(exc: Any) -> bool:
    """Whether a PUT's error says the server does not take the ChecksumSHA256 header at all."""
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    error = response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).lower()
    if status not in (400, 501) or code in _DIGEST_ERRORS:
        return False
    return code == "NotImplemented" or "checksum" in message or "x-amz-checksum" in message


def _parse_times_quickly(session: Any) -> None:
    """Make session's clients read HTTP dates (Last-Modified) with the standard library.

    botocore's own parser (dateutil) takes a fifth of a millisecond a
    date: a fifth of what a HEAD or GET costs us. Other forms (the ISO
    dates of a listing) still go to it.
    """
    with contextlib.suppress(ImportError, AttributeError):
        from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

        def parse(value: Any) -> Any:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return DEFAULT_TIMESTAMP_PARSER(value)
            # "-0000" gives a naive time; HTTP dates are GMT.
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.timezone.utc)

        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse)


def _send_bodies_at_once(client: Any) -> None:
    """Make client send each PUT's body with its headers, without asking first (no ``Expect: 100-continue``).

    botocore asks for every body, which costs a round trip per PUT before
    a byte of it is sent: a chunk is at most a few MiB, so sending it
    straight away is cheaper, even when the server then refuses it.
    """
    with contextlib.suppress(ImportError, AttributeError):
        from botocore.handlers import add_expect_header

        client.meta.events.unregister("before-call.s3", add_expect_header)


def _body(data: Buffer) -> bytes | bytearray:
    """What botocore sends: bytes and bytearrays as they are (no copy held for the request's time)."""
    return data if isinstance(data, (bytes, bytearray)) else bytes(data)
