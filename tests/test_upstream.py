"""Reading what the upstream self_encryption 0.35.0 wrote (self_encryption.upstream).

The vectors under tests/data/upstream were written by upstream itself (see
the README there). A live cross-test runs upstream in a subprocess when
SELF_ENCRYPTION_UPSTREAM_PYTHON names a Python that has it installed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping

import pytest

pytest.importorskip("blake3", reason="the [upstream] extra (blake3) is not installed")
pytest.importorskip("brotli", reason="the [upstream] extra (brotli) is not installed")

from hypothesis import given
from hypothesis import strategies as st

import self_encryption as se
from self_encryption import upstream
from self_encryption._errors import (
    ChunkIntegrityError,
    ChunkNotFoundError,
    DataMapError,
    InvalidArgumentError,
    StoreError,
)
from self_encryption.upstream import _datamap, _opening

DATA = os.path.join(os.path.dirname(__file__), "data", "upstream")
VECTOR_NAMES = (
    sorted(name for name in os.listdir(DATA) if os.path.isfile(os.path.join(DATA, name, "vector.json")))
    if os.path.isdir(DATA)
    else []
)


class Vector:
    def __init__(self, name: str) -> None:
        self.name = name
        self.folder = os.path.join(DATA, name)
        self.chunk_folder = os.path.join(self.folder, "chunks")
        with open(os.path.join(self.folder, "vector.json")) as handle:
            self.info = json.load(handle)
        with open(os.path.join(self.folder, "map.json")) as handle:
            self.map_json = handle.read().strip()
        self.max_chunk_size = self.info["max_chunk_size"]

    def data_map(self) -> upstream.DataMap:
        return upstream.DataMap.from_json(self.map_json, max_chunk_size=self.max_chunk_size)

    def chunks(self) -> dict[str, bytes]:
        out = {}
        for name in os.listdir(self.chunk_folder):
            with open(os.path.join(self.chunk_folder, name), "rb") as handle:
                out[name] = handle.read()
        return out

    def copy_chunks(self, destination) -> str:
        target = os.path.join(destination, "chunks")
        shutil.copytree(self.chunk_folder, target)
        return target


def plaintext(recipe: dict) -> bytes:
    """The same recipe as scripts/make_upstream_vectors.py (kept in step by test_recipes)."""
    seed, size = recipe["seed"].encode(), recipe["size"]
    if recipe["kind"] == "random":
        return hashlib.shake_256(seed).digest(size)
    tail = hashlib.shake_256(seed).digest(4096)[8:]
    return b"".join(i.to_bytes(8, "little") + tail for i in range(-(-size // 4096)))[:size]


def sha256(data) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module", params=VECTOR_NAMES)
def vector(request) -> Vector:
    return Vector(request.param)


def test_vectors_are_there():
    names = set(VECTOR_NAMES)
    assert {
        "v-3-bytes",
        "v-3max-minus-1",
        "v-3max-plus-1",
        "v-multi",
        "v-3max-plus-26",
        "s256-1050",
        "s256-2-rounds",
        "s256-3-rounds",
    } <= names
    total = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(DATA) for f in files)
    assert total < 4 << 20  # the committed vectors stay small


# -- the committed vectors -----------------------------------------------------------


def test_map_json_round_trips_byte_exactly(vector):
    data_map = vector.data_map()
    assert data_map.to_json() == vector.map_json
    assert data_map.child == vector.info["child"]
    assert len(data_map) == 3  # upstream shrinks every map it hands out to three chunks


def test_every_chunk_file_is_needed_and_named_by_its_blake3(vector):
    import blake3

    chunks = vector.chunks()
    assert sorted(chunks) == vector.info["chunk_files"]
    for name, content in chunks.items():
        assert blake3.blake3(content).hexdigest() == name
    # the root and the maps below it name exactly the files upstream wrote
    maps = upstream.data_maps(vector.data_map(), chunks)
    assert {n for _, level_map in maps for n in level_map.names()} == set(chunks)
    assert maps[-1][0] == 0 and maps[-1][1].child is None
    assert maps[-1][1].size == vector.info["size"]
    assert [level for level, _ in maps] == (
        [0] if vector.info["child"] is None else [1] * (len(maps) - 1) + [0]
    )


def test_upstream_reads_back_only_single_round_maps(vector):
    # Recorded when the vectors were made: upstream 0.35.0 fails on its own
    # output once a map took more than one shrink round; we read it all.
    maps = upstream.data_maps(vector.data_map(), vector.chunk_folder)
    assert vector.info["upstream_reads_it_back"] == (len(maps) <= 2)


def test_decrypt_from_folder(vector):
    data = upstream.decrypt(vector.data_map(), vector.chunk_folder)
    assert len(data) == vector.info["size"]
    assert sha256(data) == vector.info["sha256"]


def test_decrypt_from_mapping_and_json_text(vector):
    data = upstream.decrypt(
        vector.map_json if vector.max_chunk_size == upstream.MAX_CHUNK_SIZE else vector.data_map(),
        vector.chunks(),
    )
    assert sha256(data) == vector.info["sha256"]


def test_decrypt_from_our_memory_store(vector):
    store = se.MemoryStore()
    for name, content in vector.chunks().items():
        store.put(name, content)
    assert sha256(upstream.decrypt(vector.data_map(), store)) == vector.info["sha256"]


def test_decrypt_from_our_dir_store(vector, tmp_path):
    store = se.DirStore(tmp_path / "store")
    for name, content in vector.chunks().items():
        store.put(name, content)
    assert sha256(upstream.decrypt(vector.data_map(), store)) == vector.info["sha256"]


def test_iter_decrypt_streams_chunk_sized_pieces_in_order(vector):
    digest = hashlib.sha256()
    file_map = upstream.resolve(vector.data_map(), vector.chunk_folder)
    sizes = []
    for piece in upstream.iter_decrypt(vector.data_map(), vector.chunk_folder):
        sizes.append(len(piece))
        digest.update(piece)
    assert digest.hexdigest() == vector.info["sha256"]
    assert sizes == [info.src_size for info in file_map.chunk_identifiers]
    assert max(sizes) <= vector.max_chunk_size + 1


def test_decrypt_file_writes_the_file(vector, tmp_path):
    target = tmp_path / "restored.bin"
    written = upstream.decrypt_file(vector.data_map(), vector.chunk_folder, target)
    assert written == vector.info["size"]
    assert sha256(target.read_bytes()) == vector.info["sha256"]
    assert os.listdir(tmp_path) == ["restored.bin"]


def test_recipes_regenerate_the_plaintext():
    for name in VECTOR_NAMES:
        info = Vector(name).info
        assert sha256(plaintext(info["recipe"])) == info["sha256"], name
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "make_upstream_vectors.py")
    if os.path.isfile(script):  # the generator's recipe is the one above
        spec = importlib.util.spec_from_file_location("make_upstream_vectors", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for recipe in (
            {"kind": "random", "seed": "x", "size": 5000},
            {"kind": "blocks", "seed": "y", "size": 3 * 4096 + 5},
        ):
            assert module.plaintext(recipe) == plaintext(recipe)


def test_chunk_layout_matches_upstreams_rules():
    m = upstream.MAX_CHUNK_SIZE
    assert upstream.chunk_sizes(2) is None
    assert upstream.chunk_sizes(3) == [1, 1, 1]
    assert upstream.chunk_sizes(4) == [1, 1, 2]
    assert upstream.chunk_sizes(3 * m - 1) == [m - 1, m - 1, m + 1]
    assert upstream.chunk_sizes(3 * m) == [m, m, m]
    assert upstream.chunk_sizes(3 * m + 1) == [m, m, m, 1]
    assert upstream.chunk_sizes(4 * m) == [m] * 4
    assert upstream.chunk_sizes(10, 3) == [3, 3, 3, 1]


# -- tampered, missing and misplaced chunks ------------------------------------------

SHRUNK = "v-3max-plus-1"
SMALL = "v-1KiB"


def _levels(vector: Vector) -> list[tuple[int, upstream.DataMap]]:
    return upstream.data_maps(vector.data_map(), vector.chunk_folder)


def _ambiguous(level_map: upstream.DataMap, position: int) -> bool:
    """A map under level 1 whose size a serialised map could have: its first chunk's level is found by trying."""
    return position > 0 and level_map.child is None and len(level_map) > 3 and (level_map.size - 10) % 80 == 0


