"""The Cutter: however the bytes arrive, the cuts are those of the whole stream."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import self_encryption as se
from self_encryption import _backend, _chunking, _options, _sealing

from helpers import SMALL_SIZES, level0_of

OPTIONS = _options.make_options(chunk_sizes=SMALL_SIZES)


def _whole(data: bytes) -> list[bytes]:
    """Reference cuts: find_cut over the whole input, one chunk at a time."""
    backend = _backend.active
    table = _chunking.gear_table(backend, b"")
    pieces, start = [], 0
    while start < len(data):
        window = data[start:]
        length = backend.find_cut(table, window, *SMALL_SIZES, True)
        pieces.append(data[start : start + length])
        start += length
    return pieces


def _feed(cutter, data: bytes, sizes: list[int], owned: bool) -> list[bytes]:
    pieces, offset, turn = [], 0, 0
    while offset < len(data):
        size = sizes[turn % len(sizes)] if sizes else len(data)
        pieces += [bytes(p) for p in cutter.feed(data[offset : offset + size], owned=owned)]
        offset += size
        turn += 1
    return pieces + [bytes(p) for p in cutter.finish()]


@settings(max_examples=60)
@given(
    data=st.one_of(
        st.binary(max_size=6000),
        st.builds(lambda n, b: b * n, st.integers(0, 3000), st.binary(min_size=1, max_size=3)),
    ),
    sizes=st.lists(st.integers(1, 2500), max_size=6),
    eager=st.booleans(),
    owned=st.booleans(),
)
def test_any_feeding_gives_the_whole_stream_cuts(data, sizes, eager, owned):
    cutter = _chunking.Cutter(_backend.active, OPTIONS, eager=eager)
    assert _feed(cutter, data, sizes, owned) == _whole(data)


def test_owned_pieces_are_views_and_others_are_copies():
    data = bytearray(os.urandom(10_000))
    owned = list(_chunking.Cutter(_backend.active, OPTIONS).cut_all(data, owned=True))
    copied = list(_chunking.Cutter(_backend.active, OPTIONS).cut_all(data))
    # The last max bytes wait in the cutter's buffer for the end: those come out copied.
    tail = sum(len(p) for p in owned) - len(data) + SMALL_SIZES[2]
    assert isinstance(owned[0], memoryview) and owned[0].obj is not None and tail > 0
    assert all(isinstance(p, bytes) for p in copied)
    assert b"".join(owned) == b"".join(copied) == data


def test_eager_cutter_decides_before_max_bytes_are_held():
    data = os.urandom(5000)
    first = _whole(data)[0]
    eager = _chunking.Cutter(_backend.active, OPTIONS, eager=True)
    lazy = _chunking.Cutter(_backend.active, OPTIONS)
    # Bytes held from an earlier feed: only the eager cutter looks for a cut
    # before it holds more than max bytes.
    assert list(eager.feed(data[:10])) == [] and list(lazy.feed(data[:10])) == []
    early = list(eager.feed(data[10 : len(first) + 1]))
    late = list(lazy.feed(data[10 : len(first) + 1]))
    assert [bytes(p) for p in early] == [first] and late == []


def test_cut_lengths_matches_the_cutter():
    data = os.urandom(20_000)
    assert _chunking.cut_lengths(_backend.active, data, OPTIONS) == [len(p) for p in _whole(data)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_neighbours_wrap_round_the_level(count):
    seeds = [bytes([i]) * 32 for i in range(count)]
    for index in range(count):
        prev1, prev2 = _sealing.neighbour_seeds(seeds, index)
        assert prev1 == seeds[(index - 1) % count] and prev2 == seeds[(index - 2) % count]


def _parallel_cuts(data: bytes, sizes, workers: int) -> list[int]:
    return _chunking.cut_points(data, chunk_sizes=sizes, workers=workers)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["random", "text", "runs", "zeros"]),
    sizes=st.sampled_from([(64, 256, 1024), (64, 256, 256), (256, 4096, 8192), (100, 1024, 4096)]),
    workers=st.sampled_from([2, 3]),
    method=st.sampled_from(["scan", "chains", "chains, scan after 1 chunk"]),
)
def test_cut_points_with_workers_are_the_one_thread_cuts(seed, kind, sizes, workers, method):
    rng = random.Random(seed)
    size = rng.randrange(0, 300_000)
    if kind == "random":
        data = rng.randbytes(size)
    elif kind == "text":
        words = [b"alpha", b"beta", b"gamma", b"delta ", b"\n", b"epsilon"]
        data = b" ".join(rng.choice(words) for _ in range(size // 5))
    elif kind == "runs":
        data = b"".join(bytes([rng.randrange(256)]) * rng.randrange(1, 3000) for _ in range(size // 1500))
    else:
        data = bytes(size)
    expected = _parallel_cuts(data, sizes, 1)
    with pytest.MonkeyPatch.context() as patch:
        if method == "scan":
            patch.setattr(_chunking, "SEGMENT", 4096)  # many segments in a few hundred KiB
        else:
            # Chains of 4 max-size chunks: they often meet the true cuts late
            # or never (runs of zeros cut at max, and 4 * (max + 1) is no
            # multiple of max), so every way of joining them is taken.
            patch.setattr(_chunking, "CHAIN_SEGMENT", 0)
            patch.setattr(_chunking, "CHAIN_CHUNKS", 4)
            if method.endswith("1 chunk"):
                patch.setattr(_chunking, "CHAIN_WALK", 1)
        assert _parallel_cuts(data, sizes, workers) == expected
    assert expected == ([] if not data else expected) and (not data or expected[-1] == len(data))
    lengths = _chunking.cut_lengths(_backend.active, data, _options.make_options(chunk_sizes=sizes))
    assert [sum(lengths[: i + 1]) for i in range(len(lengths))] == expected


def _chains_used(monkeypatch) -> list[int]:
    """Make chains of about 4 chunks of SMALL_SIZES, and count the segments cut."""
    monkeypatch.setattr(_chunking, "CHAIN_SEGMENT", 0)
    monkeypatch.setattr(_chunking, "CHAIN_CHUNKS", 4)
    used: list[int] = []
    original = _chunking.Cutter._chains

    def counting(self, view, at_end):
        used.append(len(view) // self._chain)
        return original(self, view, at_end)

    monkeypatch.setattr(_chunking.Cutter, "_chains", counting)
    return used


@pytest.mark.parametrize("pieces", [1, 3, 20])
@pytest.mark.parametrize("owned", [True, False])
def test_cutter_with_chains_gives_the_whole_stream_cuts(monkeypatch, pieces, owned):
    used = _chains_used(monkeypatch)
    rng = random.Random(pieces)
    data = rng.randbytes(150_000) + bytes(40_000) + b"a line of text\n" * 5000 + rng.randbytes(30_000)
    with ThreadPoolExecutor(2) as pool:
        cutter = _chunking.Cutter(_backend.active, OPTIONS, pool=lambda: pool, workers=2)
        step = -(-len(data) // pieces)
        assert _feed(cutter, data, [step], owned) == _whole(data)
    assert used and max(used) >= (40 if pieces == 1 else 2)


@pytest.mark.parametrize("walk", [0, 1, 8])
@pytest.mark.parametrize("probe", [2, 10])
@pytest.mark.parametrize(
    "kind", ["zeros: chains never meet the true cuts", "random: they meet", "zeros then random"]
)
def test_cut_points_from_chains_in_every_case(monkeypatch, kind, probe, walk):
    # Zeros cut at max, 1024 bytes; chains start at multiples of 4 * 1025, so
    # they and the true cuts stay apart. A probe of 2 drops such chains at
    # once (the candidate scan takes their segments); a probe of 10 (more
    # chunks than a segment holds) keeps them, and the calling thread walks
    # up to `walk` chunks into each before handing its segment to the scan.
    monkeypatch.setattr(_chunking, "CHAIN_PROBE", probe)
    monkeypatch.setattr(_chunking, "CHAIN_WALK", walk)
    scans = []
    original_scan = _chunking.Cutter._scan_ahead

    def counting_scan(self, view, at_end):
        scans.append(len(view))
        return original_scan(self, view, at_end)

    monkeypatch.setattr(_chunking.Cutter, "_scan_ahead", counting_scan)
    used = _chains_used(monkeypatch)
    rng = random.Random(kind)
    data = {
        "zeros: chains never meet the true cuts": bytes(300_000),
        "random: they meet": rng.randbytes(300_000),
        "zeros then random": bytes(100_000) + rng.randbytes(200_000),
    }[kind]
    expected = _parallel_cuts(data, SMALL_SIZES, 1)
    assert _parallel_cuts(data, SMALL_SIZES, 2) == expected
    assert used == [300_000 // (4 * 1025)]
    if kind.startswith("zeros") and (probe == 2 or walk <= 1):
        assert scans  # some segment was finished by the scan


def test_chains_stop_cleanly_when_the_caller_stops_early(monkeypatch):
    _chains_used(monkeypatch)
    data = random.Random(7).randbytes(400_000)
    with ThreadPoolExecutor(2) as pool:
        cutter = _chunking.Cutter(_backend.active, OPTIONS, pool=lambda: pool, workers=2)
        pieces = cutter.cut_all(data, owned=True)
        first = [bytes(next(pieces)) for _ in range(3)]
        pieces.close()
    assert first == _whole(data)[:3]


def test_public_cut_points_match_encrypt():
    data = os.urandom(200_000)
    root, chunks = se.encrypt(data, chunk_sizes=SMALL_SIZES)
    level0 = level0_of(root, {c.name: c.content for c in chunks})
    ends, offset = [], 0
    for record in level0.chunks:
        offset += record.plain_size
        ends.append(offset)
    assert se.cut_points(data, chunk_sizes=SMALL_SIZES) == ends
    assert se.cut_points(data, chunk_sizes=SMALL_SIZES, workers=2) == ends
    assert se.cut_points(b"") == []
