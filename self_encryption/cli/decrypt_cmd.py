"""``self-encryption decrypt``: a whole file back from its data map, written only once all of it checks out."""

from __future__ import annotations

import argparse
import os
import sys
import time
from stat import S_ISREG
from typing import TextIO

import self_encryption as se

from .errors import IO_ERROR, OK, USAGE, CommandError
from .maps import add_map_argument, read_map, same_file
from .options import Commands, add_store, open_store
from .output import ProgressBar, emit_json, human_size, speed


def register(commands: Commands) -> None:
    command = commands.add(
        "decrypt", "Restore a file from its data map; nothing is written unless all of it checks out.", run
    )
    add_map_argument(command)
    add_store(command)
    command.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="file to write (- for standard output)"
    )


def _is_standard_output(path: str) -> bool:
    """Whether path is "-" or leads to the file standard output already is."""
    if path == "-":
        return True
    try:
        return same_file(path, os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):
        return False


def _check_not_the_map(source: str, output: str) -> None:
    """Refuse an output that is the map file being read (by any path or hard link, or as stdout)."""
    if se.looks_like_map(source):
        return
    try:
        stat = os.fstat(sys.stdin.fileno()) if source == "-" else os.stat(source)
        if output == "-":
            same = os.path.samestat(os.fstat(sys.stdout.fileno()), stat)
        else:
            same = same_file(output, stat)
    except (OSError, ValueError):
        return  # reading the map, or writing the output, reports it
    # Only a file can be lost: a pipe or terminal on both sides is a stream, not the map's copy.
    if same and S_ISREG(stat.st_mode):
        shown = "standard output" if output == "-" else output
        raise CommandError(f"the output {shown} is the data map being read: choose another -o", USAGE)


def run(args: argparse.Namespace, out: TextIO) -> int:
    _check_not_the_map(args.map, args.output)
    root = read_map(args.map)
    to_stdout = _is_standard_output(args.output)
    store = open_store(args, check_beside=True)
    label = "standard output" if to_stdout else os.path.basename(args.output)
    progress = ProgressBar(label, not args.quiet and not args.json)
    started = time.monotonic()
    tuning = {"store_concurrency": args.store_concurrency}
    try:
        if args.output == "-":
            written = se.decrypt_file(
                root, store, sys.stdout.buffer, workers=args.workers, progress=progress, **tuning
            )
            sys.stdout.buffer.flush()
        else:
            written = se.decrypt_file(
                root, store, args.output, workers=args.workers, progress=progress, **tuning
            )
    except se.InvalidArgumentError as exc:
        raise CommandError(f"cannot write {args.output}: {exc}", IO_ERROR) from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}", IO_ERROR) from None
    finally:
        progress.close()
    seconds = time.monotonic() - started
    if args.json and not to_stdout:
        emit_json(
            out, {"command": "decrypt", "output": args.output, "size": written, "seconds": round(seconds, 6)}
        )
    elif not args.quiet and not to_stdout:
        out.write(f"{args.output}: {human_size(written)} restored and verified, {speed(written, seconds)}\n")
    return OK
