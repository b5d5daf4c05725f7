"""``self-encryption import-upstream``: files stored by the upstream self_encryption, moved into our store.

Each upstream map's new map is written beside it (``MAP.json`` -> ``MAP`` + ``se.MAP_SUFFIX``),
into ``--output-dir``, or with one map only where ``-o`` says. Every map is
read and every destination checked before any work; the maps are then
imported in order, and the first failure stops the run (the maps imported
before it are written, verified and complete).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import self_encryption as se

from .errors import BAD_MAP, IO_ERROR, OK, USAGE, CommandError, PartialFailureError, describe_chunk_error
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
        "Move files stored by the upstream self_encryption (0.35) into a "
        "store of ours: decrypt each as a stream, encrypt it, verify, "
        f"write its new data map (MAP{UPSTREAM_SUFFIX} -> MAP{se.MAP_SUFFIX} beside it).",
        run,
    )
    command.add_argument(
        "maps",
        nargs="+",
        metavar=f"MAP{UPSTREAM_SUFFIX}",
        help="upstream data maps, as their to_json() wrote them",
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
        f"where to write our data map (one MAP only; default: MAP with {se.MAP_SUFFIX} for "
        f"{UPSTREAM_SUFFIX}, beside it; - for standard output)",
    )
    command.add_argument(
        "--output-dir",
        metavar="DIR",
        help=f"write each new map into this existing folder, as NAME{se.MAP_SUFFIX} for NAME{UPSTREAM_SUFFIX}",
    )
    add_force(command)
    add_encryption_options(command)


@dataclass(frozen=True)
class Import:
    """One upstream map to move: where it was read from, what it says, where our map goes."""

    path: str
    old_map: Any  # an upstream.DataMap (the module is imported only when the command runs)
    target: str


def default_target(path: str, folder: str | None = None) -> str:
    """Our map's path for the upstream map at path: its .json replaced by MAP_SUFFIX, in folder or beside it."""
    stem = path[: -len(UPSTREAM_SUFFIX)] if path.endswith(UPSTREAM_SUFFIX) else path
    if folder is not None:
        stem = os.path.join(folder, os.path.basename(stem))
    return stem + se.MAP_SUFFIX


def _read_upstream_map(path: str, upstream: Any) -> Any:
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_UPSTREAM_MAP + 1)
    except OSError as exc:
        raise CommandError(f"cannot read upstream data map {path}: {exc.strerror or exc}", IO_ERROR) from None
    if len(text) > MAX_UPSTREAM_MAP:
        raise CommandError(
            f"{path}: more than {MAX_UPSTREAM_MAP} bytes: too large to be an upstream data map", BAD_MAP
        )
    try:
        return upstream.DataMap.from_json(text)
    except se.DataMapError as exc:
        raise CommandError(f"{path}: bad upstream data map: {exc}", BAD_MAP) from None


def _plan(args: argparse.Namespace, upstream: Any) -> list[Import]:
    """Every map read and every destination checked, before any work."""
    if args.output and len(args.maps) > 1:
        raise CommandError("-o names one data map: give one MAP, or use --output-dir", USAGE)
    if args.output == "-" and args.json:
        raise CommandError("--json prints a report on standard output: give -o a file, not -", USAGE)
    if args.output and args.output_dir:
        raise CommandError("give -o or --output-dir, not both", USAGE)
    if args.output_dir is not None and not os.path.isdir(args.output_dir):
        raise CommandError(f"--output-dir {args.output_dir}: no such folder (create it first)", USAGE)
    jobs = []
    seen: dict[str, str] = {}
    for path in args.maps:
        target = args.output or default_target(path, args.output_dir)
        if target != "-":
            key = os.path.realpath(target)
            if key in seen:
                raise CommandError(
                    f"{seen[key]} and {path} would both write {target}: use -o for one, or rename one",
                    USAGE,
                )
            seen[key] = path
            if os.path.exists(path) and os.path.exists(target) and os.path.samefile(path, target):
                raise CommandError(f"the new map of {path} would replace {path} itself", USAGE)
        check_map_destination(target, args.force)
        jobs.append(Import(path, _read_upstream_map(path, upstream), target))
    return jobs


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from self_encryption import upstream
    except ImportError as exc:
        raise CommandError(str(exc), USAGE) from None
    jobs = _plan(args, upstream)
    source: Any = args.source
    if not os.path.isdir(source):  # a folder of upstream chunk files, else one of our store URLs
        source = se.open_store(
            source, **({"endpoint_url": args.endpoint_url} if source.startswith("s3:") else {})
        )
    options = encryption_settings(args)
    store = open_store(args, create=True)
    results: list[dict[str, Any]] = []
    lost_maps = 0
    try:
        for job in jobs:
            args.map = job.path  # error messages name the map at work
            result, saved = _import_one(job, upstream, source, store, options, args, out)
            results.append(result)
            lost_maps += not saved
    except (CommandError, se.SelfEncryptionError, OSError, MemoryError) as exc:
        if not args.json:
            raise
        # --json: still one document, with the maps done before the failure and the failure.
        raise PartialFailureError(exc, _document(args, results)) from exc
    if args.json:
        emit_json(out, _document(args, results))
    return IO_ERROR if lost_maps else OK


