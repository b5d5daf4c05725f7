"""Serving a mount until it is unmounted, and unmounting on a signal without waiting for a hung store.

libfuse's own signal handling ends its loop by cancelling and joining its
worker threads, which never returns while one of them waits in Python for
a store that does not answer. So the signals are taken here instead: they
are blocked in every thread (the workers libfuse starts inherit the mask)
and one watcher thread waits for them. On SIGINT, SIGTERM or SIGHUP it
detaches the mount lazily, which ends the loop once no request is in
flight; if a request is still stuck after a grace period, the process
leaves at once, and closing /dev/fuse fails that request in the kernel.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from . import _fuse

log = logging.getLogger("self_encryption.mount")

#: Seconds a signalled unmount waits for requests still in flight before the process leaves.
GRACE_SECONDS = 2.0
_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def serve_until_unmounted(serve: Callable[[], None], mountpoint: str, *, on_exit: Callable[[], None]) -> None:
    """Run ``serve`` (which returns when the mount goes away) with signals turned into a clean unmount.

    ``on_exit`` runs once the loop has ended or the grace period is over (it
    saves what is open for writing, and must do so only once); a stuck
    process then leaves with exit status 0.
    """
    if threading.current_thread() is not threading.main_thread():
        try:  # signals belong to the main thread: unmount with unmount() instead
            serve()
        finally:
            on_exit()
        return
    finished = threading.Event()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    watcher = threading.Thread(
        target=_watch, args=(mountpoint, finished, on_exit), name="self-encryption-mount-signals", daemon=True
    )
    watcher.start()
    try:
        serve()
    finally:
        finished.set()
        # A second Ctrl-C during the unmount is part of the same request: drop it
        # rather than let it interrupt the saving below.
        while signal.sigtimedwait(_SIGNALS, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    on_exit()


def _watch(mountpoint: str, finished: threading.Event, on_exit: Callable[[], None]) -> None:
    while not finished.is_set():
        received = signal.sigtimedwait(_SIGNALS, 0.5)
        # A tracer attaching (py-spy, gdb) can wake the wait with no signal of ours in it.
        if received is None or received.si_signo not in _SIGNALS or finished.is_set():
            continue
        log.info("%s: unmounting (%s)", mountpoint, signal.Signals(received.si_signo).name)
        if not _fuse.unmount(mountpoint):
            log.warning("%s: %s -u failed", mountpoint, _fuse.UNMOUNT_HELPER)
        if finished.wait(GRACE_SECONDS):
            return
        # A request is stuck in a store call: save what can be saved and leave; the
        # kernel fails the stuck request when /dev/fuse closes with the process.
        log.warning("%s: a request still waits on the store; leaving without it", mountpoint)
        saver = threading.Thread(target=on_exit, name="self-encryption-mount-save", daemon=True)
        saver.start()
        saver.join(GRACE_SECONDS)  # saving may need the same store: never wait for it forever
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
