#!/usr/bin/env bash
# Build the documentation site into docs/_build/html with every warning an
# error, run the examples in it as doctests, and check that the API reference
# covers every public name.
set -euo pipefail
cd "$(dirname "$0")/.."
SELF_ENCRYPTION_EXTRAS=${SELF_ENCRYPTION_EXTRAS-docs} source scripts/bootstrap.sh
.venv/bin/python -c 'import sphinx, myst_parser' 2>/dev/null || .venv/bin/python -m pip install --quiet -e '.[docs]'
.venv/bin/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
.venv/bin/python -m sphinx -W --keep-going -q -b doctest docs docs/_build/doctest
.venv/bin/python - <<'PY'
import pathlib, sys
import self_encryption as se
page = pathlib.Path("docs/_build/html/api.html").read_text(encoding="utf-8")
missing = [name for name in se.__all__ if f'id="self_encryption.{name}"' not in page]
if missing:
    sys.exit(f"docs: the API reference does not document {', '.join(missing)}")
print(f"docs: built docs/_build/html; the API reference covers all {len(se.__all__)} public names")
PY
