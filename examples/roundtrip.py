"""Encrypt a file into a folder store, decrypt it back, compare, show the data map.

    python examples/roundtrip.py [FILE] [--store FOLDER]

Without FILE a 24 MiB sample (half text, half random bytes) is written first.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import time

import self_encryption as se


def make_sample(path: pathlib.Path, size: int = 24 << 20) -> None:
    lines = b"".join(
        b"sample line %08d: self-encryption keeps what it stores unreadable\n" % i
        for i in range(size // 2 // 64 + 1)
    )[: size // 2]
    path.write_bytes(lines + os.urandom(size - len(lines)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=pathlib.Path, help="file to encrypt (default: a sample)")
    parser.add_argument(
        "--store",
        type=pathlib.Path,
        default=pathlib.Path("demo-store"),
        help="folder for the chunk store (default: ./demo-store)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        source = args.file
        if source is None:
            source = pathlib.Path(scratch) / "sample.bin"
            make_sample(source)
        original = source.read_bytes()
        store = se.DirStore(args.store)
        print(f"backend: {se.backend}; store: {args.store}/; file: {source} ({len(original):,} bytes)")

        started = time.perf_counter()
        data_map = se.encrypt_to_store(original, store)
        encrypt_seconds = time.perf_counter() - started

        started = time.perf_counter()
        restored = se.decrypt(data_map, se.DirStore(args.store))
        decrypt_seconds = time.perf_counter() - started

        output = pathlib.Path(scratch) / "restored.bin"
        output.write_bytes(restored)
        same = hashlib.sha256(output.read_bytes()).digest() == hashlib.sha256(original).digest()

    megabytes = len(original) / 1e6
    print(
        f"encrypted in {encrypt_seconds:.2f} s ({megabytes / max(encrypt_seconds, 1e-9):.0f} MB/s), "
        f"decrypted in {decrypt_seconds:.2f} s ({megabytes / max(decrypt_seconds, 1e-9):.0f} MB/s)"
    )
    print(
        f"root data map: level {data_map.level}, {len(data_map.chunks)} records, "
        f"{len(data_map.to_bytes())} bytes; chunks in store: {sum(1 for _ in store)}"
    )
    print(f"round trip: {'identical' if same else 'DIFFERENT'}")
    print("data map (keep it secret, it opens the file):")
    print(data_map.to_text())
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
