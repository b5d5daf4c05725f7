"""``self-encryption gc``: the chunks no kept data map references, listed and with --yes deleted."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from typing import TextIO

import self_encryption as se

from .errors import IO_ERROR, OK, USAGE, CommandError, describe_chunk_error
from .maps import map_label, read_map
from .options import Commands, add_store, duration, open_store
from .output import duration_text, emit_json, human_size, plural


def register(commands: Commands) -> None:
    command = commands.add(
        "gc",
        "List (and with --yes delete) the chunks no kept data map references, "
        "and the store's leftover temporary files.",
        run,
    )
    add_store(command)
    command.add_argument(
        "--keep",
        nargs="+",
        required=True,
        metavar="MAP",
        help=f"data maps whose chunks stay; a folder means every *{se.MAP_SUFFIX} file under it",
    )
    command.add_argument("--yes", action="store_true", help="really delete the unreferenced chunks")
    command.add_argument(
        "--grace",
        type=duration,
        default=se.DEFAULT_GRACE,
        metavar="AGE",
        help="never delete a chunk stored or refreshed less than AGE ago: seconds, "
        f"or with s/m/h/d (default {duration_text(se.DEFAULT_GRACE)}; 0 relies on the store lock alone)",
    )
    command.add_argument(
        "--lock-wait",
        type=duration,
        default=se.DEFAULT_LOCK_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for running encrypts to finish (default {se.DEFAULT_LOCK_WAIT:g})",
    )
    command.add_argument(
        "--allow-missing",
        action="store_true",
        help="collect garbage even if chunks a kept map needs are not in the store (a store known "
        "to have lost them); without it gc refuses, since a map of another store makes every chunk "
        "look unused. A store holding none of the kept chunks is refused even so",
    )
    command.add_argument("-v", "--verbose", action="store_true", help="list the unreferenced chunk names")


def kept_maps(sources: list[str], current: list[str], read: list[str] | None = None) -> Iterable[se.DataMap]:
    """The maps --keep names, read one at a time (gc reads them only once it holds the store lock).

    A folder stands for every map file under it. ``current`` holds the
    source of the map being read or walked, for error messages; ``read``
    gets the source of each map yielded, in order.
    """
    for source in sources:
        if source != "-" and not se.looks_like_map(source) and os.path.isdir(source):
            found = []
            for folder, subfolders, files in os.walk(source):
                subfolders.sort()
                found += [os.path.join(folder, f) for f in sorted(files) if f.endswith(se.MAP_SUFFIX)]
            if not found:
                raise CommandError(
                    f"--keep {source}: no data map (*{se.MAP_SUFFIX}) under this folder; "
                    "refusing to collect garbage, since every chunk would look unused",
                    USAGE,
                )
            for path in found:
                current[:] = [path]
                try:
                    data_map = read_map(path)
                except CommandError:
                    if os.path.lexists(path):
                        raise
                    continue  # deleted since the folder was listed: no longer kept
                if read is not None:
                    read.append(path)
                yield data_map
        else:
            current[:] = [source]
            data_map = read_map(source)
            if read is not None:
                read.append(source)
            yield data_map


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    current: list[str] = []
    read: list[str] = []
    try:
        report = se.collect_garbage(
            store,
            kept_maps(args.keep, current, read),
            delete=args.yes,
            grace=args.grace,
            workers=args.workers,
            lock_wait=args.lock_wait,
            allow_missing=args.allow_missing,
        )
    except se.GcRefusedError as exc:
        if exc.map_index is None:
            raise CommandError(
                f"none of the {exc.needed} chunks the kept maps need is in the store: "
                "these are maps of another store; refusing to collect garbage, "
                "since every chunk would look unused (--allow-missing does not change this)",
                exc.exit_code,
            ) from None
        label = map_label(read[exc.map_index]) if exc.map_index < len(read) else "a kept map"
        raise CommandError(
            f"{label}: {exc.missing} of its {exc.needed} chunks are not in the store; "
            "is it a map of another store? refusing to collect garbage, since its chunks "
            "would look unused (--allow-missing if the store is known to have lost them)",
            exc.exit_code,
        ) from None
    except (se.ChunkNotFoundError, se.ChunkIntegrityError) as exc:
        label = map_label(current[0]) if current else "a kept map"
        raise CommandError(
            f"{label}: cannot read every level ({describe_chunk_error(exc)}); "
            "refusing to collect garbage, since chunks only that level names would look unused",
            exc.exit_code,
        ) from None
    except se.StoreBusyError as exc:
        raise CommandError(
            f"{exc}; try again when it is done, or wait longer with --lock-wait", IO_ERROR
        ) from None
    garbage = list(report.names)
    if args.json:
        emit_json(
            out,
            {
                "command": "gc",
                "chunks": report.chunks_total,
                "kept": report.chunks_kept,
                "referenced": report.chunks_referenced,
                "young": report.chunks_young,
                "unreferenced": len(garbage),
                "bytes": report.bytes_freed,
                "deleted": report.deleted,
                "grace": report.grace,
                "temp_files": report.temp_files_removed,
                "skipped": list(report.skipped),
                "stale_locks_removed": list(report.stale_locks_removed),
                "names": garbage,
            },
        )
        return OK
    if args.verbose:
        for name in garbage:
            out.write(f"{name}\n")
    for path in report.skipped:
        out.write(f"skipped {path}: a link, not a folder of the store (never entered nor deleted through)\n")
    for lock in report.stale_locks_removed:
        out.write(f"removed a stale lock: {lock}\n")
    verb = "deleted" if args.yes else "would be deleted (add --yes to delete them)"
    young = (
        f"; {report.chunks_young} more unreferenced but younger than {duration_text(report.grace)} "
        "stay (--grace)"
        if report.chunks_young
        else ""
    )
    temps = ""
    if report.temp_files_removed:
        temps = f"; {plural(report.temp_files_removed, 'leftover temporary file')} " + (
            "removed" if args.yes else "would be removed"
        )
    out.write(
        f"{plural(report.chunks_total, 'chunk')} in the store, {report.chunks_referenced} referenced "
        f"by the kept maps; {len(garbage)} unreferenced ({human_size(report.bytes_freed)}) "
        f"{verb}{young}{temps}\n"
    )
    return OK
