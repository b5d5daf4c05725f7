"""The build finds libcrypto or says what to install; the C core is thread-safe."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from self_encryption import _options

import reference

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "csrc" / "build_native.py"


def _load_build_script(env_changes: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_changes}
    env.pop("SELF_ENCRYPTION_OPENSSL_PREFIX", None)
    code = f"import runpy; runpy.run_path({str(BUILD_SCRIPT)!r}, run_name='not_main')"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not BUILD_SCRIPT.exists(), reason="needs the source tree")
def test_missing_libcrypto_names_what_to_install():
    result = _load_build_script({"PKG_CONFIG_LIBDIR": "/nonexistent", "PKG_CONFIG_PATH": ""})
    assert result.returncode != 0
    assert "libssl-dev" in result.stderr and "SELF_ENCRYPTION_OPENSSL_PREFIX" in result.stderr


@pytest.mark.skipif(not BUILD_SCRIPT.exists(), reason="needs the source tree")
def test_header_is_the_cdef():
    sys.path.insert(0, str(BUILD_SCRIPT.parent))
    try:
        import build_native
    finally:
        sys.path.pop(0)
    cdef = build_native.read_cdef()
    assert "se_seal" in cdef and "#include" not in cdef and "#ifndef" not in cdef


def test_c_core_from_many_threads(both_backends):
    """Threads sealing and opening at once get what one thread gets alone."""
    c_backend, _ = both_backends
    options = _options.make_options(chunk_sizes=(4096, 16384, 65536))
    inputs = [os.urandom(300_000 + 1000 * i) for i in range(16)]
    expected = [reference.encrypt(c_backend, data, options) for data in inputs]

    def round_trip(i):
        result = reference.encrypt(c_backend, inputs[i], options)
        return result, reference.decrypt(c_backend, *result)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(round_trip, range(len(inputs))))
    for i, (result, plain) in enumerate(results):
        assert result == expected[i]
        assert plain == inputs[i]
