"""The ``self-encryption`` command: encrypt, decrypt, cat, info, verify and gc.

Expected failures end with a one-line message and a documented exit code,
never a traceback:

    0  success
    1  any other error of ours
    2  usage error
    3  bad data map (malformed, damaged or inconsistent)
    4  missing chunk
    5  corrupt chunk
    6  I/O error (a file, a folder or the store could not be used)
  130  interrupted
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable

from . import (
    ChunkIntegrityError,
    ChunkNotFoundError,
    DataMap,
    DataMapError,
    DirStore,
    Encryptor,
    InvalidArgumentError,
    MemoryStore,
    SelfEncryptionError,
    StoreError,
    __version__,
    _backend,
    _engine,
    decrypt_file,
)
from . import open as open_reader
from ._workers import check_workers, make_executor, ordered_map, in_flight

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BAD_MAP = 3
EXIT_MISSING = 4
EXIT_CORRUPT = 5
EXIT_IO = 6
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0  success              4  missing chunk
  1  other error          5  corrupt chunk
  2  usage error          6  I/O error (file, folder or store)
  3  bad data map       130  interrupted"""

MAP_SUFFIX = ".sedm"


class CommandError(Exception):
    """An expected failure: a message for the user and an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# -- stores ------------------------------------------------------------------------

def _memory_store(rest: str, *, create: bool, endpoint_url: str | None, workers: int | None):
    return MemoryStore()


def _dir_store(path: str, *, create: bool, endpoint_url: str | None, workers: int | None):
    return DirStore(path, create=create)


def _s3_store(rest: str, *, create: bool, endpoint_url: str | None, workers: int | None):
    from ._s3 import S3Store

    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise CommandError("an S3 store is s3://BUCKET or s3://BUCKET/PREFIX", EXIT_USAGE)
    store = S3Store(bucket, prefix, endpoint_url=endpoint_url, max_workers=workers)
    store.check()
    return store


#: Store URL schemes: "scheme:rest" -> factory(rest, create=..., endpoint_url=..., workers=...).
#: A plain path is a folder.
STORE_SCHEMES: dict[str, Callable] = {"memory": _memory_store, "file": _dir_store, "s3": _s3_store}


def open_store(spec: str, *, create: bool, endpoint_url: str | None = None,
               workers: int | None = None):
    """The store a --store argument names: a folder path, memory:, s3://... or scheme://..."""
    match = re.match(r"^([a-z][a-z0-9+.-]*):(//)?(.*)$", spec)
    if match and (match.group(1) in STORE_SCHEMES or match.group(2)):
        scheme, rest = match.group(1), match.group(3)
        factory = STORE_SCHEMES.get(scheme)
        if factory is None:
            raise CommandError(
                f"unknown store scheme {scheme!r} (known: {', '.join(sorted(STORE_SCHEMES))}, "
                "or a folder path)", EXIT_USAGE)
        return factory(rest, create=create, endpoint_url=endpoint_url, workers=workers)
    return _dir_store(spec, create=create, endpoint_url=endpoint_url, workers=workers)


def _store(args, *, create: bool = False):
    return open_store(args.store, create=create, endpoint_url=args.endpoint_url,
                      workers=args.workers)


def _short(name: str | None) -> str:
    return f"{name[:12]}…" if name else "?"


def describe_chunk_error(error) -> str:
    where = []
    if error.index is not None:
        where.append(f"chunk {error.index}")
    if error.level is not None:
        where.append(f"at level {error.level}")
    where.append(f"(name {_short(error.name)})")
    return f"{' '.join(where)}: {error.reason}"


# -- data maps ---------------------------------------------------------------------

def read_map(source: str) -> DataMap:
    """A data map from a file (text or binary form), from stdin (-), or literal se1:... text."""
    if source.startswith("se1:"):
        return DataMap.from_text(source)
    try:
        raw = sys.stdin.buffer.read() if source == "-" else _read_file(source)
    except OSError as exc:
        raise CommandError(f"cannot read data map {source}: {exc.strerror or exc}", EXIT_IO) from None
    try:
        if raw.startswith(b"SEDM"):
            return DataMap.from_bytes(raw)
        return DataMap.from_text(raw.decode("ascii"))
    except UnicodeDecodeError:
        raise CommandError(f"{source} is not a data map", EXIT_BAD_MAP) from None
    except DataMapError as exc:
        raise CommandError(f"{source}: bad data map: {exc}", EXIT_BAD_MAP) from None


