"""Opening one upstream chunk: its keys (BLAKE3), the pad, ChaCha20-Poly1305 and Brotli.

Every stored chunk is checked against its name before it is used, and every
opened chunk against its recorded size and source hash.
"""

from __future__ import annotations

from typing import TypedDict

import blake3 as _blake3
import brotli as _brotli
from Crypto.Cipher import ChaCha20_Poly1305 as _ChaCha20Poly1305

from .._errors import ChunkIntegrityError
from ._datamap import (
    DataMap,
)
from ._records import (
    U64,
    ChunkInfo,
)

_KDF_CONTEXT = "self_encryption/chunk/v2"
_PAD_SIZE = 52
_KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_DECOMPRESS_STEP = 1 << 20


class Where(TypedDict):
    """Where a chunk sits, as our chunk errors name it."""

    name: str
    index: int
    level: int | None


def located(info: ChunkInfo, level: int | None) -> Where:
    return {"name": info.name, "index": info.index, "level": level}


def stored_size_limit(src_size: int) -> int:
    # Brotli never grows its input by more than a few bytes per 16 KiB (plus a
    # small constant); the cipher adds a 16-byte tag. This is comfortably above both.
    return src_size + (src_size >> 10) + 64 + _TAG_SIZE


def _neighbours(index: int, count: int) -> tuple[int, int]:
    if index == 0:
        return count - 1, count - 2
    if index == 1:
        return 0, count - 1
    return index - 1, index - 2


def _chunk_secrets(data_map: DataMap, index: int, level: int) -> tuple[bytes, bytes, bytes]:
    """(pad, key, nonce) of a chunk: BLAKE3 in key-derivation mode over its context."""
    chunks = data_map.chunk_identifiers
    first, second = _neighbours(index, len(chunks))
    material = b"".join(
        (
            chunks[index].src_hash,
            chunks[first].src_hash,
            chunks[second].src_hash,
            U64.pack(index),
            U64.pack(level),
        )
    )
    stream = _blake3.blake3(material, derive_key_context=_KDF_CONTEXT).digest(
        length=_PAD_SIZE + _KEY_SIZE + _NONCE_SIZE
    )
    return (stream[:_PAD_SIZE], stream[_PAD_SIZE : _PAD_SIZE + _KEY_SIZE], stream[_PAD_SIZE + _KEY_SIZE :])


def _xor_pad(data: bytes, pad: bytes) -> bytes:
    size = len(data)
    if size == 0:
        return b""
    stream = (pad * (size // len(pad) + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(size, "little")


def _decompress(data: bytes, expected: int, where: Where) -> bytes:
    """Brotli-decompress at most ``expected`` bytes; more, less or a broken stream raise."""
    decompressor = _brotli.Decompressor()
    pieces = []
    produced = 0
    try:
        piece = decompressor.process(data, output_buffer_limit=_DECOMPRESS_STEP)
        while True:
            produced += len(piece)
            if produced > expected:
                raise ChunkIntegrityError(f"chunk opens to more than its recorded {expected} bytes", **where)
            pieces.append(piece)
            if decompressor.is_finished():
                break
            piece = decompressor.process(b"", output_buffer_limit=_DECOMPRESS_STEP)
            if not piece and decompressor.can_accept_more_data():
                raise ChunkIntegrityError("chunk's compressed stream is truncated", **where)
    except _brotli.error as exc:
        raise ChunkIntegrityError(f"chunk does not decompress: {exc}", **where) from None
    if produced != expected:
        raise ChunkIntegrityError(f"chunk opens to {produced} bytes, not its recorded {expected}", **where)
    return b"".join(pieces)


def check_name(info: ChunkInfo, content: bytes, level: int | None) -> None:
    if _blake3.blake3(content).digest() != info.dst_hash:
        raise ChunkIntegrityError("chunk content does not hash to its name", **located(info, level))


def unseal(data_map: DataMap, index: int, content: bytes, level: int) -> bytes | None:
    """Undo the pad and the cipher; None if the tag does not verify under these keys."""
    if len(content) < _TAG_SIZE:
        return None
    pad, key, nonce = _chunk_secrets(data_map, index, level)
    sealed = _xor_pad(content, pad)
    cipher = _ChaCha20Poly1305.new(key=key, nonce=nonce)
    try:
        return cipher.decrypt_and_verify(sealed[:-_TAG_SIZE], sealed[-_TAG_SIZE:])
    except ValueError:
        return None


def finish(info: ChunkInfo, compressed: bytes, level: int) -> bytes:
    plain = _decompress(compressed, info.src_size, located(info, level))
    if _blake3.blake3(plain).digest() != info.src_hash:
        raise ChunkIntegrityError(
            "chunk opens to bytes that do not match its src_hash", **located(info, level)
        )
    return plain


def open_chunk(data_map: DataMap, index: int, content: bytes, level: int) -> bytes:
    """Verify and open one stored chunk of a map whose chunks are at ``level``."""
    info = data_map.chunk_identifiers[index]
    check_name(info, content, level)
    compressed = unseal(data_map, index, content, level)
    if compressed is None:
        raise ChunkIntegrityError(
            "chunk does not decrypt under the keys the data map gives it "
            "(the map's source hashes do not belong to this chunk)",
            **located(info, level),
        )
    return finish(info, compressed, level)
