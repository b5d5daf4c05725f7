"""CPU per S3 chunk request: the direct path against botocore's own pipeline, in one run.

    python benchmarks/bench_s3_requests.py [--requests N] [--size BYTES]

Starts ``rclone serve s3`` on loopback (as bench_s3.py does) and makes the
same chunk requests through two stores on the same server: one as the
store makes them (a chunk's HEAD, PUT and GET signed by botocore's signer
and sent on its connections: ``stores/s3_direct.py``), one through
botocore's client for every request (the store's direct path turned off).
For each it prints the CPU time of this process per request (HEAD, then
PUT, of each new chunk, then a GET of each) and the wall time, and the
ratio of the two. The server's CPU is not counted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import time

import self_encryption as se

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_s3 import start_server  # beside this file


def run(store: se.S3Store, chunks: list[tuple[str, bytes]]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per request for a HEAD and a PUT of each chunk, then a GET of each."""
    cpu, wall = time.process_time(), time.perf_counter()
    for name, body in chunks:
        store.put_if_absent(name, body)
    for name, body in chunks:
        if store.fetch_at_most(name, len(body) + 1) != body:
            raise SystemExit("a chunk came back changed")
    count = 3 * len(chunks)
    return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1200, help="requests per store (default 1200)")
    parser.add_argument("--size", type=int, default=4096, help="bytes per chunk (default 4096)")
    args = parser.parse_args()
    count = max(1, args.requests // 3)
    with tempfile.TemporaryDirectory() as folder:
        (pathlib.Path(folder) / "bench").mkdir()
        server, port = start_server(folder)
        try:
            url = f"http://127.0.0.1:{port}"
            results = {}
            for label in ("warm-up", "botocore", "direct", "botocore ", "direct "):
                store = se.S3Store(
                    "bench", label.strip() + os.urandom(4).hex(), endpoint_url=url, locks=False
                )
                store.conditional_writes()  # the probe's requests are not counted
                if label.startswith("botocore"):
                    store._direct = None  # every request through botocore's client
                bodies = [os.urandom(args.size) for _ in range(count)]
                chunks = [(hashlib.sha256(body).hexdigest(), body) for body in bodies]
                results[label] = run(store, chunks)
            print(f"{3 * count} requests per store, {args.size}-byte chunks, rclone serve s3 on loopback")
            print(f"{'path':<10}{'CPU ms/request':>16}{'wall ms/request':>17}")
            for label in ("botocore", "direct"):
                cpus = [results[label][0], results[label + " "][0]]
                walls = [results[label][1], results[label + " "][1]]
                print(f"{label:<10}{1000 * min(cpus):>16.3f}{1000 * min(walls):>17.3f}")
            ratio = min(results["direct"][0], results["direct "][0]) / min(
                results["botocore"][0], results["botocore "][0]
            )
            print(f"direct / botocore CPU: {ratio:.2f}")
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
