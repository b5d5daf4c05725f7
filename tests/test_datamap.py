"""Data maps: both forms, and every way a damaged or inconsistent one is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import self_encryption as se
from self_encryption import _backend, _datamap, _options, _sealing

from helpers import SMALL_SIZES, level0_of, levels_of


@pytest.fixture(scope="module")
def four_records():
    """A level-0 map of four records (a root), with its chunks."""
    data = os.urandom(1000)  # fixed 256-byte chunks: 256, 256, 256, 232
    data_map, chunks = se.encrypt(data, chunk_sizes=(256, 256, 256), compression_level=None)
    assert data_map.level == 0 and len(data_map.chunks) == 4
    return data, data_map, chunks


def _with_trailer(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()[:4]


def test_binary_layout(four_records):
    data, data_map, _ = four_records
    raw = data_map.to_bytes()
    assert len(raw) == 28 + 72 * 4 + 4
    magic, version, level, reserved, file_size, content_size, count = struct.unpack_from("<4sBBHQQI", raw)
    assert (magic, version, level, reserved, count) == (b"SEDM", 1, 0, 0, 4)
    assert file_size == content_size == len(data)
    plain, stored, seed, name = struct.unpack_from("<II32s32s", raw, 28)
    first = data_map.chunks[0]
    assert (plain, stored, seed, name.hex()) == (
        first.plain_size,
        first.stored_size,
        first.key_seed,
        first.name,
    )
    assert raw[-4:] == hashlib.sha256(raw[:-4]).digest()[:4]


def test_text_form(four_records):
    _, data_map, _ = four_records
    text = data_map.to_text()
    assert text.startswith("se1:") and "=" not in text
    assert set(text[4:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert se.DataMap.from_text(text) == data_map
    assert se.DataMap.from_text(f"  {text}\n") == data_map


def test_every_truncation_is_refused(four_records):
    _, data_map, _ = four_records
    raw = data_map.to_bytes()
    for length in range(len(raw)):
        with pytest.raises(se.DataMapError):
            se.DataMap.from_bytes(raw[:length])
    with pytest.raises(se.DataMapError):
        se.DataMap.from_bytes(raw + b"\0")


def test_every_single_byte_change_is_refused(four_records):
    _, data_map, _ = four_records
    raw = data_map.to_bytes()
    for position in range(len(raw)):
        for delta in (0x01, 0x80, 0xFF):
            damaged = bytearray(raw)
            damaged[position] ^= delta
            with pytest.raises(se.DataMapError):
                se.DataMap.from_bytes(bytes(damaged))


def test_text_damage_is_refused(four_records):
    _, data_map, _ = four_records
    text = data_map.to_text()
    for bad in (
        "",
        "se1:",
        "se2:" + text[4:],
        text[4:],
        text + "=",
        text[:-1],
        text[:40],
        text[:10] + "!" + text[11:],
        text.replace("se1:", "se1: "),
    ):
        with pytest.raises(se.DataMapError):
            se.DataMap.from_text(bad)
    for position in range(4, len(text)):
        swapped = "A" if text[position] != "A" else "B"
        with pytest.raises(se.DataMapError):
            se.DataMap.from_text(text[:position] + swapped + text[position + 1 :])
    with pytest.raises(se.DataMapError):
        se.DataMap.from_text(b"se1:AAAA")  # type: ignore[arg-type]


def _header(**fields):
    values = dict(magic=b"SEDM", version=1, level=0, reserved=0, file_size=0, content_size=0, count=0)
    values.update(fields)
    return struct.pack("<4sBBHQQI", *values.values())


def _record(plain=10, stored=11):
    return struct.pack("<II32s32s", plain, stored, b"k" * 32, b"n" * 32)


@pytest.mark.parametrize(
    "body, match",
    [
        (_header(magic=b"SEDN"), "magic"),
        (_header(version=2), "version"),
        (_header(reserved=1), "reserved"),
        (_header(count=1), "must be"),
        (_header(file_size=10, content_size=10, count=1) + _record(), None),
        (_header(file_size=10, content_size=11, count=1) + _record(), "content_size"),
        (_header(file_size=11, content_size=10, count=1) + _record(), "level-0"),
        (_header(file_size=0, content_size=0, count=1) + _record(plain=0), "plain_size"),
        (_header(file_size=10, content_size=10, count=1) + _record(stored=0), "stored_size"),
        (_header(level=1, file_size=5, content_size=10, count=1) + _record(), "not the size of a serialized"),
    ],
)
def test_section_5_rules(body, match):
    raw = _with_trailer(body)
    if match is None:
        assert se.DataMap.from_bytes(raw).file_size == 10
    else:
        with pytest.raises(se.DataMapError, match=match):
            se.DataMap.from_bytes(raw)


def test_from_bytes_refuses_non_bytes():
    with pytest.raises(se.DataMapError):
        se.DataMap.from_bytes("SEDM")  # type: ignore[arg-type]
    with pytest.raises(se.DataMapError):
        se.DataMap.from_bytes(None)  # type: ignore[arg-type]


def test_constructor_checks_records():
    good = se.ChunkInfo(10, 11, b"k" * 32, "ab" * 32)
    assert se.DataMap(0, 10, [good]).chunks == (good,)
    for bad in (
        dataclasses.replace(good, plain_size=0),
        dataclasses.replace(good, stored_size=1 << 32),
        dataclasses.replace(good, key_seed=b"short"),
        dataclasses.replace(good, name="AB" * 32),
        dataclasses.replace(good, name="ab" * 31),
    ):
        with pytest.raises(se.DataMapError):
            se.DataMap(0, 10, (bad,))
    with pytest.raises(se.DataMapError):
        se.DataMap(0, 11, (good,))
    with pytest.raises(se.DataMapError):
        se.DataMap(256, 10, (good,))
    with pytest.raises(se.DataMapError):
        se.DataMap(0, -1, ())


def test_immutable_equal_and_discreet(four_records):
    _, data_map, _ = four_records
    with pytest.raises(dataclasses.FrozenInstanceError):
        data_map.level = 3  # type: ignore[misc]
    assert data_map == se.DataMap.from_bytes(data_map.to_bytes())
    assert hash(data_map) == hash(se.DataMap.from_bytes(data_map.to_bytes()))
    seed = data_map.chunks[0].key_seed
    assert seed.hex() not in repr(data_map) and repr(seed) not in repr(data_map)
    assert "records=4" in str(data_map)


def _parent_of(child: se.DataMap, file_size: int, level: int) -> tuple[se.DataMap, dict]:
    """A level-`level` map whose chunks hold child's bytes, as the encryptor would seal them."""
    options = _options.make_options(chunk_sizes=SMALL_SIZES)
    sealed = _sealing.encrypt_level(_backend.active, child.to_bytes(), options)
    records = tuple(chunk.record for chunk in sealed)
    return se.DataMap(level, file_size, records), {c.record.name: bytes(c.content) for c in sealed}


