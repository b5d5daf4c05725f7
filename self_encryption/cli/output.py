"""What the command line prints: the progress bar, sizes, speeds, durations, JSON and messages."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from typing import Any, TextIO

PROGRAM = "self-encryption"
#: Seconds of work before a progress bar appears, and the least time between two redraws.
PROGRESS_DELAY = 1.0
PROGRESS_REDRAW = 0.1
_BAR_WIDTH = 30


class ProgressBar:
    """A one-line progress bar on stderr, shown only on a terminal after a second."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < PROGRESS_DELAY or now - self.last < PROGRESS_REDRAW:
            return
        self.last = now
        if total:
            filled = int(_BAR_WIDTH * done / total)
            bar = f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {100 * done / total:5.1f}%"
        else:
            bar = human_size(done)
        rate = speed(done, now - self.started)
        width = shutil.get_terminal_size((80, 20)).columns
        sys.stderr.write(f"\r{self.label[: max(10, width - 60)]} {bar} {rate} ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def human_size(count: float) -> str:
    """A byte count for people, in binary units: "1 byte", "512 bytes", "1.5 MiB", "1.0 GiB"."""
    if abs(count) < 1024:
        return plural(int(count), "byte")
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if abs(count) < 1024 or unit == "TiB":
            break
    return f"{count:.1f} {unit}"


def speed(count: int, seconds: float) -> str:
    """A rate, or "instant" when the time was too short to measure one."""
    if seconds < 0.01:
        return "instant"
    return f"{human_size(count / seconds).replace(' bytes', ' B').replace(' byte', ' B')}/s"


#: Duration units, as options take them ("90", "30m", "1h", "2d") and as messages show them.
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_text(seconds: float) -> str:
    """A duration in the largest unit that divides it: "1h", "30m", "90s"."""
    for unit in ("d", "h", "m"):
        size = DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def emit_json(out: TextIO, value: Any) -> None:
    """One JSON document: on one line, or indented when a person reads the terminal."""
    out.write(json.dumps(value, indent=None if not sys.stdout.isatty() else 2) + "\n")


def say(message: str) -> None:
    """A line on stderr that is not an error: ``self-encryption: message``."""
    sys.stderr.write(f"{PROGRAM}: {message}\n")


def fail(message: str, code: int, prog: str = PROGRAM) -> int:
    """Report an error on stderr in one line; returns the exit code to end with."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    return code


class _StoreWarnings(logging.StreamHandler):  # type: ignore[type-arg]
    """The library's warnings (a store retrying a silent server, say), one line each on stderr."""


def show_library_warnings() -> None:
    """Print the library's warnings as ``self-encryption: message`` lines on stderr, once set up."""
    logger = logging.getLogger("self_encryption.stores")
    if any(isinstance(handler, _StoreWarnings) for handler in logger.handlers):
        return
    handler = _StoreWarnings(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROGRAM}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
