"""A chunk store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage, R2, B2...).

Chunk ``name`` lives at key ``prefix + name``. Names are the SHA-256 of the
content, so any number of machines can write to one bucket at once: equal
content lands on the same key with the same bytes, and de-duplicates.
Needs boto3: ``pip install self-encryption-cffi[s3]``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from ._errors import ChunkIntegrityError, ChunkNotFoundError, InvalidArgumentError, StoreError
from ._datamap import check_name, is_chunk_name

#: Attempts per request, the first included, before a throttled or failing call gives up.
MAX_ATTEMPTS = 8
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """Chunks as objects under ``prefix`` in ``bucket``.

    Credentials and region come from boto3's usual chain (environment,
    shared config, instance roles); ``endpoint_url`` (or the
    ``AWS_ENDPOINT_URL`` environment variable) points at a non-AWS server.
    Pass ``client`` to bring a configured boto3 S3 client of your own. The
    connection pool holds ``max_workers`` connections, so one store serves
    that many threads at once; throttling and 5xx answers are retried with
    backoff (adaptive mode, ``max_attempts`` attempts in all) before
    StoreError. A botocore ``config`` in ``client_options`` is merged over
    these settings.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client=None, max_workers: int | None = None, max_attempts: int = MAX_ATTEMPTS,
                 **client_options) -> None:
        if not bucket or not isinstance(bucket, str):
            raise InvalidArgumentError("S3Store needs a bucket name")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be a positive int, not {max_attempts!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._errors = _botocore_errors()
        if client is None:
            import boto3
            from botocore.config import Config

            pool = max(32, 2 * (max_workers or os.cpu_count() or 1) + 2)
            config = Config(retries={"total_max_attempts": max_attempts, "mode": "adaptive"},
                            max_pool_connections=pool)
            if client_options.get("config") is not None:
                config = config.merge(client_options.pop("config"))
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
                **{**client_options, "config": config})
        self._client = client

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        if isinstance(exc, self._errors.ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')} {error.get('Message', '')}".strip()
        else:
            detail = str(exc)
        return StoreError(f"S3 {action} of s3://{self.bucket}/{key} failed: {detail}")

    def _missing(self, exc: Exception) -> bool:
        return (isinstance(exc, self._errors.ClientError)
                and str(exc.response.get("Error", {}).get("Code")) in _MISSING)

    def put(self, name: str, data) -> None:
        """Store data under name. Writing the same chunk again is harmless."""
        key = self._key(name)
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
        except self._errors.caught as exc:
            raise self._fail("put", key, exc) from exc

    def get(self, name: str) -> bytes:
        """The chunk's content, checked against its name."""
        key = self._key(name)
        try:
            content = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self._errors.caught as exc:
            if self._missing(exc):
                raise ChunkNotFoundError(f"no object s3://{self.bucket}/{key}", name=name) from None
            raise self._fail("get", key, exc) from exc
        if hashlib.sha256(content).hexdigest() != name:
            raise ChunkIntegrityError(f"object s3://{self.bucket}/{key} does not match its name",
                                      name=name)
        return content

    def has(self, name: str) -> bool:
        key = self._key(name)
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except self._errors.caught as exc:
            if self._missing(exc):
                return False
            raise self._fail("head", key, exc) from exc
        return True

    def size(self, name: str) -> int:
        key = self._key(name)
        try:
            return self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        except self._errors.caught as exc:
            if self._missing(exc):
                raise ChunkNotFoundError(f"no object s3://{self.bucket}/{key}", name=name) from None
            raise self._fail("head", key, exc) from exc

    def delete(self, name: str) -> None:
        key = self._key(name)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except self._errors.caught as exc:
            if not self._missing(exc):
                raise self._fail("delete", key, exc) from exc

    def __iter__(self) -> Iterator[str]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    name = item["Key"][len(self.prefix):]
                    if is_chunk_name(name):
                        yield name
        except self._errors.caught as exc:
            raise self._fail("list", self.prefix or "/", exc) from exc

    def check(self) -> None:
        """Raise StoreError unless the bucket can be reached."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except self._errors.caught as exc:
            raise self._fail("check", "", exc) from exc


class _BotocoreErrors:
    def __init__(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.ClientError = ClientError
        self.caught = (ClientError, BotoCoreError)


def _botocore_errors() -> _BotocoreErrors:
    try:
        return _BotocoreErrors()
    except ImportError:
        raise StoreError("S3Store needs boto3: pip install 'self-encryption-cffi[s3]'") from None
