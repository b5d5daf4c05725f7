"""Batch fetching against a slow store: one get per chunk, or get_many for a window.

    python benchmarks/bench_batch.py [--latency-ms 50] [--chunks 64]

A CallbackStore over memory adds the same delay to every call, as a network
round trip would; a file of about --chunks chunks is decrypted sequentially
(workers=1) through get() alone and through get_many(), in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

import self_encryption as se

SIZES = (16 << 10, 64 << 10, 128 << 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--chunks", type=int, default=64)
    args = parser.parse_args()
    delay = args.latency_ms / 1000
    data = os.urandom(args.chunks * SIZES[1])
    memory = se.MemoryStore()
    root = se.encrypt_to_store(data, memory, chunk_sizes=SIZES)
    calls = {"get": 0, "get_many": 0}

    def get(name):
        calls["get"] += 1
        time.sleep(delay)
        return memory.get(name)

    def get_many(names):
        calls["get_many"] += 1
        time.sleep(delay)
        return {name: memory.get(name) for name in names}

    results = {}
    for label, store in (
        ("get per chunk", se.CallbackStore(get)),
        ("get_many", se.CallbackStore(get, get_many=get_many)),
    ):
        calls.update(get=0, get_many=0)
        started = time.perf_counter()
        assert se.decrypt(root, store, workers=1) == data
        results[label] = time.perf_counter() - started
        print(f"{label:14} {results[label]:7.2f} s  ({calls['get']} get, {calls['get_many']} get_many calls)")
    chunks = sum(len(level.chunks) for level in se.walk_levels(root, memory))
    print(
        f"{chunks} chunks, {args.latency_ms:g} ms a call, workers=1: get_many is "
        f"{results['get per chunk'] / results['get_many']:.1f}x faster"
    )


if __name__ == "__main__":
    main()
