"""SIGTERM and SIGHUP stop a command the way Ctrl-C does, with the same cleanup."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from .output import fail


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be.

    Every cleanup that an interrupt runs (stopping workers, removing
    temporary files and partial outputs) then runs for these signals too.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


SIGNAL_MESSAGES = {
    int(getattr(signal, name)): message
    for name, message in (("SIGTERM", "terminated (SIGTERM)"), ("SIGHUP", "hung up (SIGHUP)"))
    if hasattr(signal, name)
}


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into Terminated in the main thread.

    The first one raises; the default action is put back at once, so a
    second signal of either kind ends the process without waiting for the
    cleanup. Only the main thread can install handlers: elsewhere nothing
    changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        for number in SIGNAL_MESSAGES:
            signal.signal(number, signal.SIG_DFL)
        raise Terminated(signum)

    for number in SIGNAL_MESSAGES:
        signal.signal(number, handler)


def interrupted(exc: BaseException) -> int:
    """Report an interrupt (Ctrl-C, or a signal made into Terminated); returns 128 + its number."""
    signum = getattr(exc, "signum", signal.SIGINT)
    return fail(SIGNAL_MESSAGES.get(signum, "interrupted"), 128 + signum)


def interrupt_behind(exc: RuntimeError) -> KeyboardInterrupt | None:
    """The interrupt behind a RuntimeError, if there is one.

    A signal that arrives while a lock is being released (a wait for a
    worker) surfaces as "cannot release un-acquired lock" with the interrupt
    as its context.
    """
    context: BaseException | None = exc
    for _ in range(16):
        if context is None or isinstance(context, KeyboardInterrupt):
            break
        context = context.__context__
    return context if isinstance(context, KeyboardInterrupt) else None
