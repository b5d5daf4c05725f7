"""Build the C core through cffi; all metadata lives in pyproject.toml."""

import os

from setuptools import setup

# SELF_ENCRYPTION_NO_EXTENSION=1 installs the pure-Python backend only.
WITH_EXTENSION = os.environ.get("SELF_ENCRYPTION_NO_EXTENSION", "") in ("", "0")

setup(
    cffi_modules=["csrc/build_native.py:ffi"] if WITH_EXTENSION else [],
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if WITH_EXTENSION else {},
)
