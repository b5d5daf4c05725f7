"""``self-encryption mount MAPS --store STORE MOUNTPOINT``: the command line's mount.

Self-contained: ``add_parser(commands, parents=..., encryption_options=...)``
adds the command to an argparse sub-parser set, and ``run(args, out, store,
options)`` runs it once the caller has opened the store and read the
encryption options (as the other commands do).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from . import DEFAULT_CACHE_BYTES, mount

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _bytes(text: str) -> int:
    """A size in bytes, or with K, M or G (powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use bytes, or K/M/G)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def add_parser(
    commands: Any,
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
    encryption_options: Callable[[argparse.ArgumentParser], None] | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """Add ``mount`` to ``commands`` (the result of add_subparsers) and return its parser."""
    summary = (
        "Show the files behind a map file or a folder of maps as a folder, until unmounted "
        "(Ctrl-C, SIGTERM or fusermount3 -u); --writable lets them be changed."
    )
    parser: argparse.ArgumentParser = commands.add_parser(
        "mount", parents=list(parents), help=summary, description=summary, **kwargs
    )
    parser.add_argument(
        "maps", metavar="MAPS", help="a data map file, or a folder of *.sedm files (mirrored)"
    )
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty folder to show the files in")
    parser.add_argument("--store", required=True, help="chunk store: a folder, or s3://BUCKET[/PREFIX]")
    parser.add_argument(
        "--writable", action="store_true", help="allow creating, writing, renaming and removing files"
    )
    parser.add_argument(
        "--cache",
        type=_bytes,
        default=DEFAULT_CACHE_BYTES,
        metavar="SIZE",
        help=f"chunk cache shared by all open files (default {DEFAULT_CACHE_BYTES >> 20}M)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every save")
    if encryption_options is not None:
        encryption_options(parser)  # --secret-file, --level, --chunk-sizes: for new files and edits
    return parser


def run(args: argparse.Namespace, out: TextIO, *, store: Any, options: dict[str, Any]) -> int:
    """Mount until unmounted; returns 0 after a clean unmount."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="self-encryption mount: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("self_encryption.mount").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    mode = "read-write" if args.writable else "read-only"

    def ready() -> None:
        if not getattr(args, "quiet", False):
            out.write(
                f"mounted {args.maps} at {args.mountpoint} ({mode}); Ctrl-C or fusermount3 -u to unmount\n"
            )
            out.flush()

    mount(
        args.maps,
        store,
        args.mountpoint,
        writable=args.writable,
        cache_bytes=args.cache,
        workers=getattr(args, "workers", None),
        on_ready=ready,
        **options,
    )
    return 0
