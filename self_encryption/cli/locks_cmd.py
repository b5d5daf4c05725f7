"""``self-encryption locks``: who holds a store, and removing a lock whose holder is gone."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import self_encryption as se

from .errors import OK
from .options import Commands, add_store, open_store
from .output import PROGRAM, emit_json

SUMMARY = "List who holds a store's lock (writers, gc), and remove stale locks."


def register(commands: Commands) -> None:
    command = commands.add("locks", SUMMARY, run)
    add_store(command)
    removal = command.add_mutually_exclusive_group()
    removal.add_argument(
        "--remove-stale",
        action="store_true",
        help="remove every stale lock: one its holder has not refreshed for its stale period "
        "(by the store's clock), since the holder was killed or cut off",
    )
    removal.add_argument(
        "--remove",
        metavar="ID",
        action="append",
        default=[],
        help="remove this lock, stale or not: only for a holder you know is gone (repeatable)",
    )


def _record(lock: se.LockInfo) -> dict[str, Any]:
    return {
        "id": lock.id,
        "kind": lock.kind,
        "host": lock.host,
        "pid": lock.pid,
        "age": round(lock.age, 1),
        "stale_after": lock.stale_after,
        "stale": lock.stale,
    }


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args)
    where = se.lock_location(store)
    removed: list[se.LockInfo] = []
    if args.remove_stale:
        removed = se.remove_stale_locks(store)
    else:
        removed = [se.remove_lock(store, lock_id) for lock_id in args.remove]
    locks = se.store_locks(store)
    if args.json:
        emit_json(
            out,
            {
                "command": "locks",
                "where": where,
                "locks": [_record(lock) for lock in locks],
                "removed": [_record(lock) for lock in removed],
            },
        )
        return OK
    for lock in removed:
        out.write(f"removed: {lock.describe()}\n")
    if not args.quiet:
        if not locks:
            out.write(f"no locks in {where}\n")
        for lock in locks:
            out.write(f"{lock.describe()}\n")
        if any(lock.stale for lock in locks):
            out.write(
                f"stale locks block nothing new but stay listed; remove them with: "
                f"{PROGRAM} locks --store {args.store} --remove-stale\n"
            )
    return OK
