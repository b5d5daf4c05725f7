"""Data maps on the command line: reading one, naming it in messages, and where a map is written.

A map given as text (``se1:...`` or JSON) is a secret: it is named
``<data map>`` and never printed, with or without white space around it.
"""

from __future__ import annotations

import argparse
import os
import sys

import self_encryption as se

from .errors import BAD_MAP, IO_ERROR, USAGE, CommandError
from .options import MAP_PLACEHOLDER
from .output import PROGRAM

MAP_HELP = "data map file (- for standard input, or the se1:... or JSON text)"


def add_map_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("map", metavar="MAP", help=MAP_HELP)


def add_map_output(command: argparse.ArgumentParser, what: str) -> None:
    """-o/--output for a command that writes a data map file (checked by check_map_destination)."""
    command.add_argument("-o", "--output", metavar="MAP", help=what)


def add_force(command: argparse.ArgumentParser) -> None:
    command.add_argument("--force", action="store_true", help="replace a data map file that exists")


def map_label(source: str) -> str:
    """How messages name the data map a command was given: never its text."""
    if se.looks_like_map(source):
        return MAP_PLACEHOLDER
    return "standard input" if source == "-" else source


def subject(args: argparse.Namespace) -> str:
    """The data map a command works on, to begin its error messages ("" for a map given as text)."""
    source = getattr(args, "map", None)
    if not source or se.looks_like_map(source):
        return ""
    return f"{map_label(source)}: "


def read_map(source: str) -> se.DataMap:
    """A data map from a file (text or binary form), from stdin (-), or literal se1:... or JSON text."""
    label = map_label(source)
    try:
        if se.looks_like_map(source):
            text = source.strip()
            return se.DataMap.from_json(text) if text.startswith("{") else se.DataMap.from_text(text)
        if source == "-":
            return se.DataMap.from_file(sys.stdin.buffer)
        return se.DataMap.load(source)
    except OSError as exc:
        raise CommandError(f"cannot read data map {label}: {exc.strerror or exc}", IO_ERROR) from None
    except se.DataMapError as exc:
        raise CommandError(f"{label}: bad data map: {exc}", BAD_MAP) from None


def same_file(path: str, stat: os.stat_result) -> bool:
    """Whether path leads to the file stat describes (through links, or as a hard link)."""
    try:
        return os.path.samestat(os.stat(path), stat)
    except (OSError, ValueError):
        return False


def check_map_destination(target: str, force: bool) -> None:
    """Refuse, before any work, a map destination that exists (without --force) or is not a file.

    Only a regular file, or a link to one, is ever replaced (se.map_destination).
    """
    if target == "-":
        return
    if os.path.isdir(target):
        raise CommandError(f"cannot write data map {target}: it is a folder", USAGE)
    if os.path.lexists(target) and not force:
        raise CommandError(f"data map {target} already exists: add --force to replace it", USAGE)
    try:
        se.map_destination(target)
    except se.InvalidArgumentError as exc:
        raise CommandError(str(exc), USAGE) from None


def reserve_map(target: str, force: bool) -> se.ReservedMapFile:
    """The data map's place, claimed before any chunk is stored (so a bad -o fails first)."""
    try:
        return se.reserve_map_file(target, replace=force)
    except FileExistsError:
        raise CommandError(f"data map {target} already exists: add --force to replace it", USAGE) from None
    except se.InvalidArgumentError as exc:
        raise CommandError(str(exc), USAGE) from None
    except OSError as exc:
        raise CommandError(
            f"cannot write data map {target}: {exc.strerror or exc}; nothing was stored", IO_ERROR
        ) from None


def save_map(reserved: se.ReservedMapFile, root: se.DataMap, target: str, path: str) -> bool:
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
            f"{PROGRAM}: warning: cannot write data map {target}: {reason}; "
            f"the map of {path} is on the next line, keep it safe: it is the only "
            f"way back to the file\n{root.to_text()}\n"
        )
        sys.stderr.flush()
        return False