@pytest.fixture
def six_records():
    """A level-0 map of six records: too many for a root, so it is shrunk."""
    data = os.urandom(1500)
    root, chunks = se.encrypt(data, chunk_sizes=(256, 256, 256), compression_level=None)
    store = {c.name: c.content for c in chunks}
    level0 = level0_of(root, store)
    assert len(level0.chunks) == 6
    return data, level0, [c for c in chunks if c.name in {r.name for r in level0.chunks}]


def test_child_map_of_wrong_level_is_refused(six_records):
    data, data_map, chunks = six_records
    parent, parent_chunks = _parent_of(data_map, len(data), level=2)
    store = {**{c.name: c.content for c in chunks}, **parent_chunks}
    with pytest.raises(se.DataMapError, match="holds a level-0 map"):
        se.decrypt(parent, store)


def test_child_map_of_other_file_size_is_refused(six_records):
    data, data_map, chunks = six_records
    parent, parent_chunks = _parent_of(data_map, len(data) + 1, level=1)
    store = {**{c.name: c.content for c in chunks}, **parent_chunks}
    with pytest.raises(se.DataMapError, match="differs"):
        se.decrypt(parent, store)
    honest, honest_chunks = _parent_of(data_map, len(data), level=1)
    assert se.decrypt(honest, {**{c.name: c.content for c in chunks}, **honest_chunks}) == data


def test_decrypt_refuses_a_non_map():
    with pytest.raises(se.InvalidArgumentError):
        se.decrypt("se1:AAAA", {})  # type: ignore[arg-type]


@settings(max_examples=300)
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_map_or_data_map_error(raw):
    try:
        data_map = se.DataMap.from_bytes(raw)
    except se.DataMapError:
        return
    assert data_map.to_bytes() == raw


@settings(max_examples=300)
@given(text=st.text(max_size=200))
def test_arbitrary_text_gives_a_map_or_data_map_error(text):
    for candidate in ("se1:" + text, text):
        try:
            data_map = se.DataMap.from_text(candidate)
        except se.DataMapError:
            continue
        assert data_map.to_text() == candidate.strip()


@settings(max_examples=200)
@given(body=st.binary(max_size=300))
def test_well_formed_header_over_random_records(body):
    """Records that pass the checksum but hold anything: a map or a DataMapError, nothing else."""
    count = len(body) // 72
    records = body[: 72 * count]
    plain = sum(int.from_bytes(records[i : i + 4], "little") for i in range(0, len(records), 72))
    raw = _with_trailer(_header(file_size=plain, content_size=plain, count=count) + records)
    try:
        data_map = se.DataMap.from_bytes(raw)
    except se.DataMapError:
        return
    assert data_map.content_size == plain and len(data_map.chunks) == count


