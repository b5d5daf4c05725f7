"""The entry point: the parser made of every command's own, and the mapping of failures to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

import self_encryption as se

from . import (
    cat_cmd,
    decrypt_cmd,
    encrypt_cmd,
    gc_cmd,
    import_upstream_cmd,
    info_cmd,
    locks_cmd,
    mount_cmd,
    verify_cmd,
)
from .errors import IO_ERROR, OK, CommandError, PartialFailureError, describe_chunk_error
from .maps import subject
from .options import JSON_FLAG, Commands, Parser, UsageError, new_parser
from .output import PROGRAM, emit_json, fail, show_library_warnings
from .signals import install_signal_handlers, interrupt_behind, interrupted

#: The commands, in the order --help lists them.
COMMANDS = (
    encrypt_cmd,
    decrypt_cmd,
    cat_cmd,
    info_cmd,
    verify_cmd,
    gc_cmd,
    import_upstream_cmd,
    locks_cmd,
    mount_cmd,
)


def _describe_backend() -> str:
    if se.backend == "c":
        return f"C backend, {se.openssl_version()}"
    return "pure-Python backend"


def build_parser() -> Parser:
    parser = new_parser(
        "Self-encrypt files into a chunk store and get them back with their data maps.",
        f"{se.__version__} ({_describe_backend()})",
    )
    commands = Commands(parser)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    With ``--json`` standard output holds exactly one JSON document: the
    command's result, or ``{"error": MESSAGE, "exit_code": CODE}`` when it
    fails (a usage error or an interrupt included); the one-line message
    still goes to standard error for people.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    wants_json = (
        JSON_FLAG in arguments[: arguments.index("--")] if "--" in arguments else JSON_FLAG in arguments
    )
    parser = build_parser()
    parser.hide_maps_in(arguments)
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        sys.stderr.write(exc.usage)
        return _failed(exc.prog, str(exc), exc.code, wants_json)
    out = sys.stdout
    show_library_warnings()
    install_signal_handlers()
    try:
        code: int = args.run(args, out)
        return code
    except BrokenPipeError:  # the reader of our output went away, as `| head` does
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except PartialFailureError as exc:  # some of the work was done: its document carries the failure
        message, code = describe_failure(exc.cause, args)
        return _failed(PROGRAM, parser.redact(message), code, wants_json, exc.document)
    except (CommandError, se.SelfEncryptionError, OSError, MemoryError) as exc:
        message, code = describe_failure(exc, args)
        # A map given as an argument can surface in any message (a store path, say): never print it.
        return _failed(PROGRAM, parser.redact(message), code, wants_json)
    except KeyboardInterrupt as exc:
        return _interrupted(exc, wants_json)
    except RuntimeError as exc:
        interrupt = interrupt_behind(exc)
        if interrupt is None:
            raise
        return _interrupted(interrupt, wants_json)


def _failed(
    prog: str, message: str, code: int, wants_json: bool, document: dict[str, Any] | None = None
) -> int:
    """Report a failure: one line on stderr and, with --json, the error document on stdout.

    ``document`` is what a command had done before it failed: the error is added to it.
    """
    if wants_json:
        with contextlib.suppress(OSError):
            emit_json(sys.stdout, (document or {}) | {"error": message, "exit_code": code})
            sys.stdout.flush()
    return fail(message, code, prog)


def _interrupted(exc: BaseException, wants_json: bool) -> int:
    code = interrupted(exc)
    if wants_json:
        meaning = {entry.code: entry.meaning for entry in se.EXIT_CODES}.get(code, "interrupted")
        with contextlib.suppress(OSError):
            emit_json(sys.stdout, {"error": meaning, "exit_code": code})
            sys.stdout.flush()
    return code


def describe_failure(exc: Exception, args: argparse.Namespace) -> tuple[str, int]:
    """The one-line message and exit code for an expected failure."""
    if isinstance(exc, MemoryError):  # Python's own says nothing; se.OutOfMemoryError says what ran out
        detail = str(exc) if isinstance(exc, se.OutOfMemoryError) else "not enough memory for this work"
        return f"{subject(args)}out of memory: {detail}", se.OutOfMemoryError.exit_code
    if isinstance(exc, CommandError):
        return str(exc), exc.code
    if isinstance(exc, se.DataMapError):
        return f"{subject(args)}bad data map: {exc}", exc.exit_code
    if isinstance(exc, se.ChunkNotFoundError):
        return (
            f"{subject(args)}missing {describe_chunk_error(exc)}; the store "
            f"{args.store} does not hold the whole file: check --store, or encrypt the "
            "file into it again with the same options",
            exc.exit_code,
        )
    if isinstance(exc, se.ChunkIntegrityError):
        return (
            f"{subject(args)}corrupt {describe_chunk_error(exc)}; to restore it, run "
            "verify --full --repair on this map and then encrypt the file again with the "
            "same options (or encrypt it again with --check-existing)",
            exc.exit_code,
        )
    if isinstance(exc, se.StoreError):
        return f"I/O error: {exc}", exc.exit_code
    if isinstance(exc, OSError):
        return f"I/O error: {exc}", IO_ERROR
    if isinstance(exc, MemoryError):
        return "out of memory: the work needs more memory than this machine allows it", IO_ERROR
    assert isinstance(exc, se.SelfEncryptionError)
    return str(exc), exc.exit_code


def run() -> None:
    """Console-script entry point."""
    code = main()
    if threading.active_count() > 1:
        # A worker stuck in a store call (after an interrupt, say) would hold the
        # interpreter's exit, which joins the pool's threads: leave at once instead.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
