"""One version: self_encryption/_version.py, read by the metadata, the build and the C core."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import runpy
import shutil
import subprocess
import sys

import pytest

import self_encryption
from self_encryption import _version

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "csrc" / "build_native.py"

try:
    from self_encryption import _cbackend
except ImportError:  # an install without the compiled module
    _cbackend = None

needs_c = pytest.mark.skipif(_cbackend is None, reason="C backend not built")


def test_metadata_version_is_the_version_file():
    assert importlib.metadata.version("self-encryption-cffi") == _version.__version__


def test_package_version_is_the_version_file():
    assert self_encryption.__version__ == _version.__version__


@needs_c
def test_c_core_was_built_for_this_version():
    assert _cbackend.built_for_version() == _version.__version__


@needs_c
def test_version_mismatch_is_refused():
    _cbackend.check_package_version(_version.__version__)  # the same: accepted
    with pytest.raises(ImportError) as caught:
        _cbackend.check_package_version("0.0.1", package="0.1.0")
    message = str(caught.value)
    assert "self_encryption._native was built for version 0.0.1" in message
    assert "the package is version 0.1.0" in message
    assert "pip install" in message


def _stale_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the installed package, C core included, whose version file says 9.9.9."""
    package = pathlib.Path(self_encryption.__file__).parent
    copy = tmp_path / "self_encryption"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # A repaired wheel keeps libcrypto beside the package (auditwheel, delvewheel).
    for libs in package.parent.glob("self_encryption_cffi*.libs"):
        shutil.copytree(libs, tmp_path / libs.name)
    (copy / "_version.py").write_text('__version__ = "9.9.9"\n')
    return copy


@needs_c
def test_stale_c_core_fails_the_import(tmp_path):
    copy = _stale_copy(tmp_path)
    code = "import self_encryption"
    env = {**os.environ, "SELF_ENCRYPTION_BACKEND": "c", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode != 0
    assert "StaleCoreError" in result.stderr, result.stderr  # an ImportError
    assert (
        f"the compiled C core self_encryption._native was built for version "
        f"{_version.__version__} but the package is version 9.9.9"
    ) in result.stderr
    assert str(copy) in result.stderr  # the copy, not the installed package, was imported


@needs_c
def test_stale_c_core_fails_even_when_the_backend_may_fall_back(tmp_path):
    # A core that is missing falls back to Python; one built for another version
    # is a broken install, and fails loudly as cryptography's does.
    copy = _stale_copy(tmp_path)
    env = {**os.environ, "SELF_ENCRYPTION_BACKEND": "auto", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import self_encryption"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    assert "StaleCoreError" in result.stderr and "the package is version 9.9.9" in result.stderr
    assert str(copy) in result.stderr


@pytest.mark.skipif(
    not (ROOT / "self_encryption" / "_version.py").exists() or not BUILD_SCRIPT.exists(),
    reason="needs the source tree",
)
def test_build_script_reads_the_version_file(tmp_path):
    try:
        build = runpy.run_path(str(BUILD_SCRIPT), run_name="not_main")
    except RuntimeError as exc:  # no libcrypto to build against here
        pytest.skip(str(exc))
    assert build["read_version"]() == _version.__version__
    assert build["define_macros"]() == [("SE_PACKAGE_VERSION", f'"{_version.__version__}"')]

    fake = tmp_path / "_version.py"
    fake.write_text('"""Doc."""\n\n__version__ = "1.2.3rc1+local.7"\n')
    assert build["read_version"](str(fake)) == "1.2.3rc1+local.7"
    fake.write_text('__version__ = "1.0\\"; evil()"\n')
    with pytest.raises(RuntimeError):
        build["read_version"](str(fake))
    fake.write_text("VERSION = '1.0'\n")
    with pytest.raises(RuntimeError):
        build["read_version"](str(fake))


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_pyproject_takes_the_version_from_the_version_file():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "self_encryption._version.__version__"
    }
