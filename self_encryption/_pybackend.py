"""Pure-Python backend: hashlib, hmac and pycryptodome, with a plain cut loop.

It exists to verify the C backend (the two must agree byte for byte) and to
keep the package usable where the compiled module is missing. Its cut search
runs at Python speed, a few MB/s.
"""

from __future__ import annotations

import hashlib
import hmac
from array import array
from collections.abc import Iterable
from typing import Any

from Crypto.Cipher import AES

from ._buffers import Buffer
from ._errors import ChunkIntegrityError, InvalidArgumentError

NAME = "python"

_GEAR_LABEL = b"self-encryption/1 gear"
_CHUNK_LABEL = b"self-encryption/1 chunk"
_KEY_LABEL = b"aes-256-ctr key"
_IV_LABEL = b"aes-256-ctr iv"
_PAD_LABEL = b"pad"
_ZERO_COUNTER = bytes(16)
_U64 = (1 << 64) - 1


def sha256(data: Buffer) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: Buffer, data: Buffer) -> bytes:
    return hmac.new(bytes(key), data, hashlib.sha256).digest()


def aes256_ctr(key: Buffer, counter_block: Buffer, data: Buffer) -> bytearray:
    """AES-256-CTR over data; the whole 16-byte block is the counter."""
    cipher = AES.new(bytes(key), AES.MODE_CTR, nonce=b"", initial_value=bytes(counter_block))
    out = bytearray(memoryview(data).nbytes)
    cipher.encrypt(memoryview(data), output=out)
    return out


class GearTable:
    """The 256 gear values of docs/format.md 2.1 for one convergence secret."""

    __slots__ = ("values",)

    def __init__(self, secret: bytes) -> None:
        self.values = tuple(
            int.from_bytes(hmac_sha256(secret, _GEAR_LABEL + bytes([b]))[:8], "little") for b in range(256)
        )


def _top_bits(count: int) -> int:
    return (_U64 >> (64 - count)) << (64 - count)


def find_cut(
    table: GearTable, data: Buffer, min_size: int, avg_size: int, max_size: int, at_end: bool
) -> int:
    """Length of the next chunk at the start of data, or 0 if more bytes could move it."""
    length = memoryview(data).nbytes
    if length <= min_size:
        return length if at_end else 0
    gear = table.values
    bits = avg_size.bit_length() - 1
    end = min(max_size, length)
    normal = min(avg_size, end)
    view = memoryview(data).cast("B")
    fp = 0
    mask = _top_bits(bits + 2)
    for i, byte in enumerate(view[min_size:normal], min_size):
        fp = ((fp << 1) + gear[byte]) & _U64
        if not fp & mask:
            return i + 1
    mask = _top_bits(bits - 2)
    for i, byte in enumerate(view[normal:end], normal):
        fp = ((fp << 1) + gear[byte]) & _U64
        if not fp & mask:
            return i + 1
    return end if at_end or end == max_size else 0


def key_seed(secret: bytes, kind: int, body: Buffer) -> bytes:
    digest = hashlib.sha256(bytes((kind,)))
    digest.update(body)
    return hmac_sha256(secret, _CHUNK_LABEL + digest.digest())


def _chunk_keys(seed: bytes, prev1: bytes, prev2: bytes) -> tuple[bytes, bytes, bytes]:
    key = hmac_sha256(seed, _KEY_LABEL)
    counter_block = hmac_sha256(seed, _IV_LABEL)[:16]
    pad = hmac_sha256(prev1, _PAD_LABEL + bytes(prev2))
    return key, counter_block, pad


def seal(seed: bytes, prev1: bytes, prev2: bytes, kind: int, body: Buffer) -> tuple[bytearray, bytes]:
    """Encrypt and obfuscate payload kind || body; returns (content, name)."""
    key, counter_block, pad = _chunk_keys(seed, prev1, prev2)
    inner = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=counter_block)
    masked = AES.new(pad, AES.MODE_CTR, nonce=b"", initial_value=_ZERO_COUNTER)
    content = bytearray(masked.encrypt(inner.encrypt(bytes((kind,))) + inner.encrypt(memoryview(body))))
    return content, sha256(content)


def open_chunk(
    seed: bytes, prev1: bytes, prev2: bytes, content: Buffer, name: bytes, out: Buffer | None = None
) -> memoryview:
    """Check content against its name, then return the payload it seals.

    The payload is written into ``out`` (a writable buffer at least as long
    as content) when given, else into a new bytearray.
    """
    if not hmac.compare_digest(sha256(content), bytes(name)):
        raise ChunkIntegrityError("chunk content does not match its name")
    key, counter_block, pad = _chunk_keys(seed, prev1, prev2)
    content = memoryview(content)
    payload = memoryview(bytearray(content.nbytes) if out is None else out)[: content.nbytes]
    AES.new(pad, AES.MODE_CTR, nonce=b"", initial_value=_ZERO_COUNTER).encrypt(content, output=payload)
    AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=counter_block).encrypt(payload, output=payload)
    return payload


