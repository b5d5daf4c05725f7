"""``self-encryption verify``: whether a file is stored, by sampling or (--full) every chunk; --repair."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import self_encryption as se

from .errors import OK, USAGE, CommandError
from .maps import add_map_argument, map_label, read_map
from .options import Commands, add_store, open_store
from .output import emit_json, plural, say


def register(commands: Commands) -> None:
    command = commands.add(
        "verify",
        "Check that a file is stored: first, middle and last chunks of every level, "
        "or with --full every chunk, opened and checked.",
        run,
    )
    add_map_argument(command)
    add_store(command)
    command.add_argument("--full", action="store_true", help="fetch, check and open every chunk")
    command.add_argument(
        "--repair",
        action="store_true",
        help="with --full: set damaged chunks aside (into STORE/quarantine/; deleted on S3), "
        "so that encrypting the file again restores them; a chunk that cannot be read, or reads "
        "back sound when read again, stays",
    )


def _kind(exc: se.ChunkError) -> str:
    if isinstance(exc, se.ChunkNotFoundError):
        return "missing"
    return "unreadable" if isinstance(exc, se.ChunkUnreadableError) else "corrupt"


def _problem(exc: se.ChunkError) -> dict[str, Any]:
    return {
        "kind": _kind(exc),
        "level": exc.level,
        "index": exc.index,
        "name": exc.name,
        "reason": exc.reason,
    }


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.repair and not args.full:
        raise CommandError("--repair needs --full: only opening every chunk finds the damaged ones", USAGE)
    root = read_map(args.map)
    report = se.verify(root, open_store(args), full=args.full, workers=args.workers, repair=args.repair)
    problems = [_problem(exc) for exc in report.problems]
    code = (
        OK
        if report.ok
        else se.ChunkIntegrityError.exit_code
        if report.corrupt
        else se.ChunkNotFoundError.exit_code
        if report.missing
        else se.ChunkUnreadableError.exit_code
    )
    if args.json:
        emit_json(
            out,
            {
                "command": "verify",
                "mode": "full" if args.full else "quick",
                "ok": report.ok,
                "checked": report.checked,
                "problems": problems,
                "unreadable": [exc.name for exc in report.unreadable],
                "quarantined": [{"name": name, "action": action} for name, action in report.quarantined],
            },
        )
        return code
    label = map_label(args.map)
    for p in problems:
        say(f"{p['kind']} chunk {p['index']} at level {p['level']} (name {p['name']}): {p['reason']}")
    for name, action in report.quarantined:
        say(f"damaged chunk {name} set aside: {action}")
    if report.quarantined:
        say(
            f"{label}: {plural(len(report.quarantined), 'damaged chunk')} "
            "set aside; encrypt the source file into this store again, with the same "
            "options, to restore them, then verify --full"
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
        out.write(
            f"{label}: {len(problems)} of {report.checked} chunks checked are missing, corrupt or unreadable\n"
        )
        if report.missing:
            # The same hint as decrypt and cat: most often the map and the store do not go together.
            out.write(
                f"{label}: {plural(len(report.missing), 'chunk')} missing: the store {args.store} does "
                "not hold the whole file: check --store, or encrypt the file into it again with the "
                "same options\n"
            )
        if report.unreadable:
            out.write(
                f"{label}: {plural(len(report.unreadable), 'chunk')} could not be read (an I/O error, "
                "not known to be damaged; never set aside): try again\n"
            )
    return code
