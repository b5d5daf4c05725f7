"""What several commands share: the parser, the common options, the store, the encryption options.

Defaults and the numbers in help texts come from the library's own
constants, so the two cannot disagree.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

import self_encryption as se

from .errors import IO_ERROR, USAGE, CommandError, exit_codes_help
from .output import DURATION_UNITS, PROGRAM

#: What a command runs: (parsed arguments, standard output) -> exit code.
Command = Callable[[argparse.Namespace, TextIO], int]

#: How a data map given as text is named in messages: never the text.
MAP_PLACEHOLDER = "<data map>"

#: The option that asks for one JSON document on stdout, errors included.
JSON_FLAG = "--json"

STORE_HELP = "chunk store: a folder (the default store), s3://BUCKET[/PREFIX], or memory: for tests"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose error messages never show a data map.

    A map can reach the parser anywhere (a second MAP, a map where a number
    or a choice belongs, ``--option=se1:...``); argparse would quote it in
    "unrecognized arguments" or "invalid choice". Every argument that looks
    like a map (``se.looks_like_map``) is listed in ``hidden``, one list
    shared by the parser and its commands, and replaced in any message.
    """

    def __init__(self, *args: Any, hidden: list[str], **kwargs: Any) -> None:
        # Long options are a stable interface: "--stor" is refused, not taken for "--store".
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.hidden = hidden

    def hide_maps_in(self, argv: Sequence[str]) -> None:
        """Note the arguments that are maps (or end in one, as ``--opt=se1:...``)."""
        values = [part for arg in argv for part in (arg, arg.partition("=")[2])]
        self.hidden[:] = sorted({v for v in values if v and se.looks_like_map(v)}, key=len, reverse=True)

    def redact(self, message: str) -> str:
        """message with every map given as an argument, and any map text in it, replaced."""
        for secret in self.hidden:
            message = message.replace(repr(secret), MAP_PLACEHOLDER).replace(secret, MAP_PLACEHOLDER)
            message = message.replace(secret.strip(), MAP_PLACEHOLDER)
        # A map's text form inside a longer argument ("--chunk-sizes 1,2,se1:..."): by the word.
        return _WORD.sub(_hide_map_text, message)

    def error(self, message: str) -> NoReturn:
        """A usage error: raised, so that main() reports it as it reports any other failure."""
        raise UsageError(self.redact(message), self.format_usage(), self.prog)


class UsageError(CommandError):
    """The command line is wrong: exit code 2, with the usage of the command that refused it."""

    def __init__(self, message: str, usage: str, prog: str) -> None:
        super().__init__(message, USAGE)
        self.usage = usage
        self.prog = prog


_WORD = re.compile(r"[^\s'\",=\\]+")


#: Map text shorter than this holds at most the 28-byte header (no key seed): the shortest map is 47.
_SHORTEST_MAP_TEXT = 40


def _hide_map_text(word: re.Match[str]) -> str:
    text = word.group()
    # The bare prefix ("starts with 'se1:'") names the format, not a map: it stays.
    if len(text) >= _SHORTEST_MAP_TEXT and se.looks_like_map(text) and not text.startswith("{"):
        return MAP_PLACEHOLDER
    return text


# -- argument types ------------------------------------------------------------------

_SIZE_UNITS = {
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


def byte_size(text: str) -> int:
    """One size in bytes or with K/M/G (powers of 1024): "64M"."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).upper() not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use bytes, or K/M/G)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def chunk_sizes(text: str) -> tuple[int, int, int]:
    """MIN,AVG,MAX in bytes or with K/M/G: "256K,1M,4M"."""
    sizes = [byte_size(part) for part in text.split(",")]
    if len(sizes) != 3:
        raise argparse.ArgumentTypeError("give three sizes: MIN,AVG,MAX")
    return sizes[0], sizes[1], sizes[2]


def size_text(size: int) -> str:
    """A chunk size as --chunk-sizes takes it: 262144 -> "256K"."""
    for unit in ("G", "M", "K"):
        if size >= _SIZE_UNITS[unit] and size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return str(size)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def duration(text: str) -> float:
    """Seconds, or a number with s, m, h or d: "90", "30m", "1h", "2d"."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use seconds, or s/m/h/d: 30m, 1h)")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


# -- the parser and its commands -----------------------------------------------------


