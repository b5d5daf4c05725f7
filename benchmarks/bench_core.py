"""In-memory encrypt/decrypt throughput of each backend against the bare primitives.

    python benchmarks/bench_core.py [--size MiB] [--data random|text] [--repeat N] [--json FILE]

All figures come from the same run on the same bytes, so the ratios hold on a
noisy machine. The "limit" is the time of the bare stages on one core, added
up: SHA-256 twice (key seed and name), AES-256-CTR twice (content key and
pad) and zstd at the same level over 1 MiB pieces; the cut search is shown
on its own line and in a second limit. Decryption's limit is SHA-256 once,
AES-256-CTR twice and zstd decompression.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import zstandard

import self_encryption as se
from self_encryption import _backend, _engine

PIECE = 1 << 20


def best_of(repeat: int, work) -> float:
    """The fastest of repeat timings of work(), in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def sample(kind: str, size: int) -> bytes:
    if kind == "random":
        return os.urandom(size)
    line = b"line %08d of a text-like benchmark file, with some words repeated\n"
    return b"".join(line % i for i in range(size // len(line) + 1))[:size]


def pieces(data: bytes):
    view = memoryview(data)
    return [view[i:i + PIECE] for i in range(0, len(data), PIECE)]


def primitive_times(data: bytes, repeat: int, level: int) -> dict[str, float]:
    c = _backend.load_c()
    key, counter = os.urandom(32), os.urandom(16)
    parts = pieces(data)
    compressor = zstandard.ZstdCompressor(level=level)
    frames = [compressor.compress(p) for p in parts]
    decompressor = zstandard.ZstdDecompressor()
    table = c.GearTable(b"")
    min_size, avg_size, max_size = se.DEFAULT_CHUNK_SIZES

    def cut_everything():
        # The cut search over every byte: with min = 64 almost nothing is skipped.
        start, view = 0, memoryview(data)
        while start < len(data):
            start += c.find_cut(table, view[start:start + max_size], 64, avg_size, max_size, True)

    return {
        "sha256": best_of(repeat, lambda: [c.sha256(p) for p in parts]),
        "aes256_ctr": best_of(repeat, lambda: [c.aes256_ctr(key, counter, p) for p in parts]),
        "zstd_compress": best_of(repeat, lambda: [compressor.compress(p) for p in parts]),
        "zstd_decompress": best_of(repeat, lambda: [decompressor.decompress(f) for f in frames]),
        "cut_search": best_of(repeat, cut_everything),
        "hashlib_sha256": best_of(repeat, lambda: [hashlib.sha256(p).digest() for p in parts]),
    }


def backend_times(backend, data: bytes, repeat: int) -> dict[str, float]:
    options = _engine.make_options()
    result = {}
    result["encrypt"] = best_of(repeat, lambda: _engine.encrypt(backend, data, options))
    data_map, chunks = _engine.encrypt(backend, data, options)
    result["decrypt"] = best_of(repeat, lambda: _engine.decrypt(backend, data_map, chunks))
    assert _engine.decrypt(backend, data_map, chunks) == data
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="MiB of data (default 64)")
    parser.add_argument("--data", choices=["random", "text"], default="random")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure; the best counts")
    parser.add_argument("--python-repeat", type=int, default=1,
                        help="timings for the slow pure-Python backend")
    parser.add_argument("--skip-python", action="store_true", help="leave out the Python backend")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    size = args.size << 20
    data = sample(args.data, size)
    level = se.DEFAULT_COMPRESSION_LEVEL
    prim = primitive_times(data, args.repeat, level)
    runs = {"c": backend_times(_backend.load_c(), data, args.repeat)}
    if not args.skip_python:
        runs["python"] = backend_times(_backend.load_python(), data, args.python_repeat)

    encrypt_limit = 2 * prim["sha256"] + 2 * prim["aes256_ctr"] + prim["zstd_compress"]
    decrypt_limit = prim["sha256"] + 2 * prim["aes256_ctr"] + prim["zstd_decompress"]
    mb = size / 1e6

    def rate(seconds: float) -> float:
        return mb / seconds

    print(f"{args.size} MiB of {args.data} data, zstd level {level}, best of {args.repeat}")
    print(f"{'stage':<34}{'seconds':>10}{'MB/s':>10}")
    for name, seconds in prim.items():
        print(f"{'primitive ' + name:<34}{seconds:>10.3f}{rate(seconds):>10.0f}")
    print(f"{'limit: encrypt stages summed':<34}{encrypt_limit:>10.3f}{rate(encrypt_limit):>10.0f}")
    print(f"{'limit: + cut search':<34}{encrypt_limit + prim['cut_search']:>10.3f}"
          f"{rate(encrypt_limit + prim['cut_search']):>10.0f}")
    print(f"{'limit: decrypt stages summed':<34}{decrypt_limit:>10.3f}{rate(decrypt_limit):>10.0f}")
    for name, times in runs.items():
        for step in ("encrypt", "decrypt"):
            print(f"{name + ' backend ' + step:<34}{times[step]:>10.3f}{rate(times[step]):>10.0f}")
    c = runs["c"]
    ratios = {
        "c_encrypt_vs_limit": encrypt_limit / c["encrypt"],
        "c_encrypt_vs_limit_with_cut_search": (encrypt_limit + prim["cut_search"]) / c["encrypt"],
        "c_decrypt_vs_limit": decrypt_limit / c["decrypt"],
    }
    if "python" in runs:
        ratios["c_over_python_encrypt"] = runs["python"]["encrypt"] / c["encrypt"]
        ratios["c_over_python_decrypt"] = runs["python"]["decrypt"] / c["decrypt"]
    for name, value in ratios.items():
        print(f"ratio {name:<40}{value:>8.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"size": size, "data": args.data, "level": level, "primitives": prim,
                       "backends": runs, "ratios": ratios}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
