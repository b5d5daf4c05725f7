"""A 1-byte edit in the middle of a large file: SelfEncryptor flush against re-encrypting it.

    python benchmarks/bench_edit.py [--size MiB]

Both run in this process on the same DirStore; the figures are seconds and
chunks written, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import self_encryption as se


class Counting(se.DirStore):
    """A DirStore that counts puts and gets."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.puts = self.gets = 0

    def put(self, name, data):
        self.puts += 1
        super().put(name, data)

    def get(self, name):
        self.gets += 1
        return super().get(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB (default 1024)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "file.bin")
        with open(source, "wb") as out:
            for _ in range(args.size):
                out.write(os.urandom(1 << 20))
        store = Counting(os.path.join(folder, "store"))
        root = se.encrypt_file(source, store)
        middle = (args.size << 20) // 2

        store.puts = store.gets = 0
        started = time.perf_counter()
        editor = se.SelfEncryptor(store, root)
        old = editor.read(middle, 1)
        editor.write(bytes([old[0] ^ 0xFF]), middle)
        edited_root = editor.close()
        edit_seconds = time.perf_counter() - started
        edit_puts, edit_gets = store.puts, store.gets

        with open(source, "r+b") as handle:
            handle.seek(middle)
            handle.write(bytes([old[0] ^ 0xFF]))
        store.puts = 0
        started = time.perf_counter()
        with open(source, "rb") as handle, se.Encryptor(store) as encryptor:
            encryptor.write_from(handle)
        full_root = encryptor.data_map
        full_seconds = time.perf_counter() - started
        assert full_root == edited_root, "the edit and the full re-encryption disagree"
        print(f"{args.size} MiB file, 1 byte changed in the middle (same data map both ways)")
        print(
            f"SelfEncryptor edit + flush: {edit_seconds:8.3f} s, {edit_puts} chunks written, "
            f"{edit_gets} fetched"
        )
        print(
            f"encrypting it whole again:  {full_seconds:8.3f} s, {encryptor.stats.chunks} chunks "
            f"sealed, {store.puts} written (the store already held the edit's chunks; "
            "into an empty store all of them would be)"
        )
        print(f"edit is {full_seconds / edit_seconds:.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
