"""Store URLs: what ``--store`` and :func:`open_store` accept, and the store each names."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from .._errors import InvalidArgumentError
from .folder import DirStore
from .memory import MemoryStore
from .protocol import ChunkStore
from .s3 import S3Store


def _memory_store(rest: str, create: bool, options: dict[str, Any]) -> MemoryStore:
    if rest.strip("/"):
        raise InvalidArgumentError("a memory store takes no path: write memory:")
    return MemoryStore(**options)


def _dir_store(path: str, create: bool, options: dict[str, Any]) -> DirStore:
    if not path:
        raise InvalidArgumentError("a folder store needs a path")
    return DirStore(path, create=create, **options)


def _s3_store(rest: str, create: bool, options: dict[str, Any]) -> S3Store:
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidArgumentError("an S3 store is s3://BUCKET or s3://BUCKET/PREFIX")
    wait = options.pop("wait_for_check", True)
    store = S3Store(bucket, prefix, **options)
    store.check(create=create, background=not wait)
    return store


#: Store URL schemes: "scheme:rest" -> a function of (rest, create, options) giving a store.
#: Anything else is a folder path.
_SCHEMES: dict[str, Callable[[str, bool, dict[str, Any]], ChunkStore]] = {
    "memory": _memory_store,
    "file": _dir_store,
    "s3": _s3_store,
}
_URL = re.compile(r"^([a-z][a-z0-9+.-]*):(//)?(.*)$", re.S)


def open_store(
    url: str | os.PathLike[str], *, create: bool = False, wait_for_check: bool = True, **options: Any
) -> ChunkStore:
    """The store a URL names: a folder path, ``file:PATH``, ``s3://BUCKET[/PREFIX]`` or ``memory:``.

    ``create`` makes a missing folder store, or a missing S3 bucket. Other keyword options go to the
    store's class (``fsync`` for folders; ``endpoint_url``, ``max_workers``,
    ``max_attempts``, ``retry_seconds`` and boto3 client options for S3). An S3 store is
    checked before it is returned, so a wrong bucket or endpoint fails here
    ("bucket ... does not exist" for a missing one, without ``create``). With
    ``wait_for_check=False`` that check runs beside the store's first
    requests instead (a round trip sooner; see :meth:`S3Store.check`): the
    same error then comes from the first request that fails.
    """
    if isinstance(url, os.PathLike):
        return _dir_store(os.fspath(url), create, options)
    if not isinstance(url, str):
        raise InvalidArgumentError(f"a store URL must be a str or a path, not {type(url).__name__}")
    match = _URL.match(url)
    # "C:\\folder" is a Windows path, not a scheme: schemes are longer than a letter.
    if match and len(match.group(1)) > 1 and (match.group(1) in _SCHEMES or match.group(2)):
        scheme, rest = match.group(1), match.group(3)
        factory = _SCHEMES.get(scheme)
        if factory is None:
            raise InvalidArgumentError(
                f"unknown store scheme {scheme!r} (known: {', '.join(sorted(_SCHEMES))}, or a folder path)"
            )
        if scheme == "s3":  # the only store with a check to wait for
            options = {**options, "wait_for_check": wait_for_check}
        store: ChunkStore = factory(rest, create, options)
        return store
    return _dir_store(url, create, options)
