"""How S3Store makes a request: botocore's quick attempts, then retries with growing pauses.

A transient failure (throttling, a 5xx answer, a lost or refused
connection, an answer cut short, an attempt past its deadline) is tried
again until ``retry_seconds`` have passed since the request began; a
missing object or a refusal (4xx) is not. A silence longer than
``RETRY_NOTICE`` seconds is said once per store, as a warning on the
``self_encryption.stores.s3`` logger (the command line prints it on
stderr), so that a wrong endpoint does not look like a hang.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from .._errors import SelfEncryptionError, StoreError
from .._workers import result as wait_for
from .s3_deadlines import Deadlines, RequestDeadlineError

#: Attempts per request, the first included, that botocore makes at once (quick retries).
MAX_ATTEMPTS = 8
#: Seconds a request keeps being retried, with growing pauses, before it fails.
RETRY_SECONDS = 120.0
#: Longest time one request attempt may take, all its bytes included (a trickling server is cut off).
REQUEST_SECONDS = 300.0
#: Longest pause between two rounds of attempts.
_MAX_PAUSE = 10.0
_MISSING = {"404", "NoSuchKey", "NotFound"}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "BandwidthLimitExceeded",
}
#: Seconds of failed attempts after which a store says, once, that it is retrying.
RETRY_NOTICE = 5.0
#: The actions of the bucket's own check (which never wait for it).
_CHECKING = frozenset({"check", "create"})

T = TypeVar("T")

_log = logging.getLogger("self_encryption.stores.s3")


class S3Requests:
    """The request policy of an S3 store (a base of :class:`~self_encryption.S3Store`)."""

    bucket: str
    prefix: str
    retry_seconds: float
    request_timeout: float
    _deadlines: Deadlines
    _errors: _BotocoreErrors
    _client: Any

    def now(self) -> float:
        """The server's clock, in seconds since the epoch (the store defines how it reads it)."""
        raise NotImplementedError

    def _init_requests(self) -> None:
        self._noticed = threading.Event()  # the retry notice was given: once per store
        #: The bucket's check, while it runs beside the first requests or after it failed
        #: (S3Store.check(background=True)); None once it passed, or when it was made at once.
        self._check: Future[None] | None = None
        self._bucket_made_at: float | None = None  # when the check made the bucket (monotonic)

    def _check_failure(self) -> None:
        """Raise a background check's failure once it is known."""
        check = self._check
        if check is not None and check.done():
            check.result()

    def _wait_for_check(self) -> None:
        """Wait for a background check still running (Ctrl-C still taken), and raise its failure."""
        check = self._check
        if check is not None:
            wait_for(check)

    def _check_explains(self, action: str, started: float) -> bool:
        """After a request failed: whether to try it again because the check made the bucket since.

        A check still running is waited for, and its failure raised: it says
        what is wrong (no such bucket, a wrong endpoint) where the request's
        own error would not.
        """
        if action in _CHECKING:
            return False  # the check's own requests
        self._wait_for_check()
        made = self._bucket_made_at
        return made is not None and made >= started

    def _fail(self, action: str, key: str, exc: Exception, waited: float = 0.0) -> StoreError:
        if isinstance(exc, self._errors.ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')} {error.get('Message', '')}".strip()
        elif isinstance(exc, ValueError):
            detail = f"unreadable answer ({exc})"
        else:
            detail = str(exc)
        retried = f" (retried for {waited:.0f} s)" if waited >= 1 else ""
        return StoreError(f"S3 {action} of s3://{self.bucket}/{key} failed: {detail}{retried}")

    def _missing(self, exc: Exception) -> bool:
        return (
            isinstance(exc, self._errors.ClientError)
            and str(exc.response.get("Error", {}).get("Code")) in _MISSING
        )

    def _transient(self, exc: Exception) -> bool:
        """Whether trying again later may succeed: the server or the way to it was in trouble."""
        if isinstance(exc, self._errors.ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            code = str(exc.response.get("Error", {}).get("Code"))
            return status >= 500 or status == 429 or code in _TRANSIENT_CODES
        return isinstance(exc, self._errors.transient)

    def _call(self, action: str, key: str, request: Callable[[], T]) -> T:
        """request(), retried while the failure is transient and retry_seconds have not passed.

        A missing object is not retried: its ClientError goes to the caller.
        """
        if action not in _CHECKING:
            self._check_failure()
        started = time.monotonic()
        pause = 0.5
        once_made = False  # tried again because the check made the bucket
        ends_at = None if self.retry_seconds == 0 else started + self.retry_seconds
        with self._deadlines.bound(self.request_timeout, ends_at) as watch:
            while True:
                try:
                    return request()
                except (*self._errors.caught, RequestDeadlineError) as caught:
                    exc: Exception = caught
                    if watch.fired and not isinstance(exc, (self._errors.ClientError, RequestDeadlineError)):
                        exc = RequestDeadlineError(f"no complete answer within {watch.bound:g} s")
                        exc.__cause__ = caught
                except ValueError as caught:
                    if isinstance(caught, SelfEncryptionError):
                        raise
                    # botocore's parser on a header it cannot read (a Content-Length of "1e3"): the answer's fault.
                    raise self._fail(action, key, caught, time.monotonic() - started) from caught
                finally:
                    self._deadlines.disarm(watch)
                waited = time.monotonic() - started
                if not isinstance(exc, RequestDeadlineError) and not self._transient(exc):
                    if not once_made and self._check_explains(action, started):
                        once_made = True
                        continue
                    if self._missing(exc):
                        raise exc
                    raise self._fail(action, key, exc, waited) from exc
                if waited >= RETRY_NOTICE and not self._noticed.is_set():
                    self._noticed.set()
                    _log.warning(
                        "no answer from s3://%s yet (%s); retrying for up to %g s in all "
                        "(check --endpoint-url, or the network)",
                        self.bucket,
                        _short(exc),
                        self.retry_seconds,
                    )
                if action not in _CHECKING:
                    self._check_failure()  # a check that failed meanwhile says why, and ends the wait
                sleep = min(pause, _MAX_PAUSE) * random.uniform(0.5, 1.0)
                if waited + sleep > self.retry_seconds:
                    raise self._fail(action, key, exc, waited) from exc
                time.sleep(sleep)
                pause *= 2


def _short(exc: Exception) -> str:
    """A failure in a few words, for the retry notice."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


class _BotocoreErrors:
    def __init__(self) -> None:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            IncompleteReadError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )
        from urllib3.exceptions import HTTPError as URLLib3Error

        self.ClientError = ClientError
        self.IncompleteReadError = IncompleteReadError
        # botocore lets urllib3's own errors through where it reads an error's body
        # (a connection reset then comes as urllib3's ProtocolError).
        self.caught = (ClientError, BotoCoreError, URLLib3Error)
        # Timeouts, refused and reset connections, truncated answers.
        self.transient = (BotoConnectionError, HTTPClientError, IncompleteReadError, URLLib3Error)


def botocore_errors() -> _BotocoreErrors:
    try:
        return _BotocoreErrors()
    except ImportError:
        raise StoreError("S3Store needs boto3: pip install 'self-encryption-cffi[s3]'") from None


def sha256_checksum(hex_digest: str) -> str:
    """An S3 ``ChecksumSHA256`` value (base64) from a hex SHA-256, such as a chunk's name.

    Sent with every chunk PUT: the server checks the body against it where
    it checks checksums, and botocore then adds no CRC32 of its own (nor,
    over HTTPS, a hash of the body for the signature).
    """
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")
