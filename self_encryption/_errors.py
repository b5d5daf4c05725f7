"""The exception hierarchy and the command line's exit codes.

Everything we raise on purpose derives from SelfEncryptionError, and each
class carries the exit code the command line ends with when it escapes
(``exit_code``). :data:`EXIT_CODES` is the one table of those codes; the
CLI's ``--help`` is made from it and the README's table is checked
against it.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar


class SelfEncryptionError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class InvalidArgumentError(SelfEncryptionError, ValueError):
    """An option or argument is out of range or of the wrong kind."""

    exit_code = 2


class DataMapError(SelfEncryptionError, ValueError):
    """A data map is malformed, inconsistent or of an unknown version."""

    exit_code = 3


class StoreError(SelfEncryptionError):
    """A chunk store failed for a reason other than a missing chunk."""

    exit_code = 6


class StoreBusyError(StoreError):
    """A store's lock stayed held longer than the caller would wait (gc while encrypts run)."""


class OutOfMemoryError(SelfEncryptionError, MemoryError):
    """The work needed more memory than the process may have (a MemoryError, given our type).

    It is still a MemoryError for code that catches that; the command line
    ends with this class's exit code and one line, never a traceback.
    """


_E = TypeVar("_E", bound="ChunkError")


class ChunkError(SelfEncryptionError):
    """A problem with one stored chunk.

    ``index`` is the chunk's position in its data map, ``level`` the data-map
    level it belongs to (0 = file content) and ``name`` its hex name; any of
    them is ``None`` where the raiser did not know it (a bare store call).
    """

    def __init__(
        self,
        reason: str,
        *,
        name: str | None = None,
        index: int | None = None,
        level: int | None = None,
    ) -> None:
        self.reason = reason
        self.name = name
        self.index = index
        self.level = level
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"chunk {self.index}")
        if self.level is not None:
            where.append(f"level {self.level}")
        if self.name is not None:
            where.append(f"name {self.name}")
        return f"{self.reason} ({', '.join(where)})" if where else self.reason

    def located(self: _E, *, index: int, level: int, name: str) -> _E:
        """The same error, placed at a chunk of a data map."""
        return type(self)(self.reason, name=name, index=index, level=level)

    def __reduce__(self) -> tuple[Any, ...]:  # keep the attributes across pickling
        return (_rebuild_chunk_error, (type(self), self.reason, self.name, self.index, self.level))


def _rebuild_chunk_error(
    cls: type[ChunkError], reason: str, name: str | None, index: int | None, level: int | None
) -> ChunkError:
    return cls(reason, name=name, index=index, level=level)


class ChunkNotFoundError(ChunkError, KeyError):
    """A chunk the data map needs is not in the store."""

    exit_code = 4

    def __str__(self) -> str:  # KeyError would quote the message
        return self._describe()


class ChunkIntegrityError(ChunkError):
    """A stored chunk does not match its name, size or payload rules."""

    exit_code = 5


class ChunkUnreadableError(ChunkError, StoreError):
    """The store failed to read a chunk (an I/O error): not known to be missing or damaged.

    A StoreError placed at a chunk, as :func:`verify` reports it apart from
    the missing and corrupt ones: a read that fails may succeed again, so
    it is never a reason to set a chunk aside.
    """

    exit_code = StoreError.exit_code


class ExitCode(NamedTuple):
    """One exit code of the command line and what it means."""

    #: The process exit status.
    code: int
    #: What it means, as ``self-encryption --help`` prints it.
    meaning: str


EXIT_OK = ExitCode(0, "success")
EXIT_INTERRUPTED = ExitCode(130, "interrupted")
#: Ended by SIGHUP or SIGTERM: 128 + the signal number, as shells report it.
EXIT_HUNG_UP = ExitCode(129, "hung up (SIGHUP)")
EXIT_TERMINATED = ExitCode(143, "terminated (SIGTERM)")

#: Every exit code of the command line, in order.
EXIT_CODES: tuple[ExitCode, ...] = (
    EXIT_OK,
    ExitCode(SelfEncryptionError.exit_code, "other error"),
    ExitCode(InvalidArgumentError.exit_code, "usage error"),
    ExitCode(DataMapError.exit_code, "bad data map (malformed, damaged or inconsistent)"),
    ExitCode(ChunkNotFoundError.exit_code, "missing chunk"),
    ExitCode(ChunkIntegrityError.exit_code, "corrupt chunk"),
    ExitCode(StoreError.exit_code, "I/O error (a file, a folder or the store could not be used)"),
    EXIT_HUNG_UP,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
)