@pytest.mark.parametrize("name", [SMALL, SHRUNK, "s256-3-rounds"])
def test_missing_chunk_at_each_level_is_named(name):
    vector = Vector(name)
    for level, level_map in _levels(vector):
        info = level_map.chunk_identifiers[-1]
        chunks = vector.chunks()
        del chunks[info.name]
        with pytest.raises(ChunkNotFoundError) as caught:
            upstream.decrypt(vector.data_map(), chunks)
        assert (caught.value.name, caught.value.index, caught.value.level) == (info.name, info.index, level)
        assert info.name in str(caught.value)


def test_missing_chunk_in_each_source_form(tmp_path):
    vector = Vector(SMALL)
    info = vector.data_map().chunk_identifiers[1]
    folder = vector.copy_chunks(tmp_path)
    os.unlink(os.path.join(folder, info.name))
    memory = se.MemoryStore()
    directory = se.DirStore(tmp_path / "store")
    for name, content in vector.chunks().items():
        if name != info.name:
            memory.put(name, content)
            directory.put(name, content)

    class GetRaisesKeyError:
        def get(self, name):
            raise KeyError(name)

    for source in (folder, memory, directory, {}, GetRaisesKeyError()):
        with pytest.raises(ChunkNotFoundError) as caught:
            upstream.decrypt(vector.data_map(), source)
        error = caught.value
        assert error.level == 0 and error.name in {info.name, vector.data_map().names()[0]}
        assert isinstance(error, KeyError)


class _Windowed:
    """A store that gets windows of chunks with get_many, as our stores and readers do."""

    def __init__(self, chunks: dict[str, bytes], get_many) -> None:
        self.chunks, self.get_many = chunks, get_many

    def get(self, name):
        return self.chunks[name]


def test_get_many_failures_get_the_verdicts_our_reader_gives():
    # The same store behaviour gives the same verdict here as in se.decrypt:
    # a KeyError carrying a chunk's name says that chunk is missing, and a
    # mapping whose lookups fail is the store's failure, naming the chunk.
    vector = Vector(SMALL)
    chunks = vector.chunks()
    victim = vector.data_map().chunk_identifiers[1]

    def key_error(names):
        if victim.name in names:
            raise KeyError(victim.name)
        return {name: chunks[name] for name in names}

    with pytest.raises(ChunkNotFoundError) as caught:
        upstream.decrypt(vector.data_map(), _Windowed(chunks, key_error))
    assert (caught.value.name, caught.value.index, caught.value.level) == (victim.name, 1, 0)

    class FailingLookups(Mapping):
        """What a lazy get_many returns: a mapping that fetches on lookup, and whose fetch fails."""

        def __init__(self, names, error: Exception) -> None:
            self.names, self.error = list(names), error

        def __getitem__(self, name):
            raise self.error

        def __iter__(self):
            return iter(self.names)

        def __len__(self):
            return len(self.names)

    for error in (RuntimeError("lazy fetch failed"), TypeError("bad"), ValueError("bad")):
        failing = _Windowed(chunks, lambda names, error=error: FailingLookups(names, error))
        with pytest.raises(StoreError) as raised:
            upstream.decrypt(vector.data_map(), failing)
        assert type(error).__name__ in str(raised.value)
        assert any(name in str(raised.value) for name in vector.data_map().names())


def _tampered(vector, name: str, change) -> dict:
    chunks = vector.chunks()
    chunks[name] = change(chunks[name])
    return chunks


@pytest.mark.parametrize("name", [SMALL, SHRUNK, "v-3max-plus-26", "s256-2-rounds", "s256-3-rounds"])
def test_tampered_chunk_at_each_level_is_named(name):
    vector = Vector(name)
    for position, (level, level_map) in enumerate(_levels(vector)):
        for info in (level_map.chunk_identifiers[0], level_map.chunk_identifiers[-1]):
            flipped = _tampered(vector, info.name, lambda c: c[:-1] + bytes([c[-1] ^ 1]))
            with pytest.raises(ChunkIntegrityError) as caught:
                upstream.decrypt(vector.data_map(), flipped)
            error = caught.value
            unknown = info.index == 0 and _ambiguous(level_map, position)
            assert (error.name, error.index, error.level) == (
                info.name,
                info.index,
                None if unknown else level,
            )
            assert "hash" in error.reason


