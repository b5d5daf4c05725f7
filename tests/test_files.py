"""The atomic file write shared by chunks, data maps and decrypted outputs."""

from __future__ import annotations

import os

import pytest

from self_encryption import _files


def test_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with _files.atomic_write(str(target), prefix=".out.", suffix=".partial") as temp:
            temp.write(b"half")
            raise RuntimeError("stop")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out"]
    with _files.atomic_write(str(target), prefix=".out.", suffix=".partial", mode=0o600) as temp:
        temp.write(b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["out"]


def test_temp_file_sits_beside_the_target_with_its_name(tmp_path):
    target = tmp_path / "map.sedm"
    with _files.atomic_write(str(target), prefix=".sedm-") as temp:
        names = os.listdir(tmp_path)
        temp.write(b"x")
    assert len(names) == 1 and names[0].startswith(".sedm-")
