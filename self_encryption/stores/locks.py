"""Store locks made of objects, for stores that have no lock of their own (a bucket; a folder without flock).

Every holder puts one small object of its own under the store's lock
prefix (``locks/`` in a bucket, ``.locks/`` in a folder): writers a
``shared`` one, garbage collection an ``exclusive`` one. The rules:

* **Create, then list.** A holder writes its object first and only then
  lists the others, so of two sides starting at the same moment at least
  one sees the other: both never proceed.
* A writer that sees a live exclusive lock withdraws its own object and
  waits until that lock is gone, then starts over. A collector keeps its
  object while it waits for the writers to finish (so new writers queue
  behind it); of two collectors, the one whose object sorts later withdraws.
* **Refreshed while held**: the holder writes its object again every third
  of its stale period. A lock whose object the store last stamped longer
  ago than that period is stale: its holder is gone (killed, or cut off).
  Ages come from the store's clock only (the time a bucket stamps on an
  object, against the time its answer carries), never from this machine's.
* The stale period travels in the object's name, so a machine never judges
  another's lock by a period of its own; ``gc`` removes the stale locks it
  finds and says so.
* A holder whose refreshes keep failing for two thirds of its period stops
  its work (:meth:`LockSet.check`), before anyone may take its lock as stale.

Each lock object names its holder (host name, process id) in a small JSON
body, read only to say who holds a store. No part of the protocol relies on
conditional writes: every object has a random name of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from .._errors import InvalidArgumentError, StoreBusyError, StoreError
from .._files import atomic_write, make_folders
from .._workers import INTERRUPT_GRACE, result

#: How long a lock may go unrefreshed before it is stale: 30 minutes, as restic.
DEFAULT_STALE = 1800.0
#: Environment variables: the stale period this process declares, and the host name its locks carry.
STALE_ENV = "SELF_ENCRYPTION_LOCK_STALE"
HOST_ENV = "SELF_ENCRYPTION_HOST"
SHARED, EXCLUSIVE, UNKNOWN = "shared", "exclusive", "unknown"
#: A lock body is a few hundred bytes; anything longer is not read.
_BODY_LIMIT = 4096
#: A holder file of a folder store that has flock starts with this: it only describes its holder.
FLOCK_HOLDER = "flock-"
_NAME = re.compile(r"^(?:flock-)?(shared|exclusive)-([0-9]{1,9}(?:\.[0-9]{1,3})?)-([0-9a-f]{32})$")


def stale_period(value: float | None = None) -> float:
    """The stale period to declare: value, else $SELF_ENCRYPTION_LOCK_STALE, else 30 minutes."""
    if value is None:
        text = os.environ.get(STALE_ENV)
        if not text:
            return DEFAULT_STALE
        try:
            value = float(text)
        except ValueError:
            raise InvalidArgumentError(f"{STALE_ENV} must be a number of seconds, not {text!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 86400 * 7:
        raise InvalidArgumentError(f"the lock stale period must be 1 s to 7 days, not {value!r}")
    return round(float(value), 3)


def host_name() -> str:
    """The host name locks carry: $SELF_ENCRYPTION_HOST, else the machine's."""
    return os.environ.get(HOST_ENV) or socket.gethostname() or "?"


def _printable(value: object, limit: int = 100) -> str | None:
    if not isinstance(value, str):
        return None
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


class LockInfo(NamedTuple):
    """One lock object as a listing finds it."""

    #: Its name under the lock prefix.
    id: str
    #: "shared" (a writer), "exclusive" (gc) or "unknown" (an object we did not write).
    kind: str
    #: Seconds since the store last stamped it, by the store's clock.
    age: float
    #: The stale period its holder declared (for an unknown object, the default).
    stale_after: float
    #: The host name its holder wrote in it (None: not read, or not written by us).
    host: str | None = None
    #: The process id its holder wrote in it (None: not read, or not written by us).
    pid: int | None = None

    @property
    def stale(self) -> bool:
        """Whether its holder is taken as gone: not refreshed for its stale period."""
        return self.age >= self.stale_after

    def describe(self) -> str:
        """One line for people: who holds it, how long ago it was refreshed, and its id."""
        who = f"host {self.host or '?'}, pid {self.pid if self.pid is not None else '?'}"
        holder = {SHARED: "a writer", EXCLUSIVE: "a garbage collection"}.get(self.kind, "an unknown object")
        state = "stale" if self.stale else f"stale after {self.stale_after:g} s"
        return f"{holder} ({who}), refreshed {self.age:.0f} s ago ({state}); lock {self.id}"