def test_ambiguous_maps_are_settled_by_the_first_chunk():
    # Sizes of 10 + 80 n: the first chunk of the file is opened while finding
    # the file's map, and is not fetched again.
    for name in ("v-3max-plus-26", "s256-1050"):
        vector = Vector(name)
        file_map = upstream.resolve(vector.data_map(), vector.chunk_folder)
        assert (file_map.size - 10) % 80 == 0 and len(file_map) > 3
        fetched = []

        class Counting(dict):
            def __getitem__(self, key):
                fetched.append(key)
                return super().__getitem__(key)

            def get(self, key, default=None):
                fetched.append(key)
                return super().get(key, default)

        data = upstream.decrypt(vector.data_map(), Counting(vector.chunks()))
        assert sha256(data) == vector.info["sha256"]
        assert sorted(fetched) == sorted(set(fetched)) == vector.info["chunk_files"]


def test_wrong_chunk_under_a_right_name_in_a_folder(tmp_path):
    vector = Vector(SMALL)
    folder = vector.copy_chunks(tmp_path)
    first, second = vector.data_map().names()[:2]
    shutil.copy(os.path.join(folder, second), os.path.join(folder, first))
    with pytest.raises(ChunkIntegrityError) as caught:
        upstream.decrypt(vector.data_map(), folder)
    assert caught.value.name == first and caught.value.index == 0


def test_oversized_chunk_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    vector = Vector("v-3-bytes")
    folder = vector.copy_chunks(tmp_path)
    name = vector.data_map().names()[2]
    with open(os.path.join(folder, name), "r+b") as handle:
        handle.truncate(1 << 30)  # sparse: claims 1 GiB on disk
    with pytest.raises(ChunkIntegrityError) as caught:
        upstream.decrypt(vector.data_map(), folder)
    assert caught.value.name == name and "more than" in caught.value.reason


def _reseal_with_map(vector, edit) -> upstream.DataMap:
    """The vector's map with ChunkInfo fields changed by edit(position, info) -> info."""
    data_map = vector.data_map()
    infos = [edit(i, info) for i, info in enumerate(data_map.chunk_identifiers)]
    return upstream.DataMap(infos, data_map.child, max_chunk_size=data_map.max_chunk_size)


def test_map_whose_source_hash_is_wrong_cannot_open_the_chunks():
    vector = Vector(SMALL)
    wrong = _reseal_with_map(
        vector,
        lambda i, info: upstream.ChunkInfo(
            info.index, info.dst_hash, bytes(32) if i == 2 else info.src_hash, info.src_size
        ),
    )
    with pytest.raises(ChunkIntegrityError) as caught:
        upstream.decrypt(wrong, vector.chunk_folder)
    # chunk 0 uses chunk 2's source hash in its keys, so it is the first to fail
    assert caught.value.index == 0 and "decrypt" in caught.value.reason


def test_stored_chunk_for_another_size_is_refused():
    vector = Vector("v-4-bytes")  # sizes 1, 1, 2
    data_map = vector.data_map()
    infos = list(data_map.chunk_identifiers)
    # Swap which chunk the map says is where: names and hashes stay honest.
    swapped = [
        upstream.ChunkInfo(0, infos[2].dst_hash, infos[2].src_hash, 1),
        infos[1],
        upstream.ChunkInfo(2, infos[0].dst_hash, infos[0].src_hash, 2),
    ]
    with pytest.raises(ChunkIntegrityError):
        upstream.decrypt(upstream.DataMap(swapped), vector.chunk_folder)


def test_store_failures_are_store_errors():
    class Broken:
        def get(self, name):
            raise OSError("disk on fire")

    class WrongType:
        def get(self, name):
            return "text"

    vector = Vector(SMALL)
    with pytest.raises(StoreError, match="disk on fire"):
        upstream.decrypt(vector.data_map(), Broken())
    with pytest.raises(StoreError, match="str"):
        upstream.decrypt(vector.data_map(), WrongType())
    with pytest.raises(StoreError):
        upstream.decrypt(vector.data_map(), os.path.join(DATA, "no-such-folder"))
    with pytest.raises(InvalidArgumentError):
        upstream.decrypt(vector.data_map(), 42)
    with pytest.raises(InvalidArgumentError):
        upstream.decrypt(42, {})


def test_iter_decrypt_yields_the_good_prefix_before_the_error():
    vector = Vector("v-3max")
    bad = vector.data_map().names()[2]
    chunks = _tampered(vector, bad, lambda c: c[::-1])
    pieces = upstream.iter_decrypt(vector.data_map(), chunks)
    expected = plaintext(vector.info["recipe"])
    assert next(pieces) == expected[: upstream.MAX_CHUNK_SIZE]
    assert next(pieces) == expected[upstream.MAX_CHUNK_SIZE : 2 * upstream.MAX_CHUNK_SIZE]
    with pytest.raises(ChunkIntegrityError) as caught:
        next(pieces)
    assert caught.value.name == bad and caught.value.index == 2


# -- inner maps ------------------------------------------------------------------------


def test_inner_map_with_a_child_where_none_is_due_is_refused():
    data = hashlib.shake_256(b"child").digest(10 * 256)
    store: dict = {}
    file_map = upstream.DataMap(_seal_level(data, 0, store), max_chunk_size=256)
    claims_child = upstream.DataMap(file_map.chunk_identifiers, 7, max_chunk_size=256)
    root = upstream.DataMap(_seal_level(claims_child.to_bytes(), 1, store), 1, max_chunk_size=256)
    with pytest.raises(DataMapError, match="child=7"):
        upstream.decrypt(root, store)


def test_inner_map_larger_than_accepted_is_refused_before_fetching(monkeypatch):
    vector = Vector(SHRUNK)
    monkeypatch.setattr("self_encryption.upstream._levels.MAX_MAP_BYTES", 100)
    with pytest.raises(DataMapError, match="accepts"):
        upstream.decrypt(vector.data_map(), {})