def _document(args: argparse.Namespace, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"command": "import-upstream", "store": args.store, "maps": results}


def _upstream_chunk_error(exc: se.ChunkError, job: Import, args: argparse.Namespace) -> CommandError:
    """A chunk of the upstream file that is missing or damaged: a fault of --from, not of --store."""
    what = "missing" if isinstance(exc, se.ChunkNotFoundError) else "corrupt"
    return CommandError(
        f"{job.path}: {what} upstream {describe_chunk_error(exc)}; {args.source} does not hold "
        "this upstream file whole: check --from; nothing was written for this map",
        exc.exit_code,
    )


def _import_one(
    job: Import,
    upstream: Any,
    source: Any,
    store: Any,
    options: dict[str, Any],
    args: argparse.Namespace,
    out: TextIO,
) -> tuple[dict[str, Any], bool]:
    """Move one upstream file: (its result for --json, whether its map was saved)."""
    started = time.monotonic()
    try:
        levels = upstream.data_maps(job.old_map, source)  # every level, map chunks fetched and checked
    except se.ChunkError as exc:
        raise _upstream_chunk_error(exc, job, args) from None
    file_map = levels[-1][1]  # the file's own map: where the walk ends
    progress = ProgressBar(os.path.basename(job.path), not args.quiet and not args.json)
    saved = True
    with contextlib.ExitStack() as stack:
        reserved = None if job.target == "-" else stack.enter_context(reserve_map(job.target, args.force))
        # Held until the map is saved, so that a gc waiting meanwhile sees the new map.
        stack.enter_context(se.writer_lock(store))
        try:
            # One verified upstream chunk at a time, straight into the encryptor.
            with se.Encryptor(
                store, workers=args.workers, progress=progress, total_size=file_map.size, **options
            ) as encryptor:
                try:
                    for piece in upstream.iter_decrypt(file_map, source):
                        encryptor.write_owned(piece)
                except se.ChunkError as exc:
                    raise _upstream_chunk_error(exc, job, args) from None
        finally:
            progress.close()
        root, stats = encryptor.data_map, encryptor.stats
        assert root is not None
        if stats.bytes_read != file_map.size:
            raise CommandError(
                f"{job.path}: the upstream file has {stats.bytes_read} bytes, its map says {file_map.size}",
                BAD_MAP,
            )
        report = se.verify(root, store, workers=args.workers)
        if not report.ok:
            raise CommandError(
                f"the new data map does not verify in {args.store}: "
                f"{len(report.problems)} chunks missing or corrupt; no map written",
                se.ChunkNotFoundError.exit_code,
            )
        if job.target == "-":
            out.write(root.to_text() + "\n")
        elif reserved is not None:
            saved = save_map(reserved, root, job.target, job.path)
    seconds = time.monotonic() - started
    upstream_chunks = len({info.dst_hash for _, level_map in levels for info in level_map.chunk_identifiers})
    result = {
        "upstream_map": job.path,
        "data_map": job.target,
        "size": stats.bytes_read,
        "upstream_chunks": upstream_chunks,
        "chunks": stats.chunks,
        "chunks_written": stats.chunks_written,
        "chunks_present": stats.chunks_present,
        "bytes_written": stats.bytes_written,
        "level": root.level,
        "seconds": round(seconds, 6),
    }
    if not args.json and not args.quiet:
        note = sys.stderr if job.target == "-" else out
        note.write(
            f"{job.path}: {human_size(stats.bytes_read)} from {plural(upstream_chunks, 'upstream chunk')} "
            f"into {plural(stats.chunks, 'chunk')} ({stats.chunks_written} written, "
            f"{stats.chunks_present} already present), verified, {speed(stats.bytes_read, seconds)}"
            + ("" if job.target == "-" else f" -> {job.target}")
            + "\n"
        )
    return result, saved
