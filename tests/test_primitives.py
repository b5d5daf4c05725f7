"""Known-answer and cross-backend tests of the primitives of both backends.

Both backend modules are imported directly, so every run checks the C core
and the pure-Python code whatever SELF_ENCRYPTION_BACKEND selects.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from self_encryption import ChunkIntegrityError, InvalidArgumentError, _pybackend

try:
    from self_encryption import _cbackend
except ImportError:  # an install without the compiled module
    _cbackend = None

needs_c = pytest.mark.skipif(_cbackend is None, reason="C backend not built")

DATA = pathlib.Path(__file__).parent / "data"

BACKENDS = [
    pytest.param(_cbackend, id="c", marks=needs_c),
    pytest.param(_pybackend, id="python"),
]

# No example database: it would write a folder into the working tree.
FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _load(name: str) -> dict:
    with open(DATA / name, encoding="utf-8") as handle:
        return json.load(handle)


SHA_KAT = _load("kat_sha256.json")
HMAC_KAT = _load("kat_hmac_sha256.json")
AES_KAT = _load("kat_aes256_ctr.json")
PRIMITIVES = _load("format_v1_vectors.json")["primitives"]


def _message(spec) -> bytes:
    if isinstance(spec, dict):
        return bytes.fromhex(spec["repeat"]) * spec["count"]
    return bytes.fromhex(spec)


def _spec_gear(secret: bytes) -> tuple[int, ...]:
    """GEAR of SPEC section 1, written out here with hmac/hashlib."""
    label = b"self-encryption/1 gear"
    return tuple(
        int.from_bytes(hmac.new(secret, label + bytes([b]), hashlib.sha256).digest()[:8], "little")
        for b in range(256)
    )


_GEAR_CACHE: dict[tuple[str, bytes], object] = {}


def gear_table(backend, secret: bytes = b""):
    key = (backend.NAME, secret)
    if key not in _GEAR_CACHE:
        _GEAR_CACHE[key] = backend.GearTable(secret)
    return _GEAR_CACHE[key]


# --------------------------------------------------------------------------
# The known-answer files themselves


def test_kat_files_name_their_source():
    for kat in (SHA_KAT, HMAC_KAT, AES_KAT):
        assert isinstance(kat["source"], str) and len(kat["source"]) > 40
        assert kat["cases"]
    assert len(SHA_KAT["cases"]) == 5
    assert [case["case"] for case in HMAC_KAT["cases"]] == [1, 2, 3, 4, 5, 6, 7]
    assert {case["direction"] for case in AES_KAT["cases"]} == {"encrypt", "decrypt"}


# --------------------------------------------------------------------------
# SHA-256


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", SHA_KAT["cases"], ids=lambda case: case["name"])
def test_sha256_kat(backend, case):
    message = _message(case["message"])
    assert backend.sha256(message).hex() == case["digest"]
    assert backend.sha256(bytearray(message)).hex() == case["digest"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sha256_many_sizes_against_hashlib(backend):
    source = bytes((i * 131 + 7) & 0xFF for i in range(70_000))
    sizes = list(range(0, 200)) + [255, 256, 257, 511, 512, 513, 1000, 4096, 65_535, 65_536, 70_000]
    for size in sizes:
        chunk = source[:size]
        assert backend.sha256(chunk) == hashlib.sha256(chunk).digest(), size
    # Any buffer object will do.
    view = memoryview(source)[3:1003]
    assert backend.sha256(view) == hashlib.sha256(source[3:1003]).digest()


# --------------------------------------------------------------------------
# HMAC-SHA-256


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", HMAC_KAT["cases"], ids=lambda case: f"case{case['case']}")
def test_hmac_sha256_kat(backend, case):
    mac = backend.hmac_sha256(bytes.fromhex(case["key"]), bytes.fromhex(case["data"]))
    assert len(mac) == 32
    expected = bytes.fromhex(case["hmac_sha256"])
    if "truncate_bytes" in case:
        assert len(expected) == case["truncate_bytes"]
        mac = mac[: case["truncate_bytes"]]
    assert mac == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_hmac_sha256_key_and_data_lengths(backend):
    for key_len in (0, 1, 31, 32, 63, 64, 65, 131, 200):
        key = bytes((i * 17 + key_len) & 0xFF for i in range(key_len))
        for data_len in (0, 1, 55, 56, 64, 1000):
            data = bytes((i * 29 + 3) & 0xFF for i in range(data_len))
            expected = hmac.new(key, data, hashlib.sha256).digest()
            assert backend.hmac_sha256(key, data) == expected, (key_len, data_len)


# --------------------------------------------------------------------------
# AES-256-CTR


def _counter_plus(counter: bytes, n: int) -> bytes:
    value = (int.from_bytes(counter, "big") + n) % (1 << 128)
    return value.to_bytes(16, "big")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", AES_KAT["cases"], ids=lambda case: case["direction"])
def test_aes256_ctr_kat_whole_message(backend, case):
    key = bytes.fromhex(case["key"])
    counter = bytes.fromhex(case["initial_counter"])
    data = bytes.fromhex("".join(case["input_blocks"]))
    expected = bytes.fromhex("".join(case["output_blocks"]))
    assert backend.aes256_ctr(key, counter, data) == expected
    # CTR is its own inverse.
    assert backend.aes256_ctr(key, counter, expected) == data


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", AES_KAT["cases"], ids=lambda case: case["direction"])
def test_aes256_ctr_kat_block_by_block(backend, case):
    key = bytes.fromhex(case["key"])
    counter = bytes.fromhex(case["initial_counter"])
    for n, (block_in, block_out) in enumerate(zip(case["input_blocks"], case["output_blocks"])):
        got = backend.aes256_ctr(key, _counter_plus(counter, n), bytes.fromhex(block_in))
        assert got.hex() == block_out, n


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", AES_KAT["cases"], ids=lambda case: case["direction"])
def test_aes256_ctr_kat_prefixes(backend, case):
    """A short message is the prefix of the key stream applied to it."""
    key = bytes.fromhex(case["key"])
    counter = bytes.fromhex(case["initial_counter"])
    data = bytes.fromhex("".join(case["input_blocks"]))
    expected = bytes.fromhex("".join(case["output_blocks"]))
    for size in (0, 1, 15, 16, 17, 33, 63):
        assert backend.aes256_ctr(key, counter, data[:size]) == expected[:size], size


@pytest.mark.parametrize("backend", BACKENDS)
def test_aes256_ctr_counter_wraps(backend):
    wrap = PRIMITIVES["ctr_wrap"]
    key = bytes.fromhex(wrap["key"])
    counter = bytes.fromhex(wrap["iv"])
    plaintext = bytes.fromhex(wrap["plaintext"])
    ciphertext = bytes.fromhex(wrap["ciphertext"])
    assert backend.aes256_ctr(key, counter, plaintext) == ciphertext
    # The third block runs under counter 0 (2^128 wrapped): same as starting there.
    assert backend.aes256_ctr(key, bytes(16), plaintext[32:48]) == ciphertext[32:48]
    assert backend.aes256_ctr(key, _counter_plus(counter, 1), plaintext[16:]) == ciphertext[16:]


@needs_c
def test_aes256_ctr_backends_agree_on_odd_lengths():
    key = hashlib.sha256(b"key").digest()
    counter = hashlib.sha256(b"counter").digest()[:16]
    data = hashlib.sha256(b"data").digest() * 40
    for size in (0, 1, 5, 16, 31, 100, 1280):
        assert _cbackend.aes256_ctr(key, counter, data[:size]) == _pybackend.aes256_ctr(
            key, counter, data[:size]
        )


# --------------------------------------------------------------------------
# The "primitives" section of the format v1 vectors


@pytest.mark.parametrize("backend", BACKENDS)
def test_gear_first_entries(backend):
    values = gear_table(backend).values
    assert len(values) == 256
    assert [f"{v:016x}" for v in values[:4]] == PRIMITIVES["gear_first4"]
    assert f"{values[255]:016x}" == PRIMITIVES["gear_255"]
    assert values == _spec_gear(b"")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gear_with_secret(backend):
    values = gear_table(backend, b"secret").values
    assert [f"{v:016x}" for v in values[:4]] == PRIMITIVES["gear_first4_secret_'secret'"]
    assert values == _spec_gear(b"secret")
    assert values != gear_table(backend).values


def _abc_payload() -> tuple[int, bytes]:
    payload = bytes.fromhex(PRIMITIVES["payload_abc"])
    return payload[0], payload[1:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_key_seed_abc(backend):
    kind, body = _abc_payload()
    assert (kind, body) == (0, b"abc")
    assert backend.key_seed(b"", kind, body).hex() == PRIMITIVES["key_seed_abc"]
    assert backend.key_seed(b"secret", kind, body).hex() == PRIMITIVES["key_seed_abc_secret_'secret'"]
    # The definition of SPEC section 3, written out.
    expected = hmac.new(
        b"", b"self-encryption/1 chunk" + hashlib.sha256(b"\x00abc").digest(), hashlib.sha256
    ).hexdigest()
    assert expected == PRIMITIVES["key_seed_abc"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunk_key_and_counter_abc(backend):
    seed = bytes.fromhex(PRIMITIVES["key_seed_abc"])
    assert backend.hmac_sha256(seed, b"aes-256-ctr key").hex() == PRIMITIVES["aes_key_abc"]
    assert backend.hmac_sha256(seed, b"aes-256-ctr iv")[:16].hex() == PRIMITIVES["aes_iv_abc"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_seal_abc_single_chunk(backend):
    kind, body = _abc_payload()
    seed = backend.key_seed(b"", kind, body)
    content, name = backend.seal(seed, seed, seed, kind, body)
    assert bytes(content).hex() == PRIMITIVES["seal_abc_single_chunk"]
    assert name == hashlib.sha256(bytes(content)).digest()
    assert bytes(backend.open_chunk(seed, seed, seed, content, name)) == b"\x00abc"


@pytest.mark.parametrize("backend", BACKENDS)
def test_seal_follows_spec_section_4(backend):
    """seal() against the two AES-CTR passes of SPEC section 4, written out."""
    seed = hashlib.sha256(b"seed").digest()
    prev1 = hashlib.sha256(b"prev1").digest()
    prev2 = hashlib.sha256(b"prev2").digest()
    body = bytes(range(256)) * 3
    payload = b"\x01" + body
    key = hmac.new(seed, b"aes-256-ctr key", hashlib.sha256).digest()
    counter = hmac.new(seed, b"aes-256-ctr iv", hashlib.sha256).digest()[:16]
    pad = hmac.new(prev1, b"pad" + prev2, hashlib.sha256).digest()
    inner = _pybackend.aes256_ctr(key, counter, payload)
    expected = _pybackend.aes256_ctr(pad, bytes(16), inner)
    content, name = backend.seal(seed, prev1, prev2, 1, body)
    assert bytes(content) == expected
    assert name == hashlib.sha256(expected).digest()


# --------------------------------------------------------------------------
# seal / open_chunk

seeds = st.binary(min_size=32, max_size=32)


@pytest.mark.parametrize("backend", BACKENDS)
@FAST
@given(seed=seeds, prev1=seeds, prev2=seeds, kind=st.integers(0, 255), body=st.binary(max_size=3000))
def test_open_inverts_seal(backend, seed, prev1, prev2, kind, body):
    content, name = backend.seal(seed, prev1, prev2, kind, body)
    assert len(content) == len(body) + 1
    assert name == hashlib.sha256(bytes(content)).digest()
    payload = backend.open_chunk(seed, prev1, prev2, content, name)
    assert bytes(payload) == bytes([kind]) + body


@needs_c
@FAST
@given(seed=seeds, prev1=seeds, prev2=seeds, kind=st.integers(0, 255), body=st.binary(max_size=3000))
def test_seal_and_open_agree_across_backends(seed, prev1, prev2, kind, body):
    c_content, c_name = _cbackend.seal(seed, prev1, prev2, kind, body)
    p_content, p_name = _pybackend.seal(seed, prev1, prev2, kind, body)
    assert bytes(c_content) == bytes(p_content)
    assert c_name == p_name
    payload = bytes([kind]) + body
    assert bytes(_pybackend.open_chunk(seed, prev1, prev2, c_content, c_name)) == payload
    assert bytes(_cbackend.open_chunk(seed, prev1, prev2, p_content, p_name)) == payload


@pytest.mark.parametrize("backend", BACKENDS)
@FAST
@given(seed=seeds, prev1=seeds, prev2=seeds, body=st.binary(max_size=600), data=st.data())
def test_open_rejects_a_flipped_bit(backend, seed, prev1, prev2, body, data):
    content, name = backend.seal(seed, prev1, prev2, 0, body)
    damaged = bytearray(content)
    bit = data.draw(st.integers(0, len(damaged) * 8 - 1), label="bit")
    damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ChunkIntegrityError):
        backend.open_chunk(seed, prev1, prev2, bytes(damaged), name)
    bad_name = bytearray(name)
    name_bit = data.draw(st.integers(0, 255), label="name_bit")
    bad_name[name_bit // 8] ^= 1 << (name_bit % 8)
    with pytest.raises(ChunkIntegrityError):
        backend.open_chunk(seed, prev1, prev2, content, bytes(bad_name))


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_rejects_truncated_and_extended_content(backend):
    seed = hashlib.sha256(b"s").digest()
    content, name = backend.seal(seed, seed, seed, 0, b"some body bytes")
    with pytest.raises(ChunkIntegrityError):
        backend.open_chunk(seed, seed, seed, bytes(content)[:-1], name)
    with pytest.raises(ChunkIntegrityError):
        backend.open_chunk(seed, seed, seed, bytes(content) + b"\x00", name)


# --------------------------------------------------------------------------
# find_cut


def _spec_cut(gear, data: bytes, min_size: int, avg_size: int, max_size: int) -> int:
    """SPEC section 1 for one chunk, as a complete input (at end)."""
    r = len(data)
    if r <= min_size:
        return r
    bits = avg_size.bit_length() - 1
    mask_s = ((1 << (bits + 2)) - 1) << (64 - (bits + 2))
    mask_l = ((1 << (bits - 2)) - 1) << (64 - (bits - 2))
    normal, end, fp = min(avg_size, r), min(max_size, r), 0
    for i in range(min_size, end):
        fp = ((fp << 1) + gear[data[i]]) & ((1 << 64) - 1)
        if fp & (mask_s if i < normal else mask_l) == 0:
            return i + 1
    return end


CUT_PARAMS = [(64, 256, 1024), (64, 256, 256), (256, 256, 1024), (100, 512, 700)]


def _check_cut(data: bytes, params, at_end: bool, secret: bytes = b"") -> int:
    min_size, avg_size, max_size = params
    c_cut = _cbackend.find_cut(gear_table(_cbackend, secret), data, min_size, avg_size, max_size, at_end)
    p_cut = _pybackend.find_cut(gear_table(_pybackend, secret), data, min_size, avg_size, max_size, at_end)
    assert c_cut == p_cut, (len(data), params, at_end)
    full = _spec_cut(_spec_gear_cached(secret), data, min_size, avg_size, max_size)
    if at_end:
        # At the end the cut is always decided; 0 only for empty data.
        assert c_cut == full
        assert (c_cut == 0) == (len(data) == 0)
    elif c_cut:
        # A decided cut never depends on bytes past it, and is at most max.
        assert c_cut == full
        assert min_size < c_cut <= max_size
    else:
        # Undecided: possible only while fewer than max bytes are known.
        assert len(data) < max_size
        assert full == len(data)
    return c_cut


_SPEC_GEAR: dict[bytes, tuple[int, ...]] = {}


def _spec_gear_cached(secret: bytes) -> tuple[int, ...]:
    if secret not in _SPEC_GEAR:
        _SPEC_GEAR[secret] = _spec_gear(secret)
    return _SPEC_GEAR[secret]


@needs_c
@settings(FAST, max_examples=200)
@given(
    data=st.one_of(
        st.binary(max_size=64),  # len <= min
        st.binary(min_size=65, max_size=1023),  # between min and max
        st.binary(min_size=1024, max_size=1400),  # at least max
        st.binary(max_size=1400),
    ),
    params=st.sampled_from(CUT_PARAMS),
    at_end=st.booleans(),
    secret=st.sampled_from([b"", b"secret"]),
)
def test_find_cut_backends_agree(data, params, at_end, secret):
    _check_cut(data, params, at_end, secret)


def _stream(seed: bytes, size: int) -> bytes:
    blocks = (size + 31) // 32
    return b"".join(hashlib.sha256(seed + n.to_bytes(8, "little")).digest() for n in range(blocks))[:size]


@needs_c
def test_find_cut_covers_every_branch():
    """On pseudo-random data the cut lands in each region, and both backends agree."""
    regions = set()
    for params in ((64, 256, 1024), (64, 256, 320)):
        min_size, avg_size, max_size = params
        for n in range(100):
            data = _stream(b"cut %d" % n, 1100)
            for length in (0, 1, 63, 64, 65, 200, 256, 257, 319, 320, 700, 1023, 1024, 1100):
                for at_end in (False, True):
                    cut = _check_cut(data[:length], params, at_end)
                    if cut == 0:
                        regions.add("undecided")
                    elif cut <= min_size:
                        regions.add("short")
                    elif cut < length and cut <= avg_size:
                        regions.add("normal-mask")
                    elif cut < length and cut < max_size:
                        regions.add("large-mask")
                    elif cut == max_size:
                        regions.add("max")
                    else:
                        regions.add("end")
    assert regions == {"undecided", "short", "normal-mask", "large-mask", "max", "end"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_find_cut_small_inputs(backend):
    table = gear_table(backend)
    for length in (0, 1, 63, 64):
        data = bytes(length)
        assert backend.find_cut(table, data, 64, 256, 1024, True) == length
        assert backend.find_cut(table, data, 64, 256, 1024, False) == 0


@needs_c
@pytest.mark.parametrize(
    "params",
    [
        (32, 256, 1024),  # min < 64
        (64, 128, 1024),  # avg < 256
        (64, 300, 1024),  # avg not a power of two
        (300, 256, 1024),  # min > avg
        (64, 512, 256),  # avg > max
        (64, 256, (1 << 31) + 1),  # max > 2^31
    ],
)
def test_c_find_cut_rejects_bad_parameters(params):
    with pytest.raises(InvalidArgumentError):
        _cbackend.find_cut(gear_table(_cbackend), bytes(100), *params, True)


@needs_c
def test_c_find_cut_accepts_the_extremes():
    table = gear_table(_cbackend)
    assert _cbackend.find_cut(table, bytes(10), 64, 256, 256, True) == 10
    assert _cbackend.find_cut(table, bytes(10), 64, 1 << 31, 1 << 31, True) == 10


# --------------------------------------------------------------------------
# Argument checks of the C wrappers

GOOD = bytes(32)


@needs_c
@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_c_aes_rejects_wrong_key_length(size):
    with pytest.raises(InvalidArgumentError):
        _cbackend.aes256_ctr(bytes(size), bytes(16), b"data")


@needs_c
@pytest.mark.parametrize("size", [0, 8, 15, 17, 32])
def test_c_aes_rejects_wrong_counter_length(size):
    with pytest.raises(InvalidArgumentError):
        _cbackend.aes256_ctr(GOOD, bytes(size), b"data")


@needs_c
@pytest.mark.parametrize("size", [0, 31, 33])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_c_seal_and_open_reject_wrong_seed_length(size, position):
    seeds_ = [GOOD, GOOD, GOOD]
    content, name = _cbackend.seal(*seeds_, 0, b"body")
    seeds_[position] = bytes(size)
    with pytest.raises(InvalidArgumentError):
        _cbackend.seal(*seeds_, 0, b"body")
    with pytest.raises(InvalidArgumentError):
        _cbackend.open_chunk(*seeds_, content, name)


@needs_c
@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_c_open_rejects_wrong_name_length(size):
    content, name = _cbackend.seal(GOOD, GOOD, GOOD, 0, b"body")
    with pytest.raises(InvalidArgumentError):
        _cbackend.open_chunk(GOOD, GOOD, GOOD, content, bytes(size))


def test_invalid_argument_error_is_a_value_error():
    assert issubclass(InvalidArgumentError, ValueError)