def test_binary_map_round_trip_and_rejections():
    data_map = Vector("s256-3-rounds").data_map()
    blob = data_map.to_bytes()
    assert blob[0] == 1 and len(blob) == 18 + 80 * 3
    assert upstream.DataMap.from_bytes(blob, max_chunk_size=256) == data_map
    for broken in (
        b"",
        blob[:-1],
        blob + b"\0",
        b"\2" + blob[1:],
        blob[:9] + b"\xff" * 8 + blob[17:],
        blob[:1] + (10**12).to_bytes(8, "little") + blob[9:],
        blob[:-9] + b"\x02" + blob[-8:],
    ):
        with pytest.raises(DataMapError):
            upstream.DataMap.from_bytes(broken, max_chunk_size=256)


@given(st.binary(max_size=400))
def test_binary_map_parser_fuzz(blob):
    for candidate in (blob, b"\x01" + blob):
        try:
            upstream.DataMap.from_bytes(candidate)
        except DataMapError:
            pass


# -- synthetic chunks: cases upstream's encryptor never writes -------------------------
# A test-only sealer that follows docs/upstream-format.md, to build proper
# child >= 2 chains (what upstream's reader expects) and hostile chunks.


def _seal_level(
    data: bytes, level: int, store: dict, max_chunk: int = 256, *, compress=None, claimed=None
) -> list[upstream.ChunkInfo]:
    import blake3
    import brotli
    from Crypto.Cipher import ChaCha20_Poly1305

    sizes = upstream.chunk_sizes(len(data), max_chunk)
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    src = [blake3.blake3(p).digest() for p in pieces]
    plan = upstream.DataMap(
        [upstream.ChunkInfo(i, bytes(32), h, n) for i, (h, n) in enumerate(zip(src, sizes))],
        max_chunk_size=max_chunk,
    )
    infos = []
    for index, piece in enumerate(pieces):
        pad, key, nonce = _opening._chunk_secrets(plan, index, level)
        payload = (compress or (lambda b: brotli.compress(b, quality=6)))(piece)
        sealed, tag = ChaCha20_Poly1305.new(key=key, nonce=nonce).encrypt_and_digest(payload)
        stored = _opening._xor_pad(sealed + tag, pad)
        name = blake3.blake3(stored).digest()
        store[name.hex()] = stored
        infos.append(upstream.ChunkInfo(index, name, src[index], sizes[index]))
    return infos


def _proper_chain(data: bytes, max_chunk: int = 256) -> tuple[upstream.DataMap, dict]:
    """A file sealed and shrunk the way upstream's reader expects: child k holds child k - 1."""
    store: dict = {}
    current = upstream.DataMap(_seal_level(data, 0, store, max_chunk), max_chunk_size=max_chunk)
    while len(current) > 3:
        level = (current.child or 0) + 1
        current = upstream.DataMap(
            _seal_level(current.to_bytes(), level, store, max_chunk), level, max_chunk_size=max_chunk
        )
    return current, store


def test_sealer_matches_upstream_on_a_vector():
    # The sealer (with Python's brotli) opens like upstream's chunks do: the
    # map it makes for a vector's plaintext has the same source hashes and sizes.
    vector = Vector("s256-1050")
    data = plaintext(vector.info["recipe"])
    mine = upstream.DataMap(_seal_level(data, 0, {}), max_chunk_size=256)
    theirs = upstream.resolve(vector.data_map(), vector.chunk_folder)
    assert [(i.src_hash, i.src_size) for i in mine.chunk_identifiers] == [
        (i.src_hash, i.src_size) for i in theirs.chunk_identifiers
    ]


def test_proper_child_chains_are_read():
    data = hashlib.shake_256(b"chain").digest(29 * 256 - 100)
    root, store = _proper_chain(data)
    assert root.child == 3 and len(root) == 3
    assert [level for level, _ in upstream.data_maps(root, store)] == [3, 2, 1, 0]
    assert upstream.decrypt(root, store) == data
    # from JSON, the build's chunk size must be given (the inner maps have 4+ chunks of 256)
    with pytest.raises(DataMapError, match="max chunk 4190208"):
        upstream.decrypt(root.to_json(), store)
    again = upstream.DataMap.from_json(root.to_json(), max_chunk_size=256)
    assert b"".join(upstream.iter_decrypt(again, store)) == data


def test_proper_chain_with_a_wrong_inner_child_is_refused():
    data = hashlib.shake_256(b"chain").digest(10 * 256)
    store: dict = {}
    file_map = upstream.DataMap(_seal_level(data, 0, store), max_chunk_size=256)
    level1 = upstream.DataMap(_seal_level(file_map.to_bytes(), 1, store), 1, max_chunk_size=256)
    assert len(level1) == 4
    # a level-2 map whose inner map forgot its child (says none instead of 1)
    forgot = upstream.DataMap(level1.chunk_identifiers, None, max_chunk_size=256)
    root = upstream.DataMap(_seal_level(forgot.to_bytes(), 2, store), 2, max_chunk_size=256)
    with pytest.raises(DataMapError, match="child=None, where 1"):
        upstream.decrypt(root, store)


def test_decompression_bomb_is_stopped_early():
    import tracemalloc

    import brotli

    bomb = brotli.compress(bytes(256 << 20), quality=5)  # 256 MiB of zeros in a few hundred bytes
    store: dict = {}
    # chunks of 4096 bytes: the bomb is well within what such a chunk may store
    infos = _seal_level(bytes(3 * 4096), 0, store, 1 << 20, compress=lambda piece: bomb)
    data_map = upstream.DataMap(infos)
    assert len(store[data_map.names()[0]]) < 4096
    tracemalloc.start()
    try:
        with pytest.raises(ChunkIntegrityError, match="more than its recorded 4096 bytes") as caught:
            upstream.decrypt(data_map, store)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.index == 0 and caught.value.level == 0
    assert peak < 16 << 20


