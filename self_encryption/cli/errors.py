"""The command line's expected failures and their exit codes, from ``self_encryption.EXIT_CODES``."""

from __future__ import annotations

import signal
from typing import Any

import self_encryption as se

OK = se.EXIT_CODES[0].code  # "success" heads the table
INTERRUPTED = 128 + signal.SIGINT  # 130, as shells report Ctrl-C
USAGE = se.InvalidArgumentError.exit_code
IO_ERROR = se.StoreError.exit_code
BAD_MAP = se.DataMapError.exit_code


class CommandError(Exception):
    """An expected failure: a message for the user and an exit code."""

    def __init__(self, message: str, code: int = se.SelfEncryptionError.exit_code) -> None:
        super().__init__(message)
        self.code = code


def exit_codes_help() -> str:
    """The exit-code table for --help, made from self_encryption.EXIT_CODES."""
    lines = ["exit codes:"]
    lines += [f"  {code.code:>3}  {code.meaning}" for code in se.EXIT_CODES]
    return "\n".join(lines)


def _short(name: str | None) -> str:
    return f"{name[:12]}…" if name else "?"


def describe_chunk_error(error: se.ChunkError) -> str:
    """Which chunk an error is about (index, level, the start of its name) and why."""
    where = []
    if error.index is not None:
        where.append(f"chunk {error.index}")
    if error.level is not None:
        where.append(f"at level {error.level}")
    where.append(f"(name {_short(error.name)})")
    return f"{' '.join(where)}: {error.reason}"


class PartialFailureError(Exception):
    """A command failed after part of its work was done.

    With ``--json`` the error is added to ``document`` (what was done), so
    that standard output still holds one JSON document.
    """

    def __init__(self, cause: Exception, document: dict[str, Any]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.document = document
