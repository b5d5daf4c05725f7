"""StoreAccess: the one object through which the engine reaches a store.

Whatever a caller passes as a store (one of ours, any object with the
:class:`~self_encryption.stores.protocol.ChunkStore` methods, a mapping of
name to bytes, or the EncryptedChunks that encrypt() returned) is wrapped
once, at the public entry point, by :func:`access`. What the store can do
is found out there, once; every store call the engine makes then goes
through this object, which translates the store's failures into our errors
(:func:`~self_encryption.stores.protocol.store_call`) and falls back to
something safe where the store lacks an optional method.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from .._buffers import Buffer
from .._errors import (
    ChunkError,
    ChunkIntegrityError,
    ChunkNotFoundError,
    ChunkUnreadableError,
    InvalidArgumentError,
    SelfEncryptionError,
    StoreError,
)
from .._workers import (
    MAX_IO_BYTES,
    InlineExecutor,
    check_concurrency,
    in_flight,
    make_executor,
    make_io_executor,
    ordered_map,
    running,
)
from .protocol import ChunkEntry, store_call

if TYPE_CHECKING:
    from .locks import LockSpace

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item

#: Chunks asked of a store's get_many() at once, at the least.
BATCH = 8


def windows(count: int, size: int) -> Iterator[range]:
    """range(count) in consecutive runs of size, each run one get_many() call."""
    for start in range(0, count, size):
        yield range(start, min(count, start + size))


def _method(store: object, name: str) -> Callable[..., Any] | None:
    method = getattr(store, name, None)
    return method if callable(method) else None


def _declared_concurrency(store: object) -> int | None:
    """The store's ``io_concurrency`` (an int, or a method returning one); None if it declares none."""
    declared = getattr(store, "io_concurrency", None)
    if callable(declared):
        declared = declared()
    if declared is None:
        return None
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
        raise InvalidArgumentError(f"the store's io_concurrency must be a positive int, not {declared!r}")
    return declared


