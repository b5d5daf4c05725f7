"""``self-encryption import-upstream``: a file stored by the upstream self_encryption, moved into our store."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any, TextIO

import self_encryption as se

from .errors import BAD_MAP, IO_ERROR, OK, USAGE, CommandError
from .maps import add_force, add_map_output, check_map_destination, reserve_map, save_map
from .options import STORE_HELP, Commands, add_encryption_options, encryption_settings, open_store
from .output import ProgressBar, emit_json, human_size, plural, speed

#: The most bytes of an upstream JSON map read: upstream shrinks its maps to three records.
MAX_UPSTREAM_MAP = 1 << 20
#: The suffix of an upstream map file, which our map's default name replaces.
UPSTREAM_SUFFIX = ".json"


def register(commands: Commands) -> None:
    command = commands.add(
        "import-upstream",
        "Move a file stored by the upstream self_encryption (0.35) into a "
        "store of ours: decrypt it as a stream, encrypt it, verify, "
        "write the new data map.",
        run,
    )
    command.add_argument(
        "map", metavar=f"MAP{UPSTREAM_SUFFIX}", help="the upstream data map, as its to_json() wrote it"
    )
    command.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DIR_OR_STORE",
        help="where the upstream chunks are: a folder of files named by their hex "
        "dst_hash (upstream's encrypt_from_file layout), or a store URL",
    )
    command.add_argument("--store", required=True, help=STORE_HELP + " to encrypt into")
    add_map_output(
        command,
        f"where to write our data map (default: MAP with {se.MAP_SUFFIX} for {UPSTREAM_SUFFIX}; "
        "- for standard output)",
    )
    add_force(command)
    add_encryption_options(command)


def _default_target(path: str) -> str:
    stem = path[: -len(UPSTREAM_SUFFIX)] if path.endswith(UPSTREAM_SUFFIX) else path
    return stem + se.MAP_SUFFIX


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from self_encryption import upstream
    except ImportError as exc:
        raise CommandError(str(exc), USAGE) from None
    try:
        with open(args.map, "rb") as handle:
            text = handle.read(MAX_UPSTREAM_MAP + 1)
    except OSError as exc:
        raise CommandError(
            f"cannot read upstream data map {args.map}: {exc.strerror or exc}", IO_ERROR
        ) from None
    if len(text) > MAX_UPSTREAM_MAP:
        raise CommandError(
            f"{args.map}: more than {MAX_UPSTREAM_MAP} bytes: too large to be an upstream data map", BAD_MAP
        )
    try:
        old_map = upstream.DataMap.from_json(text)
    except se.DataMapError as exc:
        raise CommandError(f"{args.map}: bad upstream data map: {exc}", BAD_MAP) from None
    source: Any = args.source
    if not os.path.isdir(source):  # a folder of upstream chunk files, else one of our store URLs
        source = se.open_store(
            source, **({"endpoint_url": args.endpoint_url} if source.startswith("s3:") else {})
        )
    target = args.output or _default_target(args.map)
    check_map_destination(target, args.force)
    options = encryption_settings(args)
    levels = upstream.data_maps(old_map, source)  # every level, map chunks fetched and checked
    file_map = levels[-1][1]  # the file's own map: where the walk ends
    store = open_store(args, create=True)
    progress = ProgressBar(os.path.basename(args.map), not args.quiet and not args.json)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        reserved = None if target == "-" else stack.enter_context(reserve_map(target, args.force))
        try:
            # One verified upstream chunk at a time, straight into the encryptor.
            with se.Encryptor(
                store,
                workers=args.workers,
                store_concurrency=args.store_concurrency,
                progress=progress,
                total_size=file_map.size,
                **options,
            ) as encryptor:
                for piece in upstream.iter_decrypt(file_map, source):
                    encryptor.write_owned(piece)
        finally:
            progress.close()
        root, stats = encryptor.data_map, encryptor.stats
        assert root is not None
        if stats.bytes_read != file_map.size:
            raise CommandError(
                f"{args.map}: the upstream file has {stats.bytes_read} bytes, its map says {file_map.size}",
                BAD_MAP,
            )
        report = se.verify(root, store, workers=args.workers)
        if not report.ok:
            raise CommandError(
                f"the new data map does not verify in {args.store}: "
                f"{len(report.problems)} chunks missing or corrupt; no map written",
                se.ChunkNotFoundError.exit_code,
            )
        if target == "-":
            out.write(root.to_text() + "\n")
        elif reserved is not None and not save_map(reserved, root, target, args.map):
            return IO_ERROR
    seconds = time.monotonic() - started
    upstream_chunks = len({name for _, level_map in levels for name in level_map.names()})
    result = {
        "command": "import-upstream",
        "upstream_map": args.map,
        "data_map": target,
        "size": stats.bytes_read,
        "upstream_chunks": upstream_chunks,
        "chunks": stats.chunks,
        "chunks_written": stats.chunks_written,
        "chunks_present": stats.chunks_present,
        "bytes_written": stats.bytes_written,
        "level": root.level,
        "seconds": round(seconds, 6),
    }
    if args.json:
        emit_json(out, result)
    elif not args.quiet:
        note = sys.stderr if target == "-" else out
        note.write(
            f"{args.map}: {human_size(stats.bytes_read)} from {plural(upstream_chunks, 'upstream chunk')} "
            f"into {plural(stats.chunks, 'chunk')} ({stats.chunks_written} written, "
            f"{stats.chunks_present} already present), verified, {speed(stats.bytes_read, seconds)}"
            + ("" if target == "-" else f" -> {target}")
            + "\n"
        )
    return OK
