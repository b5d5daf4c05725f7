"""C backend: thin wrappers over ``self_encryption._native`` (csrc/se_core.c).

Inputs are passed with ``ffi.from_buffer`` (no copies); outputs are written
straight into the objects returned. Status codes become exceptions in
:func:`_check`; only :func:`cut_path` reads one itself, since there a
refusal means the scan path asked for is not available on this CPU.

At import, the compiled core must have been built for this package version
(:func:`check_package_version`), the check pyca/cryptography makes of its
compiled bindings.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from ._buffers import Buffer
from ._errors import ChunkIntegrityError, InvalidArgumentError, SelfEncryptionError
from ._native import ffi, lib
from ._version import __version__

NAME = "c"

#: Bytes in a key seed, chunk name, digest or AES-256 key.
HASH_SIZE: int = lib.SE_HASH_SIZE
#: Bytes in an AES-CTR counter block.
IV_SIZE: int = lib.SE_IV_SIZE


def built_for_version() -> str:
    """The package version the compiled core was built for."""
    return str(ffi.string(lib.se_package_version()).decode("ascii", "replace"))


class StaleCoreError(ImportError):
    """The compiled C core was built for another version of the package.

    Unlike a missing core, this is not a reason to fall back quietly to the
    pure-Python backend: the install is broken and should be repaired.
    """


def check_package_version(built_for: str, package: str = __version__) -> None:
    """Raise ImportError unless the C core was built for this package version.

    A stale ``_native`` module (an old build left in a source checkout, or
    files of two installs mixed) would otherwise run silently.
    """
    if built_for != package:
        raise StaleCoreError(
            f"the compiled C core self_encryption._native was built for version {built_for} "
            f"but the package is version {package}; rebuild with "
            "pip install --force-reinstall --no-cache-dir self-encryption-cffi "
            "(or pip install -e . in a source checkout), "
            "or set SELF_ENCRYPTION_BACKEND=python to run without it"
        )


check_package_version(built_for_version())


def openssl_versions() -> tuple[str, str]:
    """(the OpenSSL version compiled against, the one loaded at run time)."""
    return (
        str(ffi.string(lib.se_openssl_build_version()).decode()),
        str(ffi.string(lib.se_openssl_run_version()).decode()),
    )


def crypto_error_text() -> str:
    """OpenSSL's reasons for the last libcrypto failure on this thread; empties its error queue."""
    text = ffi.new("char[]", lib.SE_ERROR_TEXT_SIZE)
    if lib.se_last_crypto_error(text, lib.SE_ERROR_TEXT_SIZE) == 0:
        return "OpenSSL gave no reason"
    return str(ffi.string(text).decode("utf-8", "replace"))


def _check(status: int) -> None:
    if status == lib.SE_OK:
        return
    if status == lib.SE_ERR_INTEGRITY:
        raise ChunkIntegrityError("chunk content does not match its name")
    if status == lib.SE_ERR_ARGUMENT:
        raise InvalidArgumentError("the C core refused its arguments")
    if status == lib.SE_ERR_CRYPTO:
        # Called on the thread that made the failed call: the queue is per thread.
        raise SelfEncryptionError(f"libcrypto reported a failure: {crypto_error_text()}")
    raise SelfEncryptionError(f"the C core returned unknown status {status}")


def _digest_of(call: Callable[..., int], *args: Any) -> bytes:
    out = bytearray(HASH_SIZE)
    _check(call(*args, ffi.from_buffer(out)))
    return bytes(out)


def _in(data: Buffer) -> Any:
    return ffi.from_buffer(data)


def _fixed(value: Buffer, size: int, what: str) -> Any:
    value = memoryview(value)
    if len(value) != size:
        raise InvalidArgumentError(f"{what} must be {size} bytes, not {len(value)}")
    return ffi.from_buffer(value)


def sha256(data: Buffer) -> bytes:
    view = memoryview(data)
    return _digest_of(lib.se_sha256, _in(view), view.nbytes)


def hmac_sha256(key: Buffer, data: Buffer) -> bytes:
    key_view, view = memoryview(key), memoryview(data)
    return _digest_of(lib.se_hmac_sha256, _in(key_view), key_view.nbytes, _in(view), view.nbytes)


