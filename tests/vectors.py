"""Builds the inputs of the format v1 worked vectors (tests/data/format_v1_vectors.json)."""

from __future__ import annotations

import hashlib
import json
import pathlib

DATA = pathlib.Path(__file__).parent / "data"


def load(name: str = "format_v1_vectors.json") -> dict:
    with open(DATA / name, encoding="utf-8") as handle:
        return json.load(handle)


def stream_bytes(seed: str, size: int) -> bytes:
    """The first size bytes of SHA256(seed || u64le(0)) || SHA256(seed || u64le(1)) || ..."""
    seed_bytes = seed.encode("utf-8")
    blocks = (size + 31) // 32
    return b"".join(
        hashlib.sha256(seed_bytes + counter.to_bytes(8, "little")).digest() for counter in range(blocks)
    )[:size]


def text_bytes(size: int) -> bytes:
    """The first size bytes of the numbered lines of the test text."""
    line_length = len(b"line %08d of the self-encryption test text\n" % 0)
    lines = size // line_length + 1
    return b"".join(b"line %08d of the self-encryption test text\n" % i for i in range(lines))[:size]


def case_input(spec: dict) -> bytes:
    kind = spec["kind"]
    if kind == "hex":
        return bytes.fromhex(spec["hex"])
    if kind == "stream":
        return stream_bytes(spec["seed"], spec["size"])
    if kind == "text":
        return text_bytes(spec["size"])
    raise ValueError(f"unknown vector input kind {kind!r}")


def case_options(options: dict) -> dict:
    """Keyword arguments for encrypt() from a case's options."""
    return {
        "convergence_secret": options["convergence_secret"].encode("utf-8"),
        "compression_level": options["compression_level"],
        "chunk_sizes": (options["min_size"], options["avg_size"], options["max_size"]),
    }


def chunks_digest(chunks) -> str:
    """SHA256 over name || bytes of every chunk, in ascending order of name."""
    digest = hashlib.sha256()
    for chunk in sorted(chunks, key=lambda c: c.name):
        digest.update(bytes.fromhex(chunk.name))
        digest.update(chunk.content)
    return digest.hexdigest()
