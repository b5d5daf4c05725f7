"""The package version: the one place it is written.

pyproject.toml reads it for the package metadata, and csrc/build_native.py
reads it (as text) to compile it into the C core, which must match it.
"""

__version__ = "0.1.0"