def aes256_ctr(key: Buffer, counter_block: Buffer, data: Buffer) -> bytearray:
    """AES-256-CTR over data; the whole 16-byte block is the counter."""
    data = memoryview(data)
    out = bytearray(len(data))
    _check(
        lib.se_aes256_ctr(
            _fixed(key, HASH_SIZE, "key"),
            _fixed(counter_block, IV_SIZE, "counter block"),
            _in(data),
            len(data),
            ffi.from_buffer(out),
        )
    )
    return out


class GearTable:
    """The 256 gear values of docs/format.md 2.1 for one convergence secret."""

    __slots__ = ("table",)

    def __init__(self, secret: bytes) -> None:
        self.table = ffi.new("se_gear_table *")
        _check(lib.se_gear_init(self.table, _in(secret), len(secret)))

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(self.table.gear)


def find_cut(
    table: GearTable, data: Buffer, min_size: int, avg_size: int, max_size: int, at_end: bool
) -> int:
    """Length of the next chunk at the start of data, or 0 if more bytes could move it."""
    cut = ffi.new("size_t *")
    data = memoryview(data)
    _check(
        lib.se_find_cut(
            table.table,
            _in(data),
            len(data),
            min_size,
            avg_size,
            max_size,
            int(at_end),
            cut,
        )
    )
    return int(cut[0])


def key_seed(secret: bytes, kind: int, body: Buffer) -> bytes:
    body = memoryview(body)
    return _digest_of(lib.se_key_seed, _in(secret), len(secret), kind, _in(body), len(body))


def seal(seed: bytes, prev1: bytes, prev2: bytes, kind: int, body: Buffer) -> tuple[bytearray, bytes]:
    """Encrypt and obfuscate payload kind || body; returns (content, name)."""
    body = memoryview(body)
    content = bytearray(len(body) + 1)
    name = bytearray(HASH_SIZE)
    _check(
        lib.se_seal(
            _fixed(seed, HASH_SIZE, "key seed"),
            _fixed(prev1, HASH_SIZE, "key seed"),
            _fixed(prev2, HASH_SIZE, "key seed"),
            kind,
            _in(body),
            len(body),
            ffi.from_buffer(content),
            ffi.from_buffer(name),
        )
    )
    return content, bytes(name)


def open_chunk(
    seed: bytes, prev1: bytes, prev2: bytes, content: Buffer, name: bytes, out: Buffer | None = None
) -> memoryview:
    """Check content against its name, then return the payload it seals.

    The payload is written into ``out`` (a writable buffer at least as long
    as content) when given, else into a new bytearray.
    """
    content = memoryview(content)
    size = len(content)
    payload = memoryview(bytearray(size) if out is None else out)[:size]
    if len(payload) != size:
        raise InvalidArgumentError("the output buffer is shorter than the chunk")
    _check(
        lib.se_open(
            _fixed(seed, HASH_SIZE, "key seed"),
            _fixed(prev1, HASH_SIZE, "key seed"),
            _fixed(prev2, HASH_SIZE, "key seed"),
            _in(content),
            size,
            _fixed(name, HASH_SIZE, "name"),
            ffi.from_buffer(payload, require_writable=True),
        )
    )
    return payload


# ----------------------------------------------------------- batch cut search
# csrc/se_cut.c. A candidate is a position i whose 64-byte windowed gear
# fingerprint passes MASK_L, stored as (i << 1) | (1 if it passes MASK_S too).

CUT_VARIABLE = "SELF_ENCRYPTION_CUT"
_CUT_REQUESTS = {
    "auto": lib.SE_CUT_AUTO,
    "scalar": lib.SE_CUT_SCALAR,
    "unrolled": lib.SE_CUT_UNROLLED,
    "avx2": lib.SE_CUT_AVX2,
}


def _cut_request(path: str | None) -> int:
    """The SE_CUT_* number for path, or for SELF_ENCRYPTION_CUT when path is None."""
    name = os.environ.get(CUT_VARIABLE, "auto") if path is None else path
    name = name.strip().lower() or "auto"
    if name not in _CUT_REQUESTS:
        raise InvalidArgumentError(
            f"cut path {name!r} is not one of {', '.join(_CUT_REQUESTS)} ({CUT_VARIABLE})"
        )
    return int(_CUT_REQUESTS[name])


def cut_path(path: str | None = None) -> str:
    """The scan path the batch cut functions run on: "avx2", "unrolled" or "scalar".

    ``path`` (else ``SELF_ENCRYPTION_CUT``, default "auto") may force
    "scalar" (the reference loop), "unrolled" or "avx2".
    """
    chosen = ffi.new("int *")
    if lib.se_cut_select(_cut_request(path), chosen) != lib.SE_OK:
        raise InvalidArgumentError(f"cut path {path!r} is not available on this CPU")
    return str(ffi.string(lib.se_cut_path_name(chosen[0])).decode())


