"""The ``self-encryption`` command: encrypt, decrypt, cat, info, verify and gc.

Every command calls the public package and formats what it returns.
Expected failures end with a one-line message and the exit code of the
error's class (``self_encryption.EXIT_CODES``), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any, TextIO

import self_encryption as se
import self_encryption._cli_locks as _cli_locks

MAP_SUFFIX = ".sedm"
#: How a map given as se1:... text on the command line is named in messages: never the text.
ARGUMENT_MAP = "<map from argument>"


def exit_codes_help() -> str:
    """The exit-code table for --help, made from self_encryption.EXIT_CODES."""
    lines = ["exit codes:"]
    lines += [f"  {code.code:>3}  {code.meaning}" for code in se.EXIT_CODES]
    return "\n".join(lines)


class CommandError(Exception):
    """An expected failure: a message for the user and an exit code."""

    def __init__(self, message: str, code: int = se.SelfEncryptionError.exit_code) -> None:
        super().__init__(message)
        self.code = code


OK = se.EXIT_CODES[0].code  # "success" heads the table
INTERRUPTED = 128 + signal.SIGINT  # 130, as shells report Ctrl-C
USAGE = se.InvalidArgumentError.exit_code
IO_ERROR = se.StoreError.exit_code
BAD_MAP = se.DataMapError.exit_code


# -- stores ------------------------------------------------------------------------


def _store(args: argparse.Namespace, *, create: bool = False) -> Any:  # one of our stores
    """The store --store names, through se.open_store."""
    options: dict[str, Any] = {}
    if args.store.startswith("s3:"):
        options = {"endpoint_url": args.endpoint_url, "max_workers": args.workers}
        if args.retry_for is not None:
            options["retry_seconds"] = args.retry_for
        if args.lock_stale is not None:
            options["lock_stale"] = args.lock_stale
        if getattr(args, "writer_lock_wait", None) is not None:
            options["lock_wait"] = args.writer_lock_wait
    return se.open_store(args.store, create=create, **options)


def _short(name: str | None) -> str:
    return f"{name[:12]}…" if name else "?"


def describe_chunk_error(error: se.ChunkError) -> str:
    where = []
    if error.index is not None:
        where.append(f"chunk {error.index}")
    if error.level is not None:
        where.append(f"at level {error.level}")
    where.append(f"(name {_short(error.name)})")
    return f"{' '.join(where)}: {error.reason}"


# -- data maps ---------------------------------------------------------------------


def map_label(source: str) -> str:
    """How messages name the data map a command was given: never its text."""
    if source.startswith(("se1:", "{")):
        return ARGUMENT_MAP
    return "standard input" if source == "-" else source


def read_map(source: str) -> se.DataMap:
    """A data map from a file (text or binary form), from stdin (-), or literal se1:... text."""
    label = map_label(source)
    try:
        if source.startswith("se1:"):
            return se.DataMap.from_text(source)
        if source.startswith("{"):
            return se.DataMap.from_json(source)
        if source == "-":
            return se.DataMap.from_file(sys.stdin.buffer)
        return se.DataMap.load(source)
    except OSError as exc:
        raise CommandError(f"cannot read data map {label}: {exc.strerror or exc}", IO_ERROR) from None
    except se.DataMapError as exc:
        raise CommandError(f"{label}: bad data map: {exc}", BAD_MAP) from None


# -- progress ----------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on stderr, shown only on a terminal after a second."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < 1.0 or now - self.last < 0.1:
            return
        self.last = now
        if total:
            filled = int(30 * done / total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {100 * done / total:5.1f}%"
        else:
            bar = human_size(done)
        rate = speed(done, now - self.started)
        width = shutil.get_terminal_size((80, 20)).columns
        sys.stderr.write(f"\r{self.label[: max(10, width - 60)]} {bar} {rate} ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def human_size(count: float) -> str:
    """A byte count for people: "1 byte", "512 bytes", "1.5 MB"."""
    if abs(count) < 1000:
        return plural(int(count), "byte")
    for unit in ("kB", "MB", "GB", "TB"):
        count /= 1000
        if abs(count) < 1000 or unit == "TB":
            break
    return f"{count:.1f} {unit}"


def speed(count: int, seconds: float) -> str:
    """A rate, or "instant" when the time was too short to measure one."""
    if seconds < 0.01:
        return "instant"
    return f"{human_size(count / seconds).replace(' bytes', ' B').replace(' byte', ' B')}/s"


# -- commands ----------------------------------------------------------------------


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.secret_file:
        try:
            with open(args.secret_file, "rb") as handle:
                secret = handle.read()
        except OSError as exc:
            raise CommandError(
                f"cannot read secret file {args.secret_file}: {exc.strerror or exc}", IO_ERROR
            ) from None
        options["convergence_secret"] = secret.rstrip(b"\r\n")
    if args.no_compress:
        options["compression_level"] = None
    elif args.level is not None:
        options["compression_level"] = args.level
    if args.chunk_sizes:
        options["chunk_sizes"] = args.chunk_sizes
    try:  # check here, so that a bad option names its flag
        se.Encryptor(se.MemoryStore(), workers=1, **options).abort()
    except se.InvalidArgumentError as exc:
        flag = "--chunk-sizes" if "chunk" in str(exc) else "--level"
        message = (
            str(exc)
            .replace("chunk_sizes", flag)
            .replace("compression_level", flag)
            .replace("None (no compression) or ", "")
        )
        raise CommandError(f"{flag}: {message}", USAGE) from None
    return options


def _map_targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(file, data-map destination) for each FILE; refuses to replace a map without --force."""
    pairs = [(path, args.output or f"{path}{MAP_SUFFIX}") for path in args.files]
    for path, target in pairs:
        if target == "-":
            continue
        if os.path.isdir(target):
            raise CommandError(f"cannot write data map {target}: it is a folder", USAGE)
        if path != "-" and os.path.exists(target) and os.path.exists(path) and os.path.samefile(path, target):
            raise CommandError(
                f"the data map of {path} would replace {path} itself: choose another -o", USAGE
            )
        if os.path.lexists(target) and not args.force:
            raise CommandError(f"data map {target} already exists: add --force to replace it", USAGE)
    return pairs


