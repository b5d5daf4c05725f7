"""Sphinx configuration: Markdown pages through myst-parser, the API from autodoc."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import self_encryption

project = "self-encryption-cffi"
author = "the self-encryption-cffi developers"
copyright = "2026, " + author
version = release = self_encryption.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "cli_reference",
]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
# Types in the signature: a dataclass's fields are then listed once, as attributes with their meaning.
autodoc_typehints = "signature"
# Names the signatures use but the reference does not document on their own.
nitpicky = False
html_theme = "furo"
html_title = f"self-encryption-cffi {release}"
doctest_global_setup = "import self_encryption as se"
# The upstream reader has a DataMap of its own: a signature's bare "DataMap" names the one
# of the module it is in, and the ambiguity warning would fail the build for nothing.
suppress_warnings = ["ref.python"]
