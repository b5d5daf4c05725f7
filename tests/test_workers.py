"""Worker pools: how they stop, and what counts as an interrupt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from self_encryption import _workers


def _runtime_error_over(interrupt: BaseException) -> RuntimeError:
    """What a signal raised inside Condition.wait leaves: a RuntimeError whose context is the interrupt."""
    try:
        try:
            raise interrupt
        except BaseException:
            raise RuntimeError("cannot release un-acquired lock") from None
    except RuntimeError as exc:
        return exc


def test_interrupt_behind_finds_the_interrupt_in_the_context_chain():
    interrupt = KeyboardInterrupt()
    assert _workers.interrupt_behind(interrupt) is interrupt
    assert _workers.interrupt_behind(_runtime_error_over(interrupt)) is interrupt
    assert _workers.interrupt_behind(RuntimeError("plain")) is None
    assert _workers.interrupt_behind(None) is None
    leaving = SystemExit(3)
    assert _workers.interrupt_behind(leaving) is leaving
    looped = ValueError("a")
    looped.__context__ = ValueError("b")
    looped.__context__.__context__ = looped
    assert _workers.interrupt_behind(looped) is None


def test_stop_after_a_masked_interrupt_waits_only_the_grace():
    release = threading.Event()
    pool = _workers.make_executor(2)
    pool.submit(release.wait, 30)
    try:
        started = time.monotonic()
        _workers.stop(pool, _runtime_error_over(KeyboardInterrupt()))
        waited = time.monotonic() - started
    finally:
        release.set()
    assert _workers.INTERRUPT_GRACE - 0.5 <= waited < _workers.INTERRUPT_GRACE + 3


def test_cli_reports_a_masked_interrupt_as_the_signal(tmp_path):
    # The command line's exit for SIGTERM when the signal landed inside a
    # lock release: one line and 128 + 15, never a traceback.
    program = textwrap.dedent(
        """
        import signal, sys
        import self_encryption as se
        from self_encryption import cli
        from self_encryption.cli.signals import Terminated

        def decrypt_file(*args, **kwargs):
            try:
                raise Terminated(signal.SIGTERM)
            except BaseException:
                raise RuntimeError("cannot release un-acquired lock")

        se.decrypt_file = decrypt_file
        sys.argv = ["self-encryption", "decrypt", sys.argv[1], "--store", sys.argv[2], "-o", sys.argv[3]]
        cli.run()
        """
    )
    import self_encryption as se

    store = tmp_path / "store"
    root, chunks = se.encrypt(b"some bytes to encrypt" * 100)
    dir_store = se.DirStore(store)
    for chunk in chunks:
        dir_store.put(chunk.name, chunk.content)
    (tmp_path / "f.sedm").write_text(root.to_text() + "\n")
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "f.sedm"), str(store), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 128 + 15, done.stderr
    assert done.stderr == "self-encryption: error: terminated (SIGTERM)\n"