class LockListing(NamedTuple):
    """Stamps of every lock object, and the store's time when it was listed."""

    stamps: dict[str, float]
    now: float


class LockSpace(Protocol):
    """Where lock objects live: a few operations on small named objects."""

    #: Where, for messages: "s3://bucket/prefix/locks/", "STORE/.locks".
    where: str

    def create(self, lock_id: str, body: bytes) -> None:
        """Write (or write again) the object."""

    def refresh(self, lock_id: str, body: bytes) -> bool:
        """Have the store stamp the object anew; False if it is gone."""

    def delete(self, lock_id: str) -> None:
        """Remove the object; an absent one is no error."""

    def listing(self) -> LockListing:
        """Every object's stamp and the store's current time, both by the store's clock."""

    def read(self, lock_id: str, limit: int) -> bytes | None:
        """At most limit bytes of the object, or None if it is gone."""


def parse_name(lock_id: str) -> tuple[str, float]:
    """(kind, stale period) from a lock object's name; an object we did not write is unknown."""
    match = _NAME.match(lock_id)
    if match is None:
        return UNKNOWN, DEFAULT_STALE
    return match.group(1), float(match.group(2))


def list_locks(space: LockSpace, *, details: bool = False) -> list[LockInfo]:
    """Every lock in space, oldest first; with details, each holder's host and pid read from its body."""
    found = space.listing()
    locks = []
    for lock_id, stamp in found.stamps.items():
        kind, stale_after = parse_name(lock_id)
        info = LockInfo(lock_id, kind, max(0.0, found.now - stamp), stale_after)
        locks.append(_with_holder(space, info) if details else info)
    return sorted(locks, key=lambda lock: (-lock.age, lock.id))


def _with_holder(space: LockSpace, lock: LockInfo) -> LockInfo:
    try:
        body = space.read(lock.id, _BODY_LIMIT)
        record = json.loads(body or b"{}")
    except (StoreError, ValueError):
        return lock
    if not isinstance(record, dict):
        return lock
    pid = record.get("pid")
    return lock._replace(
        host=_printable(record.get("host")),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
    )


def remove_stale(space: LockSpace) -> list[LockInfo]:
    """Remove every stale lock; returns them (with their holders)."""
    gone = []
    for lock in list_locks(space, details=True):
        if lock.stale:
            space.delete(lock.id)
            gone.append(lock)
    return gone


