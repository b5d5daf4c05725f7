"""What a chunk store is: the whole contract the engine may use, and the error translation.

A store keeps sealed chunks under their hex names (the SHA-256 of the
content, so a store may be anything that keeps bytes: a folder, a bucket, a
peer-to-peer network). :class:`ChunkStore` lists what every store has;
:class:`MaintainedStore` adds what keeping a store healthy needs, and the
methods a store may offer to be read faster. The engine never calls a
store directly: :class:`~self_encryption.stores.access.StoreAccess` wraps
it once, at the public entry point, and falls back to something safe where
a store lacks an optional method.

Every method may be called from several threads at once: as many as the
store's ``io_concurrency`` says (an int attribute, or a method returning
one), else as many as the caller's ``workers``; a store that is not
thread-safe declares ``io_concurrency = 1``. "Absent" means the store does not hold the name:
``get`` raises ChunkNotFoundError (or KeyError, which is taken to say the
same), never returns something else. Any other exception is a failure of
the store and becomes a StoreError naming the chunk (:func:`store_call`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from .._errors import ChunkNotFoundError, SelfEncryptionError, StoreError

if TYPE_CHECKING:
    from .locks import LockSpace

T = TypeVar("T")

#: The largest stored chunk the format allows: a kind byte and max_size (2**31) bytes.
MAX_CHUNK_BYTES = (1 << 31) + 1


class ChunkEntry(NamedTuple):
    """One stored chunk, as ``scan()`` lists them."""

    name: str
    #: Bytes stored, or None when the store lists names only.
    size: int | None
    #: Seconds since the epoch at which it was last stored or refreshed (None: not known).
    mtime: float | None


@runtime_checkable
class ChunkStore(Protocol):
    """What the encryptor and decryptor need from a place that keeps chunks.

    Every method must be safe to call from several threads at once.
    """

    def put(self, name: str, data: bytes) -> None:
        """Keep data under name, whole or not at all: a reader never sees part of a chunk.

        Storing an existing name again is harmless (the content is the same:
        the name is its hash).
        """

    def get(self, name: str) -> bytes:
        """The content under name; ChunkNotFoundError (or KeyError) if the store does not hold it.

        It may read the whole stored object: the engine asks ``get_at_most``
        instead when the store has it. It need not check the content against
        the name (the engine does), but it may, raising ChunkIntegrityError.
        """

    def has(self, name: str) -> bool:
        """Whether name is stored, without reading its content."""

    def delete(self, name: str) -> None:
        """Forget name; deleting an absent name is not an error."""

    def __iter__(self) -> Iterator[str]:
        """Every stored chunk name, in no particular order (nothing that is not a chunk name)."""


class MaintainedStore(ChunkStore, Protocol):
    """The optional methods our stores add, for reading fast, garbage collection and repair.

    A store without them still works: it is read one chunk at a time, not
    locked, chunk ages are unknown (gc then needs ``grace=0``) and damaged
    chunks are deleted rather than set aside.
    """

    def get_at_most(self, name: str, limit: int) -> bytes:
        """``get``, reading no more than limit bytes of the stored object.

        Readers pass the size the data map expects plus one, so that an
        object replaced by something larger costs one byte more than the
        chunk, not the whole object.
        """

    def fetch_at_most(self, name: str, limit: int) -> bytes:
        """``get_at_most`` without checking the bytes against the name.

        For a store whose ``get_at_most`` checks (S3's does): the engine
        opens every chunk it reads, which checks it against its name, and
        asks for it this way to spare a second hash of each chunk.
        """

    def get_many(self, names: list[str]) -> Mapping[str, bytes]:
        """Several chunks in one call, by name; absent ones are left out (no error).

        Readers ask for a window of chunks through it, so that a network
        store pays one round trip a window rather than one a chunk. Looking
        a name up in the result is part of the call: its failures count as
        the store's. It reads each object whole unless it bounds its reads.
        """

    def get_many_at_most(self, limits: dict[str, int]) -> Mapping[str, bytes]:
        """``get_many`` of the names in limits, reading no more than limits[name] bytes of each object.

        Readers pass each size the data map expects plus one, as to
        ``get_at_most``; a network store then never downloads more than a
        chunk can be, whatever the server sends or announces.
        """

    @property
    def gets_side_by_side(self) -> bool:
        """True when ``get_many`` is only gets run side by side: one request a chunk, not one a window.

        A reader with a pool of its own for store requests then asks for
        each chunk by itself on that pool, rather than starting the store's
        pool inside each of its own threads. Absent means False: windows
        are worth asking for.
        """

    def size(self, name: str) -> int:
        """Bytes stored under name, without reading them; ChunkNotFoundError if absent."""

    def mtime(self, name: str) -> float:
        """When name was last stored or refreshed, in seconds since the epoch; ChunkNotFoundError if absent."""

    def touch(self, name: str) -> bool:
        """Refresh name's modification time to now; False if it is not there."""

    def scan(self) -> Iterator[ChunkEntry]:
        """(name, size, mtime) of every stored chunk, from one listing where the store can."""

    def quarantine(self, name: str) -> str:
        """Move a damaged chunk out of the store's names; says what was done ("moved to PATH").

        An absent name is not an error: it says "not in the store".
        """

    def remove_temporaries(self, older_than: float, *, delete: bool = True) -> int:
        """Remove (delete=False: only count) leftovers of interrupted writes older than older_than seconds.

        A write still in progress must never be removed: it keeps changing
        its temporary, while one left by a killed process stays as it was.
        """

    @property
    def io_concurrency(self) -> int:
        """How many requests the store serves at once, and the engine keeps in flight.

        Requests run on a pool of their own, apart from the CPU workers: a
        store far away needs enough in flight to cover its round trip
        (about bandwidth x round trip x requests a chunk / chunk size). 1
        means one call at a time, made by the thread that needs it.
        """

    def put_if_absent(self, name: str, data: bytes) -> bool:
        """Put data unless name is stored, else refresh it (as ``touch``): True if data was put.

        One request for a new chunk where the store can (an S3 conditional
        PUT); the engine then never asks ``has`` before a put.
        """

    def writing(self) -> AbstractContextManager[Any]:
        """Held (shared) by every writer while it stores chunks; several writers at once.

        It may wait while a gc holds the store. Writers hold it until the map
        they make is saved, so that a gc waiting meanwhile sees that map.
        """

    def begin_writing(self) -> AbstractContextManager[Any]:
        """``writing()``, taken while the block starts its work rather than before it.

        For a store whose lock costs round trips: the store itself makes
        every put and refresh in the block wait until the lock is held. The
        engine's writers use it where the store has it.
        """

    def collecting(self, timeout: float) -> AbstractContextManager[Any]:
        """Held (exclusive) by gc, so that no writer runs; StoreBusyError after timeout seconds of waiting.

        What it yields may carry ``removed``: a list of the stale locks
        (:class:`~self_encryption.stores.locks.LockInfo`) it removed on its
        way in, left by holders that are gone; gc reports them.
        """

    def lock_space(self) -> LockSpace:
        """Where the store keeps its lock objects (one per holder), for listing and removing them.

        ``self-encryption locks`` and :func:`~self_encryption.store_locks`
        use it; a store without it has no locks to list.
        """

    def now(self) -> float:
        """The current time by the clock that stamps the store's chunks (``mtime``), in seconds since the epoch.

        A store whose stamps come from another machine (a bucket: the
        server) has it, so that gc judges chunk ages by that clock, not by
        this machine's, which may be off. Without it, this machine's clock
        is used.
        """


def store_call(what: str, name: str, function: Callable[..., T], *args: Any) -> T:
    """One store operation; foreign exceptions become our StoreError naming the chunk.

    A KeyError from ``get`` means the chunk is absent.
    """
    try:
        return function(*args)
    except SelfEncryptionError:
        raise
    except KeyError:
        if what == "get":
            raise ChunkNotFoundError("chunk not found in the store", name=name) from None
        raise StoreError(f"the store failed to {what} chunk {name}: KeyError") from None
    except Exception as exc:
        hint = ""
        if "thread" in str(exc).lower():  # sqlite3 and many drivers say so
            hint = (
                "; this store seems unable to serve several threads at once: "
                "declare io_concurrency = 1 (CallbackStore(..., concurrency=1)), or pass "
                "store_concurrency=1 (--store-concurrency 1 on the command line)"
            )
        raise StoreError(f"the store failed to {what} chunk {name}: {exc!r}{hint}") from exc
