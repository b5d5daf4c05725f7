"""How encryption grows with cores: cut search and encrypt with 1 and 2 workers.

    python benchmarks/bench_scaling.py [--size MiB] [--repeat N]

In one run, on the same bytes (random, and text-like), with rounds
interleaved and the best kept (wall time throughout):

* with the C backend, the candidate scan of every byte on one thread: the
  plain scalar gear loop (the baseline of the last column) and the path
  chosen for this CPU (AVX2 where it has it);
* se.cut_points with 1 and 2 workers (the cut search alone);
* se.encrypt_to_store into a null store with 1 and 2 workers;
* the serial fraction of encrypt: CPU time of the calling thread with 2
  workers (cutting, resolving, handing out chunks) over the CPU time of the
  whole 1-worker run (all the work), and the speed-up Amdahl's law then
  predicts at 8, 16 and 64 cores.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import self_encryption as se
from self_encryption import _chunking

MiB = 1 << 20


class NullStore:
    """Takes every chunk and keeps none: the store costs nothing."""

    def has(self, name: str) -> bool:
        return False

    def put(self, name: str, data) -> None:
        pass


def sample(kind: str, size: int) -> bytes:
    if kind == "random":
        return os.urandom(size)
    line = b"line %08d of a text-like benchmark file, with some words repeated\n"
    return b"".join(line % i for i in range(size // len(line) + 1))[:size]


def timed(work) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the calling thread) of work()."""
    wall, cpu = time.perf_counter(), time.thread_time()
    work()
    return time.perf_counter() - wall, time.thread_time() - cpu


def amdahl(serial: float, cores: int) -> float:
    return 1 / (serial + (1 - serial) / cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="MiB per input (default 512)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best counts")
    args = parser.parse_args()
    size = args.size * MiB
    print(
        f"backend {se.backend}, cut path {se._backend.active.cut_path() if se.backend == 'c' else 'python'}, "
        f"{os.cpu_count()} cores, {args.size} MiB per input, best of {args.repeat}"
    )
    print(f"{'data':6} {'what':22} {'MB/s':>8} {'x 1 worker':>11}{'x scan scalar':>14}")
    for kind in ("random", "text"):
        data = sample(kind, size)
        best: dict[str, tuple[float, float]] = {}
        runs = {}
        if se.backend == "c":
            backend = se._backend.active
            table = _chunking.gear_table(backend, b"")
            avg = se.DEFAULT_CHUNK_SIZES[1]
            for path in dict.fromkeys(("scalar", backend.cut_path())):
                runs[f"scan {path}"] = functools.partial(
                    backend.scan_candidates, table, data, 0, size, avg, path=path
                )
        runs |= {
            "cut_points 1 worker": lambda: se.cut_points(data, workers=1),
            "cut_points 2 workers": lambda: se.cut_points(data, workers=2),
            "encrypt 1 worker": lambda: se.encrypt_to_store(data, NullStore(), workers=1),
            "encrypt 2 workers": lambda: se.encrypt_to_store(data, NullStore(), workers=2),
        }
        for _ in range(args.repeat):
            for label, work in runs.items():
                wall, cpu = timed(work)
                if label not in best or wall < best[label][0]:
                    best[label] = (wall, cpu)
        scalar = best.get("scan scalar", (0.0, 0.0))[0]
        for label, (wall, _) in best.items():
            base = best.get(label.replace("2 workers", "1 worker"), (0.0, 0.0))[0]
            ratio = f"{base / wall:11.2f}" if "worker" in label else f"{'':11}"
            versus = f"{scalar / wall:14.2f}" if scalar and not label.startswith("encrypt") else ""
            print(f"{kind:6} {label:22} {size / wall / 1e6:8.0f} {ratio}{versus}")
        whole = best["encrypt 1 worker"][1]  # every stage ran on the calling thread
        serial = min(1.0, best["encrypt 2 workers"][1] / whole)
        projected = ", ".join(f"{cores} cores {amdahl(serial, cores):.1f}x" for cores in (8, 16, 64))
        print(f"{kind:6} serial fraction of encrypt {serial:.2f}; Amdahl: {projected}")


if __name__ == "__main__":
    main()
