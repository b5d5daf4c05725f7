"""Run the standalone C test of the core (csrc/tests/test_se_core.c) under
AddressSanitizer + UndefinedBehaviorSanitizer, and under valgrind.

The program is built into pytest's tmp_path from csrc/se_core.c and linked
with libcrypto; no Python extension is involved. Each test is skipped, with
the reason, when its tool (gcc, pkg-config, the sanitizer runtimes,
valgrind) is missing.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
SOURCES = [CSRC / "tests" / "test_se_core.c", CSRC / "se_core.c", CSRC / "se_cut.c"]
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
SANITIZE = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",  # a UBSan finding must fail the run
    "-fno-omit-frame-pointer",
    "-g",
]
TIMEOUT = 300
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)
SANITIZER_MARKS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "runtime error:",
    "SUMMARY:",
)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not on PATH")
    return path


def _libcrypto_flags() -> list[str]:
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkg_config is None:
        pytest.skip("pkg-config is not on PATH, so libcrypto cannot be located")
    result = subprocess.run(
        [pkg_config, "--cflags", "--libs", "libcrypto"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        pytest.skip(f"pkg-config does not know libcrypto: {result.stderr.strip()}")
    return shlex.split(result.stdout)


def _compile(gcc: str, flags: list[str], output: pathlib.Path) -> None:
    command = [
        gcc,
        *WARNINGS,
        *flags,
        f"-I{CSRC}",
        *map(str, SOURCES),
        *_libcrypto_flags(),
        "-o",
        str(output),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"compile failed: {shlex.join(command)}\n{result.stdout}\n{result.stderr}"
    # -Werror already refuses warnings; say so if a compiler still printed any.
    assert "warning" not in result.stderr, result.stderr


def _check_summary(stdout: str) -> int:
    found = SUMMARY.findall(stdout)
    assert found, f"no 'N passed, M failed' line in:\n{stdout}"
    passed, failed = map(int, found[-1])
    assert failed == 0, stdout
    assert passed > 0, stdout
    assert stdout.rstrip().splitlines()[-1] == f"{passed} passed, 0 failed"
    return passed


def _sanitizers_work(gcc: str, tmp_path: pathlib.Path) -> bool:
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    result = subprocess.run(
        [gcc, *SANITIZE, str(probe), "-o", str(tmp_path / "probe")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return result.returncode == 0


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
    }
    env.update(extra)
    return env


def test_core_under_asan_and_ubsan(tmp_path):
    gcc = _need("gcc")
    if not _sanitizers_work(gcc, tmp_path):
        pytest.skip("gcc cannot link -fsanitize=address,undefined here (libasan/libubsan missing)")
    binary = tmp_path / "test_se_core_asan"
    _compile(gcc, SANITIZE, binary)
    result = subprocess.run(
        [str(binary)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_clean_env(
            ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:strict_string_checks=1:"
            "detect_stack_use_after_return=1:check_initialization_order=1",
            UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        ),
    )
    report = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    _check_summary(result.stdout)
    for mark in SANITIZER_MARKS:
        assert mark not in result.stderr, report


def test_core_under_valgrind(tmp_path):
    gcc = _need("gcc")
    valgrind = _need("valgrind")
    binary = tmp_path / "test_se_core"
    # The plain build of the test, as documented in its header, plus -g.
    _compile(gcc, ["-g", "-O1"], binary)
    result = subprocess.run(
        [
            valgrind,
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            str(binary),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_clean_env(),
    )
    report = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    _check_summary(result.stdout)
    assert "ERROR SUMMARY: 0 errors" in result.stderr, report
