"""Cut search speed: the plain scalar gear loop against the fast candidate scan.

    python benchmarks/bench_cut.py [--size MiB] [--data random|text|zeros]
                                   [--repeat N] [--threads N] [--json FILE]

Every figure is MB/s of input bytes, on the same bytes in the same run, with
the rounds interleaved (figure 1, 2, ..., then again) and the best round kept,
so the ratios hold on a shared, noisy machine. One-thread figures use the
thread's CPU time, the threaded one wall time. Lines:

  scan scalar     the plain loop over every byte: fp = (fp << 1) + gear[b]
                  and a mask test, compiled -O3 (se_cut_scan, SE_CUT_SCALAR;
                  the same loop as se_find_cut). The baseline of the ratios.
  scan unrolled   the portable 4-stream scan of every byte.
  scan avx2       the AVX2 8-stream scan of every byte (when the CPU has it).
  find_cut loop   today's chunker: se_find_cut once per chunk, default sizes
                  (it skips the first min bytes of every chunk).
  cut_lengths     every cut of the buffer in one call, 1 thread, default
                  sizes, on the scalar and on the auto path (also skips min).
  scan+resolve    candidates of N segments on N threads, then resolve_cuts
                  (how the Cutter searches windows of a few segments).
  cut_points      the public function, 1 worker and N workers: with N, an
                  input of at least two chain segments (64 average chunks,
                  64 MiB at the default sizes) is cut as chains on the pool,
                  a smaller one by scan+resolve.

benchmarks/cut_variants.c compares the scan variants that were tried
(streams, a 64K-entry pair table, AVX2 gathers) without Python.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import self_encryption as se
from self_encryption import _backend


def sample(kind: str, size: int) -> bytes:
    if kind == "random":
        return os.urandom(size)
    if kind == "zeros":
        return bytes(size)
    line = b"line %08d of a text-like benchmark file, with some words repeated\n"
    return b"".join(line % i for i in range(size // len(line) + 1))[:size]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="MiB of data (default 256)")
    parser.add_argument("--data", choices=["random", "text", "zeros"], default="random")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best counts")
    parser.add_argument("--threads", type=int, default=2, help="threads for scan+resolve")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    c = _backend.load_c()
    data = sample(args.data, args.size << 20)
    size = len(data)
    table = c.GearTable(b"")
    sizes = se.DEFAULT_CHUNK_SIZES
    min_size, avg_size, max_size = sizes
    view = memoryview(data)
    expect: list[int] = []

    def find_cut_loop():
        start = 0
        expect.clear()
        while start < size:
            cut = c.find_cut(table, view[start : start + max_size + 1], min_size, avg_size, max_size, True)
            expect.append(cut)
            start += cut

    def scan(path):
        return lambda: c.scan_candidates(table, data, 0, size, avg_size, path=path)

    def lengths(path):
        def run():
            assert c.cut_lengths(table, data, *sizes, True, path=path) == expect

        return run

    pool = ThreadPoolExecutor(args.threads)
    step = -(-size // args.threads)
    segments = [(a, min(a + step, size)) for a in range(0, size, step)]

    def scan_resolve():
        parts = list(pool.map(lambda seg: c.scan_candidates(table, data, seg[0], seg[1], avg_size), segments))
        assert c.resolve_cuts(table, data, parts, *sizes, True) == expect

    cases = {"scan scalar": scan("scalar"), "scan unrolled": scan("unrolled")}
    try:
        c.cut_path("avx2")
        cases["scan avx2"] = scan("avx2")
    except se.InvalidArgumentError:
        pass
    cases["find_cut loop"] = find_cut_loop
    cases["cut_lengths scalar, 1 thread"] = lengths("scalar")
    cases[f"cut_lengths {c.cut_path('auto')}, 1 thread"] = lengths("auto")
    cases[f"scan+resolve, {args.threads} threads"] = scan_resolve

    def public(workers):
        def run():
            assert se.cut_points(data, workers=workers) == list(itertools.accumulate(expect))

        return run

    cases["cut_points, 1 worker"] = public(1)
    cases[f"cut_points, {args.threads} threads"] = public(args.threads)

    find_cut_loop()  # fills expect, which the batch calls are checked against
    assert c.scan_candidates(table, data, 0, size, avg_size, path="scalar") == c.scan_candidates(
        table, data, 0, size, avg_size, path="auto"
    )
    fastest = {name: float("inf") for name in cases}
    for _ in range(args.repeat):
        for name, work in cases.items():
            # One-thread figures count this thread's CPU time, which a busy
            # neighbour cannot inflate by preempting us; threaded ones count
            # wall time.
            clock = time.perf_counter if "threads" in name else time.thread_time
            started = clock()
            work()
            fastest[name] = min(fastest[name], clock() - started)
    pool.shutdown()

    base = fastest["scan scalar"]
    print(
        f"{args.size} MiB of {args.data} data on {cpu_name()}, {os.cpu_count()} CPUs, "
        f"best of {args.repeat}; auto path: {c.cut_path('auto')}; "
        f"sizes {min_size}/{avg_size}/{max_size}, {len(expect)} chunks"
    )
    print(f"{'':<34}{'seconds':>9}{'MB/s':>9}{'x scalar':>10}")
    for name, seconds in fastest.items():
        print(f"{name:<34}{seconds:>9.4f}{size / seconds / 1e6:>9.0f}{base / seconds:>10.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "size": size,
                    "data": args.data,
                    "cpu": cpu_name(),
                    "path": c.cut_path("auto"),
                    "seconds": fastest,
                    "mb_per_s": {k: size / v / 1e6 for k, v in fastest.items()},
                },
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