class StoreAccess:
    """Every store call the engine makes, over one store; see :func:`access`."""

    def __init__(self, store: object, get: Callable[[str], object] | None = None) -> None:
        """Over store; with get, over a plain mapping read with get alone (no optional methods)."""
        self.store = store
        self._get = get if get is not None else _method(store, "get")
        if get is not None:
            store = None  # a mapping's own methods (a dict's get, say) are not a store's
        self._get_at_most = _method(store, "get_at_most")
        self._fetch_at_most = _method(store, "fetch_at_most")
        self._get_many = _method(store, "get_many")
        self._get_many_at_most = _method(store, "get_many_at_most")
        self._side_by_side = getattr(store, "gets_side_by_side", False) is True
        self._has = _method(store, "has")
        self._put = _method(store, "put")
        self._delete = _method(store, "delete")
        self._size = _method(store, "size")
        self._mtime = _method(store, "mtime")
        self._touch = _method(store, "touch")
        self._scan = _method(store, "scan")
        self._quarantine = _method(store, "quarantine")
        self._remove_temporaries = _method(store, "remove_temporaries")
        self._writing = _method(store, "writing")
        self._begin_writing = _method(store, "begin_writing")
        self._collecting = _method(store, "collecting")
        self._lock_space = _method(store, "lock_space")
        self._now = _method(store, "now")
        self._put_if_absent = _method(store, "put_if_absent")
        self._skipped_folders = _method(store, "skipped_folders")
        self._unreadable_as: type[ChunkError] | None = None
        #: Store requests at once, as the store declares it (None: as many as the workers).
        self.declared_concurrency = _declared_concurrency(store)
        #: Bytes of chunk content in flight to or from the store at once, at the most.
        self.max_io_bytes = MAX_IO_BYTES
        self._gate = self._make_gate(self.declared_concurrency)

    @staticmethod
    def _make_gate(concurrency: int | None) -> threading.BoundedSemaphore | None:
        # Whatever pool a call comes from, no more than the declared number run at once:
        # a store that is not thread-safe (1) sees one call at a time.
        return threading.BoundedSemaphore(concurrency) if concurrency is not None else None

    def tuned(self, concurrency: int | None = None, max_io_bytes: int | None = None) -> StoreAccess:
        """This access with another request concurrency and/or cap on bytes in flight (None: unchanged)."""
        concurrency = check_concurrency(concurrency)
        if max_io_bytes is not None and (
            isinstance(max_io_bytes, bool) or not isinstance(max_io_bytes, int) or max_io_bytes < 1
        ):
            raise InvalidArgumentError(f"max_io_bytes must be a positive int, not {max_io_bytes!r}")
        if concurrency is None and max_io_bytes is None:
            return self
        tuned = copy.copy(self)
        if concurrency is not None:
            tuned.declared_concurrency = concurrency
            tuned._gate = self._make_gate(concurrency)
        if max_io_bytes is not None:
            tuned.max_io_bytes = max_io_bytes
        return tuned

    def concurrency(self, workers: int) -> int:
        """How many store requests to keep in flight: the store's declared number, else workers."""
        return self.declared_concurrency if self.declared_concurrency is not None else workers

    def io_pool(self, workers: int) -> InlineExecutor | ThreadPoolExecutor:
        """A new pool for this store's requests (stop it with :func:`~self_encryption._workers.running`)."""
        return make_io_executor(self.concurrency(workers))

    def _call(self, what: str, name: str, function: Callable[..., T], *args: Any) -> T:
        """store_call, within the store's declared concurrency."""
        if self._gate is None:
            return store_call(what, name, function, *args)
        with self._gate:
            return store_call(what, name, function, *args)

    def __repr__(self) -> str:
        return f"StoreAccess({self.store!r})"

    # -- what the store can do ----------------------------------------------------

    @property
    def batched(self) -> bool:
        """Whether the store gets several chunks in one call (``get_many``)."""
        return self._get_many is not None

    @property
    def windows_save_requests(self) -> bool:
        """Whether a window of chunks costs fewer requests than its chunks asked for one by one.

        True for a store with ``get_many``, unless it says its ``get_many``
        is only gets side by side (``gets_side_by_side``, as S3): a reader
        with a request pool then asks for each chunk on that pool.
        """
        return self._get_many is not None and not self._side_by_side

    @property
    def tells_age(self) -> bool:
        """Whether the store knows when a chunk was stored (``mtime``)."""
        return self._mtime is not None

    def require(self, *methods: str, purpose: str = "") -> None:
        """InvalidArgumentError unless the store has each of methods ("get", "put", "has")."""
        held = {"get": self._get, "put": self._put, "has": self._has}
        for method in methods:
            if held[method] is None:
                raise InvalidArgumentError(purpose or f"store has no {method}() method")

    def unreadable_as_damaged(self) -> StoreAccess:
        """This access, where a chunk the store fails to read (a StoreError from ``get``) is damaged.

        It is then a ChunkIntegrityError naming the chunk. Windows
        (``get_window``) are left as they are: a window that fails is read
        again one chunk at a time.
        """
        return self._reading_unreadable_as(ChunkIntegrityError)

    def naming_unreadable(self) -> StoreAccess:
        """This access, where a chunk the store fails to read is a ChunkUnreadableError naming it.

        A read that failed (an I/O error, a StoreError from ``get``) is
        then told apart from a missing or corrupt chunk, and placed in the
        data map like them. Windows are left as they are (see above).
        """
        return self._reading_unreadable_as(ChunkUnreadableError)

    def one_at_a_time(self) -> StoreAccess:
        """This access without ``get_many``: each chunk read by itself, so that a failure names it."""
        single = copy.copy(self)
        single._get_many = None
        return single

    def _reading_unreadable_as(self, error: type[ChunkError]) -> StoreAccess:
        changed = copy.copy(self)
        changed._unreadable_as = error
        return changed

    # -- reading ------------------------------------------------------------------

    def get(self, name: str, size: int | None = None, *, checked_by_caller: bool = False) -> object:
        """The content under name, as the store returns it; ChunkNotFoundError if absent.

        With ``size`` (what the data map says is stored), a store that can
        (``get_at_most``) reads no more than size + 1 bytes of it. With
        ``checked_by_caller`` (a reader that opens the chunk, which checks
        it against its name), a store whose reads check (``fetch_at_most``)
        is read without its own check, so that each chunk is hashed once.
        """
        if self._unreadable_as is None:
            return self._get_one(name, size, checked_by_caller)
        try:
            return self._get_one(name, size, checked_by_caller)
        except StoreError as exc:
            if isinstance(exc, ChunkError):
                raise
            raise self._unreadable_as(f"unreadable: {exc}", name=name) from exc

    def _get_one(self, name: str, size: int | None, checked_by_caller: bool = False) -> object:
        if checked_by_caller and self._fetch_at_most is not None and size is not None:
            content = self._call("get", name, self._fetch_at_most, name, size + 1)
        elif self._get_at_most is not None and size is not None:
            content = self._call("get", name, self._get_at_most, name, size + 1)
        elif self._get is not None:
            content = self._call("get", name, self._get, name)
        else:
            raise StoreError(f"the store cannot be read (it has no get method) to get chunk {name}")
        if content is None:
            raise ChunkNotFoundError("chunk not found in the store", name=name)
        return content

    def get_window(self, names: Sequence[str], sizes: Mapping[str, int] | None = None) -> dict[str, object]:
        """The chunks among names that the store holds, in one ``get_many`` call; absent ones are left out.

        With ``sizes`` (what the data map says each is stored as), a store
        that can (``get_many_at_most``) reads no more than size + 1 bytes of
        each, as :meth:`get` does. Looking a name up in what get_many returned counts as part of the
        store's call: a lookup that fails is a StoreError naming the chunk
        (a KeyError, as from ``get``, says the chunk is absent). A KeyError
        from get_many itself names the chunk it carries if that is one of
        the window's, else the window.
        """
        assert self._get_many is not None, "get_window needs a store with get_many (see batched)"
        wanted = list(dict.fromkeys(names))
        label = wanted[0] if len(wanted) == 1 else f"{wanted[0]} and others"
        if self._get_many_at_most is not None and sizes is not None:
            limits = {name: sizes[name] + 1 for name in wanted}
            found = self._call("get", label, _get_many, self._get_many_at_most, limits)
        else:
            found = self._call("get", label, _get_many, self._get_many, wanted)
        if not isinstance(found, Mapping):
            raise StoreError(f"the store's get_many returned {type(found).__name__}, not a mapping")
        window: dict[str, object] = {}
        for name in wanted:
            content = self._call("get", name, _look_up, found, name)
            if content is not None:
                window[name] = content
        return window

    def is_sound(self, name: str) -> bool:
        """Whether the store gives back content whose SHA-256 is name.

        A chunk that is absent, fails its store's own check or cannot be read
        (a StoreError) is not sound.
        """
        try:
            content = self.get(name)
        except (ChunkNotFoundError, ChunkIntegrityError, StoreError):
            return False
        try:
            return hashlib.sha256(content).hexdigest() == name  # type: ignore[arg-type]  # checked here
        except TypeError:
            return False

    def has(self, name: str, size: int | None = None) -> bool:
        """Whether the store holds name (by ``has``, else by reading at most size + 1 bytes of it)."""
        if self._has is not None:
            return bool(self._call("check", name, self._has, name))
        try:
            self.get(name, size)
        except ChunkNotFoundError:
            return False
        return True

    def size(self, name: str) -> int | None:
        """Bytes stored under name (by ``size``, else by reading it); None if it is absent."""
        try:
            if self._size is not None:
                return int(self._call("check", name, self._size, name))
            return len(self.get(name))  # type: ignore[arg-type]  # what the store returned
        except ChunkNotFoundError:
            return None

    def mtime(self, name: str) -> float | None:
        """When name was stored or last refreshed; None if it is absent.

        Only for a store that ``tells_age``.
        """
        assert self._mtime is not None, "mtime needs a store that tells_age"
        try:
            stamp: float = self._call("check", name, self._mtime, name)
        except ChunkNotFoundError:
            return None
        return stamp

    def entries(self) -> Iterator[ChunkEntry]:
        """(name, size, mtime) of every chunk: from one listing where the store can, else name by name.

        Sizes and times left as None are looked up later (:meth:`size`), only
        for the chunks that need them.
        """
        if self._scan is not None:
            yield from self._scan()
            return
        for name in self.store:  # type: ignore[attr-defined]  # every store lists its names
            yield ChunkEntry(name, None, None)

    # -- writing ------------------------------------------------------------------

    def put(self, name: str, content: Buffer) -> None:
        self._call("put", name, self._require(self._put, "put", name), name, content)

    def store_chunk(self, name: str, content: Buffer, *, check: bool = False) -> tuple[int, bool]:
        """Make sure the store holds content under name: (bytes written, whether a damaged copy was replaced).

        A chunk already present has its modification time refreshed (``touch``)
        before it counts as stored, so that a garbage collection judging age
        sees it as new; if it vanished meanwhile, it is put. A store with
        ``put_if_absent`` does all that in one call (one request, where it
        can, for a new chunk). With ``check``,
        a present chunk is read back and checked against its name first, and a
        damaged or unreadable one is set aside (``quarantine``) and replaced.
        """
        if not check and self._put_if_absent is not None:
            written = self._call("put", name, self._put_if_absent, name, content)
            return (memoryview(content).nbytes if written else 0), False
        if self.has(name):
            if check and not self.is_sound(name):
                self.set_aside(name)
                self.put(name, content)
                return memoryview(content).nbytes, True
            if self._touch is None or self._call("touch", name, self._touch, name):
                return 0, False
        self.put(name, content)
        return memoryview(content).nbytes, False

    def put_if_absent(self, name: str, content: Buffer) -> int:
        """Put content unless the store has it (refreshing it then); returns the bytes written."""
        return self.store_chunk(name, content)[0]

    def delete(self, name: str) -> None:
        self._call("delete", name, self._require(self._delete, "delete", name), name)

    def set_aside(self, name: str) -> str:
        """Move a damaged chunk out of the way (``quarantine``), or delete it; says what was done."""
        if self._quarantine is not None:
            return str(self._call("quarantine", name, self._quarantine, name))
        if self._delete is None:
            raise StoreError(
                f"cannot set damaged chunk {name} aside: the store can neither quarantine nor delete it"
            )
        self.delete(name)
        return "deleted"

    def skipped(self) -> tuple[str, ...]:
        """What the store's listing leaves out and never changes (a folder store's linked fan-out folders)."""
        if self._skipped_folders is None:
            return ()
        return tuple(str(path) for path in self._skipped_folders())

    def remove_temporaries(self, older_than: float, *, delete: bool) -> int:
        """The store's leftover temporaries older than older_than seconds, removed (or counted); 0 if it has none."""
        if self._remove_temporaries is None:
            return 0
        return int(self._remove_temporaries(older_than, delete=delete))

    # -- concurrency --------------------------------------------------------------

    def each(self, call: Callable[[I], T], items: Sequence[I], workers: int) -> list[T]:
        """call(item) for every item, on workers threads at once (a store call each), in order.

        The pool is stopped as every pool of the package is: after an
        interrupt, calls stuck on a dead store get the interrupt grace.
        """
        with running(make_executor(workers)) as executor:
            return list(ordered_map(executor, call, items, in_flight(workers)))

    # -- locks --------------------------------------------------------------------

    def writing(self, *, early: bool = False) -> AbstractContextManager[Any]:
        """The store's shared writer lock (``store.writing()``), or nothing if it has none.

        With ``early``, ``store.begin_writing()`` where the store has it: the
        lock is taken beside the block's first work, and the store's puts
        and refreshes wait for it.
        """
        take = self._begin_writing if early and self._begin_writing is not None else self._writing
        held: AbstractContextManager[Any] = take() if take is not None else contextlib.nullcontext()
        return held

    @contextlib.contextmanager
    def collecting(self, timeout: float) -> Iterator[tuple[str, ...]]:
        """The store's exclusive collector lock (``store.collecting(timeout)``), or nothing.

        Yields what the store says of the stale locks it removed on its way
        in (the ``removed`` locks of what our stores' ``collecting`` yields):
        one line each, naming the holder and its age.
        """
        if self._collecting is None:
            yield ()
            return
        with self._collecting(timeout) as held:
            removed = getattr(held, "removed", None)
            yield tuple(str(lock.describe()) for lock in removed) if isinstance(removed, list) else ()

    def lock_space(self) -> LockSpace:
        """Where the store keeps its lock objects (``lock_space``); InvalidArgumentError if it has none."""
        if self._lock_space is None:
            raise InvalidArgumentError(f"{type(self.store).__name__} has no locks")
        space: LockSpace = store_call("check", "locks", self._lock_space)
        return space

    def clock(self) -> Callable[[], float]:
        """The clock that stamps the store's chunks: the store's ``now()`` where it has one, else this machine's.

        The store is asked once; its offset from this machine's clock then
        holds for the caller's run, so chunk ages are judged by the clock
        that stamped them (a bucket: the server's), and a machine whose clock
        is off neither deletes young chunks nor keeps old ones.
        """
        if self._now is None:
            return time.time
        offset = float(store_call("check", "clock", self._now)) - time.time()
        return lambda: time.time() + offset

    def _require(self, method: Callable[..., Any] | None, what: str, name: str) -> Callable[..., Any]:
        if method is None:
            raise StoreError(f"the store cannot {what} chunk {name}: it has no {what} method")
        return method


