"""Run the test suite against the installed package, once per backend.

    python scripts/test_installed.py [--backends c,python] [pytest arguments...]

Run it from a folder that holds ``tests/`` (and ``csrc/`` for the C-level
tests) but not the package sources, so that ``import self_encryption``
finds the installed wheel. Wheel builds (cibuildwheel's test-command and
scripts/build-wheel.sh) use it.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="c,python", help="comma-separated (default c,python)")
    args, pytest_args = parser.parse_known_args()
    if pathlib.Path("self_encryption").is_dir():
        print("run this outside the source tree, or the sources shadow the installed package")
        return 2
    probe = [sys.executable, "-c", "import self_encryption as se, sys; print(se.__file__)"]
    print("testing", subprocess.run(probe, capture_output=True, text=True).stdout.strip())
    failed = 0
    for backend in args.backends.split(","):
        print(f"== tests with SELF_ENCRYPTION_BACKEND={backend}", flush=True)
        env = {**os.environ, "SELF_ENCRYPTION_BACKEND": backend}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *pytest_args], env=env
        )
        failed |= result.returncode
    return failed


if __name__ == "__main__":
    sys.exit(main())