def cut_lengths(
    table: GearTable,
    data: Buffer,
    min_size: int,
    avg_size: int,
    max_size: int,
    at_end: bool,
    *,
    path: str | None = None,
    limit: int | None = None,
) -> list[int]:
    """Every chunk length that repeated find_cut calls give from the start of data.

    Stops where the remaining bytes cannot decide a cut, unless at_end, or
    after ``limit`` lengths.
    """
    if limit is not None and limit < 1:
        raise InvalidArgumentError("limit must be at least 1")
    data = memoryview(data)
    size = data.nbytes
    return _cut_list(
        lambda cuts, cap, count, consumed: lib.se_cut_lengths(
            _cut_request(path),
            table.table,
            _in(data),
            size,
            0,
            min_size,
            avg_size,
            max_size,
            int(at_end),
            cuts,
            cap,
            count,
            consumed,
        ),
        size,
        min_size,
        limit,
    )


def _cut_list(
    call: Callable[[Any, int, Any, Any], int], span: int, min_size: int, limit: int | None
) -> list[int]:
    """The lengths a C cut loop writes: call(cuts, cap, count, consumed) over span bytes.

    The buffer holds every chunk span bytes can have (each is longer than
    min bytes, but the last), or limit of them.
    """
    cap = span // max(min_size, 64) + 1
    if limit is not None:
        cap = min(cap, limit)
    cuts = ffi.new("uint64_t[]", cap)
    count = ffi.new("size_t *")
    consumed = ffi.new("size_t *")
    _check(call(cuts, cap, count, consumed))
    return [int(cut) for cut in ffi.unpack(cuts, count[0])]


def scan_candidates(
    table: GearTable, data: Buffer, start: int, stop: int, avg_size: int, *, path: str | None = None
) -> array[int]:
    """The candidates of positions start .. stop-1 of data, as array('Q').

    Reads data[start-63:stop]; separate segments (on separate threads: the
    call releases the GIL) give lists that concatenate to the whole one.
    """
    request = _cut_request(path)
    span = max(stop - start, 0)
    cap = max(1, min(span, (span >> 10) + 1024))
    buffer = ffi.new("uint64_t[]", cap)
    count = ffi.new("size_t *")
    next_at = ffi.new("size_t *")
    data = memoryview(data)
    view = _in(data)
    found = array("Q")
    at = start
    while True:
        _check(
            lib.se_cut_scan(
                request,
                table.table,
                view,
                len(data),
                at,
                stop,
                avg_size,
                buffer,
                cap,
                count,
                next_at,
            )
        )
        found.frombytes(ffi.buffer(buffer, count[0] * 8))
        if next_at[0] >= stop:
            return found
        at = next_at[0]  # the buffer filled up: go on from there


def _joined_candidates(candidates: Iterable[Any]) -> array[int]:
    if isinstance(candidates, array) and candidates.typecode == "Q":
        return candidates
    joined = array("Q")
    for part in candidates:
        if isinstance(part, int):  # a flat sequence of entries
            return array("Q", candidates)
        joined.extend(part if isinstance(part, array) and part.typecode == "Q" else array("Q", part))
    return joined


def resolve_cuts(
    table: GearTable,
    data: Buffer,
    candidates: Iterable[Any],
    min_size: int,
    avg_size: int,
    max_size: int,
    at_end: bool,
    start: int = 0,
) -> list[int]:
    """Chunk lengths from a chunk starting at offset start, given the candidates.

    ``candidates``: one array('Q') from scan_candidates, or the per-segment
    lists in order; they must cover positions start+min+63 .. len(data)-1 and
    come from the same avg_size. The result equals cut_lengths(data[start:], ...).
    """
    joined = _joined_candidates(candidates)
    data = memoryview(data)
    size = data.nbytes
    entries = ffi.from_buffer("uint64_t[]", joined) if len(joined) else ffi.NULL
    return _cut_list(
        lambda cuts, cap, count, consumed: lib.se_cut_resolve(
            table.table,
            _in(data),
            size,
            start,
            entries,
            len(joined),
            min_size,
            avg_size,
            max_size,
            int(at_end),
            cuts,
            cap,
            count,
            consumed,
        ),
        max(size - start, 0),
        min_size,
        None,
    )
