"""The entry point: the parser made of every command's own, and the mapping of failures to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterable

import self_encryption as se

from . import cat_cmd, decrypt_cmd, encrypt_cmd, gc_cmd, import_upstream_cmd, info_cmd, verify_cmd
from .errors import IO_ERROR, OK, CommandError, describe_chunk_error
from .maps import subject
from .options import Commands, Parser, new_parser
from .output import fail
from .signals import install_signal_handlers, interrupt_behind, interrupted

#: The commands, in the order --help lists them.
COMMANDS = (encrypt_cmd, decrypt_cmd, cat_cmd, info_cmd, verify_cmd, gc_cmd, import_upstream_cmd)


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
    """Run the command line; returns the exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    parser.hide_maps_in(arguments)
    args = parser.parse_args(arguments)
    args.redact = parser.redact  # for a command that words a failure itself (import-upstream --json)
    out = sys.stdout
    install_signal_handlers()
    try:
        code: int = args.run(args, out)
        return code
    except BrokenPipeError:  # the reader of our output went away, as `| head` does
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except (CommandError, se.SelfEncryptionError, OSError, MemoryError) as exc:
        message, code = describe_failure(exc, args)
        # A map given as an argument can surface in any message (a store path, say): never print it.
        return fail(parser.redact(message), code)
    except KeyboardInterrupt as exc:
        return interrupted(exc)
    except RuntimeError as exc:
        interrupt = interrupt_behind(exc)
        if interrupt is None:
            raise
        return interrupted(interrupt)


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
