"""Looking after a store: is a file wholly there, which chunks does it need, what can go.

These are the library functions behind ``self-encryption verify``, ``gc``
and ``info --deep``; the command line only formats what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from . import _backend
from ._datamap import DataMap, is_chunk_name
from ._errors import (
    ChunkError,
    ChunkIntegrityError,
    ChunkNotFoundError,
    ChunkUnreadableError,
    DataMapError,
    InvalidArgumentError,
    StoreError,
)
from ._levels import check_root, load_chunk
from ._levels import walk_levels as _walk
from ._workers import Executor, check_workers, in_flight, make_executor, ordered_map, running
from .stores.access import BATCH, StoreAccess, access, windows
from .stores.protocol import ChunkEntry, ChunkStore

ChunkProblem = ChunkNotFoundError | ChunkIntegrityError | ChunkUnreadableError
_PROBLEMS = (ChunkNotFoundError, ChunkIntegrityError, ChunkUnreadableError)


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found (each field is described where it is declared).

    Each error in ``missing``, ``corrupt`` and ``unreadable`` names its
    chunk's ``index``, ``level`` and ``name``.
    """

    #: Whether every chunk was fetched, checked and opened (else only probed).
    full: bool
    #: The chunks probed (quick) or opened (full).
    checked: int
    #: One error per chunk the store does not hold.
    missing: tuple[ChunkNotFoundError, ...]
    #: One error per chunk that does not match its name, size or payload rules.
    corrupt: tuple[ChunkIntegrityError, ...]
    #: False when a map chunk that could not be read kept the levels below it out of reach.
    complete: bool = True
    #: For each damaged chunk set aside by a repair, (name, what was done), such as
    #: "moved to STORE/quarantine/NAME" in a folder store, or "deleted s3://..." in a bucket.
    quarantined: tuple[tuple[str, str], ...] = ()
    #: Chunks the store failed to read (an I/O error; or, with repair, read damaged once and
    #: sound again): not known to be damaged, they are never set aside.
    unreadable: tuple[ChunkUnreadableError, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every chunk checked was read and sound."""
        return not self.missing and not self.corrupt and not self.unreadable

    @property
    def problems(self) -> tuple[ChunkProblem, ...]:
        """Missing, corrupt and unreadable chunks together, by level (root first) then index."""
        found: list[ChunkProblem] = [*self.missing, *self.corrupt, *self.unreadable]
        return tuple(sorted(found, key=lambda e: (-(e.level or 0), e.index or 0)))


#: What the maintenance functions read a store from: a store, or a mapping of name to content.
Store = ChunkStore | Mapping[str, bytes] | StoreAccess | Callable[[str], bytes | None]


def walk_levels(data_map: DataMap, store: Store) -> Iterator[DataMap]:
    """Every level of a data map, root first and level 0 last.

    Each level below the root is fetched from ``store`` (a chunk store or a
    mapping of name to content) and checked as it is reached.
    """
    root = check_root(data_map)
    return _walk(_backend.active, root, access(store))


def chunk_names(data_map: DataMap, store: Store) -> set[str]:
    """The name of every chunk the data map needs, at every level.

    This is what pinning, replication and garbage collection need; the map
    levels are fetched from ``store`` to find the names below the root.
    """
    return _chunk_names(check_root(data_map), access(store))


def _chunk_names(root: DataMap, store: StoreAccess) -> set[str]:
    return {record.name for level in _walk(_backend.active, root, store) for record in level.chunks}


def _sample(count: int) -> list[int]:
    """First, middle and last record indices."""
    return sorted({0, count // 2, count - 1}) if count else []


def _check_level(
    level: DataMap,
    indices: Sequence[int],
    check: Callable[..., ChunkProblem | None],
    store: StoreAccess,
    executor: Executor,
    workers: int,
    full: bool,
) -> Iterator[ChunkProblem | None]:
    """check() for each index, fetching a window at a time when the store has get_many."""
    window = in_flight(workers)
    if not full or not store.batched:
        yield from ordered_map(executor, lambda i: check(level, i), indices, window)
        return
    for run in windows(len(level.chunks), max(window, BATCH)):
        sizes = {level.chunks[i].name: level.chunks[i].stored_size for i in run}
        try:
            found = store.get_window(list(sizes), sizes)
        except (ChunkError, StoreError):
            # One bad chunk spoils the window: check its chunks one by one instead,
            # so that each problem is named and the others are still checked.
            yield from ordered_map(executor, lambda i: check(level, i), run, window)
            continue

        def check_fetched(index: int, batch: Mapping[str, object] = found) -> ChunkProblem | None:
            return check(level, index, batch)

        yield from ordered_map(executor, check_fetched, run, window)


def verify(
    data_map: DataMap, store: Store, *, full: bool = False, workers: int | None = None, repair: bool = False
) -> VerifyReport:
    """Check that a file is wholly in a store, going on past the first problem.

    Quick mode asks the store whether the first, middle and last chunks of
    every level are there; full mode fetches, checks and opens every chunk
    (a window at a time from a store with ``get_many``).
    The map levels themselves are always fetched and opened, since the
    levels below are read from them.

    ``repair`` (full mode only) sets each corrupt chunk out of the way
    (``store.quarantine``: a folder store moves it into ``quarantine/``, S3
    deletes it), so that encrypting the same file again, with the same
    options, stores it afresh. The report lists them in ``quarantined``;
    they still count as corrupt. Before a chunk is set aside it is read
    again, and one that then reads back sound stays (it is reported as
    ``unreadable``: the first read failed in passing).

    A chunk the store fails to read (an I/O error) is neither missing nor
    corrupt: it is listed in ``unreadable``, never set aside, and the check
    goes on with the other chunks.
    """
    if repair and not full:
        raise InvalidArgumentError("repair needs full=True: only opening every chunk finds the damaged ones")
    root = check_root(data_map)
    store = access(store).naming_unreadable()
    backend = _backend.active
    # A check fetches and opens its chunk on one thread: enough of them to keep the
    # store's requests in flight (a store far away), at least one per core.
    workers = max(check_workers(workers), store.concurrency(check_workers(workers)))
    quarantined: dict[str, str] = {}
    problems: dict[str, ChunkProblem] = {}

    def damaged_still(level: DataMap, problem: ChunkIntegrityError) -> bool:
        """Whether the chunk reads back damaged again; if it reads sound, it is noted as a passing fault."""
        index = problem.index if problem.index is not None else -1
        if not 0 <= index < len(level.chunks) or level.chunks[index].name != problem.name:
            return True  # not placed in this level: as found
        try:
            load_chunk(backend, level, store, index)
        except ChunkIntegrityError:
            return True
        except _PROBLEMS as again:
            # Gone meanwhile, or now unreadable: nothing is known to be damaged; report the later read.
            problems[problem.name or ""] = (
                again
                if again.index is not None
                else again.located(index=index, level=level.level, name=level.chunks[index].name)
            )
            return False
        problems[problem.name or ""] = ChunkUnreadableError(
            "read back damaged once, then sound: a passing read fault, the chunk is kept",
            name=problem.name,
            index=problem.index,
            level=problem.level,
        )
        return False

    def note(level: DataMap, problem: ChunkProblem) -> None:
        name = problem.name or ""
        if name in problems:
            return
        problems[name] = problem
        if repair and isinstance(problem, ChunkIntegrityError) and problem.name and name not in quarantined:
            if damaged_still(level, problem):
                quarantined[name] = store.set_aside(name)

    def check(level: DataMap, index: int, batch: Mapping[str, object] | None = None) -> ChunkProblem | None:
        record = level.chunks[index]
        try:
            if batch is not None:  # fetched with the store's get_many
                content = batch.get(record.name)
                if content is None:
                    raise ChunkNotFoundError("chunk not found in the store", name=record.name)
                load_chunk(backend, level, store, index, content=content)
            elif full:
                load_chunk(backend, level, store, index)
            elif not store.has(record.name, record.stored_size):
                raise ChunkNotFoundError(
                    "chunk not found in the store", name=record.name, index=index, level=level.level
                )
        except _PROBLEMS as exc:
            if exc.index is None:
                exc = exc.located(index=index, level=level.level, name=record.name)
            return exc
        except StoreError as exc:  # a store that cannot say has(): unreadable, placed here
            return ChunkUnreadableError(
                f"unreadable: {exc}", name=record.name, index=index, level=level.level
            )
        return None

    checked = 0
    complete = True
    # Map levels are read one chunk at a time, so that a chunk that cannot be read is named.
    levels = _walk(backend, root, store.one_at_a_time())
    level = root
    with running(make_executor(workers)) as executor:
        while True:
            parent = level
            try:
                level = next(levels)
            except StopIteration:
                break
            except _PROBLEMS as exc:
                # A map chunk that cannot be read: the levels below are out of reach.
                note(parent, exc)
                complete = False
                break
            indices = range(len(level.chunks)) if full else _sample(len(level.chunks))
            for found in _check_level(level, indices, check, store, executor, workers, full):
                if found is not None:
                    note(level, found)
            checked += len(indices)
    missing = tuple(p for p in problems.values() if isinstance(p, ChunkNotFoundError))
    corrupt = tuple(p for p in problems.values() if isinstance(p, ChunkIntegrityError))
    unreadable = tuple(p for p in problems.values() if isinstance(p, ChunkUnreadableError))
    return VerifyReport(full, checked, missing, corrupt, complete, tuple(quarantined.items()), unreadable)


#: How long an unreferenced chunk is left alone by default: one hour.
DEFAULT_GRACE = 3600.0
#: How long gc waits for the store lock by default.
DEFAULT_LOCK_WAIT = 60.0


class GcRefusedError(DataMapError):
    """Garbage collection refused: the kept maps do not look like maps of this store.

    ``map_index`` is the position (from 0) in ``keep`` of a map some of
    whose chunks are not in the store, with ``missing`` of its ``needed``
    chunks absent; it is None when the refusal is that the store holds
    chunks but none that any kept map names (``missing`` is then every
    kept chunk). Nothing was deleted.
    """

    def __init__(self, message: str, *, map_index: int | None, missing: int, needed: int) -> None:
        super().__init__(message)
        self.map_index = map_index
        self.missing = missing
        self.needed = needed


@dataclass(frozen=True)
class GcReport:
    """What :func:`collect_garbage` found, and did (each field is described where it is declared)."""

    #: Whether the chunks in ``names`` were deleted (False: a dry run, nothing was).
    deleted: bool
    #: The unreferenced chunks old enough to go: deleted, or in a dry run the ones that would be.
    names: tuple[str, ...]
    #: The stored size of the chunks in ``names``.
    bytes_freed: int
    #: Every chunk the store listed.
    chunks_total: int
    #: The chunks listed that a kept map needs.
    chunks_referenced: int
    #: Unreferenced chunks that stay, younger than the grace period (or refreshed while gc ran).
    chunks_young: int
    #: The store's leftover temporary files older than the grace period, removed (or that would be).
    temp_files_removed: int
    #: The grace period used, in seconds.
    grace: float
    #: Stale locks gc removed from the store before it began: who held each, and how long ago.
    stale_locks_removed: tuple[str, ...] = ()
    #: What the store's listing left out, and gc never entered nor deleted through
    #: (a folder store's fan-out folders that are links).
    skipped: tuple[str, ...] = ()

    @property
    def chunks_kept(self) -> int:
        """Chunks that stay: referenced, or too young to go."""
        return self.chunks_total - len(self.names)


def collect_garbage(
    store: ChunkStore | StoreAccess,
    keep: Iterable[DataMap] = (),
    *,
    keep_names: Iterable[Iterable[str]] = (),
    delete: bool = False,
    grace: float = DEFAULT_GRACE,
    workers: int | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    allow_missing: bool = False,
) -> GcReport:
    """Find (and with ``delete`` remove) the chunks no kept data map needs.

    ``keep`` is every data map whose chunks must stay; each is walked to
    level 0, and a map whose levels cannot all be read raises (a
    ChunkNotFoundError or ChunkIntegrityError naming the chunk), since the
    chunks only it names would look unused. Nothing is deleted then.

    ``keep_names`` is the same for maps whose chunk names were saved
    before: each item is one map's names, as :func:`chunk_names` returned
    them (every level). An application that keeps maps as database rows
    can store those sets beside them, so that gc needs no fetch of any
    map's levels; names that are not chunk names are refused
    (InvalidArgumentError). ``keep`` and ``keep_names`` may be used together.

    Two rules protect what encryptions still running need:

    * The store lock (``store.collecting(lock_wait)``: a folder store's
      ``.lock``, a bucket's lock objects) is held exclusive from before
      ``keep`` is read to the last delete; writers hold it shared, so gc
      waits for them (and they for gc). After ``lock_wait`` seconds it gives up with StoreBusyError.
      ``keep`` is consumed under the lock, one map at a time: a generator
      that loads map files sees maps that encrypts finished meanwhile.
    * A chunk younger than ``grace`` seconds (by ``store.mtime``, against
      the store's own clock ``store.now()`` where it has one) is never
      deleted, and its time is read again just before each delete: an
      encrypt that finds a chunk present refreshes it (``store.touch``).
      This is the only protection where the store has no lock. A store
      that cannot tell a chunk's age needs ``grace=0``.

    Two checks guard against a map of another store, which names none of
    this store's chunks and would leave every one of them unreferenced. If
    a chunk a kept map needs is not in the store's listing, gc refuses with
    GcRefusedError (a DataMapError: nothing is deleted), naming the map by
    its position in ``keep`` and how many of its chunks are absent, unless
    ``allow_missing`` (for a store known to have lost chunks). And when the
    store holds chunks but not one that a kept map names, gc refuses even
    with ``allow_missing``: that is a map of another store, not a damaged
    one, and an empty store is what deleting every chunk would make, which
    is better done by removing the store.

    Leftover temporary files of the store older than ``grace`` are removed
    too (with ``delete``). ``workers`` threads check and delete at once.
    What the store's listing leaves out (a folder store never enters a
    fan-out folder that is a link) is named in the report's ``skipped``.
    """
    grace = _seconds("grace", grace)
    lock_wait = _seconds("lock_wait", lock_wait)
    workers = check_workers(workers)
    store = access(store)
    if grace > 0 and not store.tells_age:
        raise InvalidArgumentError(
            "this store cannot tell when a chunk was stored (it has no mtime method): "
            "pass grace=0 to collect garbage without the grace period"
        )
    clock = store.clock()
    with store.collecting(lock_wait) as stale_locks:
        kept: list[set[str]] = [_chunk_names(check_root(data_map), store) for data_map in keep]
        kept += [_checked_names(names) for names in keep_names]
        referenced: set[str] = set().union(*kept)
        now = clock()
        present: set[str] = set()  # the referenced chunks the listing holds (not every name listed)
        total = 0
        candidates: list[ChunkEntry] = []
        for entry in store.entries():
            total += 1
            if entry.name in referenced:
                present.add(entry.name)
            else:
                candidates.append(entry)
        _check_kept(kept, referenced, present, total, allow_missing)
        old = [entry for entry in candidates if entry.mtime is None or now - entry.mtime >= grace]

        def collect(entry: ChunkEntry) -> ChunkEntry | None:
            """The entry, deleted if delete; None if it turned young or vanished meanwhile."""
            if grace > 0:
                stamp = store.mtime(entry.name)
                if stamp is None or clock() - stamp < grace:
                    return None
            size = entry.size if entry.size is not None else store.size(entry.name)
            if size is None:  # a store listed by name only: it vanished meanwhile
                return None
            if delete:
                store.delete(entry.name)
            return ChunkEntry(entry.name, size, entry.mtime)

        gone = [entry for entry in store.each(collect, old, workers) if entry is not None]
        temporaries = store.remove_temporaries(grace, delete=delete)
    return GcReport(
        deleted=delete,
        names=tuple(entry.name for entry in gone),
        bytes_freed=sum(entry.size or 0 for entry in gone),
        chunks_total=total,
        chunks_referenced=total - len(candidates),
        chunks_young=len(candidates) - len(gone),
        temp_files_removed=temporaries,
        grace=grace,
        stale_locks_removed=stale_locks,
        skipped=store.skipped(),
    )


def _check_kept(
    kept: list[set[str]], referenced: set[str], present: set[str], total: int, allow_missing: bool
) -> None:
    """GcRefusedError if the kept maps do not look like maps of the store listed (see collect_garbage).

    ``present`` is the referenced chunks the listing held, of ``total`` chunks listed.
    """
    if referenced and total and not present:
        raise GcRefusedError(
            f"none of the {len(referenced)} chunks the kept maps need is in the store, which holds "
            f"{total}: these are maps of another store; refusing to collect garbage, "
            "since every chunk would look unused",
            map_index=None,
            missing=len(referenced),
            needed=len(referenced),
        )
    if allow_missing:
        return
    for index, names in enumerate(kept):
        absent = len(names - present)
        if absent:
            raise GcRefusedError(
                f"{absent} of the {len(names)} chunks this kept map needs are not in the store: "
                "it may be a map of another store; refusing to collect garbage "
                "(allow_missing if the store is known to have lost them)",
                map_index=index,
                missing=absent,
                needed=len(names),
            )


def _checked_names(names: Iterable[str]) -> set[str]:
    """One map's saved chunk names, each checked to be a chunk name (they come from outside)."""
    if isinstance(names, (str, bytes)):
        raise InvalidArgumentError("keep_names holds one set of chunk names per map, not a single name")
    checked = set()
    for name in names:
        if not is_chunk_name(name):
            raise InvalidArgumentError(f"keep_names holds {name!r:.80}, which is not a chunk name")
        checked.add(name)
    return checked


def _seconds(label: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise InvalidArgumentError(f"{label} must be a number of seconds >= 0, not {value!r}")
    return float(value)
