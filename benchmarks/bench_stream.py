"""Streaming throughput, parallel speed-up, peak memory and random-read latency.

    python benchmarks/bench_stream.py [--quick] [--json FILE] [--scratch DIR]

Everything is measured in this run, on this machine, so the ratios hold
however noisy the machine is:

* encrypt and decrypt throughput from 1 byte to 1 GiB, random and text-like
  data, workers=1 and workers=2, to a null store, a MemoryStore and a DirStore;
* the single-core limit on the same bytes: the bare stages added up (cut
  search over every byte, zstd at the same level, SHA-256 twice, AES-256-CTR
  twice; for decryption SHA-256 once, AES-256-CTR twice, zstd decompression)
  and our throughput as a ratio of it;
* peak RSS of encrypt_file and decrypt_file of a 4 GiB file (fresh processes);
* latency of 4 KiB reads at random offsets of a 1 GiB file in a DirStore,
  with the number of chunks each read fetched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import self_encryption as se

from stages import best, decrypt_limit, encrypt_limit, stage_times

MiB = 1 << 20
GiB = 1 << 30


class NullStore:
    """Keeps nothing: measures the pipeline without storage costs."""

    def has(self, name):
        return False

    def put(self, name, data):
        pass


class CountingDirStore(se.DirStore):
    def __init__(self, path):
        super().__init__(path, fsync=False)
        self.gets = 0

    def get_at_most(self, name, limit):
        """Every read of a chunk comes here (get() too): count them."""
        self.gets += 1
        return super().get_at_most(name, limit)


def sample(kind: str, size: int) -> bytes:
    if kind == "random":
        return os.urandom(size)
    line = b"line %09d of a text-like benchmark file, words repeat often\n"
    return b"".join(line % i for i in range(size // len(line) + 1))[:size]


class Sink:
    """A writable file that keeps nothing."""

    def write(self, data) -> int:
        return len(data)


def throughput_table(sizes, kinds, workers_list, args) -> list[dict]:
    rows = []
    for kind in kinds:
        for size in sizes:
            data = sample(kind, size)
            limits = stage_times(data) if size >= 16 * MiB else None
            repeat = 3 if size <= 64 * MiB else 1
            for workers in workers_list:
                stores = ["null", "memory", "dir"] if size in args.store_sizes else ["null"]
                for store_kind in stores:
                    row = measure(data, kind, workers, store_kind, repeat, args.scratch)
                    if limits:
                        enc_limit, dec_limit = encrypt_limit(limits), decrypt_limit(limits)
                        row["encrypt_vs_limit"] = enc_limit / row["encrypt_s"]
                        if row.get("decrypt_s"):
                            row["decrypt_vs_limit"] = dec_limit / row["decrypt_s"]
                        row["limit_encrypt_MBps"] = size / enc_limit / 1e6
                        row["limit_decrypt_MBps"] = size / dec_limit / 1e6
                    rows.append(row)
                    print_row(row)
    return rows


def timed_encrypt(data, store, workers) -> float:
    started = time.perf_counter()
    se.encrypt_to_store(data, store, workers=workers)
    return time.perf_counter() - started


def measure(data, kind, workers, store_kind, repeat, scratch) -> dict:
    size = len(data)

    with tempfile.TemporaryDirectory(dir=scratch) as folder:

        def fresh_store():
            if store_kind == "null":
                return NullStore()
            if store_kind == "memory":
                return se.MemoryStore()
            return se.DirStore(tempfile.mkdtemp(dir=folder), fsync=False)

        encrypt_s = min(timed_encrypt(data, fresh_store(), workers) for _ in range(repeat))
        row = {
            "data": kind,
            "size": size,
            "workers": workers,
            "store": store_kind,
            "encrypt_s": encrypt_s,
            "encrypt_MBps": size / encrypt_s / 1e6,
        }
        if store_kind != "null":
            store = fresh_store()
            root = se.encrypt_to_store(data, store, workers=workers)
            decrypt_s = best(repeat, lambda: se.decrypt_file(root, store, Sink(), workers=workers))
            row.update(decrypt_s=decrypt_s, decrypt_MBps=size / decrypt_s / 1e6)
    return row


def print_row(row: dict) -> None:
    decrypt = f"{row['decrypt_MBps']:9.0f}" if "decrypt_MBps" in row else f"{'-':>9}"
    ratio_e = f"{row['encrypt_vs_limit']:6.2f}" if "encrypt_vs_limit" in row else f"{'-':>6}"
    ratio_d = f"{row['decrypt_vs_limit']:6.2f}" if "decrypt_vs_limit" in row else f"{'-':>6}"
    print(
        f"{row['data']:<7}{human(row['size']):>9}{row['workers']:>4}  {row['store']:<7}"
        f"{row['encrypt_MBps']:9.0f}{decrypt}  {ratio_e} {ratio_d}",
        flush=True,
    )


def human(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


RSS_SCRIPT = textwrap.dedent("""
    import sys, self_encryption as se
    mode, source, store_path, target = sys.argv[1:5]
    store = se.DirStore(store_path, fsync=False)
    if mode == "encrypt":
        root = se.encrypt_file(source, store)
        open(target, "w").write(root.to_text())
    else:
        root = se.DataMap.from_text(open(source).read())
        se.decrypt_file(root, store, target)
    # VmHWM is this program's own peak; ru_maxrss would include the parent's before exec.
    peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
    print(int(peak.split()[1]) * 1024)
