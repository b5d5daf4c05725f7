"""Worker pools: how they stop, and what counts as an interrupt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

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


class _Stuck:
    """A memory store whose chosen calls hang (a dead server) until released, saying when one started."""

    def __init__(self, store, stuck_names=(), stuck_delete=False) -> None:
        self.store, self.stuck_names, self.stuck_delete = store, set(stuck_names), stuck_delete
        self.entered, self.release = threading.Event(), threading.Event()

    def _hang(self) -> None:
        self.entered.set()
        self.release.wait(30)

    def get(self, name):
        if name in self.stuck_names:
            self._hang()
        return self.store.get(name)

    def has(self, name):
        return self.store.has(name)

    def put(self, name, data):
        self.store.put(name, data)

    def delete(self, name):
        if self.stuck_delete:
            self._hang()
        self.store.delete(name)

    def __iter__(self):
        return iter(self.store)


def _interrupt_when(event: threading.Event) -> None:
    """Ctrl-C (a real SIGINT to this process) once event is set."""

    def wait_then_interrupt() -> None:
        if event.wait(60):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=wait_then_interrupt, daemon=True).start()


def test_an_interrupted_gc_gives_its_stuck_workers_only_the_grace():
    import self_encryption as se

    memory = se.MemoryStore()
    se.encrypt_to_store(os.urandom(50_000), memory, chunk_sizes=(1024, 4096, 16384))
    stuck = _Stuck(memory, stuck_delete=True)
    _interrupt_when(stuck.entered)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            se.collect_garbage(stuck, [], delete=True, grace=0, workers=2)
        waited = time.monotonic() - started
    finally:
        stuck.release.set()
    assert waited < _workers.INTERRUPT_GRACE + 8  # not the 30 s a stuck delete lasts


def test_a_reader_closed_by_an_interrupt_gives_its_read_ahead_only_the_grace():
    import self_encryption as se

    memory = se.MemoryStore()
    data = os.urandom(50_000)
    root = se.encrypt_to_store(data, memory, chunk_sizes=(1024, 4096, 16384))
    level0 = [level for level in se.walk_levels(root, memory)][-1]
    stuck = _Stuck(memory, stuck_names={record.name for record in level0.chunks[2:]})
    first, second = (record.plain_size for record in level0.chunks[:2])
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with se.open(root, stuck, workers=2) as reader:
                assert reader.read(first) == data[:first]
                # A sequential read: the chunks after it are read ahead, and hang.
                assert reader.read(second) == data[first : first + second]
                assert stuck.entered.wait(60)
                raise KeyboardInterrupt
        waited = time.monotonic() - started
    finally:
        stuck.release.set()
    assert waited < _workers.INTERRUPT_GRACE + 8  # not the 30 s a stuck read lasts


def _interrupt_from_another_thread_once_asleep(waiting: threading.Event) -> threading.Thread:
    """A thread that, once the main thread is asleep (after waiting is set), takes a SIGINT itself."""
    main = threading.main_thread().native_id

    def asleep() -> bool:
        with open(f"/proc/self/task/{main}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "S"

    def run() -> None:
        waiting.wait(60)
        calm = 0
        while calm < 5:  # asleep at five looks in a row: in the wait, not passing through
            calm = calm + 1 if asleep() else 0
            time.sleep(0.02)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc")
def test_a_signal_taken_by_another_thread_still_interrupts_a_wait_for_a_worker():
    # The kernel may hand a process's SIGINT to any thread; the main thread, waiting
    # for a job stuck on a dead store, must still take it within a moment.
    from concurrent.futures import ThreadPoolExecutor

    release, waiting = threading.Event(), threading.Event()
    pool = ThreadPoolExecutor(1)
    try:
        stuck = pool.submit(release.wait, 60)
        _interrupt_from_another_thread_once_asleep(waiting)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            waiting.set()
            _workers.result(stuck)
        assert time.monotonic() - started < 30  # not the 60 s the job lasts
    finally:
        release.set()
        pool.shutdown()
