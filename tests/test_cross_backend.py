"""The C and Python backends must write identical bytes and read each other's output."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

import self_encryption as se
from self_encryption import _chunking, _options

import reference
from helpers import SMALL_SIZES, using

chunk_sizes = st.sampled_from([SMALL_SIZES, (64, 512, 4096), (100, 256, 256), (256, 256, 256)])


@settings(max_examples=60)
@given(
    data=st.binary(max_size=8000),
    level=st.sampled_from([None, 1, 3, 9]),
    secret=st.binary(max_size=32),
    sizes=chunk_sizes,
)
def test_backends_write_identical_chunks(both_backends, data, level, secret, sizes):
    c_backend, py_backend = both_backends
    options = dict(convergence_secret=secret, compression_level=level, chunk_sizes=sizes)
    with using(c_backend):
        c_map, c_chunks = se.encrypt(data, workers=2, **options)
    with using(py_backend):
        py_map, py_chunks = se.encrypt(data, workers=1, **options)
        assert se.decrypt(c_map, c_chunks) == data
    assert c_map.to_bytes() == py_map.to_bytes()
    assert reference.as_dict(c_chunks) == reference.as_dict(py_chunks)
    with using(c_backend):
        assert se.decrypt(py_map, py_chunks) == data


def test_backends_agree_on_default_sizes(both_backends):
    c_backend, py_backend = both_backends
    data = os.urandom(3 << 20)
    options = _options.make_options()
    c_result = reference.encrypt(c_backend, data, options)
    assert reference.encrypt(py_backend, data, options) == c_result
    assert reference.decrypt(py_backend, *c_result) == data


@settings(max_examples=40)
@given(data=st.binary(min_size=0, max_size=3000), at_end=st.booleans(), secret=st.binary(max_size=8))
def test_cut_search_agrees(both_backends, data, at_end, secret):
    c_backend, py_backend = both_backends
    results = []
    for backend in both_backends:
        table = _chunking.gear_table(backend, secret)
        results.append(backend.find_cut(table, data, *SMALL_SIZES, at_end))
    assert results[0] == results[1]
    assert _chunking.gear_table(c_backend, secret).values == _chunking.gear_table(py_backend, secret).values
