"""The worked vectors of format v1, through the public API of the active backend."""

from __future__ import annotations

import hashlib

import pytest

import self_encryption as se
from self_encryption import _backend, _chunking, _options

from vectors import case_input, case_options, chunks_digest, load

CASES = load()["cases"]


def _id(case):
    return case["name"]


@pytest.fixture(scope="module")
def encrypted():
    """Each case's input encrypted once by the active backend."""
    results = {}
    for case in CASES:
        data = case_input(case["input"])
        results[case["name"]] = (data, *se.encrypt(data, **case_options(case["options"])))
    return results


def test_vector_file_is_format_1():
    assert load()["format"] == 1


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_input_generation(case):
    assert hashlib.sha256(case_input(case["input"])).hexdigest() == case["input_sha256"]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_cut_lengths(case):
    data = case_input(case["input"])
    options = _options.make_options(**case_options(case["options"]))
    lengths = _chunking.cut_lengths(_backend.active, data, options)
    assert lengths[:50] == case["level0_cut_lengths"]
    assert sum(lengths) == len(data)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_root_and_chunks(case, encrypted):
    _, data_map, chunks = encrypted[case["name"]]
    assert data_map.to_text() == case["root_text"]
    assert data_map.level == case["root_level"]
    assert len(chunks) == case["chunk_count"]
    assert len({chunk.name for chunk in chunks}) == len(chunks)
    assert chunks_digest(chunks) == case["chunks_digest"]


@pytest.mark.parametrize("case", [c for c in CASES if "chunks" in c], ids=_id)
def test_listed_chunk_bytes(case, encrypted):
    _, _, chunks = encrypted[case["name"]]
    stored = {chunk.name: chunk.content for chunk in chunks}
    assert set(stored) == set(case["chunks"])
    for name, expected in case["chunks"].items():
        if isinstance(expected, int):
            assert len(stored[name]) == expected
        else:
            assert stored[name].hex() == expected
        assert hashlib.sha256(stored[name]).hexdigest() == name


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_decrypt_from_root_text(case, encrypted):
    data, _, chunks = encrypted[case["name"]]
    root = se.DataMap.from_text(case["root_text"])
    assert root.file_size == len(data)
    assert se.decrypt(root, chunks) == data
