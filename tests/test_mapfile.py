"""Data map files (self_encryption/_mapfile.py): where a map may be written, and what is a map's text."""

from __future__ import annotations

import os
import socket
import stat

import pytest

import self_encryption as se
from self_encryption import _mapfile

from helpers import SMALL_SIZES


def test_the_library_refuses_the_same_destinations(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(se.InvalidArgumentError, match="a FIFO"):
        se.reserve_map_file(tmp_path / "fifo", replace=True)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(se.InvalidArgumentError, match="leads to no file"):
        se.reserve_map_file(tmp_path / "dangling", replace=True)
    assert se.map_destination(tmp_path / "absent") == str(tmp_path / "absent")
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert se.map_destination(tmp_path / "link") == str(tmp_path / "real")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "fifo", "link", "real"]


def test_a_folder_a_socket_and_a_device_are_refused_too(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(se.InvalidArgumentError, match="a folder"):
        se.map_destination(tmp_path / "folder")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "socket"))
        with pytest.raises(se.InvalidArgumentError, match="a socket"):
            se.map_destination(tmp_path / "socket")
    finally:
        server.close()
    if os.geteuid() == 0:
        os.mknod(tmp_path / "device", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        with pytest.raises(se.InvalidArgumentError, match="a device"):
            se.reserve_map_file(tmp_path / "device", replace=True)
        (tmp_path / "to-device").symlink_to(tmp_path / "device")
        with pytest.raises(se.InvalidArgumentError, match="a link to a device"):
            se.map_destination(tmp_path / "to-device")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_saving_through_a_link_keeps_the_link(tmp_path):
    root, _ = se.encrypt(b"some content" * 100)
    real = tmp_path / "real.sedm"
    real.write_text("old\n")
    (tmp_path / "link.sedm").symlink_to(real)
    with se.reserve_map_file(tmp_path / "link.sedm", replace=True) as reserved:
        reserved.save(root)
    assert (tmp_path / "link.sedm").is_symlink()
    assert se.DataMap.load(real) == root
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_looks_like_map():
    root, _ = se.encrypt(b"x" * 100)
    for text in (root.to_text(), " " + root.to_text(), "\n" + root.to_text() + "\n", root.to_json(), " {"):
        assert se.looks_like_map(text), text
    for text in ("file.sedm", "-", "./se1:x", "", "  "):
        assert not se.looks_like_map(text), text


def test_reserved_map_file(tmp_path):
    target = tmp_path / "f.sedm"
    with se.reserve_map_file(target) as reserved:
        temps = os.listdir(tmp_path)
        assert len(temps) == 1 and temps[0].startswith(".f.sedm-") and temps[0].endswith(".partial")
        # As large as the largest root map's text and its newline.
        assert (tmp_path / temps[0]).stat().st_size == 432
        root = se.encrypt_to_store(os.urandom(50_000), se.MemoryStore(), chunk_sizes=SMALL_SIZES)
        reserved.save(root)
    assert se.DataMap.load(target) == root and os.listdir(tmp_path) == ["f.sedm"]
    assert target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        se.reserve_map_file(target)
    with se.reserve_map_file(target, replace=True) as reserved:
        reserved.save(se.encrypt(b"other")[0])
    assert se.DataMap.load(target) == se.encrypt(b"other")[0]
    with pytest.raises(FileNotFoundError):
        se.reserve_map_file(tmp_path / "no" / "f.sedm")
    assert os.listdir(tmp_path) == ["f.sedm"]


def test_the_largest_root_fills_the_reservation_exactly():
    records = tuple(se.ChunkInfo(1, 1, bytes(32), "ab" * 32) for _ in range(4))
    largest = se.DataMap(0, 4, records)  # binary fields are fixed-width: any values do
    assert len(largest.to_text()) + 1 == 432
    assert _mapfile.MAX_ROOT_TEXT + 1 == 432
