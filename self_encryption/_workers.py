"""Worker pools: threads for workers > 1, the caller's own thread for workers = 1.

The C core, zstd and hashlib release the GIL, so threads run the hot path in
parallel; results always come back in submission order.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from ._errors import InvalidArgumentError, SelfEncryptionError


def check_workers(workers: int | None) -> int:
    """The worker count to use: None means one per CPU core."""
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be a positive integer or None, not {workers!r}")
    return workers


T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item
E = TypeVar("E", bound="Executor")


class Executor(Protocol):
    """What the engine asks of a pool: ThreadPoolExecutor and InlineExecutor both are one."""

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


class InlineExecutor:
    """An executor that runs each job at once in the calling thread."""

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed to whoever asks for the result
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to stop."""


def in_flight(workers: int) -> int:
    """How many chunks may be in flight: enough to keep every worker busy."""
    return 2 * workers + 2 if workers > 1 else 1


def make_executor(workers: int) -> InlineExecutor | ThreadPoolExecutor:
    if workers == 1:
        return InlineExecutor()
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="self-encryption")


def make_io_executor(concurrency: int) -> InlineExecutor | ThreadPoolExecutor:
    """The pool that makes store requests: concurrency threads, or the caller's thread for 1.

    It is apart from the workers' pool because a request mostly waits on
    the network: a store far away needs many requests in flight, not many
    cores.
    """
    if concurrency == 1:
        return InlineExecutor()
    return ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="self-encryption-io")


#: Bytes of chunk content that may be on their way to or from a store at once, by default:
#: enough for 32 requests of an average chunk, little next to a machine's memory.
MAX_IO_BYTES = 64 << 20


class ByteBudget:
    """A cap on bytes in flight: ``take`` waits until there is room, ``give`` makes room.

    One item always fits when nothing is in flight, so a chunk larger than
    the cap still moves (alone). ``close`` wakes and fails every waiter,
    so a pool stopped behind an error never leaves a thread waiting here.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._closed = False
        self._changed = threading.Condition()

    def take(self, size: int) -> None:
        with self._changed:
            while self.held and self.held + size > self.limit:
                if self._closed:
                    raise SelfEncryptionError("the work was stopped")
                self._changed.wait(0.5)  # woken by give() or close(); the timeout is a safety net
            if self._closed:
                raise SelfEncryptionError("the work was stopped")
            self.held += size

    def give(self, size: int) -> None:
        with self._changed:
            self.held -= size
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


#: How often a wait for a worker wakes to let a pending signal in (seconds).
_WAKE = 0.25


def result(future: Future[T]) -> T:
    """future.result(), waking now and then, so Ctrl-C is taken within a moment.

    A signal sent to the process may be delivered to any of its threads;
    the main thread, asleep on a lock with no timeout, would only see it
    when the job ends (never, for a call stuck on a dead server).
    """
    while not wait([future], _WAKE).done:
        pass
    return future.result()


def ordered_map(
    executor: Executor, function: Callable[[I], T], items: Iterable[I], window: int
) -> Iterator[T]:
    """function(item) for each item, at most ``window`` in flight, in order."""
    pending: deque[Future[T]] = deque()
    try:
        for item in items:
            pending.append(executor.submit(function, item))
            if len(pending) >= window:
                yield result(pending.popleft())
        while pending:
            yield result(pending.popleft())
    finally:
        for future in pending:
            future.cancel()


#: After an interrupt, how long workers get to finish the store call they are in
#: (and clean up after it) before the command gives up on them.
INTERRUPT_GRACE = 2.0


def interrupt_behind(error: BaseException | None) -> BaseException | None:
    """The interrupt an error is, or was raised while handling; None if neither.

    An interrupt is anything raised that is not an Exception: Ctrl-C's
    KeyboardInterrupt (and the signals the command line turns into one),
    SystemExit. A signal handler that raises while a lock is being released
    (inside ``Condition.wait``, as ``Future.result`` does) leaves a
    RuntimeError ("cannot release un-acquired lock") on top of the
    interrupt. That is still an interrupt, and is treated as one.
    """
    for _ in range(16):  # a context chain is short; never loop on a cycle
        if error is None or not isinstance(error, Exception):
            return error
        error = error.__context__
    return None


def stop(executor: Executor, error: BaseException | None = None) -> None:
    """Shut a pool down: drop queued jobs and wait for the running ones.

    This is the one way every pool the package starts is shut down
    (through :func:`running` where the pool lives for one block), so that
    every command gives its workers the same grace after an interrupt.

    After an interrupt (a KeyboardInterrupt, or a signal made into one) the
    running jobs get INTERRUPT_GRACE seconds: long enough for a normal
    store call to finish and remove its temporary file, short enough that a
    call stuck on a dead server does not hold the command.
    """
    if interrupt_behind(error) is None:
        executor.shutdown(wait=True, cancel_futures=True)
        return
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + INTERRUPT_GRACE
    for thread in list(getattr(executor, "_threads", ())):  # ThreadPoolExecutor's workers
        thread.join(max(0.0, deadline - time.monotonic()))


@contextlib.contextmanager
def running(executor: E) -> Iterator[E]:
    """Use a pool for one block; leaving the block stops it (:func:`stop`).

    Whatever leaves the block decides how: an interrupt gives the running
    jobs INTERRUPT_GRACE seconds, anything else waits for them.
    """
    error: BaseException | None = None
    try:
        yield executor
    except BaseException as exc:
        error = exc
        raise
    finally:
        stop(executor, error)


def check_concurrency(concurrency: int | None) -> int | None:
    """A store concurrency as given: None (the store's own), or a positive int."""
    if concurrency is None:
        return None
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(
            f"store_concurrency must be a positive integer or None, not {concurrency!r}"
        )
    return concurrency
