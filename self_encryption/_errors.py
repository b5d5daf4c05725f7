"""The exception hierarchy: everything we raise derives from SelfEncryptionError."""

from __future__ import annotations


class SelfEncryptionError(Exception):
    """Root of every error this package raises on purpose."""


class InvalidArgumentError(SelfEncryptionError, ValueError):
    """An option or argument is out of range or of the wrong kind."""


class DataMapError(SelfEncryptionError, ValueError):
    """A data map is malformed, inconsistent or of an unknown version."""


class StoreError(SelfEncryptionError):
    """A chunk store failed for a reason other than a missing chunk."""


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

    def located(self, *, index: int, level: int, name: str) -> ChunkError:
        """The same error, placed at a chunk of a data map."""
        return type(self)(self.reason, name=name, index=index, level=level)

    def __reduce__(self):  # keep the attributes across pickling
        return (_rebuild_chunk_error, (type(self), self.reason, self.name, self.index, self.level))


def _rebuild_chunk_error(cls, reason, name, index, level):
    return cls(reason, name=name, index=index, level=level)


class ChunkNotFoundError(ChunkError, KeyError):
    """A chunk the data map needs is not in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self._describe()


class ChunkIntegrityError(ChunkError):
    """A stored chunk does not match its name, size or payload rules."""
