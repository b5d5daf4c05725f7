#!/usr/bin/env bash
# Build the documentation site into docs/_build/html with every warning an
# error, run the examples in it as doctests, and check that the API reference
# covers every public name, each with a docstring of its own and no builtin's.
set -euo pipefail
cd "$(dirname "$0")/.."
SELF_ENCRYPTION_EXTRAS=${SELF_ENCRYPTION_EXTRAS-docs} source scripts/bootstrap.sh
.venv/bin/python -c 'import sphinx, myst_parser, furo' 2>/dev/null || .venv/bin/python -m pip install --quiet -e '.[docs]'
.venv/bin/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
.venv/bin/python -m sphinx -W --keep-going -q -b doctest docs docs/_build/doctest
.venv/bin/python scripts/check_docs.py docs/_build/html
