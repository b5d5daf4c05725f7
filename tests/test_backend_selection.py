"""SELF_ENCRYPTION_BACKEND picks the backend; a bad value is an ImportError."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(code: str, value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("SELF_ENCRYPTION_BACKEND", None)
    if value is not None:
        env["SELF_ENCRYPTION_BACKEND"] = value
    return subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _c_available() -> bool:
    try:
        import self_encryption._native  # noqa: F401
    except ImportError:
        return False
    return True


needs_c = pytest.mark.skipif(not _c_available(), reason="C backend not built")
SHOW = "import self_encryption as se; print(se.backend)"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("python", "python"),
        ("PYTHON", "python"),
        (" python ", "python"),
        pytest.param("c", "c", marks=needs_c),
        pytest.param("auto", "c", marks=needs_c),
        pytest.param("", "c", marks=needs_c),
        pytest.param(None, "c", marks=needs_c),
    ],
)
def test_choice(value, expected):
    result = _run(SHOW, value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("value", ["rust", "cffi", "1"])
def test_unknown_value_is_import_error(value):
    result = _run(SHOW, value)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and value in result.stderr


BLOCK_NATIVE = "import sys; sys.modules['self_encryption._native'] = None; "


def test_auto_falls_back_with_a_warning():
    code = (
        BLOCK_NATIVE + "import warnings; warnings.simplefilter('always');"
        "import self_encryption as se; print(se.backend)"
    )
    env = dict(os.environ, SELF_ENCRYPTION_BACKEND="auto")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"
    assert "RuntimeWarning" in result.stderr and "C backend unavailable" in result.stderr


def test_c_required_but_missing_is_import_error():
    result = _run(BLOCK_NATIVE + SHOW, "c")
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "cannot be loaded" in result.stderr
