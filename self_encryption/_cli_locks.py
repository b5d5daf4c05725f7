"""``self-encryption locks``: who holds a store, and removing a lock whose holder is gone."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, TextIO

import self_encryption as se

SUMMARY = "List who holds a store's lock (writers, gc), and remove stale locks."


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """The ``locks`` command's parser, added to subparsers."""
    command: argparse.ArgumentParser = subparsers.add_parser(
        "locks",
        parents=list(parents),
        help=SUMMARY,
        description=SUMMARY + " A lock is stale when its holder has not refreshed it for its stale period "
        "(by the store's clock): the holder was killed or cut off.",
    )
    command.add_argument("--store", required=True, help="chunk store: a folder or s3://BUCKET[/PREFIX]")
    removal = command.add_mutually_exclusive_group()
    removal.add_argument("--remove-stale", action="store_true", help="remove every stale lock")
    removal.add_argument(
        "--remove",
        metavar="ID",
        action="append",
        default=[],
        help="remove this lock, stale or not: only for a holder you know is gone (repeatable)",
    )
    command.set_defaults(run=run)
    return command


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


def _where(store: object) -> str:
    """Where the store keeps its locks, for messages."""
    lock_space = getattr(store, "lock_space", None)
    if not callable(lock_space):
        raise se.InvalidArgumentError(f"{type(store).__name__} has no locks to list")
    return str(lock_space().where)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from self_encryption._cli import _store

    store = _store(args)
    where = _where(store)
    removed: list[se.LockInfo] = []
    if args.remove_stale:
        removed = se.remove_stale_locks(store)
    else:
        removed = [se.remove_lock(store, lock_id) for lock_id in args.remove]
    locks = se.store_locks(store)
    if args.json:
        out.write(
            json.dumps(
                {
                    "command": "locks",
                    "where": where,
                    "locks": [_record(lock) for lock in locks],
                    "removed": [_record(lock) for lock in removed],
                }
            )
            + "\n"
        )
        return 0
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
                f"self-encryption locks --store {args.store} --remove-stale\n"
            )
    return 0
