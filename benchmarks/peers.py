"""Time self-encryption against peer tools on the same file, in one run.

    python benchmarks/peers.py [--size MiB] [--scratch DIR] [--upstream-python PATH]

For a random and a text-like file it times, each into a fresh store or
repository and back out again:

* ``self-encryption encrypt`` / ``decrypt`` (this package's command);
* ``borg create`` / ``borg extract`` (zstd,3, repokey-blake2 encryption);
* ``restic backup`` / ``restic restore``;
* the upstream self-encryption library's ``encrypt_from_file`` /
  ``decrypt_from_storage``, run by a Python that has it installed (it also
  imports as ``self_encryption``, so it lives in its own virtual
  environment: ``python3 -m venv /tmp/upstream-venv &&
  /tmp/upstream-venv/bin/pip install self-encryption``);
* ``cp``, the floor.

It prints seconds, MB/s, peak RSS and the ratio of the peer's time to ours
(above 1: we are faster). A peer that is not installed is reported as such.
borg and restic come from Debian's packages (``apt-get install borgbackup
restic time``); peak RSS comes from GNU time (``/usr/bin/time``).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap

MiB = 1 << 20
GNU_TIME = "/usr/bin/time"

UPSTREAM_ENCRYPT = textwrap.dedent("""
    import sys
    from self_encryption import encrypt_from_file
    result = encrypt_from_file(sys.argv[1], sys.argv[2])
    data_map = result[0] if isinstance(result, tuple) else result.data_map
    open(sys.argv[3], "w").write(data_map.to_json())
""")

UPSTREAM_DECRYPT = textwrap.dedent("""
    import pathlib, sys
    from self_encryption import DataMap, decrypt_from_storage
    chunks = pathlib.Path(sys.argv[2])
    data_map = DataMap.from_json(open(sys.argv[1]).read())
    decrypt_from_storage(data_map, sys.argv[3], lambda name: (chunks / name).read_bytes())