def _read_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def write_secret_file(path: str, text: str) -> None:
    """Write a data map (a secret) atomically, readable by its owner only."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(prefix=".sedm-", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def walk_levels(root: DataMap, fetch) -> list[DataMap]:
    """Every level of a data map, root first, level 0 last."""
    backend = _backend.active
    levels = [root]
    while levels[-1].level > 0:
        parent = levels[-1]
        levels.append(_engine.child_map(parent, _engine.decrypt_level(backend, parent, fetch)))
    return levels


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
        rate = done / max(now - self.started, 1e-9)
        if total:
            filled = int(30 * done / total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {100 * done / total:5.1f}%"
        else:
            bar = human_size(done)
        width = shutil.get_terminal_size((80, 20)).columns
        sys.stderr.write(f"\r{self.label[:max(10, width - 60)]} {bar} {human_size(rate)}/s ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def human_size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} B"


# -- commands ----------------------------------------------------------------------

def _options(args) -> dict:
    options: dict = {}
    if args.secret_file:
        try:
            secret = _read_file(args.secret_file)
        except OSError as exc:
            raise CommandError(f"cannot read secret file {args.secret_file}: "
                               f"{exc.strerror or exc}", EXIT_IO) from None
        options["convergence_secret"] = secret.rstrip(b"\r\n")
    if args.no_compress:
        options["compression_level"] = None
    elif args.level is not None:
        options["compression_level"] = args.level
    if args.chunk_sizes:
        options["chunk_sizes"] = args.chunk_sizes
    return options


def cmd_encrypt(args, out) -> int:
    if args.output and len(args.files) > 1:
        raise CommandError("-o names one data map: give one FILE, or leave -o out", EXIT_USAGE)
    if "-" in args.files and not args.output:
        raise CommandError("encrypting standard input needs -o for the data map", EXIT_USAGE)
    options = _options(args)
    store = _store(args, create=True)
    results = []
    for path in args.files:
        target = args.output or f"{path}{MAP_SUFFIX}"
        progress = ProgressBar(os.path.basename(path), not args.quiet and not args.json)
        started = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:
                if path == "-":
                    source, size = sys.stdin.buffer, None
                else:
                    source = stack.enter_context(open(path, "rb"))
                    size = os.fstat(source.fileno()).st_size
                encryptor = stack.enter_context(Encryptor(
                    store, workers=args.workers, progress=progress, total_size=size, **options))
                encryptor.write_from(source)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_IO) from None
        finally:
            progress.close()
        seconds = time.monotonic() - started
        root, stats = encryptor.data_map, encryptor.stats
        try:
            if target == "-":
                out.write(root.to_text() + "\n")
            else:
                write_secret_file(target, root.to_text())
        except OSError as exc:
            raise CommandError(f"cannot write data map {target}: {exc.strerror or exc}", EXIT_IO) from None
        result = {
            "file": path, "data_map": target, "size": stats.bytes_read, "chunks": stats.chunks,
            "new_chunks": stats.chunks_written, "stored_chunks": stats.chunks_present,
            "bytes_stored": stats.bytes_stored, "seconds": round(seconds, 6),
            "level": root.level,
        }
        results.append(result)
        if not args.json and not args.quiet:
            speed = human_size(stats.bytes_read / max(seconds, 1e-9))
            note = sys.stderr if target == "-" else out
            note.write(
                f"{path}: {human_size(stats.bytes_read)} in {plural(stats.chunks, 'chunk')} "
                f"({stats.chunks_written} new, {stats.chunks_present} already stored), "
                f"{human_size(stats.bytes_stored)} stored, {speed}/s"
                + ("" if target == "-" else f" -> {target}") + "\n")
    if args.json:
        _emit_json(out, {"command": "encrypt", "store": args.store, "files": results})
    return EXIT_OK


def cmd_decrypt(args, out) -> int:
    root = read_map(args.map)
    store = _store(args)
    progress = ProgressBar(os.path.basename(args.map), not args.quiet and not args.json)
    started = time.monotonic()
    try:
        if args.output == "-":
            written = decrypt_file(root, store, sys.stdout.buffer, workers=args.workers, progress=progress)
            sys.stdout.buffer.flush()
        else:
            written = decrypt_file(root, store, args.output, workers=args.workers, progress=progress)
    except InvalidArgumentError as exc:
        raise CommandError(f"cannot write {args.output}: {exc}", EXIT_IO) from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}", EXIT_IO) from None
    finally:
        progress.close()
    seconds = time.monotonic() - started
    if args.json and args.output != "-":
        _emit_json(out, {"command": "decrypt", "output": args.output, "size": written,
                         "seconds": round(seconds, 6)})
    elif not args.quiet and args.output != "-":
        out.write(f"{args.output}: {human_size(written)} restored and verified, "
                  f"{human_size(written / max(seconds, 1e-9))}/s\n")
    return EXIT_OK


def cmd_cat(args, out) -> int:
    root = read_map(args.map)
    store = _store(args)
    if args.offset < 0 or (args.length is not None and args.length < 0):
        raise CommandError("--offset and --length must not be negative", EXIT_USAGE)
    remaining = root.file_size - args.offset if args.length is None else args.length
    sink = sys.stdout.buffer
    with open_reader(root, store, workers=args.workers) as reader:
        reader.seek(args.offset)
        while remaining > 0:
            piece = reader.read(min(remaining, 1 << 20))
            if not piece:
                break
            sink.write(piece)
            remaining -= len(piece)
    sink.flush()
    return EXIT_OK


def cmd_info(args, out) -> int:
    root = read_map(args.map)
    info = {"command": "info", "level": root.level, "file_size": root.file_size,
            "records": len(root.chunks), "root_bytes": len(root.to_bytes())}
    if args.deep:
        if not args.store:
            raise CommandError("--deep needs --store to read the lower levels", EXIT_USAGE)
        store = _store(args)
        levels = walk_levels(root, _engine.fetcher(store))
        info["levels"] = [
            {"level": m.level, "records": len(m.chunks), "content_size": m.content_size,
             "stored_size": sum(c.stored_size for c in m.chunks)}
            for m in levels
        ]
        info["chunks"] = len({c.name for m in levels for c in m.chunks})
        info["stored_bytes"] = sum(level["stored_size"] for level in info["levels"])
    if args.json:
        _emit_json(out, info)
        return EXIT_OK
    out.write(f"file size:  {root.file_size} bytes ({human_size(root.file_size)})\n"
              f"root level: {root.level}\n"
              f"records:    {len(root.chunks)} in the root ({info['root_bytes']} bytes)\n")
    for level in info.get("levels", []):
        out.write(f"level {level['level']}:    {plural(level['records'], 'chunk')}, "
                  f"{human_size(level['content_size'])} of content, "
                  f"{human_size(level['stored_size'])} stored\n")
    if args.deep:
        out.write(f"in all:     {plural(info['chunks'], 'distinct chunk')}, "
                  f"{human_size(info['stored_bytes'])} stored\n")
    return EXIT_OK


def _sample(count: int) -> list[int]:
    """First, middle and last record indices."""
    return sorted({0, count // 2, count - 1}) if count else []


def _problem(exc) -> dict:
    return {"kind": "missing" if isinstance(exc, ChunkNotFoundError) else "corrupt",
            "level": exc.level, "index": exc.index, "name": exc.name, "reason": exc.reason}


def cmd_verify(args, out) -> int:
    root = read_map(args.map)
    store = _store(args)
    fetch = _engine.fetcher(store)
    backend = _backend.active
    workers = check_workers(args.workers)
    executor = make_executor(workers)

    def check(data_map: DataMap, index: int) -> dict | None:
        record = data_map.chunks[index]
        try:
            if args.full:
                _engine.load_chunk(backend, data_map, fetch, index)
            elif not store.has(record.name):
                raise ChunkNotFoundError("chunk not found in the store", name=record.name,
                                         index=index, level=data_map.level)
        except (ChunkNotFoundError, ChunkIntegrityError) as exc:
            return _problem(exc)
        return None

    problems: list[dict] = []
    checked = 0
    data_map: DataMap | None = root
    try:
        while data_map is not None:
            indices = range(len(data_map.chunks)) if args.full else _sample(len(data_map.chunks))
            level = data_map
            found = ordered_map(executor, lambda index: check(level, index), indices, in_flight(workers))
            problems.extend(problem for problem in found if problem)
            checked += len(indices)
            if data_map.level == 0:
                break
            try:
                data_map = _engine.child_map(data_map, _engine.decrypt_level(backend, data_map, fetch))
            except (ChunkNotFoundError, ChunkIntegrityError) as exc:
                if not any(p["name"] == exc.name for p in problems):
                    problems.append(_problem(exc))
                data_map = None  # the levels below cannot be read
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    ok = not problems
    code = EXIT_OK if ok else (EXIT_CORRUPT if any(p["kind"] == "corrupt" for p in problems)
                               else EXIT_MISSING)
    if args.json:
        _emit_json(out, {"command": "verify", "mode": "full" if args.full else "quick", "ok": ok,
                         "checked": checked, "problems": problems})
        return code
    for p in problems:
        sys.stderr.write(f"self-encryption: {p['kind']} chunk {p['index']} at level {p['level']} "
                         f"(name {p['name']}): {p['reason']}\n")
    if ok:
        out.write(f"{args.map}: all {checked} chunks checked are sound"
                  if args.full else
                  f"{args.map}: first, middle and last chunks of every level are present "
                  f"({checked} checked); the file is presumably stored (use --full to check all)")
        out.write("\n")
    else:
        out.write(f"{args.map}: {len(problems)} of {checked} chunks checked are missing or corrupt\n")
    return code


def cmd_gc(args, out) -> int:
    store = _store(args)
    fetch = _engine.fetcher(store)
    keep: set[str] = set()
    for path in args.keep:
        root = read_map(path)
        try:
            levels = walk_levels(root, fetch)
        except (ChunkNotFoundError, ChunkIntegrityError) as exc:
            raise CommandError(
                f"{path}: cannot read every level ({describe_chunk_error(exc)}); "
                "refusing to collect garbage, since chunks only that level names would look unused",
                EXIT_MISSING if isinstance(exc, ChunkNotFoundError) else EXIT_CORRUPT) from None
        keep.update(record.name for level in levels for record in level.chunks)
    names = list(store)
    garbage = [name for name in names if name not in keep]
    size_of = getattr(store, "size", None)
    freed = sum(size_of(name) if size_of else len(store.get(name)) for name in garbage)
    if args.yes:
        for name in garbage:
            store.delete(name)
    if args.json:
        _emit_json(out, {"command": "gc", "chunks": len(names), "kept": len(names) - len(garbage),
                         "unreferenced": len(garbage), "bytes": freed, "deleted": bool(args.yes),
                         "names": garbage})
        return EXIT_OK
    if args.verbose:
        for name in garbage:
            out.write(f"{name}\n")
    verb = "deleted" if args.yes else "would be deleted (add --yes to delete them)"
    out.write(f"{len(names)} chunks in the store, {len(names) - len(garbage)} referenced by the kept maps; "
              f"{len(garbage)} unreferenced ({human_size(freed)}) {verb}\n")
    return EXIT_OK


def _emit_json(out, value) -> None:
    out.write(json.dumps(value, indent=None if not sys.stdout.isatty() else 2) + "\n")


# -- argument parsing ----------------------------------------------------------------

def _chunk_sizes(text: str) -> tuple[int, int, int]:
    units = {"": 1, "K": 1 << 10, "KI": 1 << 10, "KIB": 1 << 10,
             "M": 1 << 20, "MI": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GIB": 1 << 30}
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


def _describe_backend() -> str:
    backend = _backend.active
    if backend.NAME == "c":
        return f"C backend, {backend.openssl_versions()[1]}"
    return "pure-Python backend"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON instead of prose")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    common.add_argument("--workers", type=_positive, default=None,
                        help="threads to use (default: one per CPU core)")
    common.add_argument("--endpoint-url", default=None, metavar="URL",
                        help="S3 endpoint for s3:// stores on non-AWS servers "
                             "(default: $AWS_ENDPOINT_URL, else AWS)")
    store_help = ("chunk store: a folder (the default store), s3://BUCKET[/PREFIX], "
                  "or memory: for tests")

    parser = argparse.ArgumentParser(
        prog="self-encryption",
        description="Self-encrypt files into a chunk store and get them back with their data maps.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} ({_describe_backend()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=summary, description=summary,
                                   epilog=EXIT_CODES_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    enc = command("encrypt", "Encrypt files into a store; write each file's data map to FILE.sedm.")
    enc.add_argument("files", nargs="+", metavar="FILE", help="files to encrypt (- for standard input)")
    enc.add_argument("--store", required=True, help=store_help)
    enc.add_argument("-o", "--output", metavar="MAP",
                     help="where to write the data map (one FILE only; - for standard output)")
    enc.add_argument("--secret-file", metavar="F",
                     help="convergence secret: de-duplicate only with holders of the same secret "
                          "(trailing newlines are dropped)")
    level = enc.add_mutually_exclusive_group()
    level.add_argument("--level", type=int, help="zstd compression level (default 3)")
    level.add_argument("--no-compress", action="store_true", help="store chunks uncompressed")
    enc.add_argument("--chunk-sizes", type=_chunk_sizes, metavar="MIN,AVG,MAX",
                     help="chunk sizes in bytes or with K/M/G (default 256K,1M,4M)")
    enc.set_defaults(run=cmd_encrypt)

    dec = command("decrypt", "Restore a file from its data map; nothing is written unless all of it checks out.")
    dec.add_argument("map", metavar="MAP", help="data map file (- for standard input, or se1:... text)")
    dec.add_argument("--store", required=True, help=store_help)
    dec.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write (- for standard output)")
    dec.set_defaults(run=cmd_decrypt)

    cat = command("cat", "Write a byte range of a file to standard output, fetching only the chunks it needs.")
    cat.add_argument("map", metavar="MAP", help="data map file (- for standard input, or se1:... text)")
    cat.add_argument("--store", required=True, help=store_help)
    cat.add_argument("--offset", type=int, default=0, help="first byte (default 0)")
    cat.add_argument("--length", type=int, default=None, help="bytes to write (default: to the end)")
    cat.set_defaults(run=cmd_cat)

    info = command("info", "Describe a data map: level, file size and records; --deep walks every level.")
    info.add_argument("map", metavar="MAP", help="data map file (- for standard input, or se1:... text)")
    info.add_argument("--deep", action="store_true", help="read the lower levels from the store")
    info.add_argument("--store", help=store_help + " (needed with --deep)")
    info.set_defaults(run=cmd_info)

    ver = command("verify", "Check that a file is stored: first, middle and last chunks of every level, "
                            "or with --full every chunk, opened and checked.")
    ver.add_argument("map", metavar="MAP", help="data map file (- for standard input, or se1:... text)")
    ver.add_argument("--store", required=True, help=store_help)
    ver.add_argument("--full", action="store_true", help="fetch, check and open every chunk")
    ver.set_defaults(run=cmd_verify)

    gc = command("gc", "List (and with --yes delete) the chunks no kept data map references.")
    gc.add_argument("--store", required=True, help=store_help)
    gc.add_argument("--keep", nargs="+", required=True, metavar="MAP", help="data maps whose chunks stay")
    gc.add_argument("--yes", action="store_true", help="really delete the unreferenced chunks")
    gc.add_argument("-v", "--verbose", action="store_true", help="list the unreferenced chunk names")
    gc.set_defaults(run=cmd_gc)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    out = sys.stdout
    try:
        return args.run(args, out)
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except DataMapError as exc:
        return _fail(f"{_subject(args)}bad data map: {exc}", EXIT_BAD_MAP)
    except ChunkNotFoundError as exc:
        return _fail(f"{_subject(args)}missing {describe_chunk_error(exc)}; the store "
                     f"{args.store} does not hold the whole file: check --store, or encrypt the "
                     "file into it again", EXIT_MISSING)
    except ChunkIntegrityError as exc:
        return _fail(f"{_subject(args)}corrupt {describe_chunk_error(exc)}; restore that chunk "
                     "from a good copy of the store, or encrypt the file into it again", EXIT_CORRUPT)
    except BrokenPipeError:  # the reader of our output went away, as `| head` does
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (StoreError, OSError) as exc:
        return _fail(f"I/O error: {exc}", EXIT_IO)
    except InvalidArgumentError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except SelfEncryptionError as exc:
        return _fail(str(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _subject(args) -> str:
    """The data map a command works on, to begin its error messages."""
    source = getattr(args, "map", None)
    if not source or source.startswith("se1:"):
        return ""
    return "standard input: " if source == "-" else f"{source}: "


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"self-encryption: error: {message}\n")
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
