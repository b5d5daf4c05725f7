"""cffi build script for ``self_encryption._native``.

The C declarations come from ``csrc/se_core.h`` (the part between the cdef
markers), so the header is the single description of the C interface.

libcrypto (OpenSSL 3) is found in this order:

1. ``SELF_ENCRYPTION_OPENSSL_PREFIX``: a folder with ``include/`` and
   ``lib/`` (or ``lib64/``), as an OpenSSL install or a static build has;
2. ``pkg-config libcrypto``;
3. otherwise the build stops and says what to install.

The package version, read as text from ``self_encryption/_version.py``, is
compiled in as ``SE_PACKAGE_VERSION`` so that ``se_package_version()`` names
the version the core was built for; ``_cbackend`` refuses a mismatch.

``SELF_ENCRYPTION_WERROR=1`` turns compiler warnings into errors (GCC and
Clang: ``-Wall -Wextra -Werror``); CI builds that way, the default does not.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "se_core.h")
SOURCE = os.path.join(HERE, "se_core.c")
CUT_SOURCE = os.path.join(HERE, "se_cut.c")
VERSION_FILE = os.path.join(HERE, os.pardir, "self_encryption", "_version.py")
PREFIX_VARIABLE = "SELF_ENCRYPTION_OPENSSL_PREFIX"
WERROR_VARIABLE = "SELF_ENCRYPTION_WERROR"

MISSING_OPENSSL = f"""
self-encryption-cffi: cannot find OpenSSL's libcrypto (version 3) to build
the C core. Install its development files and pkg-config:
    Debian/Ubuntu:  apt-get install libssl-dev pkg-config
    Fedora/RHEL:    dnf install openssl-devel pkgconf-pkg-config
    Alpine:         apk add openssl-dev pkgconf
    macOS:          brew install openssl@3 pkg-config
or point {PREFIX_VARIABLE} at a folder holding include/openssl and lib/.
"""


def read_cdef(path: str = HEADER) -> str:
    """The declarations between ``/* cdef-begin */`` and ``/* cdef-end */``."""
    with open(path, encoding="utf-8") as header:
        text = header.read()
    match = re.search(r"/\* cdef-begin \*/(.*?)/\* cdef-end \*/", text, re.S)
    if match is None:
        raise RuntimeError(f"{path} has no cdef markers")
    return match.group(1)


def read_version(path: str = VERSION_FILE) -> str:
    """``__version__`` from _version.py, by regex: the package is not importable yet."""
    with open(path, encoding="utf-8") as source:
        text = source.read()
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']\s*$""", text, re.M)
    if match is None:
        raise RuntimeError(f'{path} has no __version__ = "..." line')
    version = match.group(1)
    # It becomes a C string literal: allow only what PEP 440 versions use.
    if not re.fullmatch(r"[0-9A-Za-z.+!_-]+", version):
        raise RuntimeError(f"{path}: unexpected characters in version {version!r}")
    return version


def _relative(path: str) -> str:
    """setuptools wants sources relative to the project folder."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path


def _from_prefix(prefix: str) -> dict[str, list[str]]:
    library_dirs = [
        os.path.join(prefix, name) for name in ("lib", "lib64") if os.path.isdir(os.path.join(prefix, name))
    ]
    libraries = ["libcrypto"] if sys.platform == "win32" else ["crypto"]
    if sys.platform == "win32":
        libraries += ["advapi32", "crypt32", "user32", "ws2_32"]
    return {
        "include_dirs": [os.path.join(prefix, "include")],
        "library_dirs": library_dirs,
        "libraries": libraries,
    }


def _from_pkg_config() -> dict[str, list[str]] | None:
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkg_config is None:
        return None
    try:
        cflags = subprocess.run(
            [pkg_config, "--cflags", "libcrypto"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        libs = subprocess.run(
            [pkg_config, "--libs", "libcrypto"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except subprocess.CalledProcessError:
        return None
    flags: dict[str, list[str]] = {
        "include_dirs": [],
        "library_dirs": [],
        "libraries": [],
    }
    for word in shlex.split(cflags):
        if word.startswith("-I"):
            flags["include_dirs"].append(word[2:])
    for word in shlex.split(libs):
        if word.startswith("-L"):
            flags["library_dirs"].append(word[2:])
        elif word.startswith("-l"):
            flags["libraries"].append(word[2:])
    return flags


def openssl_flags() -> dict[str, list[str]]:
    """Include folders, library folders and libraries for libcrypto."""
    prefix = os.environ.get(PREFIX_VARIABLE)
    if prefix:
        return _from_prefix(prefix)
    flags = _from_pkg_config()
    if flags is None:
        raise RuntimeError(MISSING_OPENSSL)
    return flags


def werror_requested() -> bool:
    return os.environ.get(WERROR_VARIABLE, "").strip() not in ("", "0")


def compile_args() -> list[str]:
    if sys.platform == "win32":  # MSVC: warnings stay warnings
        return ["/O2", "/W3"]
    args = ["-O3", "-std=c99", "-Wall", "-Wextra"]  # GCC and Clang
    if werror_requested():
        args.append("-Werror")
    return args


def define_macros() -> list[tuple[str, str]]:
    """SE_PACKAGE_VERSION as a C string literal.

    A copy of csrc/ without the package sources beside it (the tests run
    against an installed wheel import this script) has no version to give;
    a core built that way reports "unknown", which ``_cbackend`` refuses.
    """
    if not os.path.exists(VERSION_FILE):
        return []
    return [("SE_PACKAGE_VERSION", f'"{read_version()}"')]


ffi = FFI()
ffi.cdef(read_cdef())
_flags = openssl_flags()
ffi.set_source(
    "self_encryption._native",
    '#include "se_core.h"',
    sources=[_relative(SOURCE), _relative(CUT_SOURCE)],
    include_dirs=[_relative(HERE)] + _flags["include_dirs"],
    library_dirs=_flags["library_dirs"],
    libraries=_flags["libraries"],
    define_macros=define_macros(),
    extra_compile_args=compile_args(),
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
