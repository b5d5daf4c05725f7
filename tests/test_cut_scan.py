"""Batch cut search (csrc/se_cut.c and its Python reference).

cut_lengths, scan_candidates + resolve_cuts must give exactly the cuts of
repeated find_cut calls, on every scan path (scalar reference, unrolled,
AVX2), for random and low-entropy data and every edge of the chunk-size
rules, however the scan is split into segments.
"""

from __future__ import annotations

import os
import random
from array import array
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from self_encryption import InvalidArgumentError

WINDOW = 63

#: (min, avg, max) at the edges the spec allows, plus sizes that reach the
#: vector path (avg >= 16 KiB: MASK_L has >= 12 bits).
SIZES = [
    (64, 256, 256),  # smallest min and avg, max = avg
    (64, 256, 1024),
    (256, 256, 256),  # min = avg = max: every cut is forced or a tail
    (256, 256, 4096),  # min = avg
    (64, 256, 1 << 31),  # largest max
    (100, 1024, 4096),  # min not a power of two
    (64, 4096, 4096),
    (1000, 16384, 65536),  # the vector path, MASK_S and MASK_L
    (64, 16384, 16384),
    (4096, 65536, 262144),
    (64, 1 << 30, 1 << 31),  # MASK_S has 32 bits, MASK_L 28
    (64, 1 << 31, 1 << 31),  # the largest avg: MASK_S has 33 bits
]


@pytest.fixture(scope="module")
def c(c_backend):
    return c_backend


@pytest.fixture(scope="module")
def py(py_backend):
    return py_backend


def _paths(c_backend) -> list[str]:
    paths = ["scalar", "unrolled", "auto"]
    try:
        c_backend.cut_path("avx2")
        paths.append("avx2")
    except InvalidArgumentError:
        pass
    return paths


@pytest.fixture(scope="module")
def paths(c):
    return _paths(c)


# ------------------------------------------------------------------ data


