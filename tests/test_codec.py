"""Payloads (docs/format.md 2.2): the kind byte, raw or exactly one zstd frame, bounded inflation."""

from __future__ import annotations

import os

import pytest
import zstandard

from self_encryption import ChunkIntegrityError, _codec
from self_encryption._buffers import Scratch

TEXT = b"a line of text that compresses well\n" * 400


def test_compressible_chunk_becomes_one_zstd_frame():
    payload = _codec.encode_payload(TEXT, 3)
    assert payload.kind == _codec.KIND_ZSTD
    assert _codec.zstd_frame_length(memoryview(payload.body)) == len(payload.body)
    assert bytes(_codec.decode_payload(bytes([payload.kind]) + payload.body, len(TEXT))) == TEXT


@pytest.mark.parametrize("level", [None, 3])
def test_incompressible_or_uncompressed_chunk_stays_raw(level):
    data = os.urandom(4096) if level is not None else TEXT
    payload = _codec.encode_payload(data, level)
    assert payload.kind == _codec.KIND_RAW
    assert bytes(payload.body) == data
    assert bytes(_codec.decode_payload(b"\x00" + data, len(data))) == data


def _zstd(data: bytes, **kwargs) -> bytes:
    return b"\x01" + zstandard.ZstdCompressor(level=3, **kwargs).compress(data)


@pytest.mark.parametrize(
    ("payload", "size", "message"),
    [
        (b"", 0, "empty"),
        (b"\x02abc", 3, "unknown payload kind 0x02"),
        (b"\x00abc", 4, "holds 3 bytes"),
        (b"\x01not a frame", 5, "not a valid zstd frame"),
        (_zstd(TEXT) + b"x", len(TEXT), "after its zstd frame"),
        (_zstd(TEXT) + _zstd(TEXT)[1:], len(TEXT), "after its zstd frame"),
        (_zstd(TEXT), len(TEXT) - 1, "declares"),
        (_zstd(TEXT, write_content_size=False), len(TEXT) - 1, "holds"),
        (_zstd(TEXT)[:-3], len(TEXT), "zstd"),
    ],
)
def test_bad_payloads_are_integrity_errors(payload, size, message):
    with pytest.raises(ChunkIntegrityError, match=message):
        _codec.decode_payload(payload, size)


def test_inflation_stops_one_byte_past_the_claimed_size():
    # A frame without a declared size that inflates far beyond the map's claim:
    # the output never grows past plain_size + 1 bytes.
    bomb = _zstd(bytes(64 << 20), write_content_size=False)
    scratch = Scratch()
    with pytest.raises(ChunkIntegrityError, match="holds 1001 bytes"):
        _codec.decode_payload(bomb, 1000, scratch)
    assert len(scratch.plain) <= 1001


def test_scratch_buffer_is_reused_and_grown():
    scratch = Scratch()
    first = _codec.decode_payload(_zstd(TEXT), len(TEXT), scratch)
    assert bytes(first) == TEXT
    buffer = scratch.plain
    again = _codec.decode_payload(_zstd(TEXT[:100]), 100, scratch)
    assert bytes(again) == TEXT[:100]
    assert scratch.plain is buffer  # long enough: reused, not replaced


def test_frame_length_walks_blocks_and_checksum():
    frame = zstandard.ZstdCompressor(level=1, write_checksum=True).compress(os.urandom(300_000))
    assert _codec.zstd_frame_length(memoryview(frame + b"trailing")) == len(frame)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "does not start with a zstd frame"),
        (b"\x28\xb5\x2f\xfd\x00", "ends inside a zstd block header"),
    ],
)
def test_frame_length_refuses_what_is_not_a_whole_frame(body, message):
    with pytest.raises(ChunkIntegrityError, match=message):
        _codec.zstd_frame_length(memoryview(body))
