"""Content-defined chunking (docs/format.md 2.1): the one place cuts are decided.

:class:`Cutter` takes bytes as they come and hands out each chunk as soon as
its end is certain. Every caller (one-shot encryption, the streaming
:class:`~self_encryption.Encryptor`, the map levels, the in-place editor's
re-cut and :func:`cut_points`) goes through it, so the rule that a cut is
final only once more than ``max`` bytes lie ahead, or the data has ended,
lives here alone.

The search itself runs in the backend, a window of bytes per call. With a
worker pool, large windows are searched on the pool in one of two ways, a
fixed number of segments ahead of the cuts handed out; the cuts are the same
either way.

* Candidate scan (windows of a few segments): the gear fingerprint at a
  position depends only on the 64 bytes before it, so workers find the
  candidate positions of separate segments independently, and the calling
  thread resolves the actual cuts from the sparse candidates. Every byte is
  hashed once.
* Chains (very large windows, such as a whole buffer): each worker cuts its
  own segment as if a chunk began at the segment's start, skipping the
  first ``min`` bytes of every chunk just as the one-thread search does.
  Only the first chunk or two of such a chain can differ from the true
  cuts: once a true cut lands on a cut of the chain, every later cut of the
  chain is true, because a cut depends only on where its chunk starts and
  on the bytes. The calling thread follows the true cuts into each chain,
  searching one chunk at a time itself until they meet (about one chunk per
  segment, measured), and then takes the rest of the chain as it is.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import _backend
from ._buffers import Buffer, as_bytes_view
from ._errors import SelfEncryptionError
from ._options import DEFAULT_CHUNK_SIZES, Options, make_options
from ._workers import check_workers, make_executor, running

if TYPE_CHECKING:
    from ._backend import Backend

Piece = bytes | memoryview

#: Bytes the backend searches per call on the calling thread.
WINDOW = 8 << 20
#: Bytes a worker scans for candidates per job.
SEGMENT = 1 << 20
#: Bytes a worker cuts per chain, at the least; and at the least this many
#: average chunks, so the chunk or two a chain takes to meet the true cuts
#: (searched twice: by the chain, then by the calling thread) stay a few
#: percent of its work.
CHAIN_SEGMENT = 16 << 20
CHAIN_CHUNKS = 64
#: A chain that starts with this many max-size chunks is dropped (see Cutter._chains).
CHAIN_PROBE = 2
#: Chunks the calling thread searches into a chain before giving its segment to the scan.
CHAIN_WALK = 8


_TABLES_KEPT = 8
_tables: OrderedDict[tuple[str, bytes], Any] = OrderedDict()
_tables_lock = threading.Lock()


def gear_table(backend: Backend, secret: bytes) -> Any:
    """The gear table of a secret, kept for the next encryption with the same secret.

    Building one costs about half a millisecond, which adds up over many
    small files. The cache holds the last few tables under a SHA-256 of the
    secret, never the secret itself; a table is derived from its secret by
    HMAC and does not give the secret back.
    """
    key = (backend.NAME, hashlib.sha256(b"self-encryption gear table cache\0" + secret).digest())
    with _tables_lock:
        table = _tables.get(key)
        if table is not None:
            _tables.move_to_end(key)
            return table
    table = backend.GearTable(secret)
    with _tables_lock:
        _tables[key] = table
        while len(_tables) > _TABLES_KEPT:
            _tables.popitem(last=False)
    return table


class Cutter:
    """Cut a stream into chunks: ``feed()`` bytes, then ``finish()``; both yield pieces.

    A piece is final when yielded. Each generator must be run to its end
    before the cutter is fed again. Pieces of data fed with ``owned=True``
    are views of that data (the caller keeps it unchanged until the pieces
    are used); every other piece is a copy.

    With ``eager=True`` the cutter tries to decide a cut with whatever it
    holds after each feed, instead of waiting for more than ``max`` bytes:
    the cuts are the same (a cut found in a window is the cut of any longer
    window), but a caller that feeds small pieces and stops early reads
    less. The in-place editor uses it to stop as soon as the cuts realign.
    """

    def __init__(
        self,
        backend: Backend,
        options: Options,
        *,
        eager: bool = False,
        pool: Callable[[], Any] | None = None,
        workers: int = 1,
    ) -> None:
        self._backend = backend
        self._table = gear_table(backend, options.convergence_secret)
        self._sizes = (options.min_size, options.avg_size, options.max_size)
        self._eager = eager
        # A window always decides a cut (it holds more than max bytes) and
        # bounds the list of cuts one search returns.
        self._window = max(WINDOW, 2 * (options.max_size + 1))
        self._segment = max(SEGMENT, options.max_size + 1)
        self._chain = max(CHAIN_SEGMENT, CHAIN_CHUNKS * options.avg_size, 4 * (options.max_size + 1))
        self._pool = pool if workers > 1 else None  # () -> executor, asked when first needed
        self._ahead = 2 * workers
        self._buffer = bytearray()  # bytes of the next chunk, kept between feeds

    def feed(self, data: Buffer, *, owned: bool = False) -> Iterator[Piece]:
        """The chunks that data completes, in order."""
        view = as_bytes_view(data)
        if self._eager:
            self._buffer += view
            yield from self._cut_buffer(at_end=False)
            return
        position = yield from self._finish_leftover(view)
        if position is None:
            return
        position += yield from self._cut(view[position:], at_end=False, copy=not owned)
        self._buffer += view[position:]

    def finish(self) -> Iterator[Piece]:
        """The chunks of whatever is left: the end of the data decides them all."""
        yield from self._cut_buffer(at_end=True)

    def cut_all(self, data: Buffer, *, owned: bool = False) -> Iterator[Piece]:
        """Every chunk of data taken as a whole stream."""
        yield from self.feed(data, owned=owned)
        yield from self.finish()

    # -- the cut search ----------------------------------------------------------

    def _cut(self, view: memoryview, at_end: bool, copy: bool) -> Generator[Piece, None, int]:
        """Yield the chunks decided in view, in order; returns the bytes they took.

        What is left is shorter than max bytes: no cut in it can be decided
        before more bytes come (or the end does).
        """
        if self._pool is not None and len(view) >= 2 * self._chain:
            lengths = self._chains(view, at_end)
        elif self._pool is not None and len(view) >= 2 * self._segment:
            lengths = self._scan_ahead(view, at_end)
        else:
            lengths = self._in_windows(view, at_end)
        position = 0
        for length in lengths:
            piece = bytes(view[position : position + length]) if copy else view[position : position + length]
            yield piece
            position += length
        return position

    def _in_windows(self, view: memoryview, at_end: bool) -> Iterator[int]:
        """Chunk lengths from the start of view, searched a window at a time."""
        min_size, avg_size, max_size = self._sizes
        position, total = 0, len(view)
        while position < total:
            end = min(total, position + self._window)
            with view[position:end] as window:
                lengths = self._backend.cut_lengths(
                    self._table, window, min_size, avg_size, max_size, at_end and end == total
                )
            if not lengths:
                if end < total:
                    raise SelfEncryptionError("internal error: a full window did not decide a cut")
                return
            for length in lengths:
                yield length
                position += length

    def _scan_ahead(self, view: memoryview, at_end: bool) -> Iterator[int]:
        """Chunk lengths from the start of view, candidates scanned on the pool.

        Segments are scanned up to ``2 * workers`` ahead of the cuts resolved
        so far; each resolution takes the prefix of view whose candidates
        are all known, and leaves its undecided tail to the next one.
        """
        backend, table = self._backend, self._table
        min_size, avg_size, max_size = self._sizes
        assert self._pool is not None
        pool = self._pool()
        total = len(view)
        first = min(min_size + 63, total)  # the search starts min bytes in, the window 63 later
        scans: deque[tuple[int, Future[Any]]] = deque()
        found: list[Any] = []
        next_scan, covered, position = first, first, 0

        def top_up() -> None:
            nonlocal next_scan
            while next_scan < total and len(scans) < self._ahead:
                stop = min(total, next_scan + self._segment)
                scans.append(
                    (stop, pool.submit(backend.scan_candidates, table, view, next_scan, stop, avg_size))
                )
                next_scan = stop

        top_up()
        try:
            while True:
                if scans:
                    covered, future = scans[0][0], scans[0][1]
                    found.append(future.result())
                    scans.popleft()
                    top_up()
                else:
                    covered = total
                final = covered >= total
                if not final and covered - position <= max_size:
                    continue  # too little known past the last cut to decide the next
                with view[:covered] as known:
                    lengths = backend.resolve_cuts(
                        table, known, found, min_size, avg_size, max_size, at_end and final, position
                    )
                for length in lengths:
                    yield length
                    position += length
                # Candidates before the next chunk's search window are spent.
                found = [_from(part, position + min_size) for part in found]
                if final:
                    return
        finally:
            for _, future in scans:
                future.cancel()

    def _chains(self, view: memoryview, at_end: bool) -> Iterator[int]:
        """Chunk lengths from the start of view, from chains cut on the pool.

        Segment k of view (``self._chain`` bytes; the last takes the rest)
        is cut on a worker as if a chunk began at its start; the chain runs
        on past the segment's end to its first cut there. The true cuts
        enter segment k at the last cut of chain k-1 and are searched here,
        one chunk at a time, until one lands on a cut of chain k.

        Where chunks end at ``max`` for want of a content cut (runs of one
        byte, the empty stretches of a disk image), a chain and the true
        cuts stay ``max`` apart and need not ever meet: a chain that starts
        with CHAIN_PROBE such chunks is dropped at once, and a segment whose
        chain has not met the true cuts after CHAIN_WALK chunks is finished
        by the candidate scan on the pool instead, as smaller windows are.
        """
        backend, table = self._backend, self._table
        min_size, avg_size, max_size = self._sizes
        assert self._pool is not None
        pool = self._pool()
        total = len(view)
        count = total // self._chain
        bounds = [k * self._chain for k in range(count)] + [total]

        def chain(k: int) -> list[int] | None:
            """The ends of the cuts from bounds[k], to the first at or past bounds[k + 1].

            None: the segment looks like runs of max-size chunks (see above).
            """
            start, stop = bounds[k], bounds[k + 1]
            last = stop == total
            with view[start:stop] as segment:
                lengths = backend.cut_lengths(
                    table, segment, min_size, avg_size, max_size, at_end and last, limit=CHAIN_PROBE
                )
            if k > 0 and len(lengths) == CHAIN_PROBE and all(length == max_size for length in lengths):
                return None
            if len(lengths) == CHAIN_PROBE:  # the probe stopped at its limit: cut the rest
                with view[start + sum(lengths) : stop] as rest:
                    lengths += backend.cut_lengths(table, rest, min_size, avg_size, max_size, at_end and last)
            ends = list(itertools.accumulate(lengths, initial=start))[1:]
            position = ends[-1] if ends else start
            while not last and position < stop:
                step = one_chunk(position)
                if step is None:
                    break
                position += step
                ends.append(position)
            return ends

        def one_chunk(position: int) -> int | None:
            """The length of the chunk at position, None when the bytes cannot decide it yet."""
            end = min(total, position + max_size + 1)
            with view[position:end] as window:
                found = backend.cut_lengths(
                    table, window, min_size, avg_size, max_size, at_end and end == total, limit=1
                )
            return found[0] if found else None

        chains: deque[Future[list[int] | None]] = deque()
        submitted = 0

        def top_up() -> None:
            nonlocal submitted
            while submitted < count and len(chains) < self._ahead:
                chains.append(pool.submit(chain, submitted))
                submitted += 1

        position = 0  # the true cuts are known up to here
        top_up()
        try:
            for k in range(count):
                ends = chains[0].result()
                chains.popleft()
                top_up()
                # Follow the true cuts until one is a cut of this chain (or
                # the chain's start), or the chain has nothing past them.
                joined: int | None = None
                walked = 0
                while ends is not None:
                    if position == bounds[k]:
                        joined = 0
                        break
                    at = bisect.bisect_left(ends, position)
                    if at < len(ends) and ends[at] == position:
                        joined = at + 1
                        break
                    if at == len(ends):
                        break
                    if walked == CHAIN_WALK:
                        ends = None  # not meeting: give the segment to the scan
                        break
                    length = one_chunk(position)
                    if length is None:
                        return
                    yield length
                    position += length
                    walked += 1
                if ends is None:
                    # The true cuts through this segment and just past it (a
                    # chunk that starts before bounds[k + 1] ends within max
                    # bytes), from candidates scanned on the pool.
                    cover = total if k == count - 1 else bounds[k + 1] + max_size + 1
                    for length in self._scan_ahead(view[position:cover], at_end and cover == total):
                        yield length
                        position += length
                    if k == count - 1:
                        return
                    continue
                if joined is None:
                    continue
                for end in ends[joined:]:
                    yield end - position
                    position = end
                if k == count - 1:
                    return  # the last chain ends where the one-thread search would
            # The last chain never met the true cuts: finish them here.
            while (length := one_chunk(position)) is not None:
                yield length
                position += length
        finally:
            for future in chains:
                future.cancel()

    def _cut_buffer(self, at_end: bool) -> Generator[Piece, None, None]:
        with memoryview(self._buffer) as whole:
            taken = yield from self._cut(whole, at_end=at_end, copy=True)
        del self._buffer[:taken]

    def _finish_leftover(self, view: memoryview) -> Generator[Piece, None, int | None]:
        """Cut the chunks that begin in bytes kept from earlier feeds.

        Borrows from view only what those chunks need. Returns where in view
        the next chunk starts, or None when view was all taken into the buffer.
        """
        buffer, limit = self._buffer, self._sizes[2] + 1
        own, position = len(buffer), 0
        while own:
            borrowed = view[position : position + limit - len(buffer)]
            buffer += borrowed
            position += len(borrowed)
            if len(buffer) < limit:
                return None
            with memoryview(buffer) as whole:
                length = yield from self._cut(whole, at_end=False, copy=True)
            if length >= own:
                position -= len(buffer) - length  # hand back what the chunk did not take
                buffer.clear()
                own = 0
            else:
                del buffer[:length]
                own -= length
        return position


def _from(candidates: Any, position: int) -> Any:
    """The candidates at or after position (entries are position << 1 | flag)."""
    if not candidates or candidates[-1] >> 1 < position:
        return candidates[:0]
    if candidates[0] >> 1 >= position:
        return candidates
    return candidates[bisect.bisect_left(candidates, position << 1) :]


def cut_lengths(backend: Backend, data: Buffer, options: Options) -> list[int]:
    """The lengths of the content-defined chunks of data, taken whole."""
    return [len(piece) for piece in Cutter(backend, options).cut_all(data, owned=True)]


def cut_points(
    data: Buffer,
    *,
    convergence_secret: bytes | str = b"",
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
    workers: int | None = None,
) -> list[int]:
    """The end offset of every level-0 chunk of data: the cuts :func:`encrypt` makes.

    For studying de-duplication (which cuts two versions of a file share)
    and for benchmarks. With more than one worker, large inputs are scanned
    on a pool of threads; the cuts are the same.
    """
    options = make_options(convergence_secret, None, chunk_sizes)
    count = check_workers(workers)
    ends, offset = [], 0
    with running(make_executor(count)) as executor:
        cutter = Cutter(_backend.active, options, pool=lambda: executor, workers=count)
        for piece in cutter.cut_all(data, owned=True):
            offset += len(piece)
            ends.append(offset)
    return ends