def _reserve_map(target: str, force: bool) -> se.ReservedMapFile:
    """The data map's place, claimed before any chunk is stored (so a bad -o fails first)."""
    try:
        return se.reserve_map_file(target, replace=force)
    except FileExistsError:
        raise CommandError(f"data map {target} already exists: add --force to replace it", USAGE) from None
    except OSError as exc:
        raise CommandError(
            f"cannot write data map {target}: {exc.strerror or exc}; nothing was stored", IO_ERROR
        ) from None


def _save_map(reserved: se.ReservedMapFile, root: se.DataMap, target: str, path: str) -> bool:
    """Save the map where it was reserved; if that fails, put it on stderr rather than lose it."""
    try:
        reserved.save(root)
        return True
    except OSError as exc:
        reason = (
            "it exists now (add --force to replace it)"
            if isinstance(exc, FileExistsError)
            else exc.strerror or str(exc)
        )
        sys.stderr.write(
            f"self-encryption: warning: cannot write data map {target}: {reason}; "
            f"the map of {path} is on the next line, keep it safe: it is the only "
            f"way back to the file\n{root.to_text()}\n"
        )
        sys.stderr.flush()
        return False


def cmd_encrypt(args: argparse.Namespace, out: TextIO) -> int:
    if args.output and len(args.files) > 1:
        raise CommandError("-o names one data map: give one FILE, or leave -o out", USAGE)
    if "-" in args.files and not args.output:
        raise CommandError("encrypting standard input needs -o for the data map", USAGE)
    pairs = _map_targets(args)
    options = _options(args)
    store = _store(args, create=True)
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
            reserved = None if target == "-" else stack.enter_context(_reserve_map(target, args.force))
            # Held until the map is saved, so that a gc waiting meanwhile sees the new map.
            stack.enter_context(store.writing())
            encryptor = stack.enter_context(
                se.Encryptor(
                    store,
                    workers=args.workers,
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
            if target == "-":
                out.write(root.to_text() + "\n")
            elif reserved is not None and not _save_map(reserved, root, target, path):
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
        _emit_json(out, {"command": "encrypt", "store": args.store, "files": results})
    return IO_ERROR if lost_maps else OK


def _is_standard_output(path: str) -> bool:
    """Whether path is "-" or leads to the file standard output already is."""
    if path == "-":
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):
        return False


def cmd_decrypt(args: argparse.Namespace, out: TextIO) -> int:
    root = read_map(args.map)
    to_stdout = _is_standard_output(args.output)
    store = _store(args)
    progress = ProgressBar(os.path.basename(map_label(args.map)), not args.quiet and not args.json)
    started = time.monotonic()
    try:
        if args.output == "-":
            written = se.decrypt_file(root, store, sys.stdout.buffer, workers=args.workers, progress=progress)
            sys.stdout.buffer.flush()
        else:
            written = se.decrypt_file(root, store, args.output, workers=args.workers, progress=progress)
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
        _emit_json(
            out, {"command": "decrypt", "output": args.output, "size": written, "seconds": round(seconds, 6)}
        )
    elif not args.quiet and not to_stdout:
        out.write(f"{args.output}: {human_size(written)} restored and verified, {speed(written, seconds)}\n")
    return OK


def cmd_cat(args: argparse.Namespace, out: TextIO) -> int:
    root = read_map(args.map)
    store = _store(args)
    if args.offset < 0 or (args.length is not None and args.length < 0):
        raise CommandError("--offset and --length must not be negative", USAGE)
    remaining = root.file_size - args.offset if args.length is None else args.length
    sink = sys.stdout.buffer
    with se.open(root, store, workers=args.workers) as reader:
        reader.seek(args.offset)
        while remaining > 0:
            piece = reader.read(min(remaining, 1 << 20))
            if not piece:
                break
            sink.write(piece)
            remaining -= len(piece)
    sink.flush()
    return OK


def cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    root = read_map(args.map)
    if args.print_map:  # asked for by name: the one place the map itself is printed
        out.write((root.to_json(indent=2) if args.print_map == "json" else root.to_text()) + "\n")
        return OK
    info: dict[str, Any] = {
        "command": "info",
        "level": root.level,
        "file_size": root.file_size,
        "records": len(root.chunks),
        "root_bytes": len(root.to_bytes()),
    }
    if args.deep:
        if not args.store:
            raise CommandError("--deep needs --store to read the lower levels", USAGE)
        levels = list(se.walk_levels(root, _store(args)))
        info["levels"] = [
            {
                "level": m.level,
                "records": len(m.chunks),
                "content_size": m.content_size,
                "stored_size": sum(c.stored_size for c in m.chunks),
            }
            for m in levels
        ]
        info["chunks"] = len({c.name for m in levels for c in m.chunks})
        info["stored_bytes"] = sum(level["stored_size"] for level in info["levels"])
    if args.json:
        _emit_json(out, info)
        return OK
    out.write(
        f"file size:  {human_size(root.file_size)}\n"
        f"root level: {root.level}\n"
        f"records:    {len(root.chunks)} in the root ({human_size(info['root_bytes'])})\n"
    )
    for level in info.get("levels", []):
        out.write(
            f"level {level['level']}:    {plural(level['records'], 'chunk')}, "
            f"{human_size(level['content_size'])} of content, "
            f"{human_size(level['stored_size'])} stored\n"
        )
    if args.deep:
        out.write(
            f"in all:     {plural(info['chunks'], 'distinct chunk')}, "
            f"{human_size(info['stored_bytes'])} stored\n"
        )
    return OK


def _problem(exc: se.ChunkError) -> dict[str, Any]:
    return {
        "kind": "missing" if isinstance(exc, se.ChunkNotFoundError) else "corrupt",
        "level": exc.level,
        "index": exc.index,
        "name": exc.name,
        "reason": exc.reason,
    }


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    if args.repair and not args.full:
        raise CommandError("--repair needs --full: only opening every chunk finds the damaged ones", USAGE)
    root = read_map(args.map)
    report = se.verify(root, _store(args), full=args.full, workers=args.workers, repair=args.repair)
    problems = [_problem(exc) for exc in report.problems]
    code = (
        OK
        if report.ok
        else se.ChunkIntegrityError.exit_code
        if report.corrupt
        else se.ChunkNotFoundError.exit_code
    )
    if args.json:
        _emit_json(
            out,
            {
                "command": "verify",
                "mode": "full" if args.full else "quick",
                "ok": report.ok,
                "checked": report.checked,
                "problems": problems,
                "quarantined": [{"name": name, "action": action} for name, action in report.quarantined],
            },
        )
        return code
    label = map_label(args.map)
    for p in problems:
        sys.stderr.write(
            f"self-encryption: {p['kind']} chunk {p['index']} at level {p['level']} "
            f"(name {p['name']}): {p['reason']}\n"
        )
    for name, action in report.quarantined:
        sys.stderr.write(f"self-encryption: damaged chunk {name} set aside: {action}\n")
    if report.quarantined:
        sys.stderr.write(
            f"self-encryption: {label}: {plural(len(report.quarantined), 'damaged chunk')} "
            "set aside; encrypt the source file into this store again, with the same "
            "options, to restore them, then verify --full\n"
        )
    if report.ok:
        out.write(
            f"{label}: all {report.checked} chunks checked are sound"
            if args.full
            else f"{label}: first, middle and last chunks of every level are present "
            f"({report.checked} checked); the file is presumably stored (use --full to check all)"
        )
        out.write("\n")
    else:
        out.write(f"{label}: {len(problems)} of {report.checked} chunks checked are missing or corrupt\n")
    return code


def _kept_maps(sources: list[str], current: list[str]) -> Iterable[se.DataMap]:
    """The maps --keep names, read one at a time (gc reads them only once it holds the store lock).

    A folder stands for every *.sedm file under it. ``current`` holds the
    source of the map being read or walked, for error messages.
    """
    for source in sources:
        if source not in ("-",) and not source.startswith("se1:") and os.path.isdir(source):
            found = []
            for folder, subfolders, files in os.walk(source):
                subfolders.sort()
                found += [os.path.join(folder, f) for f in sorted(files) if f.endswith(MAP_SUFFIX)]
            if not found:
                raise CommandError(
                    f"--keep {source}: no data map (*{MAP_SUFFIX}) under this folder; "
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
                yield data_map
        else:
            current[:] = [source]
            yield read_map(source)


def cmd_gc(args: argparse.Namespace, out: TextIO) -> int:
    store = _store(args)
    current: list[str] = []
    try:
        report = se.collect_garbage(
            store,
            _kept_maps(args.keep, current),
            delete=args.yes,
            grace=args.grace,
            workers=args.workers,
            lock_wait=args.lock_wait,
        )
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
        _emit_json(
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
                "stale_locks_removed": list(report.stale_locks_removed),
                "names": garbage,
            },
        )
        return OK
    if args.verbose:
        for name in garbage:
            out.write(f"{name}\n")
    for lock in report.stale_locks_removed:
        out.write(f"removed a stale lock: {lock}\n")
    verb = "deleted" if args.yes else "would be deleted (add --yes to delete them)"
    young = (
        f"; {report.chunks_young} more unreferenced but younger than {_duration_text(report.grace)} "
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


#: The most bytes of an upstream JSON map read: upstream shrinks its maps to three records.
MAX_UPSTREAM_MAP = 1 << 20


def cmd_import_upstream(args: argparse.Namespace, out: TextIO) -> int:
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
    target = args.output or (args.map[:-5] if args.map.endswith(".json") else args.map) + MAP_SUFFIX
    if target != "-" and os.path.lexists(target) and not args.force:
        raise CommandError(f"data map {target} already exists: add --force to replace it", USAGE)
    options = _options(args)
    levels = upstream.data_maps(old_map, source)  # every level, map chunks fetched and checked
    file_map = levels[-1][1]  # the file's own map: where the walk ends
    store = _store(args, create=True)
    progress = ProgressBar(os.path.basename(args.map), not args.quiet and not args.json)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        reserved = None if target == "-" else stack.enter_context(_reserve_map(target, args.force))
        # Held until the map is saved, as encrypt does: a gc meanwhile waits, then sees the map.
        stack.enter_context(store.writing())
        try:
            # One verified upstream chunk at a time, straight into the encryptor.
            with se.Encryptor(
                store, workers=args.workers, progress=progress, total_size=file_map.size, **options
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
        elif reserved is not None and not _save_map(reserved, root, target, args.map):
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
        _emit_json(out, result)
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


def _emit_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=None if not sys.stdout.isatty() else 2) + "\n")


# -- argument parsing ----------------------------------------------------------------


def _chunk_sizes(text: str) -> tuple[int, int, int]:
    units = {
        "": 1,
        "K": 1 << 10,
        "KI": 1 << 10,
        "KIB": 1 << 10,
        "M": 1 << 20,
        "MI": 1 << 20,
        "MIB": 1 << 20,
        "G": 1 << 30,
        "GIB": 1 << 30,
    }
    sizes = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", part)
        if not match or match.group(2).upper() not in units:
            raise argparse.ArgumentTypeError(f"not a size: {part!r} (use bytes, or K/M/G)")
        sizes.append(int(match.group(1)) * units[match.group(2).upper()])
    if len(sizes) != 3:
        raise argparse.ArgumentTypeError("give three sizes: MIN,AVG,MAX")
    return tuple(sizes)  # type: ignore[return-value]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    """Seconds, or a number with s, m, h or d: "90", "30m", "1h", "2d"."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use seconds, or s/m/h/d: 30m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _describe_backend() -> str:
    if se.backend == "c":
        return f"C backend, {se.openssl_version()}"
    return "pure-Python backend"


def _encryption_options(command: argparse.ArgumentParser) -> None:
    """The options that shape what encryption writes (read back by _options)."""
    command.add_argument(
        "--secret-file",
        metavar="F",
        help="convergence secret: de-duplicate only with holders of the same "
        "secret (trailing newlines are dropped)",
    )
    level = command.add_mutually_exclusive_group()
    level.add_argument("--level", type=int, help="zstd compression level (default 3)")
    level.add_argument("--no-compress", action="store_true", help="store chunks uncompressed")
    command.add_argument(
        "--chunk-sizes",
        type=_chunk_sizes,
        metavar="MIN,AVG,MAX",
        help="chunk sizes in bytes or with K/M/G (default 256K,1M,4M)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON instead of prose")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    common.add_argument(
        "--workers", type=_positive, default=None, help="threads to use (default: one per CPU core)"
    )
    common.add_argument(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help="S3 endpoint for s3:// stores on non-AWS servers (default: $AWS_ENDPOINT_URL, else AWS)",
    )
    common.add_argument(
        "--retry-for",
        type=_duration,
        default=None,
        metavar="SECONDS",
        help="s3:// stores: keep retrying a failing request for this long before giving up (default 120)",
    )
    common.add_argument(
        "--lock-stale",
        type=_duration,
        default=None,
        metavar="SECONDS",
        help="s3:// stores: the stale period this command's lock declares: a lock not refreshed "
        "for that long is taken as left by a dead holder (default 30m, or $SELF_ENCRYPTION_LOCK_STALE)",
    )
    store_help = "chunk store: a folder (the default store), s3://BUCKET[/PREFIX], or memory: for tests"

    parser = argparse.ArgumentParser(
        prog="self-encryption",
        description="Self-encrypt files into a chunk store and get them back with their data maps.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {se.__version__} ({_describe_backend()})"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=exit_codes_help(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )

    enc = command("encrypt", "Encrypt files into a store; write each file's data map to FILE.sedm.")
    enc.add_argument("files", nargs="+", metavar="FILE", help="files to encrypt (- for standard input)")
    enc.add_argument("--store", required=True, help=store_help)
    enc.add_argument(
        "-o",
        "--output",
        metavar="MAP",
        help="where to write the data map (one FILE only; - for standard output)",
    )
    _encryption_options(enc)
    enc.add_argument("--force", action="store_true", help="replace a data map file that exists")
    enc.add_argument(
        "--lock-wait",
        dest="writer_lock_wait",
        type=_duration,
        default=None,
        metavar="SECONDS",
        help="s3:// stores: how long to wait for a running gc (default: while its lock is live)",
    )
    enc.add_argument(
        "--check-existing",
        action="store_true",
        help="read back every chunk the store already has and replace damaged ones",
    )
    enc.set_defaults(run=cmd_encrypt)

    dec = command(
        "decrypt", "Restore a file from its data map; nothing is written unless all of it checks out."
    )
    dec.add_argument(
        "map", metavar="MAP", help="data map file (- for standard input, or the se1:... or JSON text)"
    )
    dec.add_argument("--store", required=True, help=store_help)
    dec.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="file to write (- for standard output)"
    )
    dec.set_defaults(run=cmd_decrypt)

    cat = command(
        "cat", "Write a byte range of a file to standard output, fetching only the chunks it needs."
    )
    cat.add_argument(
        "map", metavar="MAP", help="data map file (- for standard input, or the se1:... or JSON text)"
    )
    cat.add_argument("--store", required=True, help=store_help)
    cat.add_argument("--offset", type=int, default=0, help="first byte (default 0)")
    cat.add_argument("--length", type=int, default=None, help="bytes to write (default: to the end)")
    cat.set_defaults(run=cmd_cat)

    info = command("info", "Describe a data map: level, file size and records; --deep walks every level.")
    info.add_argument(
        "map", metavar="MAP", help="data map file (- for standard input, or the se1:... or JSON text)"
    )
    info.add_argument("--deep", action="store_true", help="read the lower levels from the store")
    info.add_argument(
        "--print-map",
        choices=["json", "text"],
        default=None,
        help="print the data map itself in that form instead (it is secret: it opens the file)",
    )
    info.add_argument("--store", help=store_help + " (needed with --deep)")
    info.set_defaults(run=cmd_info)

    ver = command(
        "verify",
        "Check that a file is stored: first, middle and last chunks of every level, "
        "or with --full every chunk, opened and checked.",
    )
    ver.add_argument(
        "map", metavar="MAP", help="data map file (- for standard input, or the se1:... or JSON text)"
    )
    ver.add_argument("--store", required=True, help=store_help)
    ver.add_argument("--full", action="store_true", help="fetch, check and open every chunk")
    ver.add_argument(
        "--repair",
        action="store_true",
        help="with --full: set corrupt or unreadable chunks aside (into STORE/quarantine/; "
        "deleted on S3), so that encrypting the file again restores them",
    )
    ver.set_defaults(run=cmd_verify)

    gc = command(
        "gc",
        "List (and with --yes delete) the chunks no kept data map references, "
        "and the store's leftover temporary files.",
    )
    gc.add_argument("--store", required=True, help=store_help)
    gc.add_argument(
        "--keep",
        nargs="+",
        required=True,
        metavar="MAP",
        help="data maps whose chunks stay; a folder means every *.sedm file under it",
    )
    gc.add_argument("--yes", action="store_true", help="really delete the unreferenced chunks")
    gc.add_argument(
        "--grace",
        type=_duration,
        default=3600.0,
        metavar="AGE",
        help="never delete a chunk stored or refreshed less than AGE ago: seconds, "
        "or with s/m/h/d (default 1h; 0 relies on the store lock alone)",
    )
    gc.add_argument(
        "--lock-wait",
        type=_duration,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for running encrypts to finish (default 60)",
    )
    gc.add_argument("-v", "--verbose", action="store_true", help="list the unreferenced chunk names")
    gc.set_defaults(run=cmd_gc)

    imp = command(
        "import-upstream",
        "Move a file stored by the upstream self_encryption (0.35) into a "
        "store of ours: decrypt it as a stream, encrypt it, verify, "
        "write the new data map.",
    )
    imp.add_argument("map", metavar="MAP.json", help="the upstream data map, as its to_json() wrote it")
    imp.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DIR_OR_STORE",
        help="where the upstream chunks are: a folder of files named by their hex "
        "dst_hash (upstream's encrypt_from_file layout), or a store URL",
    )
    imp.add_argument("--store", required=True, help=store_help + " to encrypt into")
    imp.add_argument(
        "-o",
        "--output",
        metavar="MAP",
        help="where to write our data map (default: MAP with .sedm for .json; - for standard output)",
    )
    imp.add_argument("--force", action="store_true", help="replace a data map file that exists")
    _encryption_options(imp)
    imp.set_defaults(run=cmd_import_upstream)
    _cli_locks.add_parser(commands, parents=[common])
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    out = sys.stdout
    install_signal_handlers()
    try:
        code: int = args.run(args, out)
        return code
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except se.DataMapError as exc:
        return _fail(f"{_subject(args)}bad data map: {exc}", exc.exit_code)
    except se.ChunkNotFoundError as exc:
        return _fail(
            f"{_subject(args)}missing {describe_chunk_error(exc)}; the store "
            f"{args.store} does not hold the whole file: check --store, or encrypt the "
            "file into it again with the same options",
            exc.exit_code,
        )
    except se.ChunkIntegrityError as exc:
        return _fail(
            f"{_subject(args)}corrupt {describe_chunk_error(exc)}; to restore it, run "
            "verify --full --repair on this map and then encrypt the file again with the "
            "same options (or encrypt it again with --check-existing)",
            exc.exit_code,
        )
    except BrokenPipeError:  # the reader of our output went away, as `| head` does
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except se.StoreError as exc:
        return _fail(f"I/O error: {exc}", exc.exit_code)
    except OSError as exc:
        return _fail(f"I/O error: {exc}", IO_ERROR)
    except se.SelfEncryptionError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except RuntimeError as exc:
        # A signal that arrives while a lock is being released (a wait for
        # a worker) surfaces as "cannot release un-acquired lock" with the
        # interrupt as its context: report the interrupt.
        context: BaseException | None = exc
        for _ in range(16):
            if context is None or isinstance(context, KeyboardInterrupt):
                break
            context = context.__context__
        if not isinstance(context, KeyboardInterrupt):
            raise
        return _interrupted(context)