@pytest.mark.parametrize(
    "compress, message",
    [
        (lambda piece: __import__("brotli").compress(piece) + b"junk", "decompress"),
        (lambda piece: __import__("brotli").compress(piece)[:-1], "truncated|decompress"),
        (lambda piece: b"", "truncated|decompress|opens to 0"),
        (lambda piece: __import__("brotli").compress(piece + b"!"), "more than|opens to"),
        (lambda piece: __import__("brotli").compress(bytes(len(piece))), "src_hash"),
    ],
)
def test_authentic_but_wrong_payloads_are_integrity_errors(compress, message):
    # (sealed under the right keys, so only what is inside the cipher is wrong)
    store: dict = {}
    data_map = upstream.DataMap(_seal_level(b"xyz", 0, store, compress=compress))
    with pytest.raises(ChunkIntegrityError, match=message) as caught:
        upstream.decrypt(data_map, store)
    assert caught.value.index == 0 and caught.value.name == data_map.names()[0]


def test_nested_level_one_maps_of_any_depth():
    # What upstream's encryptor writes when a map needs several shrink rounds:
    # child 1 over maps without child whose chunks are all at level 1.
    data = hashlib.shake_256(b"nest").digest(29 * 256 - 100)
    store: dict = {}
    current = upstream.DataMap(_seal_level(data, 0, store), max_chunk_size=256)
    while len(current) > 3:
        current = upstream.DataMap(_seal_level(current.to_bytes(), 1, store), None, max_chunk_size=256)
    root = upstream.DataMap(current.chunk_identifiers, 1, max_chunk_size=256)
    assert [level for level, _ in upstream.data_maps(root, store)] == [1, 1, 1, 0]
    assert upstream.decrypt(root, store) == data


# -- JSON parsing --------------------------------------------------------------------

GOOD = Vector("v-1KiB").map_json if "v-1KiB" in VECTOR_NAMES else "{}"


def _edit(change) -> str:
    document = json.loads(GOOD)
    change(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        "[]",
        "{}",
        "1",
        '"x"',
        GOOD[:-1],
        GOOD + "x",
        GOOD.replace("null", "NaN"),
        '{"chunk_identifiers": []}',
        _edit(lambda d: d.update(extra=1)),
        _edit(lambda d: d.update(child=0)),
        _edit(lambda d: d.update(child=-1)),
        _edit(lambda d: d.update(child=101)),
        _edit(lambda d: d.update(child=True)),
        _edit(lambda d: d.update(child=1.0)),
        _edit(lambda d: d.update(child="1")),
        _edit(lambda d: d.pop("chunk_identifiers")),
        _edit(lambda d: d.update(chunk_identifiers={})),
        _edit(lambda d: d["chunk_identifiers"].pop()),
        _edit(lambda d: d["chunk_identifiers"].reverse()),
        _edit(lambda d: d["chunk_identifiers"][0].update(index=1)),
        _edit(lambda d: d["chunk_identifiers"][0].update(index=-1)),
        _edit(lambda d: d["chunk_identifiers"][0].update(index=2**64)),
        _edit(lambda d: d["chunk_identifiers"][0].update(src_size=0)),
        _edit(lambda d: d["chunk_identifiers"][0].update(src_size=342)),
        _edit(lambda d: d["chunk_identifiers"][0].update(src_size=True)),
        _edit(lambda d: d["chunk_identifiers"][0].update(src_size=341.0)),
        _edit(lambda d: d["chunk_identifiers"][0].update(src_size=10**30)),
        _edit(lambda d: d["chunk_identifiers"][0].update(dst_hash="ab" * 31)),
        _edit(lambda d: d["chunk_identifiers"][0].update(dst_hash="zz" * 32)),
        _edit(lambda d: d["chunk_identifiers"][0].update(dst_hash=list(range(32)))),
        _edit(lambda d: d["chunk_identifiers"][0].update(src_hash=None)),
        _edit(lambda d: d["chunk_identifiers"][0].update(more=1)),
        _edit(lambda d: d["chunk_identifiers"][0].pop("src_hash")),
        _edit(lambda d: d["chunk_identifiers"].__setitem__(0, [0, "a" * 64, "b" * 64, 341])),
        GOOD.replace('"child"', '"child":null,"child"'),
        GOOD.replace('"index":0,', '"index":0,"index":0,'),
        "[" * 100_000 + "]" * 100_000,
        '{"chunk_identifiers":[{"index":' + "9" * 5000 + "}]}",
        "\ufeff" + GOOD,
        b"\xff\xfe",
        None,
        12,
    ],
)
def test_malformed_json_maps_raise_data_map_error(text):
    with pytest.raises(DataMapError):
        upstream.DataMap.from_json(text)


def test_json_accepts_bytes_uppercase_hex_and_any_whitespace():
    data_map = upstream.DataMap.from_json(GOOD)
    assert upstream.DataMap.from_json(GOOD.encode()) == data_map
    spaced = json.dumps(json.loads(GOOD), indent=3).upper().replace("CHUNK_IDENTIFIERS", "chunk_identifiers")
    spaced = spaced.replace("INDEX", "index").replace("DST_HASH", "dst_hash")
    spaced = spaced.replace("SRC_HASH", "src_hash").replace("SRC_SIZE", "src_size")
    spaced = spaced.replace("CHILD", "child").replace("NULL", "null")
    assert upstream.DataMap.from_json(spaced) == data_map


def test_json_sizes_must_follow_upstreams_chunking_for_the_build():
    vector = Vector("s256-3-rounds")
    file_map = upstream.resolve(vector.data_map(), vector.chunk_folder)
    # 29 chunks of 256: only a map built for max_chunk_size 256 has that layout
    assert len(file_map) == 29 and file_map.size == 29 * 256 - 100
    with pytest.raises(DataMapError, match="max chunk 4190208"):
        upstream.DataMap(file_map.chunk_identifiers)
    assert upstream.DataMap(file_map.chunk_identifiers, max_chunk_size=256) == file_map
    with pytest.raises(InvalidArgumentError):
        upstream.DataMap.from_json(GOOD, max_chunk_size=0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-2, max_value=2**65)
    | st.floats()
    | st.text(max_size=70)
    | st.sampled_from(["a" * 64, "F" * 64, "0" * 63]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["chunk_identifiers", "child", "index", "dst_hash", "src_hash", "src_size", "x"]),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@given(json_values)
