"""Looking after a store: is a file wholly there, which chunks does it need, what can go.

These are the library functions behind ``self-encryption verify``, ``gc``
and ``info --deep``; the command line only formats what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from . import _backend
from ._datamap import DataMap
from ._errors import ChunkIntegrityError, ChunkNotFoundError, InvalidArgumentError, StoreError
from ._levels import check_root, load_chunk
from ._levels import walk_levels as _walk
from ._workers import Executor, check_workers, in_flight, make_executor, ordered_map, running
from .stores.access import BATCH, StoreAccess, access, windows
from .stores.protocol import ChunkEntry, ChunkStore

ChunkProblem = ChunkNotFoundError | ChunkIntegrityError


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found.

    ``checked`` counts the chunks probed (quick) or opened (full);
    ``missing`` and ``corrupt`` hold one error per chunk in trouble, each
    naming its ``index``, ``level`` and ``name``. Past a map chunk that
    cannot be read, the levels below it are not reached: ``complete`` is
    then False, and problems below that level are not listed.
    """

    full: bool
    checked: int
    missing: tuple[ChunkNotFoundError, ...]
    corrupt: tuple[ChunkIntegrityError, ...]
    #: False when a map chunk that could not be read kept the levels below it out of reach.
    complete: bool = True
    #: With repair: (name, what was done) for each damaged chunk set aside, such as
    #: "moved to STORE/quarantine/NAME" in a folder store, or "deleted s3://..." in a bucket.
    quarantined: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """True when no chunk checked was missing or corrupt."""
        return not self.missing and not self.corrupt

    @property
    def problems(self) -> tuple[ChunkProblem, ...]:
        """Missing and corrupt chunks together, by level (root first) then index."""
        found: list[ChunkProblem] = [*self.missing, *self.corrupt]
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
        except (ChunkNotFoundError, ChunkIntegrityError, StoreError):
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

    ``repair`` (full mode only) sets each corrupt chunk, and each one the
    store fails to read, out of the way (``store.quarantine``: a folder
    store moves it into ``quarantine/``, S3 deletes it), so that encrypting
    the same file again, with the same options, stores it afresh. The
    report lists them in ``quarantined``; they still count as corrupt.
    """
    if repair and not full:
        raise InvalidArgumentError("repair needs full=True: only opening every chunk finds the damaged ones")
    root = check_root(data_map)
    store = access(store)
    backend = _backend.active
    # A check fetches and opens its chunk on one thread: enough of them to keep the
    # store's requests in flight (a store far away), at least one per core.
    workers = max(check_workers(workers), store.concurrency(check_workers(workers)))
    quarantined: dict[str, str] = {}
    if repair:
        # A folder store's StoreError on a read is a file that cannot be read;
        # for repair that is damage to set aside. (A bucket's quarantine reads
        # the object again first and keeps it if the failure was passing.)
        store = store.unreadable_as_damaged()

    def set_aside_once(problem: ChunkProblem) -> None:
        if (
            repair
            and isinstance(problem, ChunkIntegrityError)
            and problem.name
            and problem.name not in quarantined
        ):
            quarantined[problem.name] = store.set_aside(problem.name)

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
        except (ChunkNotFoundError, ChunkIntegrityError) as exc:
            if exc.index is None:
                exc = exc.located(index=index, level=level.level, name=record.name)
            return exc
        return None

    problems: dict[str, ChunkProblem] = {}
    checked = 0
    complete = True
    levels = _walk(backend, root, store)
    with running(make_executor(workers)) as executor:
        while True:
            try:
                level = next(levels)
            except StopIteration:
                break
            except (ChunkNotFoundError, ChunkIntegrityError) as exc:
                # A map chunk that cannot be read: the levels below are out of reach.
                problems.setdefault(exc.name or "", exc)
                set_aside_once(exc)
                complete = False
                break
            indices = range(len(level.chunks)) if full else _sample(len(level.chunks))
            for found in _check_level(level, indices, check, store, executor, workers, full):
                if found is not None:
                    problems.setdefault(found.name or "", found)
                    set_aside_once(found)
            checked += len(indices)
    missing = tuple(p for p in problems.values() if isinstance(p, ChunkNotFoundError))
    corrupt = tuple(p for p in problems.values() if isinstance(p, ChunkIntegrityError))
    return VerifyReport(full, checked, missing, corrupt, complete, tuple(quarantined.items()))


#: How long an unreferenced chunk is left alone by default: one hour.
DEFAULT_GRACE = 3600.0
#: How long gc waits for the store lock by default.
DEFAULT_LOCK_WAIT = 60.0


@dataclass(frozen=True)
class GcReport:
    """What :func:`collect_garbage` found, and did.

    ``names`` are the unreferenced chunks old enough to go: deleted, or in
    a dry run the ones that would be; ``bytes_freed`` is their size.
    ``chunks_young`` were unreferenced too but younger than the grace
    period (or refreshed by an encrypt while gc ran), and stay.
    ``temp_files_removed`` counts the store's leftover temporary files older
    than the grace period (removed, or that would be).
    """

    deleted: bool
    names: tuple[str, ...]
    bytes_freed: int
    chunks_total: int
    chunks_referenced: int
    chunks_young: int
    temp_files_removed: int
    grace: float
    #: Stale locks gc removed from the store before it began: who held each, and how long ago.
    stale_locks_removed: tuple[str, ...] = ()

    @property
    def chunks_kept(self) -> int:
        """Chunks that stay: referenced, or too young to go."""
        return self.chunks_total - len(self.names)


def collect_garbage(
    store: ChunkStore | StoreAccess,
    keep: Iterable[DataMap],
    *,
    delete: bool = False,
    grace: float = DEFAULT_GRACE,
    workers: int | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> GcReport:
    """Find (and with ``delete`` remove) the chunks no kept data map needs.

    ``keep`` is every data map whose chunks must stay; each is walked to
    level 0, and a map whose levels cannot all be read raises (a
    ChunkNotFoundError or ChunkIntegrityError naming the chunk), since the
    chunks only it names would look unused. Nothing is deleted then.

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

    Leftover temporary files of the store older than ``grace`` are removed
    too (with ``delete``). ``workers`` threads check and delete at once.
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
        referenced: set[str] = set()
        for data_map in keep:
            referenced |= _chunk_names(check_root(data_map), store)
        now = clock()
        total = 0
        candidates: list[ChunkEntry] = []
        for entry in store.entries():
            total += 1
            if entry.name not in referenced:
                candidates.append(entry)
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
    )


def _seconds(label: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise InvalidArgumentError(f"{label} must be a number of seconds >= 0, not {value!r}")
    return float(value)
