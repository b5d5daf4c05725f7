#!/usr/bin/env bash
# Build the sdist and check what it carries: every file git tracks under csrc/,
# tests/, docs/, scripts/, benchmarks/, examples/ and fuzz/ (the C test and the test
# data included), LICENSE, CHANGELOG.md and the other top-level documents, and
# no build leftovers. With --test, also unpack it in a temporary folder, set it
# up there with its own scripts/bootstrap.sh (pip install -e '.[test]') and
# run its whole suite over both backends with its scripts/test.sh.
#
#   bash scripts/check-sdist.sh [--test] [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)
run_tests=0
if [ "${1:-}" = "--test" ]; then
  run_tests=1
  shift
fi
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv "$work/build-env"
"$work/build-env/bin/pip" install --quiet --disable-pip-version-check build
"$work/build-env/bin/python" -m build --sdist --outdir "$work/dist" "$project" >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  exit 1
}
sdist=$(ls "$work"/dist/*.tar.gz)
echo "== built $(basename "$sdist")"

tracked=""
if git -C "$project" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  tracked=$(git -C "$project" ls-files -- csrc tests docs scripts benchmarks examples fuzz)
fi
TRACKED="$tracked" "$work/build-env/bin/python" - "$sdist" <<'PY'
import os
import sys
import tarfile

with tarfile.open(sys.argv[1]) as archive:
    names = archive.getnames()
root = names[0].split("/")[0]
files = {name.split("/", 1)[1] for name in names if "/" in name and not name.endswith("/")}

required = {
    "PKG-INFO", "pyproject.toml", "setup.py", "MANIFEST.in",
    "LICENSE", "README.md", "CHANGELOG.md", "CONTRIBUTING.md", "SECURITY.md",
    "self_encryption/__init__.py", "self_encryption/_version.py", "self_encryption/py.typed",
    "csrc/build_native.py", "csrc/se_core.c", "csrc/se_core.h", "csrc/tests/test_se_core.c",
    "tests/conftest.py", "tests/test_se_core.py", "tests/data/format_v1_vectors.json",
    "docs/format.md", "scripts/bootstrap.sh", "scripts/test.sh",
}
required |= {line for line in os.environ.get("TRACKED", "").splitlines() if line}
missing = sorted(required - files)
leftovers = sorted(
    name for name in files
    if name.endswith((".so", ".pyd", ".o", ".pyc", ".dylib"))
    or "__pycache__/" in name or ".hypothesis/" in name or name.startswith(".venv/")
    or name == "self_encryption/_native.c"
)
with tarfile.open(sys.argv[1]) as archive:
    pkg_info = archive.extractfile(f"{root}/PKG-INFO").read().decode()
metadata_problems = [
    line for line in ("License-Expression: MIT", "License-File: LICENSE")
    if line not in pkg_info.splitlines()
]
print(f"{len(files)} files in {root}")
for name in missing:
    print(f"missing from the sdist: {name}")
for name in leftovers:
    print(f"should not be in the sdist: {name}")
for line in metadata_problems:
    print(f"PKG-INFO lacks: {line}")
sys.exit(1 if missing or leftovers or metadata_problems else 0)
PY
echo "== file list ok"

if [ "$run_tests" = 1 ]; then
  tar -xzf "$sdist" -C "$work"
  unpacked=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'self_encryption_cffi-*')
  echo "== setting up and testing $unpacked"
  (cd "$unpacked" && PYTHON="$PYTHON" bash scripts/test.sh "$@")
fi
