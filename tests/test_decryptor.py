"""Whole-file decryption into paths: nothing partial is ever left under the target name."""

from __future__ import annotations

import os

import pytest

import self_encryption as se

from helpers import SMALL_SIZES, CountingStore

SMALL = dict(chunk_sizes=SMALL_SIZES)


@pytest.mark.parametrize("failing", range(1, 8))
def test_failing_get_leaves_no_partial_file(tmp_path, failing):
    data = os.urandom(30_000)
    store = CountingStore()
    root = se.encrypt_to_store(data, store, **SMALL)
    target = tmp_path / "restored.bin"
    target.write_bytes(b"precious old content")
    broken = CountingStore(fail_get=failing)
    for name in store:
        se.MemoryStore.put(broken, name, store.get(name))
    with pytest.raises(se.StoreError, match="injected get failure"):
        se.decrypt_file(root, broken, target, workers=2)
    assert target.read_bytes() == b"precious old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["restored.bin"]


def test_missing_chunk_leaves_no_file(tmp_path):
    store = se.MemoryStore()
    root = se.encrypt_to_store(os.urandom(30_000), store, **SMALL)
    store.delete(sorted(store)[0])
    with pytest.raises(se.ChunkNotFoundError):
        se.decrypt_file(root, store, tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []
