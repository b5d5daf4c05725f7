"""The public face of store locks: who holds a store, and removing stale locks.

Apart from the lock protocol (:mod:`self_encryption.stores.locks`) because
these reach a store through :class:`~self_encryption.stores.access.StoreAccess`,
which itself takes the locks.
"""

from __future__ import annotations

from .._errors import InvalidArgumentError
from .access import access
from .locks import LockInfo, LockSpace, list_locks, remove_stale


def lock_space_of(store: object) -> LockSpace:
    """The store's lock space; InvalidArgumentError for a store without locks (memory, callbacks)."""
    return access(store).lock_space()


def lock_location(store: object) -> str:
    """Where store keeps its locks, for messages ("s3://BUCKET/PREFIX/locks/", "STORE/.locks")."""
    return str(lock_space_of(store).where)


def store_locks(store: object) -> list[LockInfo]:
    """Who holds store's lock: every lock object (writers, gc), with holder and age, oldest first."""
    return list_locks(lock_space_of(store), details=True)


def remove_stale_locks(store: object) -> list[LockInfo]:
    """Remove every stale lock of store (left by holders that are gone); returns them."""
    return remove_stale(lock_space_of(store))


def remove_lock(store: object, lock_id: str) -> LockInfo:
    """Remove one lock, stale or not: only for a holder known to be gone. Returns what it was."""
    space = lock_space_of(store)
    for lock in list_locks(space, details=True):
        if lock.id == lock_id:
            space.delete(lock_id)
            return lock
    raise InvalidArgumentError(f"no lock {lock_id} in {space.where}")
