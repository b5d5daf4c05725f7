"""Encryption options: defaults, checks and the normalised form every stage uses.

The chunk sizes and compression level are part of the output (docs/format.md
2.1 and 2.2): two encryptions de-duplicate only when their options agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import zstandard

from ._errors import InvalidArgumentError

DEFAULT_CHUNK_SIZES = (262144, 1048576, 4194304)
DEFAULT_COMPRESSION_LEVEL = 3
#: Seconds an S3 store goes on retrying a failing request: the default of S3Store's
#: ``retry_seconds`` (tests/test_package.py checks that the store's default agrees).
DEFAULT_RETRY_SECONDS = 120.0

#: The lowest zstd level python-zstandard accepts; 0 would mean "zstd's default".
MIN_COMPRESSION_LEVEL = -(1 << 17)

#: progress(done, total): bytes done so far, and the total when it is known.
Progress = Callable[[int, "int | None"], object]


@dataclass(frozen=True)
class Options:
    """Checked encryption options (docs/format.md 2.1 to 2.3).

    The convergence secret is left out of ``repr``: it is a secret.
    """

    convergence_secret: bytes = field(default=b"", repr=False)
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL
    min_size: int = DEFAULT_CHUNK_SIZES[0]
    avg_size: int = DEFAULT_CHUNK_SIZES[1]
    max_size: int = DEFAULT_CHUNK_SIZES[2]


def make_options(
    convergence_secret: bytes | str = b"",
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
) -> Options:
    """Check user options and return them normalised; raises InvalidArgumentError."""
    if isinstance(convergence_secret, str):
        convergence_secret = convergence_secret.encode("utf-8")
    try:
        secret = bytes(memoryview(convergence_secret))
    except TypeError:
        raise InvalidArgumentError("convergence_secret must be bytes-like or str") from None
    if compression_level is not None:
        if (
            not is_int(compression_level)
            or not (MIN_COMPRESSION_LEVEL <= compression_level <= zstandard.MAX_COMPRESSION_LEVEL)
            or compression_level == 0
        ):
            raise InvalidArgumentError(
                "compression_level must be None (no compression) or a zstd level from "
                f"{MIN_COMPRESSION_LEVEL} to -1 or from 1 to {zstandard.MAX_COMPRESSION_LEVEL}, "
                f"not {compression_level!r}"
            )
    try:
        min_size, avg_size, max_size = chunk_sizes
    except (TypeError, ValueError):
        raise InvalidArgumentError("chunk_sizes must be (min, avg, max)") from None
    if not all(is_int(size) for size in (min_size, avg_size, max_size)):
        raise InvalidArgumentError(f"chunk_sizes must be integers, got {chunk_sizes!r}")
    if not 64 <= min_size <= avg_size <= max_size <= 1 << 31:
        raise InvalidArgumentError(
            f"chunk_sizes must satisfy 64 <= min <= avg <= max <= 2**31, got {chunk_sizes!r}"
        )
    if avg_size < 256 or avg_size & (avg_size - 1):
        raise InvalidArgumentError(
            f"the average chunk size must be a power of two of at least 256, got {avg_size}"
        )
    return Options(secret, compression_level, min_size, avg_size, max_size)


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
