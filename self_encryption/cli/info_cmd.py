"""``self-encryption info``: what a data map says (level, size, records), and with --deep every level."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import self_encryption as se

from .errors import OK, USAGE, CommandError
from .maps import add_map_argument, read_map
from .options import Commands, add_store, open_store
from .output import emit_json, human_size, plural


def register(commands: Commands) -> None:
    command = commands.add(
        "info", "Describe a data map: level, file size and records; --deep walks every level.", run
    )
    add_map_argument(command)
    command.add_argument("--deep", action="store_true", help="read the lower levels from the store")
    command.add_argument(
        "--print-map",
        choices=["json", "text"],
        default=None,
        help="print the data map itself in that form instead (it is secret: it opens the file)",
    )
    add_store(command, " (needed with --deep)", required=False)


def run(args: argparse.Namespace, out: TextIO) -> int:
    root = read_map(args.map)
    if args.print_map:  # asked for by name: the one place the map itself is printed
        text = root.to_json(indent=2) if args.print_map == "json" else root.to_text()
        if args.json:  # one JSON document on stdout, the map inside it
            emit_json(out, {"command": "info", "data_map_text": root.to_text()})
        else:
            out.write(text + "\n")
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
        levels = list(se.walk_levels(root, open_store(args)))
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
        emit_json(out, info)
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