""")


def peak_rss(size: int, scratch: str) -> dict:
    folder = tempfile.mkdtemp(dir=scratch)
    source = os.path.join(folder, "big.bin")
    with open(source, "wb") as handle:
        for _ in range(size // (64 * MiB)):
            handle.write(os.urandom(32 * MiB) + sample("text", 32 * MiB))
    store, root_file, restored = (os.path.join(folder, n) for n in ("store", "root.txt", "restored.bin"))
    result = {"size": size}
    for mode, args in (("encrypt", (source, store, root_file)), ("decrypt", (root_file, store, restored))):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, mode, *args], check=True, capture_output=True, text=True
        ).stdout
        result[f"{mode}_s"] = time.perf_counter() - started
        result[f"{mode}_peak_rss"] = int(out.strip().splitlines()[-1])
    same = subprocess.run(["cmp", "-s", source, restored]).returncode == 0
    result["identical"] = same
    subprocess.run(["rm", "-rf", folder], check=True)
    return result


def random_reads(size: int, reads: int, scratch: str) -> dict:
    folder = tempfile.mkdtemp(dir=scratch)
    store = CountingDirStore(os.path.join(folder, "store"))
    data = sample("random", size)
    root = se.encrypt_to_store(data, store)
    latencies, fetched = [], []
    rng = random.Random(1)
    with se.open(root, store, workers=1) as reader:
        reader.read(1)  # resolve the map levels once
        for _ in range(reads):
            offset = rng.randrange(0, size - 4096)
            before = store.gets
            started = time.perf_counter()
            reader.seek(offset)
            piece = reader.read(4096)
            latencies.append(time.perf_counter() - started)
            fetched.append(store.gets - before)
            assert piece == data[offset : offset + 4096]
    subprocess.run(["rm", "-rf", folder], check=True)
    return {
        "size": size,
        "reads": reads,
        "median_ms": statistics.median(latencies) * 1e3,
        "p90_ms": sorted(latencies)[int(0.9 * reads)] * 1e3,
        "fetches": {str(k): fetched.count(k) for k in sorted(set(fetched))},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only, no 4 GiB run")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--scratch", default=tempfile.gettempdir(), help="folder for stores and files")
    parser.add_argument(
        "--only",
        choices=["throughput", "rss", "reads"],
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    args = parser.parse_args()
    parts = set(args.only or ["throughput", "rss", "reads"])
    if se.backend != "c":
        print("note: the C backend is not active; figures are for the Python backend")

    if args.quick:
        sizes, args.store_sizes, rss_size, read_size = [1, 1024, MiB, 16 * MiB], {16 * MiB}, 0, 64 * MiB
    else:
        sizes = [1, 1024, MiB, 16 * MiB, 256 * MiB, GiB]
        args.store_sizes, rss_size, read_size = {256 * MiB}, 4 * GiB, GiB
    print(f"backend {se.backend}, {os.cpu_count()} cores, zstd level {se.DEFAULT_COMPRESSION_LEVEL}")
    report: dict = {"backend": se.backend}
    rows = []
    if "throughput" in parts:
        print(
            f"{'data':<7}{'size':>9}{'wk':>4}  {'store':<7}{'enc MB/s':>9}{'dec MB/s':>9}  "
            f"{'enc/lim':>6} {'dec/lim':>6}"
        )
        rows = report["throughput"] = throughput_table(sizes, ["random", "text"], [1, 2], args)

    speedups = {}
    for kind in ("random", "text"):
        for size in sizes:
            one = [
                r for r in rows if (r["data"], r["size"], r["workers"], r["store"]) == (kind, size, 1, "null")
            ]
            two = [
                r for r in rows if (r["data"], r["size"], r["workers"], r["store"]) == (kind, size, 2, "null")
            ]
            if one and two and size >= 16 * MiB:
                speedups[f"{kind} {human(size)}"] = one[0]["encrypt_s"] / two[0]["encrypt_s"]
    for name, value in speedups.items():
        print(f"workers=2 / workers=1 encrypt speed-up, {name}: {value:.2f}")
    report["speedup"] = speedups

    if rss_size and "rss" in parts:
        rss = peak_rss(rss_size, args.scratch)
        print(
            f"{human(rss_size)} file: encrypt_file peak RSS {rss['encrypt_peak_rss'] / MiB:.0f} MiB "
            f"({rss['encrypt_s']:.1f} s), decrypt_file peak RSS {rss['decrypt_peak_rss'] / MiB:.0f} MiB "
            f"({rss['decrypt_s']:.1f} s), identical: {rss['identical']}"
        )
        report["peak_rss"] = rss

    if "reads" in parts:
        reads = random_reads(read_size, 300, args.scratch)
        print(
            f"4 KiB random reads of a {human(read_size)} file in a DirStore: median "
            f"{reads['median_ms']:.2f} ms, p90 {reads['p90_ms']:.2f} ms, "
            f"chunks fetched per read: {reads['fetches']}"
        )
        report["random_reads"] = reads

    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