# -- bounds checked before anything is fetched (docs/format.md 3.3) ----------------


def _record(plain: int, stored: int = 100) -> se.ChunkInfo:
    return se.ChunkInfo(plain, stored, bytes(32), "ab" * 32)


def test_a_map_level_must_hold_more_than_a_root():
    # A level-1 map whose child would have had only four records: never shrunk so.
    with pytest.raises(se.DataMapError, match="more than 4 records"):
        se.DataMap(1, 1000, (_record(32 + 72 * 4),))
    assert se.DataMap(1, 1000, (_record(32 + 72 * 5),)).content_size == 392


@pytest.mark.parametrize(
    "level, file_size, content",
    [
        (1, 5, 32 + 72 * 6),  # a 5-byte file has at most 5 records
        (1, 5, (1 << 30) + 32),  # the inflated "map" of the review
        (2, 5, 32 + 72 * (32 + 72 * 5) + 72),
        (1, 0, 32 + 72 * 5),  # an empty file is never shrunk
    ],
)
def test_content_size_is_bounded_by_the_file_size(level, file_size, content):
    records = []
    left = content
    while left:
        take = min(left, (1 << 32) - 1)
        records.append(_record(take))
        left -= take
    with pytest.raises(se.DataMapError, match="more than the map of a|more than 4 records"):
        se.DataMap(level, file_size, tuple(records))


def test_bound_holds_for_real_shrunk_maps():
    data = os.urandom(3000)
    root, chunks = se.encrypt(data, chunk_sizes=(64, 256, 1024))
    store = {c.name: c.content for c in chunks}
    for level in levels_of(root, store):
        if level.level:
            assert level.content_size <= _datamap.max_content_size(level.level, len(data))


@pytest.mark.parametrize("value", [2**62, 5, 3.5, None, "SEDM"])
def test_from_bytes_takes_only_bytes_like(value):
    with pytest.raises(se.DataMapError):
        se.DataMap.from_bytes(value)


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\x1c", "\u3000"])
def test_text_form_accepts_only_ascii_white_space(four_records, space):
    _, data_map, _ = four_records
    text = data_map.to_text()
    assert se.DataMap.from_text(f" \t{text}\r\n") == data_map
    with pytest.raises(se.DataMapError):
        se.DataMap.from_text(f"{space}{text}{space}")


# -- JSON form (docs/format.md 3.4) -------------------------------------------------


def test_json_round_trips(four_records):
    _, data_map, _ = four_records
    for indent in (None, 2):
        text = data_map.to_json(indent=indent)
        assert se.DataMap.from_json(text) == data_map
        assert se.DataMap.from_json(text.encode()) == data_map
    root, _ = se.encrypt(os.urandom(9000), chunk_sizes=SMALL_SIZES)
    assert root.level >= 1 and se.DataMap.from_json(root.to_json()) == root


def _json(data_map, **changes):
    import json

    value = json.loads(data_map.to_json())
    for path, new in changes.items():
        target = value
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key) if key.isdigit() else key]
        if new is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = new
    return json.dumps(value)


_DELETE = object()


@pytest.mark.parametrize(
    "changes",
    [
        {"format": "self-encryption/2"},
        {"format": _DELETE},
        {"extra": 1},
        {"level": True},
        {"level": 0.0},
        {"file_size": "1000"},
        {"file_size": -1},
        {"chunks": {}},
        {"chunks__0__plain_size": 256.0},
        {"chunks__0__key_seed": "AB" * 32},
        {"chunks__0__key_seed": "ab" * 31},
        {"chunks__0__name": "zz" * 32},
        {"chunks__0__stored_size": 0},
        {"chunks__0__colour": "red"},
        {"chunks__0__name": _DELETE},
        {"file_size": 1001},  # level 0: the records must add up to the file size
    ],
)
def test_malformed_json_is_refused(four_records, changes):
    _, data_map, _ = four_records
    with pytest.raises(se.DataMapError):
        se.DataMap.from_json(_json(data_map, **changes))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "null",
        "{",
        '{"format": "self-encryption/1", "format": "self-encryption/1"}',
        "[" * 100_000,
        '{"level": NaN}',
        '{"level": 1' + "0" * 5000 + "}",
        b"\xff\xfe",
    ],
)
def test_json_that_is_not_a_map_is_refused(text):
    with pytest.raises(se.DataMapError):
        se.DataMap.from_json(text)


@settings(max_examples=300)
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_json_text_gives_a_map_or_data_map_error(text):
    try:
        se.DataMap.from_json(text)
    except se.DataMapError:
        pass


def test_map_files_in_json_form_are_read(tmp_path, four_records):
    _, data_map, _ = four_records
    path = tmp_path / "m.json"
    path.write_text(data_map.to_json(indent=2) + "\n")
    assert se.DataMap.load(path) == data_map
