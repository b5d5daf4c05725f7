"""Pure-Python backend: hashlib, hmac and pycryptodome, with a plain cut loop.

It exists to verify the C backend (the two must agree byte for byte) and to
keep the package usable where the compiled module is missing. Its cut search
runs at Python speed, a few MB/s.
"""

from __future__ import annotations

import hashlib
import hmac

from Crypto.Cipher import AES

from ._errors import ChunkIntegrityError

NAME = "python"

_GEAR_LABEL = b"self-encryption/1 gear"
_CHUNK_LABEL = b"self-encryption/1 chunk"
_KEY_LABEL = b"aes-256-ctr key"
_IV_LABEL = b"aes-256-ctr iv"
_PAD_LABEL = b"pad"
_ZERO_COUNTER = bytes(16)
_U64 = (1 << 64) - 1


def sha256(data) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key, data) -> bytes:
    return hmac.new(bytes(key), data, hashlib.sha256).digest()


def aes256_ctr(key, counter_block, data) -> bytes:
    """AES-256-CTR over data; the whole 16-byte block is the counter."""
    cipher = AES.new(bytes(key), AES.MODE_CTR, nonce=b"", initial_value=bytes(counter_block))
    return cipher.encrypt(data)


class GearTable:
    """The 256 gear values of docs/format.md 2.1 for one convergence secret."""

    __slots__ = ("values",)

    def __init__(self, secret: bytes) -> None:
        self.values = tuple(
            int.from_bytes(hmac_sha256(secret, _GEAR_LABEL + bytes([b]))[:8], "little")
            for b in range(256)
        )


def _top_bits(count: int) -> int:
    return (_U64 >> (64 - count)) << (64 - count)


def find_cut(table: GearTable, data, min_size: int, avg_size: int, max_size: int, at_end: bool) -> int:
    """Length of the next chunk at the start of data, or 0 if more bytes could move it."""
    length = len(data)
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


def key_seed(secret: bytes, kind: int, body) -> bytes:
    digest = hashlib.sha256(bytes((kind,)))
    digest.update(body)
    return hmac_sha256(secret, _CHUNK_LABEL + digest.digest())


def _chunk_keys(seed: bytes, prev1: bytes, prev2: bytes) -> tuple[bytes, bytes, bytes]:
    key = hmac_sha256(seed, _KEY_LABEL)
    counter_block = hmac_sha256(seed, _IV_LABEL)[:16]
    pad = hmac_sha256(prev1, _PAD_LABEL + bytes(prev2))
    return key, counter_block, pad


def seal(seed: bytes, prev1: bytes, prev2: bytes, kind: int, body) -> tuple[bytes, bytes]:
    """Encrypt and obfuscate payload kind || body; returns (content, name)."""
    key, counter_block, pad = _chunk_keys(seed, prev1, prev2)
    inner = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=counter_block)
    masked = AES.new(pad, AES.MODE_CTR, nonce=b"", initial_value=_ZERO_COUNTER)
    content = masked.encrypt(inner.encrypt(bytes((kind,))) + inner.encrypt(body))
    return content, sha256(content)


def open_chunk(seed: bytes, prev1: bytes, prev2: bytes, content, name: bytes, out=None):
    """Check content against its name, then return the payload it seals.

    The payload is written into ``out`` (a writable buffer at least as long
    as content) when given, else into a new bytearray.
    """
    if not hmac.compare_digest(sha256(content), bytes(name)):
        raise ChunkIntegrityError("chunk content does not match its name")
    key, counter_block, pad = _chunk_keys(seed, prev1, prev2)
    payload = memoryview(bytearray(len(content)) if out is None else out)[:len(content)]
    AES.new(pad, AES.MODE_CTR, nonce=b"", initial_value=_ZERO_COUNTER).encrypt(content, output=payload)
    AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=counter_block).encrypt(payload, output=payload)
    return payload
