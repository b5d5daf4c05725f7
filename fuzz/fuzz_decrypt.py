"""Fuzz decryption with hostile maps and stores, through every read path.

Each input picks one attack on a small multi-level file: replace a stored
chunk's bytes, seal a payload of the fuzzer's choosing under a correct name
(so the codec sees it), or hand over a map parsed from the input. Every read
path (decrypt, decrypt_file, open().read(), SelfEncryptor.read, verify) must
then give the right bytes or raise our own exception: never another type,
never a partial file. Memory is bounded from outside (-rss_limit_mb).

    python fuzz/fuzz_decrypt.py [libFuzzer options] [CORPUS_DIR]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import self_encryption as se
    from self_encryption import _backend

SIZES = (64, 256, 1024)
DATA = bytes(range(256)) * 40 + hashlib.sha256(b"fuzz").digest() * 100
ROOT, CHUNKS = se.encrypt(DATA, chunk_sizes=SIZES)
ORIGINAL = {chunk.name: chunk.content for chunk in CHUNKS}
NAMES = sorted(ORIGINAL)
OUT = os.path.join(tempfile.mkdtemp(prefix="fuzz-decrypt-"), "out")


def _read_paths(root: se.DataMap, store: se.MemoryStore) -> dict[str, object]:
    results: dict[str, object] = {}
    attempts = {
        "decrypt": lambda: se.decrypt(root, store, workers=1),
        "decrypt_file": lambda: (se.decrypt_file(root, store, OUT, workers=1), open(OUT, "rb").read())[1],
        "open().read()": lambda: se.open(root, store, workers=1).read(),
        "SelfEncryptor.read": lambda: se.SelfEncryptor(store, root).read(0, root.file_size),
        "verify": lambda: se.verify(root, store, full=True, workers=1),
    }
    for label, attempt in attempts.items():
        if os.path.exists(OUT):
            os.unlink(OUT)
        try:
            results[label] = attempt()
        except se.SelfEncryptionError as exc:
            results[label] = type(exc)
            if label == "decrypt_file":
                assert not os.path.exists(OUT), "decrypt_file left a partial file"
    return results


def _store(chunks: dict[str, bytes]) -> se.MemoryStore:
    store = se.MemoryStore()
    for name, content in chunks.items():
        store.put(name, content)
    return store


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    attack = provider.ConsumeIntInRange(0, 2)
    chunks = dict(ORIGINAL)
    root = ROOT
    if attack == 0:  # other bytes under a real chunk's name
        victim = NAMES[provider.ConsumeIntInRange(0, len(NAMES) - 1)]
        chunks[victim] = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 3000))
    elif attack == 1:  # a payload of our choosing, sealed so that its name is right
        plain_size = provider.ConsumeIntInRange(1, (1 << 32) - 1)
        kind = provider.ConsumeIntInRange(0, 2)
        body = provider.ConsumeBytes(provider.remaining_bytes())
        seed = hashlib.sha256(body).digest()
        content, name = _backend.active.seal(seed, seed, seed, kind, body)
        record = se.ChunkInfo(plain_size, len(content), seed, name.hex())
        try:
            root = se.DataMap(0, plain_size, (record,))
        except se.DataMapError:
            return
        chunks = {name.hex(): bytes(content)}
    else:  # a map straight from the input, against the real store
        try:
            root = se.DataMap.from_bytes(provider.ConsumeBytes(provider.remaining_bytes()))
        except se.DataMapError:
            return
    results = _read_paths(root, _store(chunks))
    verdicts = {label: value for label, value in results.items() if label != "verify"}
    report = results["verify"]
    if attack == 0 and chunks == ORIGINAL:
        assert all(value == DATA for value in verdicts.values()), verdicts
    successes = {bytes(v) for v in verdicts.values() if isinstance(v, (bytes, bytearray))}
    assert len(successes) <= 1, "two read paths gave different bytes"
    failures = [v for v in verdicts.values() if isinstance(v, type)]
    # One verdict for one input: every path succeeds, or every path fails.
    assert not (successes and failures), verdicts
    if isinstance(report, se.VerifyReport) and report.ok and report.complete:
        assert not failures, ("verify passed what a read refused", verdicts)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
