"""Payloads (docs/format.md 2.2): a kind byte, then the chunk raw or as one zstd frame."""

from __future__ import annotations

import threading
from typing import NamedTuple

import zstandard

from ._buffers import Scratch
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
    compressor: zstandard.ZstdCompressor | None = cache.get(level)
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


#: First output buffer of an inflation with nothing to reuse; it doubles as bytes come.
_FIRST_OUTPUT = 256 << 10
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def decode_payload(
    payload: memoryview | bytes | bytearray, plain_size: int, scratch: Scratch | None = None
) -> memoryview | bytes:
    """The plaintext of a payload; raises ChunkIntegrityError (docs/format.md 2.2).

    A zstd body must be exactly one frame, and is inflated into a buffer
    that grows with the bytes actually produced, never past plain_size + 1
    (the one extra byte shows a body that holds more than the map says).
    With ``scratch``, its plaintext buffer is reused as far as it is long
    enough, and keeps what growth it needed; the result is then a view of
    it. A raw body is returned as a view of the payload.
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
            length = zstd_frame_length(body)
            if length != len(body):
                raise ChunkIntegrityError(
                    f"compressed payload has {len(body) - length} bytes after its zstd frame"
                )
            plain = _inflate(body, plain_size, scratch)
        except zstandard.ZstdError as exc:
            raise ChunkIntegrityError(f"compressed payload is not a valid zstd frame: {exc}") from None
    else:
        raise ChunkIntegrityError(f"unknown payload kind 0x{kind:02x}")
    if len(plain) != plain_size:
        raise ChunkIntegrityError(
            f"chunk holds {len(plain)} bytes of plaintext, the data map says {plain_size}"
        )
    return plain


def zstd_frame_length(body: memoryview) -> int:
    """The length of the zstd frame at the start of body, from its block headers.

    Walks the frame as RFC 8878 lays it out (header, blocks, optional
    checksum) without inflating anything. Raises ChunkIntegrityError when
    body does not start with a whole zstd frame.
    """
    if bytes(body[:4]) != _ZSTD_MAGIC:
        raise ChunkIntegrityError("compressed payload does not start with a zstd frame")
    try:
        position = zstandard.frame_header_size(body)
    except zstandard.ZstdError as exc:
        raise ChunkIntegrityError(f"compressed payload has a bad zstd frame header: {exc}") from None
    checksum = 4 if body[4] & 0x04 else 0  # Content_Checksum_flag of the frame header descriptor
    while True:
        if position + 3 > len(body):
            raise ChunkIntegrityError("compressed payload ends inside a zstd block header")
        header = body[position] | body[position + 1] << 8 | body[position + 2] << 16
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise ChunkIntegrityError("compressed payload has a reserved zstd block type")
        position += 3 + (1 if kind == 1 else size)  # an RLE block stores its one byte
        if last:
            return position + checksum


def _inflate(frame: memoryview, plain_size: int, scratch: Scratch | None) -> memoryview:
    """Inflate one zstd frame, growing the output as it comes, up to plain_size + 1 bytes."""
    limit = plain_size + 1
    if scratch is not None and scratch.plain:
        target = scratch.plain
    else:
        target = bytearray(min(limit, _FIRST_OUTPUT))
        if scratch is not None:
            scratch.plain = target
    if len(target) > limit:
        view = memoryview(target)[:limit]
    else:
        view = memoryview(target)
    filled = 0
    with _decompressor().stream_reader(frame, read_across_frames=False) as reader:
        while True:
            if filled == len(view):
                if filled >= limit:
                    break
                # Full: double, keeping what came so far (the map's size is only a cap).
                view.release()
                grown = bytearray(min(limit, 2 * max(filled, 1)))
                grown[:filled] = target[:filled]
                target = grown
                if scratch is not None:
                    scratch.plain = target
                view = memoryview(target)
            count = reader.readinto(view[filled:])
            if not count:
                break
            filled += count
    return view[:filled]
