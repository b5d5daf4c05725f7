"""The lock objects of an S3 store: under ``PREFIX/locks/`` in its bucket, timed by the server's clock.

The protocol itself is in :mod:`.locks`; this is where its objects
live in a bucket. Every age is the server's: an object's LastModified (the
server stamps it) against the Date header of the server's answer.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
from typing import TYPE_CHECKING, Any

from .locks import LockListing

if TYPE_CHECKING:
    from .s3_requests import S3Requests

#: Where lock objects live, under the store's prefix; no chunk name contains a slash.
LOCK_FOLDER = "locks/"


def answer_time(response: dict[str, Any]) -> float | None:
    """The server's time from an answer's Date header (whole seconds, rounded down), if it has one."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    text = headers.get("date")
    if not isinstance(text, str):
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


class S3LockSpace:
    """Lock objects at ``s3://BUCKET/PREFIX/locks/ID``."""

    def __init__(self, store: S3Requests) -> None:
        self._store = store
        self._client = store._client
        self._bucket = store.bucket
        self.prefix = store.prefix + LOCK_FOLDER
        self.where = f"s3://{store.bucket}/{self.prefix}"

    def _key(self, lock_id: str) -> str:
        return self.prefix + lock_id

    def create(self, lock_id: str, body: bytes) -> None:
        key = self._key(lock_id)
        self._store._call(
            "lock", key, lambda: self._client.put_object(Bucket=self._bucket, Key=key, Body=body)
        )

    def refresh(self, lock_id: str, body: bytes) -> bool:
        key = self._key(lock_id)
        try:
            self._store._call("lock", key, lambda: self._client.head_object(Bucket=self._bucket, Key=key))
        except self._store._errors.ClientError:  # only a missing object gets here
            return False
        self.create(lock_id, body)
        return True

    def delete(self, lock_id: str) -> None:
        key = self._key(lock_id)
        with contextlib.suppress(self._store._errors.ClientError):
            self._store._call("unlock", key, lambda: self._client.delete_object(Bucket=self._bucket, Key=key))

    def listing(self) -> LockListing:
        stamps: dict[str, float] = {}
        now: float | None = None
        token: str | None = None
        while True:
            options: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self.prefix}
            if token:
                options["ContinuationToken"] = token
            request = functools.partial(self._client.list_objects_v2, **options)
            try:
                page = self._store._call("list", self.prefix, request)
            except self._store._errors.ClientError as exc:
                raise self._store._fail("list", self.prefix, exc) from exc
            now = answer_time(page) or now
            for item in page.get("Contents", ()):
                lock_id = item["Key"][len(self.prefix) :]
                if lock_id and "/" not in lock_id:
                    stamps[lock_id] = item["LastModified"].timestamp()
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        # The Date header has whole seconds: an object stamped since is newer than it says.
        newest = max(stamps.values(), default=None)
        if now is None:
            now = newest if newest is not None else self._store.now()
        elif newest is not None:
            now = max(now, newest)
        return LockListing(stamps, now)

    def read(self, lock_id: str, limit: int) -> bytes | None:
        key = self._key(lock_id)

        def fetch() -> bytes:
            answer = self._client.get_object(Bucket=self._bucket, Key=key, Range=f"bytes=0-{limit - 1}")
            body = answer["Body"]
            try:
                return bytes(body.read(limit))
            finally:
                body.close()

        try:
            return self._store._call("read lock", key, fetch)
        except self._store._errors.ClientError:
            return None
