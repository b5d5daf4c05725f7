#!/usr/bin/env bash
# Run the whole test suite over both backends, installing what it needs first.
# Extra arguments go to pytest, e.g. scripts/test.sh -k vectors
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
for backend in c python; do
  echo "== tests with SELF_ENCRYPTION_BACKEND=$backend"
  SELF_ENCRYPTION_BACKEND=$backend .venv/bin/python -m pytest -q "$@"
done
