"""Looking after a store: is a file wholly there, and which chunks does it need.

These are the library functions behind ``self-encryption verify``, ``gc``
and ``info --deep``; the command line only formats what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import _backend
from ._datamap import DataMap
from ._errors import ChunkIntegrityError, ChunkNotFoundError
from ._levels import BATCH, Fetcher, batches, check_root, fetcher, load_chunk, walk_levels as _walk
from ._stores import store_call
from ._workers import check_workers, in_flight, make_executor, ordered_map, stop

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

    @property
    def ok(self) -> bool:
        """True when no chunk checked was missing or corrupt."""
        return not self.missing and not self.corrupt

    @property
    def problems(self) -> tuple[ChunkProblem, ...]:
        """Missing and corrupt chunks together, by level (root first) then index."""
        found: list[ChunkProblem] = [*self.missing, *self.corrupt]
        return tuple(sorted(found, key=lambda e: (-(e.level or 0), e.index or 0)))


def walk_levels(data_map: DataMap, store: Any) -> Iterator[DataMap]:
    """Every level of a data map, root first and level 0 last.

    Each level below the root is fetched from ``store`` (a chunk store or a
    mapping of name to content) and checked as it is reached.
    """
    root = check_root(data_map)
    return _walk(_backend.active, root, fetcher(store))


def chunk_names(data_map: DataMap, store: Any) -> set[str]:
    """The name of every chunk the data map needs, at every level.

    This is what pinning, replication and garbage collection need; the map
    levels are fetched from ``store`` to find the names below the root.
    """
    return {record.name for level in walk_levels(data_map, store) for record in level.chunks}


def _sample(count: int) -> list[int]:
    """First, middle and last record indices."""
    return sorted({0, count // 2, count - 1}) if count else []


def _check_level(level: DataMap, indices: Any, check: Callable[..., ChunkProblem | None],
                 fetch: Fetcher, executor: Any, workers: int, full: bool) -> Iterator[ChunkProblem | None]:
    """check() for each index, fetching a window at a time when the store has get_many."""
    window = in_flight(workers)
    if not full or fetch.many is None:
        yield from ordered_map(executor, lambda i: check(level, i), indices, window)
        return
    for run in batches(len(level.chunks), max(window, BATCH)):
        names = list(dict.fromkeys(level.chunks[i].name for i in run))
        found = fetch.many(names)
        yield from ordered_map(executor, lambda i, batch=found: check(level, i, batch), run, window)


def verify(data_map: DataMap, store: Any, *, full: bool = False,
           workers: int | None = None) -> VerifyReport:
    """Check that a file is wholly in a store, going on past the first problem.

    Quick mode asks the store whether the first, middle and last chunks of
    every level are there; full mode fetches, checks and opens every chunk
    (a window at a time from a store with ``get_many``).
    The map levels themselves are always fetched and opened, since the
    levels below are read from them.
    """
    root = check_root(data_map)
    fetch = fetcher(store)
    backend = _backend.active
    workers = check_workers(workers)
    has = getattr(store, "has", None)

    def check(level: DataMap, index: int, batch: Mapping[str, object] | None = None) -> ChunkProblem | None:
        record = level.chunks[index]
        try:
            if batch is not None:  # fetched with the store's get_many
                content = batch.get(record.name)
                if content is None:
                    raise ChunkNotFoundError("chunk not found in the store", name=record.name)
                load_chunk(backend, level, fetch, index, content=content)
            elif full:
                load_chunk(backend, level, fetch, index)
            elif has is not None:
                if not store_call("check", record.name, has, record.name):
                    raise ChunkNotFoundError("chunk not found in the store", name=record.name,
                                             index=index, level=level.level)
            else:
                fetch(record.name, record.stored_size)
        except (ChunkNotFoundError, ChunkIntegrityError) as exc:
            if exc.index is None:
                exc = exc.located(index=index, level=level.level, name=record.name)
            return exc
        return None

    problems: dict[str, ChunkProblem] = {}
    checked = 0
    complete = True
    executor = make_executor(workers)
    levels = _walk(backend, root, fetch)
    error: BaseException | None = None
    try:
        while True:
            try:
                level = next(levels)
            except StopIteration:
                break
            except (ChunkNotFoundError, ChunkIntegrityError) as exc:
                # A map chunk that cannot be read: the levels below are out of reach.
                problems.setdefault(exc.name or "", exc)
                complete = False
                break
            indices = range(len(level.chunks)) if full else _sample(len(level.chunks))
            for found in _check_level(level, indices, check, fetch, executor, workers, full):
                if found is not None:
                    problems.setdefault(found.name or "", found)
            checked += len(indices)
    except BaseException as exc:
        error = exc
        raise
    finally:
        stop(executor, error)
    missing = tuple(p for p in problems.values() if isinstance(p, ChunkNotFoundError))
    corrupt = tuple(p for p in problems.values() if isinstance(p, ChunkIntegrityError))
    return VerifyReport(full, checked, missing, corrupt, complete)