# ----------------------------------------------------------- batch cut search
# The reference for csrc/se_cut.c. A candidate is a position i whose 64-byte
# windowed fingerprint W(i) passes MASK_L, stored as (i << 1) | (1 if W(i)
# passes MASK_S too); W(i) sums GEAR[data[i-k]] << k for k = 0..min(i, 63).

_WINDOW = 63


def cut_path(path: str | None = None) -> str:
    """This backend has one cut path, a Python loop."""
    return "python"


def _check_sizes(min_size: int, avg_size: int, max_size: int | None = None) -> None:
    if not (avg_size >= 256 and avg_size & (avg_size - 1) == 0 and avg_size <= 1 << 31):
        raise InvalidArgumentError(f"avg_size {avg_size} is not a power of two in 256 .. 2^31")
    if max_size is not None and not 64 <= min_size <= avg_size <= max_size <= 1 << 31:
        raise InvalidArgumentError(f"chunk sizes {min_size}, {avg_size}, {max_size} are out of range")


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
    """Every chunk length that repeated find_cut calls give from the start of data."""
    _check_sizes(min_size, avg_size, max_size)
    if limit is not None and limit < 1:
        raise InvalidArgumentError("limit must be at least 1")
    view = memoryview(data).cast("B")
    cuts: list[int] = []
    start = 0
    while start < len(view) and (limit is None or len(cuts) < limit):
        cut = find_cut(table, view[start:], min_size, avg_size, max_size, at_end)
        if not cut:
            break
        cuts.append(cut)
        start += cut
    return cuts


def scan_candidates(
    table: GearTable, data: Buffer, start: int, stop: int, avg_size: int, *, path: str | None = None
) -> array[int]:
    """The candidates of positions start .. stop-1 of data, as array('Q')."""
    _check_sizes(64, avg_size)
    view = memoryview(data).cast("B")
    if not 0 <= start <= stop <= len(view):
        raise InvalidArgumentError(f"segment {start} .. {stop} is not inside 0 .. {len(view)}")
    gear = table.values
    bits = avg_size.bit_length() - 1
    mask_s, mask_l = _top_bits(bits + 2), _top_bits(bits - 2)
    found = array("Q")
    fp = 0
    for byte in view[max(start - _WINDOW, 0) : start]:
        fp = ((fp << 1) + gear[byte]) & _U64
    for i, byte in enumerate(view[start:stop], start):
        fp = ((fp << 1) + gear[byte]) & _U64
        if not fp & mask_l:
            found.append(i << 1 | (not fp & mask_s))
    return found


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

    Per chunk: the 63 positions after min are hashed from zero, as find_cut
    does; from min+63 on its fingerprint is the windowed one, so the first
    candidate there that passes the mask in force (MASK_S before avg, MASK_L
    after) is the cut.
    """
    _check_sizes(min_size, avg_size, max_size)
    view = memoryview(data).cast("B")
    length = len(view)
    if isinstance(candidates, array) or any(isinstance(part, int) for part in candidates):
        entries = list(candidates)
    else:
        entries = [entry for part in candidates for entry in part]
    positions = [entry >> 1 for entry in entries]
    if any(pos >= length for pos in positions) or any(a >= b for a, b in zip(positions, positions[1:])):
        raise InvalidArgumentError("candidates must be strictly increasing positions inside data")
    if not 0 <= start <= length:
        raise InvalidArgumentError(f"start {start} is not inside 0 .. {length}")
    gear = table.values
    bits = avg_size.bit_length() - 1
    mask_s, mask_l = _top_bits(bits + 2), _top_bits(bits - 2)
    cuts = []
    cursor = 0
    s = start
    while s < length:
        remaining = length - s
        cut = 0
        if remaining <= min_size:
            cut = remaining if at_end else 0
        else:
            end = min(max_size, remaining)
            exact_end = min(min_size + _WINDOW, end)
            fp = 0
            for i in range(s + min_size, s + exact_end):
                fp = ((fp << 1) + gear[view[i]]) & _U64
                if not fp & (mask_s if i - s < avg_size else mask_l):
                    cut = i - s + 1
                    break
            if not cut and exact_end < end:
                first, stop = s + exact_end, s + end
                while cursor < len(entries) and positions[cursor] < first:
                    cursor += 1
                k = cursor
                while k < len(entries) and positions[k] < stop:
                    if positions[k] >= s + avg_size or entries[k] & 1:
                        cut = positions[k] - s + 1
                        break
                    k += 1
            if not cut and (end == max_size or at_end):
                cut = end
        if not cut:
            break
        cuts.append(cut)
        s += cut
    return cuts
