"""In-memory encrypt/decrypt throughput of each backend against the bare primitives.

    python benchmarks/bench_core.py [--size MiB] [--data random|text] [--repeat N] [--json FILE]

All figures come from the same run on the same bytes, so the ratios hold on a
noisy machine. Both backends run on one thread (workers=1). The "limit" is
the time of the bare stages on one core, added up: SHA-256 twice (key seed
and name), AES-256-CTR twice (content key and pad) and zstd at the same level
over 1 MiB pieces; the cut search is shown on its own line and in a second
limit. Decryption's limit is SHA-256 once, AES-256-CTR twice and zstd
decompression.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import self_encryption as se
from self_encryption import _backend

from stages import best, decrypt_limit, encrypt_limit, stage_times


def sample(kind: str, size: int) -> bytes:
    if kind == "random":
        return os.urandom(size)
    line = b"line %08d of a text-like benchmark file, with some words repeated\n"
    return b"".join(line % i for i in range(size // len(line) + 1))[:size]


def backend_times(backend, data: bytes, repeat: int) -> dict[str, float]:
    """One-thread encrypt and decrypt times with the given backend module."""
    saved, _backend.active = _backend.active, backend
    try:
        data_map, chunks = se.encrypt(data, workers=1)
        assert se.decrypt(data_map, chunks, workers=1) == data
        return {
            "encrypt": best(repeat, lambda: se.encrypt(data, workers=1)),
            "decrypt": best(repeat, lambda: se.decrypt(data_map, chunks, workers=1)),
        }
    finally:
        _backend.active = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="MiB of data (default 64)")
    parser.add_argument("--data", choices=["random", "text"], default="random")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure; the best counts")
    parser.add_argument(
        "--python-repeat", type=int, default=1, help="timings for the slow pure-Python backend"
    )
    parser.add_argument("--skip-python", action="store_true", help="leave out the Python backend")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    size = args.size << 20
    data = sample(args.data, size)
    level = se.DEFAULT_COMPRESSION_LEVEL
    prim = stage_times(data, level, args.repeat)
    runs = {"c": backend_times(_backend.load_c(), data, args.repeat)}
    if not args.skip_python:
        runs["python"] = backend_times(_backend.load_python(), data, args.python_repeat)

    enc_limit = encrypt_limit(prim, with_cut=False)
    dec_limit = decrypt_limit(prim)
    mb = size / 1e6

    def rate(seconds: float) -> float:
        return mb / seconds

    print(f"{args.size} MiB of {args.data} data, zstd level {level}, best of {args.repeat}")
    print(f"{'stage':<34}{'seconds':>10}{'MB/s':>10}")
    for name, seconds in prim.items():
        print(f"{'primitive ' + name:<34}{seconds:>10.3f}{rate(seconds):>10.0f}")
    print(f"{'limit: encrypt stages summed':<34}{enc_limit:>10.3f}{rate(enc_limit):>10.0f}")
    print(
        f"{'limit: + cut search':<34}{enc_limit + prim['cut']:>10.3f}{rate(enc_limit + prim['cut']):>10.0f}"
    )
    print(f"{'limit: decrypt stages summed':<34}{dec_limit:>10.3f}{rate(dec_limit):>10.0f}")
    for name, times in runs.items():
        for step in ("encrypt", "decrypt"):
            print(f"{name + ' backend ' + step:<34}{times[step]:>10.3f}{rate(times[step]):>10.0f}")
    c = runs["c"]
    ratios = {
        "c_encrypt_vs_limit": enc_limit / c["encrypt"],
        "c_encrypt_vs_limit_with_cut_search": (enc_limit + prim["cut"]) / c["encrypt"],
        "c_decrypt_vs_limit": dec_limit / c["decrypt"],
    }
    if "python" in runs:
        ratios["c_over_python_encrypt"] = runs["python"]["encrypt"] / c["encrypt"]
        ratios["c_over_python_decrypt"] = runs["python"]["decrypt"] / c["decrypt"]
    for name, value in ratios.items():
        print(f"ratio {name:<40}{value:>8.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "size": size,
                    "data": args.data,
                    "level": level,
                    "primitives": prim,
                    "backends": runs,
                    "ratios": ratios,
                },
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