def _text(rng: random.Random, size: int) -> bytes:
    words = [
        b"the",
        b"chunk",
        b"of",
        b"a",
        b"self",
        b"encrypted",
        b"file",
        b"and",
        b"its",
        b"data",
        b"map",
        b"\n",
        b"gear",
        b"hash",
        b"is",
        b"cut",
    ]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def _runs(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += bytes([rng.randrange(256)]) * rng.choice((1, 3, 64, 65, 500, 5000))
    return bytes(out[:size])


def make_data(kind: str, size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    if kind == "random":
        return rng.randbytes(size)
    if kind == "zeros":
        return bytes(size)
    if kind == "ones":
        return b"\xff" * size
    if kind == "pattern2":
        return (b"ab" * size)[:size]
    if kind == "pattern5":
        return (b"\x00\x01\x02\x03\x04" * size)[:size]
    if kind == "text":
        return _text(rng, size)
    if kind == "runs":
        return _runs(rng, size)
    if kind == "mixed":  # random with long runs of one byte
        data = bytearray(rng.randbytes(size))
        for start in range(0, size, 20000):
            data[start : start + 7000] = bytes([data[start]]) * len(data[start : start + 7000])
        return bytes(data)
    raise AssertionError(kind)


KINDS = ["random", "zeros", "ones", "pattern2", "pattern5", "text", "runs", "mixed"]


def crafted_table(backend, values):
    """A GearTable holding arbitrary gear values (to make candidates dense)."""
    table = object.__new__(backend.GearTable)
    if hasattr(backend, "ffi"):
        table.table = backend.ffi.new("se_gear_table *")
        for b, value in enumerate(values):
            table.table.gear[b] = value
    else:
        table.values = tuple(values)
    return table


def dense_values(seed: int, clear_bits: int, zeros: int) -> list[int]:
    """Random gear values with their top clear_bits bits clear, and a few zeros."""
    rng = random.Random(seed)
    values = [rng.getrandbits(64) >> clear_bits for _ in range(256)]
    for b in rng.sample(range(256), zeros):
        values[b] = 0
    return values


# ------------------------------------------------------------- reference


def find_cut_all(backend, table, data, min_size, avg_size, max_size, at_end) -> list[int]:
    view = memoryview(data)
    cuts, start = [], 0
    while start < len(view):
        cut = backend.find_cut(table, view[start:], min_size, avg_size, max_size, at_end)
        if not cut:
            break
        cuts.append(cut)
        start += cut
    return cuts


def scan_segments(backend, table, data, bounds, avg_size, path=None) -> list[array]:
    """Candidates of [0, len) scanned in the segments between sorted bounds."""
    edges = [0, *sorted(b for b in bounds if 0 < b < len(data)), len(data)]
    return [backend.scan_candidates(table, data, a, b, avg_size, path=path) for a, b in zip(edges, edges[1:])]


def min_point_bounds(cuts, min_size, offsets=(0, 1, 31, 62, 63, 64)) -> list[int]:
    """Segment bounds inside the first 64 bytes after each chunk's min point."""
    bounds, start = [], 0
    for k, cut in enumerate(cuts):
        bounds.append(start + min_size + offsets[k % len(offsets)])
        start += cut
    return bounds


# ------------------------------------------------------------------- path


def test_cut_path_follows_the_environment(c, monkeypatch):
    monkeypatch.setenv("SELF_ENCRYPTION_CUT", "scalar")
    assert c.cut_path() == "scalar"
    monkeypatch.setenv("SELF_ENCRYPTION_CUT", "auto")
    assert c.cut_path() in ("avx2", "unrolled")
    monkeypatch.delenv("SELF_ENCRYPTION_CUT")
    assert c.cut_path() == c.cut_path("auto")
    assert c.cut_path("unrolled") == "unrolled"
    monkeypatch.setenv("SELF_ENCRYPTION_CUT", "fastest")
    with pytest.raises(InvalidArgumentError, match="SELF_ENCRYPTION_CUT"):
        c.cut_path()
    table = c.GearTable(b"")
    with pytest.raises(InvalidArgumentError):
        c.cut_lengths(table, b"x" * 1000, 64, 256, 1024, True)


def test_forced_scalar_by_environment_gives_the_same_cuts(c, monkeypatch):
    table = c.GearTable(b"env")
    data = make_data("random", 300_000, 5)
    expect = find_cut_all(c, table, data, 1000, 16384, 65536, True)
    for choice in ("scalar", "auto"):
        monkeypatch.setenv("SELF_ENCRYPTION_CUT", choice)
        assert c.cut_lengths(table, data, 1000, 16384, 65536, True) == expect
        parts = scan_segments(c, table, data, [100_000, 200_001], 16384)
        assert c.resolve_cuts(table, data, parts, 1000, 16384, 65536, True) == expect


def test_python_backend_has_one_path(py):
    assert py.cut_path() == "python"


# -------------------------------------------------------- C against find_cut


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "-".join(map(str, s)))
def test_c_cuts_match_find_cut(c, paths, kind, sizes):
    min_size, avg_size, max_size = sizes
    table = c.GearTable(b"")
    data = make_data(kind, 200_000 if avg_size <= 16384 else 600_000)
    for at_end in (False, True):
        expect = find_cut_all(c, table, data, min_size, avg_size, max_size, at_end)
        bounds = min_point_bounds(expect, min_size)[::7] + [len(data) // 3]
        whole = c.scan_candidates(table, data, 0, len(data), avg_size, path="scalar")
        for path in paths:
            assert c.cut_lengths(table, data, min_size, avg_size, max_size, at_end, path=path) == expect, path
            parts = scan_segments(c, table, data, bounds, avg_size, path=path)
            joined = array("Q", b"".join(p.tobytes() for p in parts))
            assert joined == whole, path
            assert c.resolve_cuts(table, data, parts, min_size, avg_size, max_size, at_end) == expect, path


@pytest.mark.parametrize("clear_bits", [0, 8, 20, 40])
def test_dense_candidates_every_path(c, paths, clear_bits):
    """Gear values with their top bits clear (and some zero) make candidates
    common, including for the 33-bit MASK_S of avg = 2^31, so the vector
    prefilter's hits and the exact rescans run all the time."""
    table = crafted_table(c, dense_values(clear_bits, clear_bits, zeros=20))
    for kind in ("random", "runs", "mixed", "text"):
        data = make_data(kind, 150_000, clear_bits)
        for sizes in [(64, 256, 1024), (1000, 16384, 65536), (64, 1 << 31, 1 << 31)]:
            for at_end in (False, True):
                expect = find_cut_all(c, table, data, *sizes, at_end)
                whole = c.scan_candidates(table, data, 0, len(data), sizes[1], path="scalar")
                for path in paths:
                    assert c.cut_lengths(table, data, *sizes, at_end, path=path) == expect
                    got = c.scan_candidates(table, data, 0, len(data), sizes[1], path=path)
                    assert got == whole, (path, kind, sizes)
                    assert c.resolve_cuts(table, data, got, *sizes, at_end) == expect


def test_segment_bounds_on_candidates_and_after_min_points(c, paths):
    table = c.GearTable(b"bounds")
    data = make_data("random", 400_000, 9)
    min_size, avg_size, max_size = 1000, 16384, 65536
    expect = find_cut_all(c, table, data, min_size, avg_size, max_size, True)
    whole = c.scan_candidates(table, data, 0, len(data), avg_size)
    positions = [entry >> 1 for entry in whole]
    on_candidates = positions[::3] + [p + 1 for p in positions[1::3]]
    after_min = [bound for offset in range(65) for bound in min_point_bounds(expect, min_size, (offset,))[:3]]
    for bounds in (on_candidates, after_min, list(range(1, 200, 7))):
        for path in paths:
            parts = scan_segments(c, table, data, bounds, avg_size, path=path)
            assert array("Q", b"".join(p.tobytes() for p in parts)) == whole
            assert c.resolve_cuts(table, data, parts, min_size, avg_size, max_size, True) == expect


def test_resolve_from_any_start(c):
    table = c.GearTable(b"")
    data = make_data("random", 100_000, 3)
    cands = c.scan_candidates(table, data, 0, len(data), 1024)
    for start in (0, 1, 63, 64, 5000, 99_000, 100_000):
        assert c.resolve_cuts(table, data, cands, 100, 1024, 4096, True, start) == find_cut_all(
            c, table, data[start:], 100, 1024, 4096, True
        )


@pytest.mark.parametrize("which", ["c", "py"])
def test_short_inputs(request, which):
    backend = request.getfixturevalue(which)
    paths = request.getfixturevalue("paths") if which == "c" else [None]
    table = backend.GearTable(b"")
    for size in (0, 1, 63, 64, 65, 127, 128, 200, 256, 257, 320, 321):
        data = make_data("random", size, size)
        for at_end in (False, True):
            expect = find_cut_all(backend, table, data, 64, 256, 256, at_end)
            for path in paths:
                assert backend.cut_lengths(table, data, 64, 256, 256, at_end, path=path) == expect
                cands = backend.scan_candidates(table, data, 0, size, 256, path=path)
                assert backend.resolve_cuts(table, data, cands, 64, 256, 256, at_end) == expect


def test_scan_resumes_when_its_buffer_fills(c):
    """All-zero data with a zero gear value: every position is a candidate,
    more than one internal buffer holds."""
    values = dense_values(1, 0, zeros=0)
    values[0] = 0
    table = crafted_table(c, values)
    data = bytes(200_000)
    for path in ("scalar", "auto"):
        got = c.scan_candidates(table, data, 5, len(data), 16384, path=path)
        assert list(got) == [(i << 1) | 1 for i in range(5, len(data))]


def test_threads_scan_segments_then_resolve(c):
    table = c.GearTable(b"threads")
    data = make_data("random", 2_000_000, 11)
    sizes = (4096, 65536, 262144)
    expect = find_cut_all(c, table, data, *sizes, True)
    step = len(data) // 4 + 1
    segments = [(a, min(a + step, len(data))) for a in range(0, len(data), step)]
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(lambda seg: c.scan_candidates(table, data, seg[0], seg[1], sizes[1]), segments))
    assert c.resolve_cuts(table, data, parts, *sizes, True) == expect


# ------------------------------------------------ Python reference, cross-check


@pytest.mark.parametrize("kind", ["random", "zeros", "pattern5", "text", "runs"])
def test_python_backend_matches_c(c, py, kind):
    data = make_data(kind, 20_000, 2)
    tc, tp = c.GearTable(b"x"), py.GearTable(b"x")
    for sizes in [
        (64, 256, 256),
        (64, 256, 1024),
        (256, 256, 256),
        (100, 1024, 4096),
        (64, 1 << 31, 1 << 31),
    ]:
        cands = py.scan_candidates(tp, data, 0, len(data), sizes[1])
        assert cands == c.scan_candidates(tc, data, 0, len(data), sizes[1])
        assert py.scan_candidates(tp, data, 700, 9000, sizes[1]) == c.scan_candidates(
            tc, data, 700, 9000, sizes[1]
        )
        for at_end in (False, True):
            expect = find_cut_all(py, tp, data, *sizes, at_end)
            assert expect == find_cut_all(c, tc, data, *sizes, at_end)
            assert py.cut_lengths(tp, data, *sizes, at_end) == expect
            assert py.resolve_cuts(tp, data, cands, *sizes, at_end) == expect
            parts = scan_segments(py, tp, data, [1, 64, 5000, 5001], sizes[1])
            assert py.resolve_cuts(tp, data, parts, *sizes, at_end) == expect


def test_python_backend_dense_candidates(c, py):
    values = dense_values(4, 20, zeros=20)
    tc, tp = crafted_table(c, values), crafted_table(py, values)
    data = make_data("mixed", 30_000, 4)
    for sizes in [(64, 256, 1024), (64, 1 << 31, 1 << 31)]:
        cands = py.scan_candidates(tp, data, 0, len(data), sizes[1])
        assert cands == c.scan_candidates(tc, data, 0, len(data), sizes[1])
        for at_end in (False, True):
            expect = find_cut_all(c, tc, data, *sizes, at_end)
            assert py.resolve_cuts(tp, data, cands, *sizes, at_end) == expect
            assert py.cut_lengths(tp, data, *sizes, at_end) == expect


# ------------------------------------------------------------- arguments


@pytest.mark.parametrize("which", ["c", "py"])
def test_arguments_are_checked(request, which):
    backend = request.getfixturevalue(which)
    table = backend.GearTable(b"")
    data = make_data("random", 1000)
    with pytest.raises(InvalidArgumentError):
        backend.scan_candidates(table, data, 0, 1000, 300)
    with pytest.raises(InvalidArgumentError):
        backend.scan_candidates(table, data, 500, 400, 256)
    with pytest.raises(InvalidArgumentError):
        backend.scan_candidates(table, data, 0, 1001, 256)
    with pytest.raises(InvalidArgumentError):
        backend.cut_lengths(table, data, 63, 256, 1024, True)
    with pytest.raises(InvalidArgumentError):
        backend.cut_lengths(table, data, 64, 256, 128, True)
    with pytest.raises(InvalidArgumentError):
        backend.resolve_cuts(table, data, array("Q", [20, 10]), 64, 256, 1024, True)
    with pytest.raises(InvalidArgumentError):
        backend.resolve_cuts(table, data, array("Q", [1000 << 1]), 64, 256, 1024, True)
    assert backend.scan_candidates(table, data, 10, 10, 256) == array("Q")
    assert backend.cut_lengths(table, b"", 64, 256, 1024, True) == []
    with pytest.raises(InvalidArgumentError):
        backend.cut_lengths(table, data, 64, 256, 1024, True, limit=0)


@pytest.mark.parametrize("which", ["c", "py"])
@pytest.mark.parametrize("at_end", [True, False])
def test_cut_lengths_stops_after_limit(request, which, at_end):
    backend = request.getfixturevalue(which)
    table = backend.GearTable(b"")
    data = make_data("random", 20_000)
    every = backend.cut_lengths(table, data, 64, 256, 1024, at_end)
    assert len(every) > 5
    for limit in (1, 2, 5, len(every), len(every) + 3):
        assert backend.cut_lengths(table, data, 64, 256, 1024, at_end, limit=limit) == every[:limit]


# ------------------------------------------------------------- hypothesis


def _data_strategy():
    return st.one_of(
        st.binary(min_size=0, max_size=6000),
        st.builds(lambda b, n: bytes([b]) * n, st.integers(0, 255), st.integers(0, 6000)),
        st.builds(
            lambda p, n: (p * (n // max(len(p), 1) + 1))[:n],
            st.binary(min_size=1, max_size=8),
            st.integers(0, 6000),
        ),
        st.builds(lambda seed, n: make_data("text", n, seed), st.integers(0, 1000), st.integers(0, 6000)),
        st.builds(lambda seed, n: make_data("runs", n, seed), st.integers(0, 1000), st.integers(0, 6000)),
    )


@st.composite
def _sizes(draw):
    bits = draw(st.sampled_from([8, 8, 9, 10, 12, 14, 30, 31]))
    avg_size = 1 << bits
    min_size = draw(st.sampled_from([64, 65, 127, 128, 200, min(avg_size, 4096), avg_size]))
    min_size = min(min_size, avg_size)
    max_size = draw(st.sampled_from([avg_size, avg_size + 1, 2 * avg_size, 1 << 31]))
    if draw(st.booleans()) and min_size == avg_size:
        max_size = min_size  # max = min
    return min_size, avg_size, min(max(max_size, avg_size), 1 << 31)


@st.composite
def _table_values(draw):
    if draw(st.booleans()):
        return None  # a real keyed table
    return dense_values(
        draw(st.integers(0, 10_000)), draw(st.sampled_from([0, 6, 12, 30])), draw(st.integers(0, 40))
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    data=_data_strategy(),
    sizes=_sizes(),
    values=_table_values(),
    secret=st.binary(max_size=8),
    at_end=st.booleans(),
    cut_points=st.lists(st.integers(0, 6000), max_size=6),
    min_offsets=st.lists(st.integers(0, 64), min_size=1, max_size=4),
)
def test_hypothesis_all_paths_match_find_cut(
    c, paths, data, sizes, values, secret, at_end, cut_points, min_offsets
):
    table = c.GearTable(secret) if values is None else crafted_table(c, values)
    expect = find_cut_all(c, table, data, *sizes, at_end)
    bounds = cut_points + min_point_bounds(expect, sizes[0], tuple(min_offsets))
    whole = c.scan_candidates(table, data, 0, len(data), sizes[1], path="scalar")
    bounds += [entry >> 1 for entry in whole[:3]]  # exactly on candidates
    for path in paths:
        assert c.cut_lengths(table, data, *sizes, at_end, path=path) == expect
        parts = scan_segments(c, table, data, bounds, sizes[1], path=path)
        assert array("Q", b"".join(p.tobytes() for p in parts)) == whole
        assert c.resolve_cuts(table, data, parts, *sizes, at_end) == expect


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    data=_data_strategy(),
    sizes=_sizes(),
    values=_table_values(),
    at_end=st.booleans(),
    cut_points=st.lists(st.integers(0, 6000), max_size=4),
)
def test_hypothesis_python_reference(c, py, data, sizes, values, at_end, cut_points):
    if values is None:
        tc, tp = c.GearTable(b""), py.GearTable(b"")
    else:
        tc, tp = crafted_table(c, values), crafted_table(py, values)
    expect = find_cut_all(c, tc, data, *sizes, at_end)
    assert py.cut_lengths(tp, data, *sizes, at_end) == expect
    parts = scan_segments(py, tp, data, cut_points, sizes[1])
    assert [p.tobytes() for p in parts] == [
        p.tobytes() for p in scan_segments(c, tc, data, cut_points, sizes[1])
    ]
    assert py.resolve_cuts(tp, data, parts, *sizes, at_end) == expect


def test_large_random_default_sizes(c, paths):
    """Default chunk sizes on 24 MiB: several chunks, every path."""
    table = c.GearTable(b"")
    data = os.urandom(24 << 20)
    sizes = (256 << 10, 1 << 20, 4 << 20)
    expect = find_cut_all(c, table, data, *sizes, True)
    assert len(expect) > 10
    for path in paths:
        assert c.cut_lengths(table, data, *sizes, True, path=path) == expect
    parts = scan_segments(c, table, data, [len(data) // 2 + 12345], sizes[1])
    assert c.resolve_cuts(table, data, parts, *sizes, True) == expect