def test_json_parser_fuzz_structured(value):
    try:
        text = json.dumps(value)
    except ValueError:
        return
    try:
        result = upstream.DataMap.from_json(text)
    except DataMapError:
        return
    assert isinstance(result, upstream.DataMap)


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_json_parser_fuzz_text(text):
    try:
        upstream.DataMap.from_json(text)
    except DataMapError:
        pass


@given(
    st.integers(min_value=0, max_value=len(GOOD) - 1),
    st.text(min_size=0, max_size=4),
    st.integers(min_value=0, max_value=3),
)
def test_json_parser_fuzz_mutations_of_a_real_map(position, insert, cut):
    text = GOOD[:position] + insert + GOOD[position + cut :]
    try:
        result = upstream.DataMap.from_json(text)
    except DataMapError:
        return
    assert len(result) == 3


# -- decrypt_file atomicity ------------------------------------------------------------


def test_decrypt_file_failure_leaves_the_destination_alone(tmp_path):
    vector = Vector(SMALL)
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    chunks = vector.chunks()
    del chunks[vector.data_map().names()[2]]
    with pytest.raises(ChunkNotFoundError):
        upstream.decrypt_file(vector.data_map(), chunks, target)
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_decrypt_file_removes_the_temp_file_when_interrupted(tmp_path, monkeypatch):
    vector = Vector("v-3max")
    seen = []
    real_replace = os.replace

    def interrupted(*args):
        seen.extend(os.listdir(tmp_path))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        upstream.decrypt_file(vector.data_map(), vector.chunk_folder, tmp_path / "big.bin")
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(seen) == 1 and seen[0].startswith(".big.bin.") and seen[0].endswith(".partial")
    assert os.listdir(tmp_path) == []


def test_decrypt_file_syncs_file_and_folder_then_renames(tmp_path, monkeypatch):
    vector = Vector(SMALL)
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(
            ("fsync", os.path.isdir(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else None)
        )
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(src).endswith(".partial")))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    upstream.decrypt_file(vector.data_map(), vector.chunk_folder, tmp_path / "f.bin")
    kinds = [event[0] for event in events]
    assert kinds == (["fsync", "replace", "fsync"] if os.name == "posix" else ["fsync", "replace"])
    if os.path.exists("/proc/self/fd"):
        assert events[0][1] is False and events[2][1] is True  # the file, then its folder
    assert sha256((tmp_path / "f.bin").read_bytes()) == vector.info["sha256"]


def test_decrypt_file_to_a_file_object_and_to_a_folder(tmp_path):
    vector = Vector(SMALL)
    with open(tmp_path / "via-handle", "wb") as handle:
        assert upstream.decrypt_file(vector.data_map(), vector.chunk_folder, handle) == 1024
    assert sha256((tmp_path / "via-handle").read_bytes()) == vector.info["sha256"]
    with pytest.raises(InvalidArgumentError):
        upstream.decrypt_file(vector.data_map(), vector.chunk_folder, tmp_path)


# -- installing ------------------------------------------------------------------------


def test_import_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "blake3", None)
    monkeypatch.delitem(sys.modules, "self_encryption.upstream")
    try:
        with pytest.raises(ImportError, match=r"self-encryption-cffi\[upstream\]"):
            importlib.import_module("self_encryption.upstream")
    finally:
        monkeypatch.undo()
        sys.modules["self_encryption.upstream"] = upstream
        se.upstream = upstream


# -- live cross-test against upstream ----------------------------------------------------

UPSTREAM_PYTHON = os.environ.get("SELF_ENCRYPTION_UPSTREAM_PYTHON")

_LIVE_ENCRYPT = textwrap.dedent("""
    import json, os, sys
    import self_encryption as up
    out = {}
    for name in sorted(os.listdir(sys.argv[1])):
        folder = os.path.join(sys.argv[2], name)
        os.mkdir(folder)
        data_map, _ = up.encrypt_from_file(os.path.join(sys.argv[1], name), folder)
        out[name] = data_map.to_json()
    print(json.dumps(out))
""")