def _interrupted(exc: BaseException) -> int:
    signum = getattr(exc, "signum", signal.SIGINT)
    return _fail(_SIGNAL_MESSAGES.get(signum, "interrupted"), 128 + signum)


# -- signals -------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be.

    Every cleanup that an interrupt runs (stopping workers, removing
    temporary files and partial outputs) then runs for these signals too.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_SIGNAL_MESSAGES = {
    int(getattr(signal, name)): message
    for name, message in (("SIGTERM", "terminated (SIGTERM)"), ("SIGHUP", "hung up (SIGHUP)"))
    if hasattr(signal, name)
}


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into Terminated in the main thread.

    The first one raises; the default action is put back at once, so a
    second signal of either kind ends the process without waiting for the
    cleanup. Only the main thread can install handlers: elsewhere nothing
    changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        for number in _SIGNAL_MESSAGES:
            signal.signal(number, signal.SIG_DFL)
        raise Terminated(signum)

    for number in _SIGNAL_MESSAGES:
        signal.signal(number, handler)


def _subject(args: argparse.Namespace) -> str:
    """The data map a command works on, to begin its error messages."""
    source = getattr(args, "map", None)
    if not source or source.startswith(("se1:", "{")):
        return ""
    return f"{map_label(source)}: "


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"self-encryption: error: {message}\n")
    return code


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
