#!/usr/bin/env bash
# Static checks, as CI runs them: ruff (lint and format), mypy --strict over the
# package and the typing tests, and the C core built with -Werror.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[lint]'
echo "== ruff check" >&2
.venv/bin/ruff check .
echo "== ruff format --check" >&2
.venv/bin/ruff format --check .
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== C core with -Werror" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$PWD
(cd "$work" && SELF_ENCRYPTION_WERROR=1 "$root/.venv/bin/python" "$root/csrc/build_native.py" >build.log 2>&1) \
  || { cat "$work/build.log" >&2; exit 1; }
echo "lint: ruff, mypy --strict and the -Werror build are clean" >&2
