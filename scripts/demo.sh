#!/usr/bin/env bash
# The main job end to end: encrypt a sample file into a folder store, decrypt it,
# compare, and print the data map. Pass a file to use it instead of the sample.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/python examples/roundtrip.py "$@"
