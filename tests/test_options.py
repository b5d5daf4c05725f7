"""Bad options and inputs raise our own clear errors, which are also ValueErrors."""

from __future__ import annotations

import pytest

import self_encryption as se


@pytest.mark.parametrize(
    "sizes",
    [
        (63, 256, 1024),  # min below 64
        (300, 256, 1024),  # min above avg
        (64, 256, 255),  # max below avg
        (64, 384, 1024),  # avg not a power of two
        (64, 128, 1024),  # avg below 256
        (64, 1 << 31, (1 << 31) + 1),  # max above 2**31
        (64, 256),  # not three values
        (64.0, 256, 1024),  # not integers
        (True, 256, 1024),
        "64,256,1024",
        None,
    ],
)
def test_bad_chunk_sizes(sizes):
    with pytest.raises(se.InvalidArgumentError) as caught:
        se.encrypt(b"data", chunk_sizes=sizes)
    assert isinstance(caught.value, ValueError)


def test_largest_valid_chunk_sizes():
    data_map, _ = se.encrypt(b"x" * 100, chunk_sizes=(64, 1 << 31, 1 << 31))
    assert data_map.file_size == 100


@pytest.mark.parametrize("level", [0, 23, -(1 << 17) - 1, 3.0, "3", True])
def test_bad_compression_level(level):
    with pytest.raises(se.InvalidArgumentError, match="compression_level"):
        se.encrypt(b"data", compression_level=level)


@pytest.mark.parametrize("level", [None, 1, 22, -5])
def test_good_compression_levels(level):
    data = b"abc" * 1000
    data_map, chunks = se.encrypt(data, compression_level=level)
    assert se.decrypt(data_map, chunks) == data


@pytest.mark.parametrize("secret", [123, object(), None])
def test_bad_secret(secret):
    with pytest.raises(se.InvalidArgumentError, match="convergence_secret"):
        se.encrypt(b"data", convergence_secret=secret)


@pytest.mark.parametrize("data", ["text", 12, None, object()])
def test_bad_data(data):
    with pytest.raises(se.InvalidArgumentError, match="bytes-like"):
        se.encrypt(data)
    with pytest.raises(se.InvalidArgumentError):
        se.encrypt_to_store(data, se.MemoryStore())


def test_non_contiguous_buffer():
    view = memoryview(bytes(range(100)))[::2]
    with pytest.raises(se.InvalidArgumentError, match="contiguous"):
        se.encrypt(view)


def test_bad_chunk_source():
    data_map, _ = se.encrypt(b"abc")
    with pytest.raises(se.InvalidArgumentError, match="chunks must be"):
        se.decrypt(data_map, 42)  # type: ignore[arg-type]


def test_hierarchy():
    assert issubclass(se.ChunkNotFoundError, se.ChunkError)
    assert issubclass(se.ChunkIntegrityError, se.ChunkError)
    for error in (se.ChunkError, se.DataMapError, se.InvalidArgumentError, se.StoreError):
        assert issubclass(error, se.SelfEncryptionError)
    error = se.ChunkIntegrityError("bad", name="ab" * 32, index=3, level=1)
    assert (error.index, error.level, error.name) == (3, 1, "ab" * 32)
    assert str(error) == f"bad (chunk 3, level 1, name {'ab' * 32})"
    import pickle

    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is se.ChunkIntegrityError and copy.index == 3 and str(copy) == str(error)