def _common_options(hidden: list[str]) -> Parser:
    common = Parser(add_help=False, hidden=hidden)
    common.add_argument(JSON_FLAG, action="store_true", help="print machine-readable JSON instead of prose")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    common.add_argument(
        "--workers", type=positive, default=None, help="threads to use (default: one per CPU core)"
    )
    common.add_argument(
        "--store-concurrency",
        type=positive,
        default=None,
        metavar="N",
        help="store requests in flight at once (default: the store's own, 64 for s3://; "
        "about bandwidth x round trip x 2 / 1 MiB for a store far away)",
    )
    common.add_argument(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help="S3 endpoint for s3:// stores on non-AWS servers (default: $AWS_ENDPOINT_URL, else AWS)",
    )
    common.add_argument(
        "--retry-for",
        type=duration,
        default=None,
        metavar="SECONDS",
        help="s3:// stores: keep retrying a failing request for this long before giving up "
        f"(default {se.DEFAULT_RETRY_SECONDS:g})",
    )
    common.add_argument(
        "--lock-stale",
        type=duration,
        default=None,
        metavar="SECONDS",
        help="s3:// stores: the stale period this command's lock declares: a lock not refreshed "
        "for that long is taken as left by a dead holder (default 30m, or $SELF_ENCRYPTION_LOCK_STALE)",
    )
    return common


class Commands:
    """The parser's commands, each given the common options and the exit-code table."""

    def __init__(self, parser: Parser) -> None:
        self._common = _common_options(parser.hidden)
        self._hidden = parser.hidden
        self._choices = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(self, name: str, summary: str, run: Command) -> argparse.ArgumentParser:
        """A command's parser; ``run`` is what the command does."""
        command: argparse.ArgumentParser = self._choices.add_parser(
            name,
            parents=[self._common],
            help=summary,
            description=summary,
            epilog=f"exit codes: see {PROGRAM} --help",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            hidden=self._hidden,
        )
        command.set_defaults(run=run)
        return command


def new_parser(description: str, version: str) -> Parser:
    parser = Parser(
        prog=PROGRAM,
        description=description,
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        hidden=[],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    return parser


def add_store(command: argparse.ArgumentParser, help_tail: str = "", *, required: bool = True) -> None:
    command.add_argument("--store", required=required, help=STORE_HELP + help_tail)


def open_store(
    args: argparse.Namespace,
    *,
    create: bool = False,
    lock_wait: float | None = None,
    check_beside: bool = False,
) -> Any:  # one of our stores
    """The store --store names, through se.open_store.

    For a bucket, the common options (--endpoint-url, --retry-for,
    --lock-stale) and ``lock_wait``, how long a writer waits for a running
    gc (encrypt's --lock-wait; None: while gc's lock is live). With
    ``check_beside`` the bucket's check runs beside the first requests, a
    round trip sooner (the commands that move a file's bytes: a wrong
    bucket gets the same error from their first request); the others
    check it first, as they report chunk by chunk.
    """
    options: dict[str, Any] = {}
    if args.store.startswith("s3:"):
        options = {"endpoint_url": args.endpoint_url, "max_workers": args.workers}
        if args.retry_for is not None:
            options["retry_seconds"] = args.retry_for
        if args.lock_stale is not None:
            options["lock_stale"] = args.lock_stale
        if lock_wait is not None:
            options["lock_wait"] = lock_wait
        if args.store_concurrency is not None:
            options["concurrency"] = args.store_concurrency
    return se.open_store(args.store, create=create, wait_for_check=not check_beside, **options)


# -- encryption options ----------------------------------------------------------------


def add_encryption_options(command: argparse.ArgumentParser) -> None:
    """The options that shape what encryption writes (read back by encryption_settings)."""
    command.add_argument(
        "--secret-file",
        metavar="F",
        help="convergence secret: de-duplicate only with holders of the same "
        "secret (trailing newlines are dropped)",
    )
    level = command.add_mutually_exclusive_group()
    level.add_argument(
        "--level", type=int, help=f"zstd compression level (default {se.DEFAULT_COMPRESSION_LEVEL})"
    )
    level.add_argument("--no-compress", action="store_true", help="store chunks uncompressed")
    command.add_argument(
        "--chunk-sizes",
        type=chunk_sizes,
        metavar="MIN,AVG,MAX",
        help="chunk sizes in bytes or with K/M/G "
        f"(default {','.join(size_text(size) for size in se.DEFAULT_CHUNK_SIZES)})",
    )


def encryption_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The Encryptor's options from add_encryption_options' flags, checked so that an error names its flag."""
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
