"""``self-encryption cat``: a byte range of a file to standard output, fetching only the chunks it needs."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import self_encryption as se

from .errors import OK, USAGE, CommandError
from .maps import add_map_argument, read_map
from .options import Commands, add_store, open_store

#: Bytes read from the file and written out at a time.
PIECE = 1 << 20


def register(commands: Commands) -> None:
    command = commands.add(
        "cat", "Write a byte range of a file to standard output, fetching only the chunks it needs.", run
    )
    add_map_argument(command)
    add_store(command)
    command.add_argument("--offset", type=int, default=0, help="first byte (default 0)")
    command.add_argument("--length", type=int, default=None, help="bytes to write (default: to the end)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    root = read_map(args.map)
    store = open_store(args, check_beside=True)
    if args.offset < 0 or (args.length is not None and args.length < 0):
        raise CommandError("--offset and --length must not be negative", USAGE)
    remaining = root.file_size - args.offset if args.length is None else args.length
    sink = sys.stdout.buffer
    with se.open(root, store, workers=args.workers, store_concurrency=args.store_concurrency) as reader:
        reader.seek(args.offset)
        while remaining > 0:
            piece = reader.read(min(remaining, PIECE))
            if not piece:
                break
            sink.write(piece)
            remaining -= len(piece)
    sink.flush()
    return OK