""")


def make_file(path: pathlib.Path, kind: str, size: int) -> None:
    with open(path, "wb") as out:
        if kind == "random":
            for _ in range(size // MiB):
                out.write(os.urandom(MiB))
            out.write(os.urandom(size % MiB))
            return
        line = b"line %09d of a text-like benchmark file, words repeat often\n"
        written, number = 0, 0
        while written < size:
            block = b"".join(line % (number + i) for i in range(16384))[: size - written]
            out.write(block)
            written += len(block)
            number += 16384


def timed(command: list[str], env=None, cwd=None) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of a command, via GNU time."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(
            [GNU_TIME, "-f", "%e %M", "-o", report.name, *command],
            check=True,
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        seconds, kilobytes = report.read().split()[-2:]
    return float(seconds), int(kilobytes) * 1024


class Tool:
    name = "?"

    def missing(self) -> str | None:
        """Why the tool cannot run here, or None."""
        return None

    def encrypt(self, source: pathlib.Path, work: pathlib.Path) -> tuple[float, int]:
        raise NotImplementedError

    def decrypt(self, work: pathlib.Path, target: pathlib.Path) -> tuple[float, int]:
        raise NotImplementedError


class Ours(Tool):
    name = "self-encryption-cffi"

    def __init__(self) -> None:
        self.command = shutil.which("self-encryption") or str(
            pathlib.Path(sys.executable).with_name("self-encryption")
        )

    def missing(self):
        return None if os.path.exists(self.command) else "the self-encryption command is not installed"

    def encrypt(self, source, work):
        return timed(
            [
                self.command,
                "encrypt",
                str(source),
                "--store",
                str(work / "store"),
                "-o",
                str(work / "map.sedm"),
                "--quiet",
            ]
        )

    def decrypt(self, work, target):
        return timed(
            [
                self.command,
                "decrypt",
                str(work / "map.sedm"),
                "--store",
                str(work / "store"),
                "-o",
                str(target),
                "--quiet",
            ]
        )


class Borg(Tool):
    name = "borg (zstd,3)"
    env = {
        **os.environ,
        "BORG_PASSPHRASE": "benchmark",
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
    }

    def missing(self):
        return None if shutil.which("borg") else "borg is not installed (apt-get install borgbackup)"

    def encrypt(self, source, work):
        subprocess.run(
            ["borg", "init", "--encryption=repokey-blake2", str(work / "repo")],
            check=True,
            env=self.env,
            capture_output=True,
        )
        return timed(
            ["borg", "create", "--compression", "zstd,3", f"{work / 'repo'}::bench", source.name],
            env=self.env,
            cwd=source.parent,
        )

    def decrypt(self, work, target):
        out = work / "extract"
        out.mkdir()
        result = timed(["borg", "extract", f"{work / 'repo'}::bench"], env=self.env, cwd=out)
        os.replace(next(out.iterdir()), target)
        return result


class Restic(Tool):
    name = "restic"
    env = {**os.environ, "RESTIC_PASSWORD": "benchmark"}

    def missing(self):
        return None if shutil.which("restic") else "restic is not installed (apt-get install restic)"

    def encrypt(self, source, work):
        subprocess.run(
            ["restic", "init", "--repo", str(work / "repo")], check=True, env=self.env, capture_output=True
        )
        return timed(
            ["restic", "backup", "--repo", str(work / "repo"), source.name], env=self.env, cwd=source.parent
        )

    def decrypt(self, work, target):
        out = work / "restore"
        result = timed(
            ["restic", "restore", "latest", "--repo", str(work / "repo"), "--target", str(out)], env=self.env
        )
        restored = [p for p in out.rglob("*") if p.is_file()]
        os.replace(restored[0], target)
        return result


class Upstream(Tool):
    name = "upstream self_encryption"

    def __init__(self, python: str) -> None:
        self.python = python

    def missing(self):
        if not os.path.exists(self.python):
            return f"no Python at {self.python} (see this script's docstring to install it)"
        probe = subprocess.run(
            [self.python, "-c", "import self_encryption as s; s.encrypt_from_file"],
            capture_output=True,
            cwd=tempfile.gettempdir(),
        )
        return None if probe.returncode == 0 else f"{self.python} cannot import the upstream package"

    def encrypt(self, source, work):
        (work / "chunks").mkdir()
        return timed(
            [self.python, "-c", UPSTREAM_ENCRYPT, str(source), str(work / "chunks"), str(work / "map.json")],
            cwd=tempfile.gettempdir(),
        )

    def decrypt(self, work, target):
        return timed(
            [self.python, "-c", UPSTREAM_DECRYPT, str(work / "map.json"), str(work / "chunks"), str(target)],
            cwd=tempfile.gettempdir(),
        )


class Copy(Tool):
    name = "cp"

    def encrypt(self, source, work):
        return timed(["cp", str(source), str(work / "copy")])

    def decrypt(self, work, target):
        return timed(["cp", str(work / "copy"), str(target)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB per file (default 1024)")
    parser.add_argument("--scratch", default=tempfile.gettempdir(), help="folder for files and stores")
    parser.add_argument(
        "--upstream-python",
        default="/tmp/upstream-venv/bin/python",
        help="a Python with the upstream self-encryption package",
    )
    args = parser.parse_args()
    if not os.path.exists(GNU_TIME):
        print(f"{GNU_TIME} is missing (apt-get install time)")
        return 1
    tools = [Ours(), Borg(), Restic(), Upstream(args.upstream_python), Copy()]
    for tool in tools:
        reason = tool.missing()
        if reason:
            print(f"not measured: {tool.name}: {reason}")
    tools = [tool for tool in tools if not tool.missing()]
    size = args.size * MiB
    print(f"\n{args.size} MiB per file; each tool into a fresh store, then back out\n")
    print(f"{'data':<7}{'tool':<26}{'phase':<9}{'seconds':>9}{'MB/s':>8}{'peak RSS':>11}{'peer/ours':>11}")
    for kind in ("random", "text"):
        with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
            root = pathlib.Path(folder)
            source = root / f"{kind}.bin"
            make_file(source, kind, size)
            ours: dict[str, float] = {}
            for tool in tools:
                work = root / tool.name.split()[0]
                work.mkdir()
                target = root / f"restored-{work.name}"
                for phase, step in (
                    ("encrypt", lambda: tool.encrypt(source, work)),
                    ("decrypt", lambda: tool.decrypt(work, target)),
                ):
                    seconds, rss = step()
                    if isinstance(tool, Ours):
                        ours[phase] = seconds
                    ratio = seconds / ours[phase] if ours.get(phase) else float("nan")
                    print(
                        f"{kind:<7}{tool.name:<26}{phase:<9}{seconds:>9.2f}{size / seconds / 1e6:>8.0f}"
                        f"{rss / MiB:>8.0f} MiB{ratio:>11.2f}",
                        flush=True,
                    )
                if not filecmp.cmp(source, target, shallow=False):
                    print(f"WARNING: {tool.name} did not restore {kind} identically")
                shutil.rmtree(work)
                target.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
