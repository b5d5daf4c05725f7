"""``self-encryption encrypt``: files into a store, each file's data map into a map file beside it."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import TextIO

import self_encryption as se

from .errors import IO_ERROR, OK, USAGE, CommandError
from .maps import add_force, add_map_output, check_map_destination, reserve_map, save_map
from .options import Commands, add_encryption_options, add_store, duration, encryption_settings, open_store
from .output import ProgressBar, emit_json, human_size, plural, speed


def register(commands: Commands) -> None:
    command = commands.add(
        "encrypt", f"Encrypt files into a store; write each file's data map to FILE{se.MAP_SUFFIX}.", run
    )
    command.add_argument("files", nargs="+", metavar="FILE", help="files to encrypt (- for standard input)")
    add_store(command)
    add_map_output(command, "where to write the data map (one FILE only; - for standard output)")
    add_encryption_options(command)
    add_force(command)
    command.add_argument(
        "--lock-wait",
        dest="writer_lock_wait",
        type=duration,
        default=None,
        metavar="SECONDS",
        help="s3:// stores: how long to wait for a running gc (default: while its lock is live)",
    )
    command.add_argument(
        "--check-existing",
        action="store_true",
        help="read back every chunk the store already has and replace damaged ones",
    )


def _map_targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(file, data-map destination) for each FILE, every destination checked before any work."""
    pairs = [(path, args.output or f"{path}{se.MAP_SUFFIX}") for path in args.files]
    for path, target in pairs:
        if target == "-":
            continue
        if path != "-" and os.path.exists(target) and os.path.exists(path) and os.path.samefile(path, target):
            raise CommandError(
                f"the data map of {path} would replace {path} itself: choose another -o", USAGE
            )
        check_map_destination(target, args.force)
    return pairs


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.output and len(args.files) > 1:
        raise CommandError("-o names one data map: give one FILE, or leave -o out", USAGE)
    if "-" in args.files and not args.output:
        raise CommandError("encrypting standard input needs -o for the data map", USAGE)
    pairs = _map_targets(args)
    options = encryption_settings(args)
    store = open_store(args, create=True, lock_wait=args.writer_lock_wait, check_beside=True)
    results = []
    lost_maps = 0
    for path, target in pairs:
        progress = ProgressBar(os.path.basename(path), not args.quiet and not args.json)
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            stack.callback(progress.close)
            try:
                if path == "-":
                    source, size = sys.stdin.buffer, None
                else:
                    source = stack.enter_context(open(path, "rb"))
                    size = os.fstat(source.fileno()).st_size
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror or exc}", IO_ERROR) from None
            reserved = None if target == "-" else stack.enter_context(reserve_map(target, args.force))
            # Held until the map is saved, so that a gc waiting meanwhile sees the new map;
            # taken beside the first chunks' work (a put waits for it).
            stack.enter_context(store.begin_writing())
            encryptor = stack.enter_context(
                se.Encryptor(
                    store,
                    workers=args.workers,
                    store_concurrency=args.store_concurrency,
                    progress=progress,
                    total_size=size,
                    check_existing=args.check_existing,
                    **options,
                )
            )
            try:
                encryptor.write_from(source)
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror or exc}", IO_ERROR) from None
            root, stats = encryptor.finish(), encryptor.stats
            progress.close()
            seconds = time.monotonic() - started
            if target == "-" and not args.json:
                out.write(root.to_text() + "\n")
            elif reserved is not None and not save_map(reserved, root, target, path):
                lost_maps += 1
        result = {
            "file": path,
            "data_map": target,
            "size": stats.bytes_read,
            "chunks": stats.chunks,
            "chunks_written": stats.chunks_written,
            "chunks_present": stats.chunks_present,
            "chunks_repaired": stats.chunks_repaired,
            "bytes_written": stats.bytes_written,
            "seconds": round(seconds, 6),
            "level": root.level,
        }
        if target == "-" and args.json:  # asked for on stdout: inside the one JSON document
            result["data_map_text"] = root.to_text()
        results.append(result)
        if not args.json and not args.quiet:
            note = sys.stderr if target == "-" else out
            repaired = f", {stats.chunks_repaired} damaged replaced" if stats.chunks_repaired else ""
            note.write(
                f"{path}: {human_size(stats.bytes_read)} in {plural(stats.chunks, 'chunk')} "
                f"({stats.chunks_written} written, {stats.chunks_present} already present{repaired}), "
                f"{human_size(stats.bytes_written)} written, {speed(stats.bytes_read, seconds)}"
                + ("" if target == "-" else f" -> {target}")
                + "\n"
            )
    if args.json:
        emit_json(out, {"command": "encrypt", "store": args.store, "files": results})
    return IO_ERROR if lost_maps else OK
