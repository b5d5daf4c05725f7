"""Crash states of a command, rebuilt from its system-call trace (the method of ALICE, OSDI 2014).

A command is run under ``strace -f -y``; the trace is turned into the
file-system operations it made under one folder (create, write, fsync,
rename, link, unlink, mkdir, rmdir) and replayed over a model of a strict
POSIX file system:

- a change to a folder's entries (a file or folder created, renamed,
  linked or removed) survives a power cut only once that folder was
  fsynced after the change;
- a file's content survives only as it was at its last fsync (fdatasync
  counts); a file never fsynced is empty.

Each point of the replay is a possible crash. At each one the checker
builds what a reboot would find, in two views that bracket what a real
file system may keep: only what was made durable (names and contents), and
every name change applied but contents only as durable. In each it checks
what must hold whatever the moment of the crash:

- every data map (``*.sedm``) that exists opens, and decrypts from the
  chunks that exist in the stores at that point (every level, every chunk
  checked against its name);
- every expected output that exists under its final name is complete;
- no file that was there before the command and is still there after it
  is missing (a file moved is never lost on the way).

A map that did not decrypt before the command either is not held to it.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import self_encryption as se

#: The system calls the model replays; everything else leaves the tree alone.
TRACED = (
    "open,openat,openat2,creat,write,pwrite64,writev,pwritev,pwritev2,ftruncate,truncate,"
    "fallocate,copy_file_range,sendfile,fsync,fdatasync,sync,syncfs,rename,renameat,renameat2,"
    "link,linkat,unlink,unlinkat,mkdir,mkdirat,rmdir,symlink,symlinkat,chdir,fchdir"
)
_WRITES = {
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "ftruncate",
    "fallocate",
    "copy_file_range",
    "sendfile",
}


class TraceError(Exception):
    """The trace holds something the model cannot replay (so a result would be a guess)."""


def strace_problem() -> str | None:
    """Why traced runs cannot be made here (None when they can)."""
    if shutil.which("strace") is None:
        return "strace is not installed (scripts/bootstrap.sh installs it as root on Debian)"
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.decode(errors='replace').strip()}"
    return None


def strace_command(trace_file: str, *, seccomp: bool = True) -> list[str]:
    """The strace prefix that writes the trace this module reads."""
    command = ["strace", "-f", "-y", "-qq", "-s", "0", "-o", trace_file, "-e", f"trace={TRACED}"]
    return [*command, "--seccomp-bpf"] if seccomp else command


# -- reading the trace ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Op:
    """One file-system operation under the root, in the order it took effect."""

    kind: str  # create, mkdir, write, fsync, sync, rename, exchange, link, symlink, unlink, rmdir
    path: str = ""
    other: str = ""  # rename's, exchange's and link's destination


_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$", re.S)
_UNFINISHED = re.compile(r"^(\w+)\((.*?)\s*<unfinished \.\.\.>$", re.S)
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$", re.S)
_FD = re.compile(r"^(-?\d+|AT_FDCWD)(?:<(.*)>)?$", re.S)


def _split_args(text: str) -> list[str]:
    """strace's top-level comma-separated arguments (quotes, braces and <paths> kept whole)."""
    args, depth, quoted, start, index = [], 0, False, 0, 0
    while index < len(text):
        char = text[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "{[<(":
            depth += 1
        elif char in "}]>)":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(text[start:index].strip())
            start = index + 1
        index += 1
    args.append(text[start:].strip())
    return args


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", '"': '"', "\\": "\\"}


def _string(arg: str) -> str:
    """A path argument, unquoted and unescaped (strace quotes it C-style)."""
    if not (arg.startswith('"') and arg.endswith('"')):
        raise TraceError(f"expected a quoted path, got {arg!r}")
    body, out, index = arg[1:-1], bytearray(), 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out += char.encode()
            index += 1
            continue
        following = body[index + 1]
        if following == "x":
            out.append(int(body[index + 2 : index + 4], 16))
            index += 4
        elif following.isdigit():
            digits = re.match(r"[0-7]{1,3}", body[index + 1 :])
            assert digits is not None
            out.append(int(digits.group(), 8))
            index += 1 + len(digits.group())
        else:
            out += _ESCAPES[following].encode()
            index += 2
    return os.fsdecode(bytes(out))


def _fd_path(arg: str) -> str | None:
    """The path strace -y shows for a descriptor; None for one no longer named (deleted, pipe...)."""
    match = _FD.match(arg)
    if match is None:
        raise TraceError(f"expected a descriptor, got {arg!r}")
    path = match.group(2)
    if path is None or path.endswith(" (deleted)") or not path.startswith("/"):
        return None
    return path


def _at(dirfd: str, path_arg: str) -> str:
    path = _string(path_arg)
    if os.path.isabs(path):
        return os.path.normpath(path)
    base = _fd_path(dirfd)
    if base is None:
        raise TraceError(f"relative path {path!r} from an unnamed folder descriptor {dirfd!r}")
    return os.path.normpath(os.path.join(base, path))


def _cwd_of(args: list[str]) -> str:
    """The current folder, which strace -y shows on AT_FDCWD of the *at calls."""
    return _fd_path(args[0]) or ""


def read_trace(text: str) -> list[Op]:
    """The file-system operations of a trace, in the order they took effect.

    A call that spans two lines (``<unfinished ...>`` then ``resumed``)
    takes effect when it returns, except an fsync, which only covers what
    was done before it began: the strictest reading of a race.
    """
    pending: dict[str, tuple[int, str, str]] = {}
    calls: list[tuple[int, int, str, str, str]] = []  # (effect position, line, name, args, result)
    cwd = ""
    for number, line in enumerate(text.splitlines()):
        match = _LINE.match(line)
        if match is None:
            continue
        pid, rest = match.groups()
        if rest.startswith(("+++", "---")):
            continue
        unfinished = _UNFINISHED.match(rest)
        if unfinished:
            pending[pid] = (number, unfinished.group(1), unfinished.group(2))
            continue
        resumed = _RESUMED.match(rest)
        if resumed:
            if pid not in pending:
                continue
            started, name, head = pending.pop(pid)
            call = _CALL.match(f"{name}({head}{resumed.group(2)}")
            if call is None:
                continue
            position = started if name in ("fsync", "fdatasync", "sync", "syncfs") else number
            calls.append((position, number, name, call.group(2), call.group(3)))
            continue
        call = _CALL.match(rest)
        if call is not None:
            calls.append((number, number, call.group(1), call.group(2), call.group(3)))
    calls.sort()
    ops: list[Op] = []
    for _, _, name, arg_text, result in calls:
        if result.startswith(("-1", "?")):
            continue  # failed or never returned: no effect
        args = _split_args(arg_text)
        ops.extend(_ops_of(name, args, result, cwd))
        if name in ("openat", "mkdirat", "unlinkat", "renameat", "renameat2", "linkat"):
            cwd = _cwd_of(args) or cwd
    return ops


def _ops_of(name: str, args: list[str], result: str, cwd: str) -> Iterator[Op]:
    def absolute(arg: str) -> str:
        path = _string(arg)
        if os.path.isabs(path):
            return os.path.normpath(path)
        if not cwd:
            raise TraceError(f"{name}: relative path {path!r} before the current folder is known")
        return os.path.normpath(os.path.join(cwd, path))

    if name in ("open", "openat", "openat2", "creat"):
        flags = "O_CREAT|O_TRUNC" if name == "creat" else args[2 if name != "open" else 1]
        opened = _fd_path(result)
        if opened is not None and "O_CREAT" in flags:
            yield Op("create", opened)  # a no-op where the file was there
        if opened is not None and "O_TRUNC" in flags:
            yield Op("write", opened)
    elif name in _WRITES:
        target = _fd_path(args[2] if name in ("copy_file_range", "sendfile") else args[0])
        if target is not None:
            yield Op("write", target)
    elif name == "truncate":
        yield Op("write", absolute(args[0]))
    elif name in ("fsync", "fdatasync"):
        target = _fd_path(args[0])
        if target is not None:
            yield Op("fsync", target)
    elif name in ("sync", "syncfs"):
        yield Op("sync")
    elif name == "rename":
        yield Op("rename", absolute(args[0]), absolute(args[1]))
    elif name in ("renameat", "renameat2"):
        flags = args[4] if len(args) > 4 else "0"
        kind = "exchange" if "RENAME_EXCHANGE" in flags else "rename"
        yield Op(kind, _at(args[0], args[1]), _at(args[2], args[3]))
    elif name == "link":
        yield Op("link", absolute(args[0]), absolute(args[1]))
    elif name == "linkat":
        yield Op("link", _at(args[0], args[1]), _at(args[2], args[3]))
    elif name == "symlink":
        yield Op("symlink", absolute(args[1]))
    elif name == "symlinkat":
        yield Op("symlink", _at(args[1], args[2]))
    elif name == "unlink":
        yield Op("unlink", absolute(args[0]))
    elif name == "unlinkat":
        yield Op("rmdir" if "AT_REMOVEDIR" in args[2] else "unlink", _at(args[0], args[1]))
    elif name == "mkdir":
        yield Op("mkdir", absolute(args[0]))
    elif name == "mkdirat":
        yield Op("mkdir", _at(args[0], args[1]))
    elif name == "rmdir":
        yield Op("rmdir", absolute(args[0]))
    elif name in ("chdir", "fchdir"):
        raise TraceError("the command changed its current folder; the model does not follow that")


# -- the model --------------------------------------------------------------------

_serial = itertools.count()


class Node:
    """A file or folder of the model: its live state and the part of it that is durable."""

    def __init__(self, kind: str, *, initial: bytes | None = None) -> None:
        self.kind = kind  # "dir", "file" or "symlink"
        self.ident = next(_serial)
        self.entries: dict[str, Node] = {}
        self.durable_entries: dict[str, Node] = {}
        self.version = 0  # how many writes the file has had
        self.durable_version = 0
        self.initial = initial  # content before the command, for a file that was there
        self.final: bytes | None = None  # content after the command, for a file still there

    def content(self, version: int) -> bytes | None:
        """The file's bytes as they were after `version` writes, where known."""
        if version == self.version and self.final is not None:
            return self.final
        if version == 0:
            return self.initial if self.initial is not None else b""
        return None  # an intermediate state: its bytes were not recorded


class Tree:
    """The folder ``root`` as the traced command sees it, with what is durable of it."""

    def __init__(self, root: str) -> None:
        self.root_path = root
        self.root = _snapshot(root)

    def _lookup(self, path: str) -> Node | None:
        if path == self.root_path:
            return self.root
        if not path.startswith(self.root_path + os.sep):
            return None
        node = self.root
        for part in path[len(self.root_path) + 1 :].split(os.sep):
            if node.kind != "dir" or part not in node.entries:
                return None
            node = node.entries[part]
        return node

    def _parent(self, path: str) -> tuple[Node, str] | None:
        if not path.startswith(self.root_path + os.sep):
            return None
        parent = self._lookup(os.path.dirname(path))
        if parent is None or parent.kind != "dir":
            raise TraceError(f"the model has no folder for {path!r}: an operation was missed")
        return parent, os.path.basename(path)

    def apply(self, op: Op) -> None:
        if op.kind == "sync":
            for node in self._live_nodes(self.root):
                node.durable_entries, node.durable_version = dict(node.entries), node.version
            return
        if op.kind in ("write", "fsync"):
            node = self._lookup(op.path)
            if node is None:
                return  # outside the root
            if op.kind == "write":
                node.version += 1
            elif node.kind == "dir":
                node.durable_entries = dict(node.entries)
            else:
                node.durable_version = node.version
            return
        place = self._parent(op.path)
        if op.kind in ("rename", "exchange", "link"):
            target = self._parent(op.other)
            if place is None or target is None:
                if place is None and target is None:
                    return
                raise TraceError(f"{op.kind} across the root's edge: {op.path!r} -> {op.other!r}")
            node = place[0].entries[place[1]]
            if op.kind == "exchange":
                place[0].entries[place[1]] = target[0].entries[target[1]]
            elif op.kind == "rename":
                del place[0].entries[place[1]]
            target[0].entries[target[1]] = node
            return
        if place is None:
            return
        folder, name = place
        if op.kind == "create":
            folder.entries.setdefault(name, Node("file"))
        elif op.kind == "mkdir":
            folder.entries[name] = Node("dir")
        elif op.kind == "symlink":
            folder.entries[name] = Node("symlink")
        elif op.kind in ("unlink", "rmdir"):
            del folder.entries[name]
        else:
            raise TraceError(f"unknown operation {op}")

    def _live_nodes(self, node: Node) -> Iterator[Node]:
        yield node
        for child in node.entries.values():
            yield from self._live_nodes(child)

    def settle(self) -> None:
        """After the run: check the model against the disk and record each file's last content."""
        _compare(self.root, _snapshot(self.root_path), self.root_path)
        self._record_final(self.root, self.root_path)

    def _record_final(self, node: Node, path: str) -> None:
        if node.kind == "file":
            with open(path, "rb") as handle:
                node.final = handle.read()
        for name, child in node.entries.items():
            self._record_final(child, os.path.join(path, name))

    def view(self, *, names_durable: bool) -> View:
        """What a reboot would find now: path -> (node, how many of its writes are durable)."""
        found: View = {}

        def walk(node: Node, path: str) -> None:
            found[path] = (node, node.durable_version)
            for name, child in (node.durable_entries if names_durable else node.entries).items():
                walk(child, os.path.join(path, name))

        walk(self.root, self.root_path)
        return found


#: A crash state: each path there, with its node and how many of the node's writes survived.
View = dict[str, tuple[Node, int]]


def _snapshot(path: str) -> Node:
    """The tree under path as it is on disk, all of it durable (it was there before)."""
    if os.path.islink(path):
        return Node("symlink")
    if os.path.isdir(path):
        node = Node("dir")
        for name in sorted(os.listdir(path)):
            node.entries[name] = _snapshot(os.path.join(path, name))
        node.durable_entries = dict(node.entries)
        return node
    with open(path, "rb") as handle:
        return Node("file", initial=handle.read())


def _compare(model: Node, disk: Node, path: str) -> None:
    if model.kind != disk.kind:
        raise TraceError(f"{path}: the model has a {model.kind}, the disk a {disk.kind}")
    if sorted(model.entries) != sorted(disk.entries):
        raise TraceError(f"{path}: the model lists {sorted(model.entries)}, the disk {sorted(disk.entries)}")
    for name in model.entries:
        _compare(model.entries[name], disk.entries[name], os.path.join(path, name))


# -- the checks ---------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    """What the replay found: the crash states checked and what failed in them."""

    operations: int = 0
    crash_states: int = 0
    maps_decrypted: int = 0  # (state, map) pairs where a map existed and decrypted
    outputs_complete: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        head = (
            f"{self.operations} operations, {self.crash_states} crash states, "
            f"{self.maps_decrypted} map checks, {self.outputs_complete} output checks"
        )
        return "\n".join([head, *self.problems[:12]])


def check(
    trace_text: str, tree: Tree, *, stores: list[str], outputs: dict[str, bytes] | None = None
) -> Report:
    """Replay the trace of a command over ``tree``, the folder as it was before the command ran.

    ``stores`` are the folder stores whose chunks maps may use; ``outputs``
    the files the command writes, with the bytes each must hold if present.
    The crash states are collected during the replay and checked after it,
    once the model was compared with the disk and each file's last content read.
    """
    root = tree.root_path
    ops = [op for op in read_trace(trace_text) if _touches(op, root)]
    states: list[tuple[str, View]] = [("before the command", tree.view(names_durable=True))]
    seen: set[tuple[tuple[str, int, int], ...]] = set()
    for op in ops:
        tree.apply(op)
        for names_durable in (True, False):
            if names_durable and op.kind not in ("fsync", "sync"):
                continue  # the durable view only changes on a flush
            view = tree.view(names_durable=names_durable)
            signature = tuple(sorted((path, node.ident, version) for path, (node, version) in view.items()))
            if signature not in seen:
                seen.add(signature)
                label = "durable" if names_durable else "all names"
                states.append((f"after {op.kind} {os.path.relpath(op.path, root)} ({label})", view))
    tree.settle()
    survivors = {node.ident for node in tree._live_nodes(tree.root) if node.kind == "file"}
    report = Report(operations=len(ops), crash_states=len(states) - 1)
    checker = _Checker(root, stores, outputs or {}, survivors, report)
    checker.baseline(states[0][1])
    for moment, view in states[1:]:
        checker.check(view, moment)
    return report


def _touches(op: Op, root: str) -> bool:
    inside = root + os.sep
    return op.kind == "sync" or op.path.startswith(inside) or op.path == root or op.other.startswith(inside)


class _Checker:
    def __init__(
        self, root: str, stores: list[str], outputs: dict[str, bytes], survivors: set[int], report: Report
    ) -> None:
        self.root, self.stores, self.outputs, self.report = root, stores, outputs, report
        self.survivors = survivors
        self.exempt: set[str] = set()
        self.present_before: set[int] = set()
        self.verdicts: dict[tuple[object, ...], str | None] = {}

    def baseline(self, view: View) -> None:
        """Maps that do not decrypt before the command are not held to it; note the files there."""
        chunks = self._chunks(view)
        for path, (node, version) in view.items():
            if node.kind == "file":
                self.present_before.add(node.ident)
                if _is_map(path) and self._map_verdict(node.content(version), chunks) is not None:
                    self.exempt.add(path)

    def check(self, view: View, moment: str) -> None:
        chunks = self._chunks(view)
        present = {node.ident for node, _ in view.values()}
        if (self.present_before & self.survivors) - present:
            self._problem(f"{moment}: a file that was there before and after the command is gone")
        for path, (node, version) in view.items():
            if node.kind != "file":
                continue
            content = node.content(version)
            if path in self.outputs:
                if content != self.outputs[path]:
                    self._problem(
                        f"{moment}: output {os.path.relpath(path, self.root)} exists but is not complete"
                    )
                else:
                    self.report.outputs_complete += 1
            if _is_map(path) and path not in self.exempt:
                verdict = self._map_verdict(content, chunks)
                if verdict is None:
                    self.report.maps_decrypted += 1
                else:
                    self._problem(f"{moment}: map {os.path.relpath(path, self.root)} {verdict}")

    def _problem(self, text: str) -> None:
        if text not in self.report.problems:
            self.report.problems.append(text)

    def _chunks(self, view: View) -> dict[str, tuple[tuple[int, int], bytes | None]]:
        """The chunk files of the stores in a crash state: name -> (identity, bytes or None)."""
        chunks: dict[str, tuple[tuple[int, int], bytes | None]] = {}
        for path, (node, version) in view.items():
            if node.kind != "file":
                continue
            for store in self.stores:
                parts = os.path.relpath(path, store).split(os.sep)
                if len(parts) == 2 and len(parts[0]) == 2 and parts[1].startswith(parts[0]):
                    chunks[parts[1]] = ((node.ident, version), node.content(version))
        return chunks

    def _map_verdict(
        self, content: bytes | None, chunks: dict[str, tuple[tuple[int, int], bytes | None]]
    ) -> str | None:
        """None if the map opens and decrypts from these chunks, else what is wrong."""
        if content is None:
            return "is not complete (its last content was never flushed)"
        key = (content, tuple(sorted((name, ident) for name, (ident, _) in chunks.items())))
        if key in self.verdicts:
            return self.verdicts[key]
        verdict: str | None = None
        try:
            data_map = se.DataMap.from_file(io.BytesIO(content))
        except se.SelfEncryptionError as exc:
            verdict = f"does not open ({type(exc).__name__})"
        else:
            for record in data_map.chunks:
                if record.name not in chunks:
                    verdict = f"names chunk {record.name[:12]}... which does not exist"
                    break
                if chunks[record.name][1] is None:
                    verdict = f"names chunk {record.name[:12]}... whose content is not complete"
                    break
            if verdict is None:
                store = {name: data for name, (_, data) in chunks.items() if data is not None}
                try:
                    se.decrypt(data_map, store)
                except se.ChunkError as exc:
                    verdict = f"does not decrypt: {type(exc).__name__} on chunk {(exc.name or '')[:12]}..."
        self.verdicts[key] = verdict
        return verdict


def _is_map(path: str) -> bool:
    name = os.path.basename(path)
    return name.endswith(".sedm") and not name.startswith(".")
