"""Data map files (self_encryption/_mapfile.py): where a map may be written, and what is a map's text."""

from __future__ import annotations

import os
import socket
import stat

import pytest

import self_encryption as se


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
