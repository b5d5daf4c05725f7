"""A libcrypto failure in the C core reaches Python with OpenSSL's reason.

The failure is a real one: in a child process, the default property query
of libcrypto's default library context (the one the C core uses) is set to
one that no provider meets, so every algorithm fetch fails, as it would
with a broken or restricted OpenSSL configuration. The child reaches the
C core's own libcrypto through ctypes, by the paths the dynamic loader
mapped (Linux; a wheel's bundled copy may sit beside the system's, so each
mapped libcrypto gets the setting); elsewhere, or if that does not affect
the core, the test is skipped rather than faked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

try:
    from self_encryption import _cbackend
except ImportError:  # an install without the compiled module
    _cbackend = None

pytestmark = [
    pytest.mark.skipif(_cbackend is None, reason="C backend not built"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds libcrypto in /proc/self/maps"),
]

CHILD = textwrap.dedent("""
    import ctypes, json, threading
    from self_encryption import SelfEncryptionError, _cbackend as c

    def libcrypto_paths():
        paths = []
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "libcrypto" in path.rsplit("/", 1)[-1] and path.startswith("/") and path not in paths:
                    paths.append(path)
        return paths

    def set_default_properties(query):
        for crypto in libraries:
            assert crypto.EVP_set_default_properties(None, query) == 1

    report = {"paths": libcrypto_paths()}
    if not report["paths"]:
        print(json.dumps(report)); raise SystemExit
    libraries = [ctypes.CDLL(path) for path in report["paths"]]
    for crypto in libraries:
        crypto.EVP_set_default_properties.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        crypto.EVP_set_default_properties.restype = ctypes.c_int

    seed = bytes(32)
    calls = {
        "sha256": lambda: c.sha256(b"abc"),
        "hmac_sha256": lambda: c.hmac_sha256(b"key", b"abc"),
        "aes256_ctr": lambda: c.aes256_ctr(seed, bytes(16), b"abc"),
        "gear_table": lambda: c.GearTable(b""),
        "key_seed": lambda: c.key_seed(b"", 0, b"abc"),
        "seal": lambda: c.seal(seed, seed, seed, 0, b"abc"),
        "open_chunk": lambda: c.open_chunk(seed, seed, seed, b"abcd", bytes(32)),
    }

    def attempt(call):
        try:
            call()
        except SelfEncryptionError as exc:
            # The queue was drained by the error report.
            return {"error": type(exc).__name__, "message": str(exc),
                    "left": c.lib.se_last_crypto_error(c.ffi.NULL, 0)}
        return {"error": None}

    set_default_properties(b"provider=se-test-none")
    report["calls"] = {name: attempt(call) for name, call in calls.items()}
    # A failure on another thread is reported on that thread.
    box = {}
    worker = threading.Thread(target=lambda: box.update(attempt(calls["sha256"])))
    worker.start(); worker.join()
    report["thread"] = box
    set_default_properties(b"")
    report["after"] = c.sha256(b"abc").hex()
    report["left_after"] = c.lib.se_last_crypto_error(c.ffi.NULL, 0)
    print(json.dumps(report))
""")


# OpenSSL's text for an error code, "error:0308010C:digital envelope routines::unsupported",
# and the reasons a failed algorithm fetch gives (3.0: unsupported; later: either).
OPENSSL_ERROR = re.compile(r"error:[0-9A-F]{8}:[^;]*(unsupported|fetch failed)")


@pytest.fixture(scope="module")
def report():
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SELF_ENCRYPTION_BACKEND": "c"},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.splitlines()[-1])
    if not data["paths"]:
        pytest.skip("no libcrypto among the mapped files")
    if data["calls"]["sha256"]["error"] is None:
        pytest.skip(f"changing the default properties of {data['paths']} did not reach the C core")
    return data


@pytest.mark.parametrize(
    "call", ["sha256", "hmac_sha256", "aes256_ctr", "gear_table", "key_seed", "seal", "open_chunk"]
)
def test_libcrypto_failure_carries_openssl_reason(report, call):
    outcome = report["calls"][call]
    assert outcome["error"] == "SelfEncryptionError"
    message = outcome["message"]
    assert message.startswith("libcrypto reported a failure: error:"), message
    assert OPENSSL_ERROR.search(message), message
    assert outcome["left"] == 0  # the thread's error queue is empty again


def test_failure_on_a_worker_thread_is_reported_there(report):
    assert report["thread"]["error"] == "SelfEncryptionError"
    assert OPENSSL_ERROR.search(report["thread"]["message"])
    assert report["thread"]["left"] == 0


def test_libcrypto_works_again_afterwards(report):
    assert report["after"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert report["left_after"] == 0


def test_empty_queue_reads_as_no_reason():
    assert _cbackend.lib.se_last_crypto_error(_cbackend.ffi.NULL, 0) == 0
    assert _cbackend.crypto_error_text() == "OpenSSL gave no reason"