@pytest.mark.slow
@pytest.mark.skipif(
    not UPSTREAM_PYTHON,
    reason="SELF_ENCRYPTION_UPSTREAM_PYTHON does not name a "
    "Python with upstream self-encryption==0.35.0 installed",
)
def test_live_upstream_cross_check(tmp_path):
    """Random files written by upstream in a subprocess, read back by us and migrated.

    SELF_ENCRYPTION_UPSTREAM_SEED repeats a run; SELF_ENCRYPTION_UPSTREAM_MAX_CHUNK_SIZE
    names the MAX_CHUNK_SIZE of a custom upstream build (default: the published one);
    SELF_ENCRYPTION_UPSTREAM_TOP_MB sets the largest file (default 4). Every file is
    also moved into a store of ours with `self-encryption import-upstream`, and the
    migrated map must decrypt to the same bytes.
    """
    seed = int(os.environ.get("SELF_ENCRYPTION_UPSTREAM_SEED", random.randrange(2**32)))
    max_chunk = int(os.environ.get("SELF_ENCRYPTION_UPSTREAM_MAX_CHUNK_SIZE", upstream.MAX_CHUNK_SIZE))
    rng = random.Random(seed)
    plain, stored = tmp_path / "plain", tmp_path / "stored"
    plain.mkdir()
    stored.mkdir()
    top_mb = float(os.environ.get("SELF_ENCRYPTION_UPSTREAM_TOP_MB", 4))
    top = min(int(top_mb * (1 << 20)), 3000 * max_chunk)  # a few MiB, or ~3000 chunks of a small build
    sizes = [3, 4, 5, rng.randrange(6, 100)]
    sizes += [int(3 * (top / 3) ** rng.random()) for _ in range(12)]  # log-uniform 3 B .. top
    sizes += [rng.randrange(top // 4, top + 1) for _ in range(2)]  # two big ones
    sizes.append(3 * max_chunk + rng.randrange(1, 5000))  # one shrunk map at least
    expected = {}
    for number, size in enumerate(sizes):
        if size > (1 << 20) and number % 2:  # compressible, so chunks stay small
            data = plaintext({"kind": "blocks", "seed": f"{seed}-{number}", "size": size})
        else:
            data = rng.randbytes(size)
        name = f"file{number:02d}-{size}"
        (plain / name).write_bytes(data)
        expected[name] = sha256(data)
    result = subprocess.run(
        [UPSTREAM_PYTHON, "-c", _LIVE_ENCRYPT, str(plain), str(stored)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    maps = json.loads(result.stdout)
    assert sorted(maps) == sorted(expected)
    checked = []
    for name, map_json in maps.items():
        data_map = upstream.DataMap.from_json(map_json, max_chunk_size=max_chunk)
        assert data_map.to_json() == map_json
        folder = str(stored / name)
        levels = upstream.data_maps(data_map, folder)
        assert {n for _, m in levels for n in m.names()} == set(os.listdir(folder))
        digest = hashlib.sha256()
        for piece in upstream.iter_decrypt(data_map, folder):
            digest.update(piece)
        assert digest.hexdigest() == expected[name], f"{name} (seed {seed})"
        checked.append((name, len(levels)))
        if max_chunk == upstream.MAX_CHUNK_SIZE:  # the command line reads the published build's maps
            (tmp_path / f"{name}.json").write_text(map_json)
            migrated = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "self_encryption",
                    "import-upstream",
                    str(tmp_path / f"{name}.json"),
                    "--from",
                    folder,
                    "--store",
                    str(tmp_path / "ours"),
                    "-q",
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert migrated.returncode == 0, migrated.stderr
            ours = se.DataMap.load(tmp_path / f"{name}.sedm")
            restored = hashlib.sha256()
            se.decrypt_into(ours, se.DirStore(tmp_path / "ours", create=False), restored.update)
            assert restored.hexdigest() == expected[name], f"{name} migrated (seed {seed})"
    rounds = sorted({count - 1 for _, count in checked})
    print(
        f"live upstream cross-check, seed {seed}, max chunk {max_chunk}: {len(checked)} files, "
        f"sizes {sorted(sizes)}; shrink rounds seen: {rounds}"
    )


def test_no_repr_shows_upstream_key_material(vector):
    # Upstream derives a chunk's keys from its src_hash: it is as secret as a key seed.
    data_map = vector.data_map()
    for info in data_map.chunk_identifiers:
        for text in (repr(info), str(info), repr(data_map), str(data_map)):
            assert repr(info.src_hash) not in text and info.src_hash.hex() not in text


# -- a hostile inner map: huge, valid, over chunks that are not there -----------------
# A 12 KB map of 65 level-1 chunks (some 7 MB stored) that open to a 256 MiB
# serialised map of 3.3 million records, every one naming the same absent chunk.


def _hostile_inner_map(folder) -> str:
    """Write the hostile map's chunks and JSON map under folder; returns the map's path."""
    import array

    import blake3

    count = (upstream.MAX_MAP_BYTES - 10) // 80
    record = bytes(8) + b"\7" * 32 + b"\t" * 32 + upstream.MAX_CHUNK_SIZE.to_bytes(8, "little")
    blob = bytearray(b"\1" + count.to_bytes(8, "little")) + record * count + b"\0"
    indices = memoryview(blob)[9:-1].cast("Q")
    indices[0::10] = array.array("Q", range(count))
    indices.release()
    sizes = upstream.chunk_sizes(len(blob))
    os.makedirs(os.path.join(folder, "chunks"))
    plan, offset, pieces = [], 0, []
    for index, size in enumerate(sizes):
        pieces.append((offset, size))
        piece = memoryview(blob)[offset : offset + size]
        plan.append(upstream.ChunkInfo(index, bytes(32), blake3.blake3(piece).digest(), size))
        offset += size
    holder = upstream.DataMap(plan, 1)
    infos = []
    for (offset, size), info in zip(pieces, plan):
        stored = _seal_one(holder, info.index, bytes(blob[offset : offset + size]), 1)
        name = blake3.blake3(stored).digest()
        with open(os.path.join(folder, "chunks", name.hex()), "wb") as handle:
            handle.write(stored)
        infos.append(upstream.ChunkInfo(info.index, name, info.src_hash, size))
    path = os.path.join(folder, "map.json")
    with open(path, "w") as handle:
        handle.write(upstream.DataMap(infos, 1).to_json())
    return path


def _seal_one(plan: upstream.DataMap, index: int, piece: bytes, level: int) -> bytes:
    import brotli
    from Crypto.Cipher import ChaCha20_Poly1305

    pad, key, nonce = _opening._chunk_secrets(plan, index, level)
    sealed, tag = ChaCha20_Poly1305.new(key=key, nonce=nonce).encrypt_and_digest(
        brotli.compress(piece, quality=1)
    )
    return _opening._xor_pad(sealed + tag, pad)


@pytest.fixture(scope="module")
def hostile_map(tmp_path_factory) -> str:
    return _hostile_inner_map(tmp_path_factory.mktemp("hostile"))


#: Runs a command under an address-space limit and reports its peak RSS. The command is
#: forked from this small process, not from the test run: a child's ru_maxrss starts at the
#: RSS of the process it was forked from, which for pytest deep in the suite is hundreds of MiB.
_LAUNCHER = """
import os, resource, sys
report, limit = int(sys.argv[1]), int(sys.argv[2]) << 20
pid = os.fork()
if pid == 0:
    os.close(report)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execvp(sys.argv[3], sys.argv[3:])
_, status, usage = os.wait4(pid, 0)
os.write(report, f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}".encode())
"""


def _limited(command: list[str], limit_mib: int) -> tuple[int, str, int]:
    """Run command with an address-space limit: (exit code, stderr, peak RSS in MiB)."""
    import tempfile

    report, writer = os.pipe()
    try:
        with tempfile.TemporaryFile() as errors:
            launcher = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, str(writer), str(limit_mib), *command],
                stdout=subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(writer,),
            )
            os.close(writer)
            writer = -1
            launcher.wait()
            code, peak = (int(part) for part in os.read(report, 100).split())
            errors.seek(0)
            return code, errors.read().decode(), peak // 1024
    finally:
        os.close(report)
        if writer >= 0:
            os.close(writer)


def _cli() -> list[str]:
    return [sys.executable, "-m", "self_encryption"]


def _cli_import(map_path: str, store: os.PathLike[str]) -> list[str]:
    """``import-upstream`` of map_path, its chunks from the folder beside it, into store."""
    return [
        *_cli(),
        "import-upstream",
        map_path,
        "--from",
        os.path.join(os.path.dirname(map_path), "chunks"),
        "--store",
        str(store),
    ]


def _python_decrypt(map_path: str) -> list[str]:
    script = textwrap.dedent(
        f"""
        import sys
        import self_encryption as se
        from self_encryption import upstream
        try:
            upstream.decrypt(open({map_path!r}).read(), {os.path.join(os.path.dirname(map_path), "chunks")!r})
        except se.SelfEncryptionError as exc:
            sys.exit(f"{{type(exc).__name__}}: {{exc}}")
        """
    )
    return [sys.executable, "-c", script]


#: Peak memory allowed for the 256 MiB hostile inner map: 1.5 times its size.
LIMIT_MIB = 384


def test_huge_inner_map_costs_about_its_size_and_ends_in_the_right_error(hostile_map, tmp_path):
    # Before: 1.3 GB of memory, and a MemoryError traceback under a 0.7 GB limit.
    code, errors, peak = _limited(_cli_import(hostile_map, tmp_path / "store"), 700)
    lines = errors.splitlines()
    assert code == ChunkNotFoundError.exit_code, errors
    assert len(lines) == 1 and "missing upstream chunk 0 at level 0" in lines[0] and "Traceback" not in errors
    # About the inner map's own size (the pure-Python backend adds some tens of MiB): 1.3 GB before.
    assert peak < LIMIT_MIB, f"peak RSS {peak} MiB for a 256 MiB inner map"
    code, errors, peak = _limited(_python_decrypt(hostile_map), 700)
    assert code == 1 and errors.startswith("ChunkNotFoundError: "), errors
    assert peak < LIMIT_MIB, f"peak RSS {peak} MiB for a 256 MiB inner map"


def test_running_out_of_memory_is_a_typed_one_line_error(hostile_map, tmp_path):
    # An address space too small even for the compact inner map (some 210 MiB)
    code, errors, _ = _limited(_cli_import(hostile_map, tmp_path / "store"), 200)
    lines = errors.splitlines()
    assert code == se.OutOfMemoryError.exit_code, errors
    assert len(lines) == 1 and lines[0].startswith("self-encryption: error: ") and "memory" in lines[0], (
        errors
    )
    code, errors, _ = _limited(_python_decrypt(hostile_map), 200)
    assert code == 1 and errors.startswith("OutOfMemoryError: not enough memory"), errors
    assert issubclass(se.OutOfMemoryError, MemoryError)


def test_binary_map_parser_reads_any_split_of_the_bytes():
    data_map = Vector("s256-3-rounds").data_map()
    inner = upstream.resolve(data_map, Vector("s256-3-rounds").chunk_folder)
    blob = inner.to_bytes()
    for step in (1, 7, 79, 80, 81, 1000):
        parser = _datamap.MapParser(len(blob), 256)
        for start in range(0, len(blob), step):
            parser.feed(blob[start : start + step])
        parsed = parser.finish()
        assert (
            parsed == inner
            and parsed.to_bytes() == blob
            and list(parsed.chunk_identifiers) == list(inner.chunk_identifiers)
        )
    assert parsed.chunk_identifiers[-1] == inner.chunk_identifiers[-1]
    assert parsed.chunk_identifiers[1:3] == tuple(inner.chunk_identifiers[1:3])


def test_decrypt_from_a_plain_get_function(vector):
    # upstream's own decrypt takes a function of the chunk name; so does ours
    chunks = vector.chunks()
    restored = upstream.decrypt(vector.data_map(), lambda name: chunks[name])
    assert sha256(restored) == vector.info["sha256"]
    missing = vector.data_map().names()[-1]
    with pytest.raises(ChunkNotFoundError) as caught:
        upstream.decrypt(vector.data_map(), lambda name: chunks[name] if name != missing else None)
    assert caught.value.name == missing


# -- the migration guide (docs/upstream.md), run as written ---------------------------

GUIDE = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "upstream.md")


def _guide_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the guide; `sh` and `python` ones are run."""
    import re

    with open(GUIDE, encoding="utf-8") as handle:
        text = handle.read()
    return re.findall(r"^```(\w+)\n(.*?)^```$", text, re.S | re.M)


def test_the_migration_guide_runs_on_upstream_chunks(tmp_path, monkeypatch):
    blocks = _guide_blocks()
    assert [language for language, _ in blocks].count("sh") >= 2
    assert [language for language, _ in blocks].count("python") >= 3
    # the guide's layout: upstream maps in old-maps/, every chunk in old-chunks/
    names = [name for name in VECTOR_NAMES if name.startswith("v-")]
    (tmp_path / "old-maps").mkdir()
    (tmp_path / "old-chunks").mkdir()
    for name in names:
        vector = Vector(name)
        shutil.copy(os.path.join(vector.folder, "map.json"), tmp_path / "old-maps" / f"{name}.json")
        for chunk in os.listdir(vector.chunk_folder):
            shutil.copy(os.path.join(vector.chunk_folder, chunk), tmp_path / "old-chunks" / chunk)
    shim = tmp_path / "bin" / "self-encryption"  # the command, as installed
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m self_encryption "$@"\n')
    shim.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    environment = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict = {}
    for language, code in blocks:
        if language == "sh":
            result = subprocess.run(
                ["bash", "-e", "-c", code], env=environment, capture_output=True, timeout=300
            )
            assert result.returncode == 0, (code, result.stderr.decode())
        elif language == "python":
            exec(compile(code, GUIDE, "exec"), namespace)
    with open("import-report.json") as handle:
        report = json.load(handle)  # one document for every map
    assert sorted(entry["upstream_map"] for entry in report["maps"]) == sorted(
        f"old-maps/{n}.json" for n in names
    )
    for name in names:
        restored = se.decrypt(se.DataMap.load(f"old-maps/{name}.sedm"), se.open_store("new-store"))
        assert sha256(restored) == Vector(name).info["sha256"]
    assert os.listdir("old-chunks") == []  # every map was moved: every old chunk freed
