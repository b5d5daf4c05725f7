"""One-shot encryption and decryption with an explicit backend, from the engine's parts.

The streaming encryptor must produce exactly what this straightforward
composition of the format steps produces.
"""

from __future__ import annotations

from self_encryption import DataMap, EncryptedChunk, _levels, _sealing
from self_encryption.stores.access import access


def encrypt(backend, data, options) -> tuple[DataMap, dict[str, bytes]]:
    """The root and {name: content} of every chunk, cut and sealed in one go."""
    sealed = _sealing.encrypt_level(backend, data, options)
    level0 = DataMap(0, len(memoryview(data).cast("B")), tuple(chunk.record for chunk in sealed))
    root, upper = _sealing.shrink_map(backend, level0, options)
    chunks = {chunk.record.name: bytes(chunk.content) for chunk in sealed}
    return root, {**chunks, **{chunk.name: chunk.content for chunk in upper}}


def decrypt(backend, root: DataMap, chunks) -> bytes:
    store = access(chunks)
    level0 = _levels.level_zero(backend, _levels.check_root(root), store)
    return b"".join(bytes(plain) for plain, _ in _levels.iter_level(backend, level0, store))


def as_dict(chunks: list[EncryptedChunk]) -> dict[str, bytes]:
    return {chunk.name: chunk.content for chunk in chunks}
