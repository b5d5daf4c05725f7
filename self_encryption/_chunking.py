"""Content-defined chunking (docs/format.md 2.1): the one place cuts are decided.

:class:`Cutter` takes bytes as they come and hands out each chunk as soon as
its end is certain. Every caller (one-shot encryption, the streaming
:class:`~self_encryption.Encryptor`, the map levels and the in-place
editor's re-cut) goes through it, so the rule that a cut is final only once
more than ``max`` bytes lie ahead, or the data has ended, lives here alone.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from ._buffers import as_bytes_view
from ._errors import SelfEncryptionError
from ._options import Options

Piece = bytes | memoryview


_TABLES_KEPT = 8
_tables: OrderedDict[tuple[str, bytes], Any] = OrderedDict()
_tables_lock = threading.Lock()


def gear_table(backend: ModuleType, secret: bytes) -> Any:
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

    def __init__(self, backend: ModuleType, options: Options, *, eager: bool = False) -> None:
        self._find_cut = backend.find_cut
        self._table = gear_table(backend, options.convergence_secret)
        self._sizes = (options.min_size, options.avg_size, options.max_size)
        self._eager = eager
        self._buffer = bytearray()  # bytes of the next chunk, kept between feeds

    def feed(self, data, *, owned: bool = False) -> Iterator[Piece]:
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

    def cut_all(self, data, *, owned: bool = False) -> Iterator[Piece]:
        """Every chunk of data taken as a whole stream."""
        yield from self.feed(data, owned=owned)
        yield from self.finish()

    # -- the cut search ----------------------------------------------------------

    def _cut(self, view: memoryview, at_end: bool, copy: bool) -> Iterator[Piece]:
        """Yield the chunks decided at the start of view; returns the bytes they took.

        The search never looks past max bytes; one more shows it is not the end.
        """
        min_size, avg_size, max_size = self._sizes
        # Without eagerness only a window of more than max bytes is certain to decide.
        keep = 0 if at_end or self._eager else max_size
        position = 0
        while len(view) - position > keep:
            with view[position:position + max_size + 1] as window:
                length = self._find_cut(self._table, window, min_size, avg_size, max_size, at_end)
                if not length:
                    if self._eager and not at_end:
                        break  # undecided: wait for more bytes
                    raise SelfEncryptionError("internal error: the cut search did not decide")
                piece = bytes(window[:length]) if copy else view[position:position + length]
            yield piece
            position += length
        return position

    def _cut_buffer(self, at_end: bool) -> Iterator[Piece]:
        with memoryview(self._buffer) as whole:
            taken = yield from self._cut(whole, at_end=at_end, copy=True)
        del self._buffer[:taken]

    def _finish_leftover(self, view: memoryview) -> Iterator[Piece]:
        """Cut the chunks that begin in bytes kept from earlier feeds.

        Borrows from view only what those chunks need. Returns where in view
        the next chunk starts, or None when view was all taken into the buffer.
        """
        buffer, limit = self._buffer, self._sizes[2] + 1
        own, position = len(buffer), 0
        while own:
            borrowed = view[position:position + limit - len(buffer)]
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


def cut_lengths(backend: ModuleType, data, options: Options) -> list[int]:
    """The lengths of the content-defined chunks of data, taken whole."""
    return [len(piece) for piece in Cutter(backend, options).cut_all(data, owned=True)]
