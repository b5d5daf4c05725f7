"""The static checks themselves: mypy accepts the public API as documented and
refuses a backend whose functions drift from the Backend protocol."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytest.importorskip("mypy", reason="mypy is not installed (scripts/lint.sh installs it)")


def _mypy(*args: str, cwd: pathlib.Path = ROOT) -> tuple[int, str]:
    """mypy as scripts/lint.sh runs it: a process of its own, from the project folder."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-incremental",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_backend_that_drifts_is_a_type_error(tmp_path):
    package = tmp_path / "self_encryption"
    shutil.copytree(
        ROOT / "self_encryption", package, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd")
    )
    source = (package / "_pybackend.py").read_text()
    drifted = source.replace(
        "def seal(seed: bytes, prev1: bytes, prev2: bytes, kind: int, body: Buffer) -> tuple[bytearray, bytes]:",
        "def seal(seed: bytes, prev1: bytes, prev2: bytes, kind: int, body: Buffer) -> tuple[bytes, bytes]:",
    )
    assert drifted != source, "the seal signature in _pybackend.py changed: update this test"
    (package / "_pybackend.py").write_text(drifted)
    status, output = _mypy("self_encryption/_backend.py", "--follow-imports=silent", cwd=tmp_path)
    assert status != 0 and "_pybackend" in output and "seal" in output, output


def test_the_public_api_checks_as_documented():
    status, output = _mypy(str(ROOT / "tests" / "typing"))
    assert status == 0, output
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "typing" / "check_public_api.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