def _get_many(get_many: Callable[[list[str]], object], wanted: list[str]) -> object:
    """get_many(wanted), where a KeyError carrying one of the names says that chunk is absent."""
    try:
        return get_many(wanted)
    except KeyError as exc:
        if isinstance(exc, SelfEncryptionError) or len(exc.args) != 1:
            raise
        absent = exc.args[0]
        if not isinstance(absent, str) or absent not in wanted:
            raise
        raise ChunkNotFoundError("chunk not found in the store", name=absent) from None


def _look_up(found: Mapping[str, object], name: str) -> object:
    return found.get(name)


def access(store: object, *, needs: tuple[str, ...] = (), purpose: str = "") -> StoreAccess:
    """The StoreAccess over what a caller passed, made once at the public entry point.

    For reading, ``store`` may be a store, a mapping of name to bytes,
    EncryptedChunks, or a plain function ``get(name) -> bytes`` (read-only;
    a KeyError or None from it says the chunk is absent). With ``needs`` (writers: "put", "has"; "get" to read
    back), it must be a store with those methods, else InvalidArgumentError
    (with ``purpose`` as its message, when given).
    """
    if isinstance(store, StoreAccess):
        wrapped = store
    elif needs:
        wrapped = StoreAccess(store)
    elif isinstance(store, Mapping):
        wrapped = StoreAccess(store, get=store.__getitem__)
    elif _method(store, "get") is not None:
        wrapped = StoreAccess(store)
    elif callable(store):  # a plain get(name) -> bytes function, as upstream's callers pass
        wrapped = StoreAccess(store, get=store)
    else:
        try:
            mapping = {chunk.name: chunk.content for chunk in store}  # type: ignore[attr-defined]
        except (TypeError, AttributeError):
            raise InvalidArgumentError(
                "chunks must be a chunk store, a mapping of name to bytes, a get(name) -> bytes "
                "function, or an iterable of EncryptedChunk"
            ) from None
        wrapped = StoreAccess(mapping, get=mapping.__getitem__)
    wrapped.require(*needs, purpose=purpose)
    return wrapped


def writer_lock(store: object) -> AbstractContextManager[Any]:
    """The store's shared writer lock, as a context manager (a no-op for a store without one).

    Hold it from the moment chunks are stored until the data map that names
    them is saved wherever you keep maps (a file, a database row): a garbage
    collection of the store waits for it, so it cannot delete chunks that
    only a map not yet saved refers to. Encrypting and editing take it
    themselves while they store; this covers the step after, when an
    application saves the map itself::

        with se.writer_lock(store):
            root = se.encrypt_to_store(data, store)
            database.save(name, root.to_text())
    """
    return access(store).writing()
