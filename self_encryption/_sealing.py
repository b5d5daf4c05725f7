"""Sealing and opening one chunk (docs/format.md 2.3 and 2.4), and whole levels.

A chunk's pad comes from its own key seed and those of the two chunks
before it, wrapping round the level: :func:`neighbours` is that rule.
Sealing and opening here ask it, and so do the editor and the encryptor's
first two chunks, through :func:`neighbour_seeds`. The streaming encryptor
seals the chunks past the first two before the count is known, and takes
i-1 and i-2 for them itself: those never wrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ._buffers import Buffer, Scratch
from ._chunking import Cutter
from ._codec import decode_payload, encode_payload
from ._datamap import ChunkInfo, DataMap
from ._errors import ChunkError, ChunkIntegrityError
from ._options import Options

if TYPE_CHECKING:
    from ._backend import Backend


class PreparedChunk(NamedTuple):
    """A chunk compressed and keyed, waiting for its neighbours' seeds to be sealed."""

    plain_size: int
    kind: int
    body: bytes | memoryview
    key_seed: bytes


class SealedChunk(NamedTuple):
    """A sealed chunk: its data-map record and the content to store under record.name."""

    record: ChunkInfo
    content: bytes | bytearray


@dataclass(frozen=True)
class EncryptedChunk:
    """A sealed chunk as it is stored: ``content`` under its hex ``name``."""

    name: str
    content: bytes

    def __repr__(self) -> str:
        return f"EncryptedChunk(name={self.name!r}, size={len(self.content)})"


def neighbours(index: int, count: int) -> tuple[int, int]:
    """The records whose key seeds make chunk index's pad: i-1 and i-2, wrapping."""
    return (index - 1) % count, (index - 2) % count


def neighbour_seeds(seeds: Sequence[bytes], index: int) -> tuple[bytes, bytes]:
    """The two key seeds that chunk index of a level of len(seeds) is padded with."""
    first, second = neighbours(index, len(seeds))
    return seeds[first], seeds[second]


def prepare_chunk(backend: Backend, piece: bytes | memoryview, options: Options) -> PreparedChunk:
    """Payload and key seed of one plaintext chunk."""
    kind, body = encode_payload(piece, options.compression_level)
    seed = backend.key_seed(options.convergence_secret, kind, body)
    return PreparedChunk(len(piece), kind, body, seed)


def seal_prepared(backend: Backend, prepared: PreparedChunk, prev1: bytes, prev2: bytes) -> SealedChunk:
    """Seal a prepared chunk given its neighbours' key seeds."""
    content, name = backend.seal(prepared.key_seed, prev1, prev2, prepared.kind, prepared.body)
    record = ChunkInfo(prepared.plain_size, len(content), prepared.key_seed, name.hex())
    return SealedChunk(record, content)


def unseal_payload(
    backend: Backend, data_map: DataMap, index: int, content: object, scratch: Scratch | None = None
) -> memoryview:
    """Check content against record index of data_map and remove both CTR layers.

    Returns the payload (kind byte and body); with scratch, it is written
    into the scratch's payload buffer, sized only once the content's length
    has been checked against the record.
    """
    chunks = data_map.chunks
    record = chunks[index]
    try:
        try:
            view = memoryview(content)  # type: ignore[arg-type]  # checked here
        except TypeError:
            raise ChunkIntegrityError(f"the store returned {type(content).__name__}, not bytes") from None
        if view.nbytes != record.stored_size:
            raise ChunkIntegrityError(
                f"stored chunk is {view.nbytes} bytes, the data map says {record.stored_size}"
            )
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        out = None if scratch is None else scratch.buffer("payload", record.stored_size)
        first, second = neighbours(index, len(chunks))
        return backend.open_chunk(
            record.key_seed,
            chunks[first].key_seed,
            chunks[second].key_seed,
            view.cast("B") if view.format != "B" or view.ndim != 1 else view,
            bytes.fromhex(record.name),
            out,
        )
    except ChunkError as exc:
        raise exc.located(index=index, level=data_map.level, name=record.name) from None


def unseal_chunk(
    backend: Backend, data_map: DataMap, index: int, content: object, scratch: Scratch | None = None
) -> memoryview | bytes:
    """Check and open record index of data_map; returns its plaintext.

    With scratch, the plaintext may be a view of the scratch buffers.
    """
    record = data_map.chunks[index]
    payload = unseal_payload(backend, data_map, index, content, scratch)
    try:
        return decode_payload(payload, record.plain_size, scratch)
    except ChunkError as exc:
        raise exc.located(index=index, level=data_map.level, name=record.name) from None


def reseal(
    backend: Backend, data_map: DataMap, index: int, content: object, prev1: bytes, prev2: bytes
) -> SealedChunk:
    """An unchanged chunk under new neighbours: same payload and key seed, new pad."""
    record = data_map.chunks[index]
    payload = unseal_payload(backend, data_map, index, content)
    prepared = PreparedChunk(record.plain_size, payload[0], memoryview(payload)[1:], record.key_seed)
    return seal_prepared(backend, prepared, prev1, prev2)


def encrypt_level(backend: Backend, data: Buffer, options: Options) -> list[SealedChunk]:
    """Cut, compress, key and seal data in one go: one level, in memory."""
    prepared = [
        prepare_chunk(backend, piece, options) for piece in Cutter(backend, options).cut_all(data, owned=True)
    ]
    seeds = [chunk.key_seed for chunk in prepared]
    return [
        seal_prepared(backend, chunk, *neighbour_seeds(seeds, index)) for index, chunk in enumerate(prepared)
    ]


def shrink_map(backend: Backend, data_map: DataMap, options: Options) -> tuple[DataMap, list[EncryptedChunk]]:
    """Self-encrypt a map level by level until it is a root (docs/format.md 4).

    Returns the root and the chunks of the levels above data_map, lowest first.
    """
    stored: list[EncryptedChunk] = []
    while not data_map.is_root:
        sealed = encrypt_level(backend, data_map.to_bytes(), options)
        data_map = DataMap(data_map.level + 1, data_map.file_size, tuple(chunk.record for chunk in sealed))
        stored.extend(EncryptedChunk(chunk.record.name, bytes(chunk.content)) for chunk in sealed)
    return data_map, stored
