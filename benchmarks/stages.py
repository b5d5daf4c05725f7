"""Single-core time of each bare stage of the format, for same-run limits.

Each stage runs over the data in 1 MiB pieces, straight into a reused output
buffer where it has one, so that the limit measures the primitives and not
the allocator.
"""

from __future__ import annotations

import os
import time

import zstandard

import self_encryption as se
from self_encryption import _backend

PIECE = 1 << 20


def best(repeat: int, work) -> float:
    """The fastest of repeat timings of work(), in seconds."""
    fastest = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def stage_times(data: bytes, level: int = se.DEFAULT_COMPRESSION_LEVEL, repeat: int = 3) -> dict[str, float]:
    """Seconds for: cut search over every byte, zstd, zstd decompression, SHA-256, AES-256-CTR."""
    c = _backend.load_c()
    ffi, lib = c.ffi, c.lib
    view = memoryview(data)
    pieces = [view[i : i + PIECE] for i in range(0, len(data), PIECE)] or [view]
    compressor = zstandard.ZstdCompressor(level=level)
    frames = [compressor.compress(p) for p in pieces]
    decompressor = zstandard.ZstdDecompressor()
    table = c.GearTable(b"")
    avg, maximum = se.DEFAULT_CHUNK_SIZES[1:]
    key, counter = ffi.from_buffer(os.urandom(32)), ffi.from_buffer(os.urandom(16))
    out = bytearray(PIECE)
    out_c = ffi.from_buffer(out)
    digest = ffi.new("uint8_t[32]")

    def cut_every_byte():
        start = 0
        while start < len(data):  # min = 64: the search hashes nearly every byte
            start += c.find_cut(table, view[start : start + maximum + 1], 64, avg, maximum, True)

    def compress():
        for piece in pieces:
            compressor.compress(piece)

    def decompress():
        for frame in frames:
            decompressor.decompress(frame)

    def sha256():
        for piece in pieces:
            lib.se_sha256(ffi.from_buffer(piece), len(piece), digest)

    def aes():
        for piece in pieces:
            lib.se_aes256_ctr(key, counter, ffi.from_buffer(piece), len(piece), out_c)

    stages = {"cut": cut_every_byte, "zstd": compress, "unzstd": decompress, "sha256": sha256, "aes": aes}
    return {name: best(repeat, work) for name, work in stages.items()}


def encrypt_limit(times: dict[str, float], with_cut: bool = True) -> float:
    """Seconds the encrypt stages take on one core, added up."""
    return (times["cut"] if with_cut else 0) + times["zstd"] + 2 * times["sha256"] + 2 * times["aes"]


def decrypt_limit(times: dict[str, float]) -> float:
    """Seconds the decrypt stages take on one core, added up."""
    return times["unzstd"] + times["sha256"] + 2 * times["aes"]
