"""csrc/build_native.py: SELF_ENCRYPTION_WERROR=1 makes warnings errors, off by default."""

from __future__ import annotations

import pathlib
import runpy
import sys

import pytest

BUILD_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "csrc" / "build_native.py"

pytestmark = pytest.mark.skipif(not BUILD_SCRIPT.exists(), reason="needs the source tree")


@pytest.fixture(scope="module")
def build():
    try:
        return runpy.run_path(str(BUILD_SCRIPT), run_name="not_main")
    except RuntimeError as exc:  # no libcrypto to build against here
        pytest.skip(str(exc))


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, False),
        ("", False),
        ("0", False),
        ("1", True),
        ("yes", True),
    ],
)
def test_werror_switch(build, monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("SELF_ENCRYPTION_WERROR", raising=False)
    else:
        monkeypatch.setenv("SELF_ENCRYPTION_WERROR", value)
    assert build["werror_requested"]() is expected
    args = build["compile_args"]()
    if sys.platform == "win32":
        assert "-Werror" not in args  # MSVC: GCC/Clang flags only
    else:
        assert ("-Werror" in args) is expected
        assert "-Wall" in args and "-Wextra" in args
