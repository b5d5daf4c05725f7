"""``self-encryption mount``: the files behind a map file or a folder of maps, as a folder."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

import self_encryption as se
from self_encryption import mount

from .errors import OK
from .options import (
    Commands,
    add_encryption_options,
    add_store,
    byte_size,
    encryption_settings,
    open_store,
    size_text,
)


def register(commands: Commands) -> None:
    command = commands.add(
        "mount",
        "Show the files behind a map file or a folder of maps as a folder, until unmounted "
        "(Ctrl-C, SIGTERM or fusermount3 -u); --writable lets them be changed.",
        run,
    )
    command.add_argument(
        "maps", metavar="MAPS", help=f"a data map file, or a folder of *{se.MAP_SUFFIX} files (mirrored)"
    )
    command.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty folder to show the files in")
    add_store(command)
    command.add_argument(
        "--writable", action="store_true", help="allow creating, writing, renaming and removing files"
    )
    command.add_argument(
        "--cache",
        type=byte_size,
        default=mount.DEFAULT_CACHE_BYTES,
        metavar="SIZE",
        help=f"chunk cache shared by all open files (default {size_text(mount.DEFAULT_CACHE_BYTES)})",
    )
    command.add_argument("-v", "--verbose", action="store_true", help="log every save")
    add_encryption_options(command)  # for new files and edits


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Mount until unmounted; 0 after a clean unmount."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="self-encryption mount: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("self_encryption.mount").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    options = encryption_settings(args)
    store = open_store(args)
    mode = "read-write" if args.writable else "read-only"

    def ready() -> None:
        if not args.quiet:
            out.write(
                f"mounted {args.maps} at {args.mountpoint} ({mode}); Ctrl-C or fusermount3 -u to unmount\n"
            )
            out.flush()

    mount.mount(
        args.maps,
        store,
        args.mountpoint,
        writable=args.writable,
        cache_bytes=args.cache,
        workers=args.workers,
        on_ready=ready,
        **options,
    )
    return OK
