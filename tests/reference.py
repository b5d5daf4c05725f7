"""One-shot encryption and decryption with an explicit backend, from the engine's parts.

The streaming encryptor must produce exactly what this straightforward
composition of the format steps produces.
"""

from __future__ import annotations

from self_encryption import DataMap, EncryptedChunk, _engine


def encrypt(backend, data, options) -> tuple[DataMap, dict[str, bytes]]:
    """The root and {name: content} of every chunk, cut and sealed in one go."""
    records, sealed = _engine.encrypt_level(backend, data, options)
    root, upper = _engine.shrink(backend, DataMap(0, len(memoryview(data).cast("B")), tuple(records)), options)
    return root, {chunk.name: chunk.content for chunk in sealed + upper}


def decrypt(backend, root: DataMap, chunks) -> bytes:
    fetch = _engine.fetcher(chunks)
    return _engine.decrypt_level(backend, _engine.level_zero(backend, _engine.check_root(root), fetch), fetch)


def as_dict(chunks: list[EncryptedChunk]) -> dict[str, bytes]:
    return {chunk.name: chunk.content for chunk in chunks}
