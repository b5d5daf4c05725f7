"""Make the upstream test vectors under tests/data/upstream with upstream itself.

Run it with a Python that has the upstream package installed, NOT this
project's .venv (both import as ``self_encryption``):

    python3 -m venv /tmp/upvenv
    /tmp/upvenv/bin/pip install self-encryption==0.35.0
    /tmp/upvenv/bin/python scripts/make_upstream_vectors.py --set default

    # a build of the same release with MAX_CHUNK_SIZE=256 (see tests/data/upstream/README.md)
    /tmp/upvenv-small/bin/python scripts/make_upstream_vectors.py --set small256

For each vector it writes NAME/map.json (the data map exactly as upstream's
``DataMap.to_json()`` gives it), NAME/chunks/ (what upstream's
``encrypt_from_file`` wrote: one file per chunk named by its hex name) and
NAME/vector.json (how to regenerate the plaintext, its size and SHA-256).
The plaintext itself is not kept: ``plaintext(recipe)`` below rebuilds it.
Only the standard library and the upstream package are used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

UPSTREAM_VERSION = "0.35.0"
DEFAULT_MAX = 4_190_208  # upstream's MAX_CHUNK_SIZE in its published builds


def plaintext(recipe: dict) -> bytes:
    """The file a recipe describes; deterministic, stdlib only.

    "random": SHAKE-256(seed) of the given size (incompressible).
    "blocks": 4096-byte blocks, each the block number (8 bytes, little
    endian) followed by bytes 8.. of SHAKE-256(seed) (4096 bytes); cut to
    size. It compresses well, so files of many MiB make small chunks.
    """
    seed, size = recipe["seed"].encode(), recipe["size"]
    if recipe["kind"] == "random":
        return hashlib.shake_256(seed).digest(size)
    if recipe["kind"] == "blocks":
        tail = hashlib.shake_256(seed).digest(4096)[8:]
        count = -(-size // 4096)
        return b"".join(i.to_bytes(8, "little") + tail for i in range(count))[:size]
    raise ValueError(f"unknown recipe kind {recipe['kind']!r}")


def _vectors(prefix: str, specs):
    for name, kind, size, note in specs:
        yield f"{prefix}-{name}", {"kind": kind, "seed": f"{prefix}-{name}", "size": size}, note


def default_set():
    m = DEFAULT_MAX
    return DEFAULT_MAX, list(
        _vectors(
            "v",
            [
                ("3-bytes", "random", 3, "smallest file upstream encrypts: three 1-byte chunks"),
                ("4-bytes", "random", 4, "remainder goes to the third chunk: 1, 1, 2"),
                ("1KiB", "random", 1024, "three chunks of 341, 341, 342"),
                ("100000-random", "random", 100_000, "incompressible: brotli stores it nearly as is"),
                ("3max-minus-1", "blocks", 3 * m - 1, "largest file kept in three chunks; last is MAX+1"),
                ("3max", "blocks", 3 * m, "three chunks of exactly MAX_CHUNK_SIZE"),
                ("3max-plus-1", "blocks", 3 * m + 1, "four chunks (MAX, MAX, MAX, 1): shrunk map, child 1"),
                ("4max", "blocks", 4 * m, "four full chunks, no remainder: shrunk map, child 1"),
                (
                    "3max-plus-26",
                    "blocks",
                    3 * m + 26,
                    "four chunks, shrunk; its size is 10 + 80 n, like a serialised map's, so a reader "
                    "cannot tell from sizes alone that the inner map is the file's",
                ),
                ("multi", "blocks", 5 * m + 12_345, "six chunks: shrunk map, child 1"),
            ],
        )
    )


def small256_set():
    m = 256
    return m, list(
        _vectors(
            "s256",
            [
                ("3-bytes", "random", 3, "three 1-byte chunks"),
                ("769", "random", 3 * m + 1, "four chunks: one shrink round, child 1"),
                ("1050", "random", 1050, "five chunks, one shrink round; size 10 + 80 n (ambiguous)"),
                (
                    "2-rounds",
                    "random",
                    10 * m,
                    "ten chunks; their map needs four, whose map needs three: two shrink rounds, "
                    "written as child 1 over a level-1 map without child (upstream cannot read it back)",
                ),
                (
                    "3-rounds",
                    "random",
                    29 * m - 100,
                    "29 chunks; maps of 10, 4, then 3 chunks: three shrink rounds, root child 1 "
                    "(upstream cannot read it back)",
                ),
            ],
        )
    )


SETS = {"default": default_set, "small256": small256_set}


def _check_max_chunk(upstream, expected: int, work: str) -> None:
    """Show that the installed build cuts at ``expected``: 3*M bytes stay one level, 3*M+1 not."""
    for size, shrunk in ((3 * expected, False), (3 * expected + 1, True)):
        source = os.path.join(work, f"probe-{size}")
        with open(source, "wb") as handle:
            handle.write(bytes(size))
        out = os.path.join(work, f"probe-{size}-chunks")
        os.mkdir(out)
        data_map, _ = upstream.encrypt_from_file(source, out)
        if data_map.is_child() != shrunk:
            sys.exit(
                f"this upstream build does not use MAX_CHUNK_SIZE={expected} "
                f"({size} bytes {'were' if not shrunk else 'were not'} shrunk)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="default")
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "upstream")
    )
    args = parser.parse_args()

    import importlib.metadata

    import self_encryption as upstream  # the upstream package, in this interpreter

    version = importlib.metadata.version("self_encryption")
    if version != UPSTREAM_VERSION or not hasattr(upstream, "encrypt_from_file"):
        sys.exit(
            f"this needs upstream self-encryption=={UPSTREAM_VERSION}, found {version} at {upstream.__file__}"
        )

    max_chunk, vectors = SETS[args.set]()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        _check_max_chunk(upstream, max_chunk, work)
        for name, recipe, note in vectors:
            data = plaintext(recipe)
            source = os.path.join(work, name)
            with open(source, "wb") as handle:
                handle.write(data)
            folder = os.path.join(args.out, name)
            shutil.rmtree(folder, ignore_errors=True)
            chunks = os.path.join(folder, "chunks")
            os.makedirs(chunks)
            data_map, names = upstream.encrypt_from_file(source, chunks)
            map_json = data_map.to_json()
            with open(os.path.join(folder, "map.json"), "w") as handle:
                handle.write(map_json + "\n")

            # Does upstream's own reader give the file back? In 0.35.0 it does not
            # when the map took more than one shrink round (see docs/upstream-format.md).
            restored = os.path.join(work, name + ".restored")

            def get_chunk(hex_name: str, chunks=chunks) -> bytes:
                with open(os.path.join(chunks, hex_name), "rb") as handle:
                    return handle.read()

            try:
                upstream.decrypt_from_storage(upstream.DataMap.from_json(map_json), restored, get_chunk)
                with open(restored, "rb") as handle:
                    reads_back = handle.read() == data
            except OSError as exc:
                print(f"{name}: upstream cannot read it back: {exc}")
                reads_back = False

            info = {
                "name": name,
                "note": note,
                "upstream": f"self-encryption {version}",
                "max_chunk_size": max_chunk,
                "recipe": recipe,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "child": data_map.child(),
                "upstream_reads_it_back": reads_back,
                "chunk_files": sorted(set(names)),
            }
            with open(os.path.join(folder, "vector.json"), "w") as handle:
                json.dump(info, handle, indent=1)
                handle.write("\n")
            stored = sum(os.path.getsize(os.path.join(chunks, n)) for n in os.listdir(chunks))
            print(
                f"{name}: {len(data)} bytes -> {len(os.listdir(chunks))} chunks, "
                f"{stored} bytes stored, child={data_map.child()}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
