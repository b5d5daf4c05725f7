"""Payloads (docs/format.md 2.2): a kind byte, then the chunk raw or as one zstd frame."""

from __future__ import annotations

import threading
from typing import NamedTuple

import zstandard

from ._errors import ChunkIntegrityError

KIND_RAW = 0x00
KIND_ZSTD = 0x01


class Payload(NamedTuple):
    """What gets sealed: the kind byte and the body it describes."""

    kind: int
    body: bytes | memoryview


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """A per-thread compressor: ZstdCompressor objects are not thread-safe."""
    cache = _local.__dict__.setdefault("compressors", {})
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def encode_payload(piece: bytes | memoryview, compression_level: int | None) -> Payload:
    """The payload of one plaintext chunk: zstd only when it makes the chunk smaller."""
    if compression_level is not None:
        frame = _compressor(compression_level).compress(piece)
        if len(frame) < len(piece):
            return Payload(KIND_ZSTD, frame)
    return Payload(KIND_RAW, piece)


def decode_payload(payload, plain_size: int, out=None):
    """The plaintext of a payload; raises ChunkIntegrityError, never inflates past plain_size.

    A zstd body is inflated into ``out`` (at least plain_size + 1 bytes) when
    given; a raw body is returned as a view of the payload.
    """
    if not payload:
        raise ChunkIntegrityError("chunk payload is empty")
    kind = payload[0]
    body = memoryview(payload)[1:]
    if kind == KIND_RAW:
        plain = body
    elif kind == KIND_ZSTD:
        try:
            declared = zstandard.frame_content_size(body)
            if declared not in (plain_size, -1):
                raise ChunkIntegrityError(
                    f"compressed payload declares {declared} bytes, the data map {plain_size}"
                )
            if out is None and declared == plain_size:
                plain = _decompressor().decompress(body)
            else:
                plain = _inflate_into(body, out if out is not None else bytearray(plain_size + 1))
        except zstandard.ZstdError as exc:
            raise ChunkIntegrityError(f"compressed payload is not a valid zstd frame: {exc}") from None
    else:
        raise ChunkIntegrityError(f"unknown payload kind 0x{kind:02x}")
    if len(plain) != plain_size:
        raise ChunkIntegrityError(
            f"chunk holds {len(plain)} bytes of plaintext, the data map says {plain_size}"
        )
    return plain


def _inflate_into(frame, out) -> memoryview:
    """Inflate one zstd frame into out, stopping when out is full."""
    target = memoryview(out)
    filled = 0
    with _decompressor().stream_reader(frame, read_across_frames=False) as reader:
        while filled < len(target):
            count = reader.readinto(target[filled:])
            if not count:
                break
            filled += count
    return target[:filled]
