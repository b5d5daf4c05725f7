"""Damaged, missing or swapped chunks are named and refused; nothing is returned."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import self_encryption as se

import reference
from helpers import SMALL_SIZES, levels_of


@pytest.fixture(scope="module")
def sample():
    """A multi-level file: (data, root, chunks, {name: (level, index)})."""
    data = os.urandom(40_000)
    root, chunks = se.encrypt(data, chunk_sizes=SMALL_SIZES)
    assert root.level >= 2
    return data, root, chunks, _locations(root, chunks)


def _locations(root, chunks):
    """Where every chunk sits: name -> (level, index), walking down from the root."""
    where = {}
    for data_map in levels_of(root, {chunk.name: chunk.content for chunk in chunks}):
        for index, record in enumerate(data_map.chunks):
            where.setdefault(record.name, (data_map.level, index))
    return where


@settings(max_examples=150)
@given(choice=st.data())
def test_flipped_bit_names_the_chunk(sample, choice):
    data, root, chunks, where = sample
    victim = choice.draw(st.sampled_from(chunks))
    bit = choice.draw(st.integers(0, len(victim.content) * 8 - 1))
    damaged = bytearray(victim.content)
    damaged[bit // 8] ^= 1 << (bit % 8)
    store = {c.name: c.content for c in chunks}
    store[victim.name] = bytes(damaged)
    with pytest.raises(se.ChunkIntegrityError) as caught:
        se.decrypt(root, store)
    level, index = where[victim.name]
    assert (caught.value.name, caught.value.level, caught.value.index) == (victim.name, level, index)


@pytest.mark.parametrize("position", ["first", "middle", "last", "root"])
def test_missing_chunk_names_the_chunk(sample, position):
    data, root, chunks, where = sample
    if position == "root":
        name = root.chunks[-1].name
    else:
        level0 = sorted((i, n) for n, (lvl, i) in where.items() if lvl == 0)
        pick = {"first": 0, "middle": len(level0) // 2, "last": -1}[position]
        name = level0[pick][1]
    store = se.MemoryStore()
    for chunk in chunks:
        if chunk.name != name:
            store.put(chunk.name, chunk.content)
    with pytest.raises(se.ChunkNotFoundError) as caught:
        se.decrypt(root, store)
    error = caught.value
    assert (error.name, (error.level, error.index)) == (name, where[name])
    assert isinstance(error, KeyError) and isinstance(error, se.SelfEncryptionError)
    assert name in str(error) and f"level {error.level}" in str(error)


def test_truncated_and_extended_chunks(sample):
    data, root, chunks, where = sample
    victim = chunks[0]
    for content in (victim.content[:-1], victim.content + b"\0", b""):
        store = {c.name: c.content for c in chunks}
        store[victim.name] = content
        with pytest.raises(se.ChunkIntegrityError, match="stored chunk is"):
            se.decrypt(root, store)


def test_swapped_chunks_are_refused(sample):
    data, root, chunks, where = sample
    store = {c.name: c.content for c in chunks}
    a, b = [name for name, (level, _) in where.items() if level == 0][:2]
    store[a], store[b] = store[b], store[a]
    with pytest.raises(se.ChunkIntegrityError):
        se.decrypt(root, store)


def test_store_returning_non_bytes(sample):
    data, root, chunks, _ = sample
    store = se.CallbackStore(get=lambda name: "not bytes", put=lambda n, d: None)
    with pytest.raises(se.ChunkIntegrityError, match="returned str"):
        se.decrypt(root, store)


def test_failing_store_is_wrapped(sample):
    data, root, chunks, _ = sample

    def broken(name):
        raise ConnectionError("network down")

    with pytest.raises(se.StoreError, match="network down") as caught:
        se.decrypt(root, se.CallbackStore(get=broken, put=lambda n, d: None))
    assert isinstance(caught.value.__cause__, ConnectionError)


def _reseal(backend, seeds, index, kind, body):
    count = len(seeds)
    return backend.seal(seeds[index], seeds[(index - 1) % count], seeds[(index - 2) % count], kind, body)


@pytest.mark.parametrize(
    "kind, body, match",
    [
        (0x02, b"abc", "unknown payload kind"),
        (0x01, b"definitely not zstd", "not a valid zstd frame"),
        (0x00, b"ab", "plaintext"),
    ],
)
def test_bad_payloads_are_refused(any_backend, kind, body, match):
    """A chunk whose name is right but whose payload breaks section 2."""
    seed = hashlib.sha256(b"seed").digest()
    content, name = _reseal(any_backend, [seed], 0, kind, body)
    record = se.ChunkInfo(plain_size=3, stored_size=len(content), key_seed=seed, name=name.hex())
    data_map = se.DataMap(0, 3, (record,))
    with pytest.raises(se.ChunkIntegrityError, match=match) as caught:
        reference.decrypt(any_backend, data_map, {name.hex(): content})
    assert caught.value.index == 0 and caught.value.level == 0


def test_zstd_bomb_is_not_inflated(any_backend):
    """A frame that would inflate past plain_size is refused, declared size or not."""
    import zstandard

    big = bytes(1 << 20)
    framed = zstandard.ZstdCompressor(level=3).compress(big)
    unsized = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(big)
    seed = hashlib.sha256(b"bomb").digest()
    for body in (framed, unsized):
        content, name = _reseal(any_backend, [seed], 0, 0x01, body)
        record = se.ChunkInfo(plain_size=100, stored_size=len(content), key_seed=seed, name=name.hex())
        with pytest.raises(se.ChunkIntegrityError):
            reference.decrypt(any_backend, se.DataMap(0, 100, (record,)), {name.hex(): content})
    # The same unsized frame opens when the map records its true size.
    content, name = _reseal(any_backend, [seed], 0, 0x01, unsized)
    record = se.ChunkInfo(plain_size=len(big), stored_size=len(content), key_seed=seed, name=name.hex())
    assert reference.decrypt(any_backend, se.DataMap(0, len(big), (record,)), {name.hex(): content}) == big


@settings(max_examples=100)
@given(choice=st.data())
def test_random_replacement_content_is_refused(sample, choice):
    """Any other bytes under a chunk's name: ChunkIntegrityError, never wrong output."""
    data, root, chunks, where = sample
    victim = choice.draw(st.sampled_from(chunks))
    store = {c.name: c.content for c in chunks}
    store[victim.name] = choice.draw(
        st.binary(max_size=2 * len(victim.content)).filter(lambda b: b != victim.content)
    )
    with pytest.raises(se.ChunkIntegrityError) as caught:
        se.decrypt(root, store)
    assert caught.value.name == victim.name