@dataclass
class Held:
    """A lock this process holds: its object, kept fresh by a thread."""

    space: LockSpace
    lock_id: str
    body: bytes
    interval: float
    lost_after: float
    last_ok: float = field(default_factory=time.monotonic)
    lost: str | None = None
    #: Stale locks the acquirer removed on its way (gc reports them).
    removed: list[LockInfo] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._refresh, name="self-encryption-lock", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.interval):
            if time.monotonic() - self.last_ok >= self.lost_after:
                # Too late to refresh: others may already take the lock as stale (and remove it);
                # writing it again would only hide that.
                self.lost = f"its lock {self.lock_id} went unrefreshed too long"
                return
            try:
                if not self.space.refresh(self.lock_id, self.body):
                    self.lost = f"its lock {self.lock_id} was removed from {self.space.where}"
                    return
                self.last_ok = time.monotonic()
            except StoreError as exc:
                if time.monotonic() - self.last_ok >= self.lost_after:
                    self.lost = f"its lock {self.lock_id} could not be refreshed: {exc}"
                    return

    def check(self) -> None:
        if self.lost is None and time.monotonic() - self.last_ok >= self.lost_after:
            self.lost = f"its lock {self.lock_id} went unrefreshed too long"
        if self.lost is not None:
            raise StoreError(f"stopped writing to {self.space.where}: {self.lost}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        with contextlib.suppress(StoreError):
            self.space.delete(self.lock_id)


class _GaveUpError(Exception):
    """Taking the writers' lock early was given up: its writers were done before they needed it."""


class LockSet:
    """The lock protocol over one LockSpace, for one store object.

    Writers of one store object share one lock object (``shared()`` nests
    and serves many threads); ``wait`` bounds how long a writer waits for a
    collector (None: as long as the collector's lock is live).
    """

    def __init__(
        self,
        space: LockSpace,
        *,
        stale_after: float | None = None,
        host: str | None = None,
        wait: float | None = None,
    ) -> None:
        self.space = space
        self.stale_after = stale_period(stale_after)
        self.host = host or host_name()
        if wait is not None and (isinstance(wait, bool) or not 0 <= wait < float("inf")):
            raise InvalidArgumentError(f"lock_wait must be a number of seconds >= 0, not {wait!r}")
        self.wait = wait
        self._guard = threading.Lock()
        self._shared: Held | None = None
        self._users = 0
        # The writers' lock while it is taken beside their work (shared(early=True)).
        self._taking: Future[None] | None = None
        self._give_up: threading.Event | None = None
        self._handoff = threading.Lock()  # between a lock taken early and writers leaving

    def _new(self, kind: str, prefix: str = "") -> tuple[str, bytes]:
        lock_id = f"{prefix}{kind}-{self.stale_after:g}-{secrets.token_hex(16)}"
        body = json.dumps(
            {"kind": kind, "host": self.host, "pid": os.getpid(), "stale_after": self.stale_after}
        ).encode()
        return lock_id, body

    def _hold(self, lock_id: str, body: bytes) -> Held:
        return Held(
            self.space, lock_id, body, interval=self.stale_after / 3, lost_after=self.stale_after * 2 / 3
        )

    @contextlib.contextmanager
    def announce(self, kind: str) -> Iterator[Held]:
        """A lock object kept fresh, with no protocol around it.

        Where another lock (flock) decides, this only tells ``self-encryption
        locks`` who holds the store; a store that cannot take the file (read
        only) is still locked, just not described.
        """
        lock_id, body = self._new(kind, FLOCK_HOLDER)
        held = self._hold(lock_id, body)
        try:
            self.space.create(lock_id, body)
            held.start()
        except StoreError:
            pass
        try:
            yield held
        finally:
            held.release()

    def check(self) -> None:
        """StoreError if the writers' lock of this store object was lost (cut off for too long).

        While the lock is still being taken (``shared(early=True)``), waits
        for it first: StoreBusyError if a collector kept the store past ``wait``.
        """
        taking = self._taking
        if taking is not None:
            result(taking)
        held = self._shared
        if held is not None:
            held.check()

    @contextlib.contextmanager
    def shared(self, *, early: bool = False) -> Iterator[None]:
        """Held by writers; waits while a collector holds the store.

        With ``early`` the block starts at once and the lock is taken on a
        thread of its own meanwhile, so that its round trips overlap the
        writer's first work: whatever must happen under it (a put, a
        refresh) calls :meth:`check` first, which waits for it. A block
        that ends before it needed the lock gives it up.
        """
        with self._guard:
            # A take that failed (a gc kept the store past wait, a store failure) is tried
            # again by the next writer that comes, even while others are still inside.
            if self._users == 0 or self._take_failed():
                if early:
                    self._take_early()
                else:
                    held = self._acquire_shared()  # on failure the failed take stays: its writers still fail
                    self._taking = self._give_up = None
                    self._shared = held
            self._users += 1
            taking = self._taking
        try:
            if not early and taking is not None:
                result(taking)  # inside an early one, a writer that asks for it held on entry gets that
            yield
        finally:
            with self._guard:
                self._users -= 1
                if self._users == 0:
                    self._let_go()

    def _take_failed(self) -> bool:
        taking = self._taking
        return (
            taking is not None and taking.done() and not taking.cancelled() and taking.exception() is not None
        )

    def _take_early(self) -> None:
        taking: Future[None] = Future()
        give_up = threading.Event()
        self._taking, self._give_up = taking, give_up

        def take() -> None:
            try:
                held = self._acquire_shared(give_up)
            except BaseException as exc:  # StoreBusyError, a store failure, or given up
                taking.set_exception(exc)
                return
            with self._handoff:
                late = give_up.is_set()  # the writers left meanwhile: nobody will release it
                if not late:
                    self._shared = held  # before the future says so: check() reads it
            if late:
                held.release()
                taking.set_exception(_GaveUpError())
            else:
                taking.set_result(None)

        threading.Thread(target=take, name="self-encryption-lock", daemon=True).start()

    def _let_go(self) -> None:
        """The last writer left: stop taking the lock if that is under way, and release it."""
        taking, give_up = self._taking, self._give_up
        self._taking = self._give_up = None
        if taking is not None and give_up is not None:
            give_up.set()
            # Its failure was the writers' to see, through check(). One stuck on a dead server
            # is left behind after the interrupt grace: it releases what it takes itself.
            wait([taking], INTERRUPT_GRACE)
        with self._handoff:
            held, self._shared = self._shared, None
        if held is not None:
            held.release()

    def _acquire_shared(self, give_up: threading.Event | None = None) -> Held:
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            if give_up is not None and give_up.is_set():
                raise _GaveUpError()
            lock_id, body = self._new(SHARED)
            self.space.create(lock_id, body)
            try:
                blockers = [
                    lock
                    for lock in list_locks(self.space)
                    if lock.id != lock_id and lock.kind != SHARED and not lock.stale
                ]
            except BaseException:
                self.space.delete(lock_id)
                raise
            if not blockers:
                held = self._hold(lock_id, body)
                held.start()
                return held
            # A collector holds (or is taking) the store: step aside until it is done.
            self.space.delete(lock_id)
            self._wait_for(deadline, self.wait, give_up)

    def _wait_for(
        self, deadline: float | None, waited: float | None, give_up: threading.Event | None = None
    ) -> None:
        """Until no collector's lock is live; StoreBusyError at deadline (_GaveUpError once give_up is set)."""
        pause = 0.05
        while True:
            live = [lock for lock in list_locks(self.space) if lock.kind != SHARED and not lock.stale]
            if not live:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise self._busy(live, waited)
            nap = min(pause, max(0.0, deadline - time.monotonic()) if deadline else pause)
            if give_up is None:
                time.sleep(nap)
            elif give_up.wait(nap):
                raise _GaveUpError()
            pause = min(pause * 2, 1.0, self.stale_after / 10)

    def _busy(self, live: list[LockInfo], waited: float | None) -> StoreBusyError:
        described = "; ".join(_with_holder(self.space, lock).describe() for lock in live[:3])
        more = f" and {len(live) - 3} more" if len(live) > 3 else ""
        after = "" if waited is None else f"; waited {waited:g} s"
        return StoreBusyError(f"store {self.space.where} is busy: held by {described}{more}{after}")

    @contextlib.contextmanager
    def exclusive(self, timeout: float) -> Iterator[Held]:
        """Held by gc; waits up to timeout seconds for writers (and other collectors) to finish."""
        deadline = time.monotonic() + max(0.0, timeout)
        held = self._acquire_exclusive(deadline, timeout)
        try:
            yield held
        finally:
            held.release()

    def _acquire_exclusive(self, deadline: float, timeout: float) -> Held:
        removed: list[LockInfo] = []
        pause = 0.05
        while True:
            lock_id, body = self._new(EXCLUSIVE)
            self.space.create(lock_id, body)
            held = self._hold(lock_id, body)
            held.start()  # kept fresh while it waits too: writers queue behind it
            try:
                while True:
                    others = [lock for lock in list_locks(self.space) if lock.id != lock_id]
                    for lock in others:
                        if lock.stale:
                            removed.append(_with_holder(self.space, lock))
                            self.space.delete(lock.id)
                    live = [lock for lock in others if not lock.stale]
                    if not live:
                        held.removed = removed
                        return held
                    if time.monotonic() >= deadline:
                        raise self._busy(live, timeout)
                    if any(lock.kind != SHARED and lock.id < lock_id for lock in live):
                        break  # another collector goes first: withdraw and queue again
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    pause = min(pause * 2, 1.0, self.stale_after / 10)
            except BaseException:
                held.release()
                raise
            held.release()
            self._wait_for(deadline, timeout)
            time.sleep(secrets.randbelow(100) / 1000)


class FolderLockSpace:
    """Lock objects as files in a folder (STORE/.locks), stamped by the file system's clock."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.where = folder

    def _path(self, lock_id: str) -> str:
        return os.path.join(self.folder, lock_id)

    def create(self, lock_id: str, body: bytes) -> None:
        try:
            make_folders(self.folder)
            with atomic_write(self._path(lock_id), prefix=".tmp-", durable=False) as temp:
                temp.write(body)
        except OSError as exc:
            raise StoreError(f"cannot write lock {lock_id} in {self.folder!r}: {exc}") from exc

    def refresh(self, lock_id: str, body: bytes) -> bool:
        try:
            os.utime(self._path(lock_id))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot refresh lock {lock_id} in {self.folder!r}: {exc}") from exc
        return True

    def delete(self, lock_id: str) -> None:
        try:
            os.unlink(self._path(lock_id))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot remove lock {lock_id} from {self.folder!r}: {exc}") from exc

    def listing(self) -> LockListing:
        stamps: dict[str, float] = {}
        now = time.time()
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return LockListing(stamps, now)
        except OSError as exc:
            raise StoreError(f"cannot list locks in {self.folder!r}: {exc}") from exc
        for entry in entries:
            if entry.name.startswith(".tmp-"):
                continue
            try:
                stamps[entry.name] = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
        return LockListing(stamps, max(now, *stamps.values()) if stamps else now)

    def read(self, lock_id: str, limit: int) -> bytes | None:
        try:
            with open(self._path(lock_id), "rb") as handle:
                return handle.read(limit)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read lock {lock_id} in {self.folder!r}: {exc}") from exc
