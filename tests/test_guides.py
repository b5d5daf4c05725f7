"""The guides' shell and Python blocks run as written, in order, in a scratch folder."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import self_encryption as se

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def blocks(page: str) -> list[tuple[str, str]]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(r"^```(sh|python)\n(.*?)^```$", text, re.S | re.M)


def run_guide(page: str, folder: pathlib.Path, monkeypatch) -> dict:
    """Run every block of a page; returns the Python blocks' namespace."""
    shim = folder / "bin" / "self-encryption"  # the command, as installed
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m self_encryption "$@"\n')
    shim.chmod(0o755)
    monkeypatch.chdir(folder)
    environment = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict = {}
    found = blocks(page)
    assert found, f"{page} has no runnable blocks"
    for language, code in found:
        if language == "sh":
            result = subprocess.run(
                ["bash", "-e", "-c", code], env=environment, capture_output=True, timeout=300
            )
            assert result.returncode == 0, (code, result.stderr.decode())
        else:
            exec(compile(code, str(DOCS / page), "exec"), namespace)
    return namespace


def test_the_operations_guide_runs(tmp_path, monkeypatch):
    run_guide("operations.md", tmp_path, monkeypatch)
    report = json.loads((tmp_path / "verify-report.json").read_text())
    assert report["ok"] is True, report
    gc_report = json.loads((tmp_path / "gc-report.json").read_text())
    assert gc_report["deleted"] is True
    root = se.DataMap.load(tmp_path / "maps" / "report.pdf.sedm")
    assert se.decrypt(root, se.DirStore(tmp_path / "chunks")) == (tmp_path / "report.pdf").read_bytes()


def test_the_database_guide_runs_and_gc_fetches_nothing(tmp_path, monkeypatch):
    namespace = run_guide("database-maps.md", tmp_path, monkeypatch)
    report = namespace["report"]
    # b.bin's chunks are garbage, but stored moments ago: the grace period keeps them for now.
    assert report.names == () and report.chunks_young > 0
    assert report.chunks_total == report.chunks_referenced + report.chunks_young
    rows = namespace["db"].execute("SELECT chunks FROM files").fetchall()
    later = se.collect_garbage(
        namespace["store"], keep_names=[set(json.loads(c)) for (c,) in rows], delete=True, grace=0
    )
    assert len(later.names) == report.chunks_young
    assert len(namespace["load"]("a.bin")) == 3_000_000  # what a row names is all still there


def test_keep_names_keeps_with_no_fetch_and_refuses_what_is_not_a_name(tmp_path):
    store = se.DirStore(tmp_path / "store")
    kept_root = se.encrypt_to_store(os.urandom(2_000_000), store, chunk_sizes=(4096, 16384, 65536))
    names = se.chunk_names(kept_root, store)
    assert kept_root.level >= 1  # a map with levels: walking it would fetch map chunks
    garbage = se.chunk_names(se.encrypt_to_store(os.urandom(300_000), store), store)
    fetched = []

    class Counting(se.DirStore):
        def get(self, name):
            fetched.append(name)
            return super().get(name)

        def get_at_most(self, name, limit):
            fetched.append(name)
            return super().get_at_most(name, limit)

    counting = Counting(tmp_path / "store")
    report = se.collect_garbage(counting, keep_names=[names], delete=True, grace=0)
    assert fetched == [] and set(report.names) == garbage
    assert se.decrypt(kept_root, store) is not None
    with_maps = se.collect_garbage(counting, [kept_root], grace=0)
    assert fetched and with_maps.names == ()  # the same answer, but the map's levels were fetched
    for bad in (["not a name"], "a" * 64):
        with pytest.raises(se.InvalidArgumentError):
            se.collect_garbage(store, keep_names=[bad] if isinstance(bad, str) else [bad], grace=0)


@pytest.mark.parametrize("page", ["operations.md", "web-app.md", "s3.md", "many-machines.md", "mount.md"])
def test_guides_name_only_commands_and_options_that_exist(page):
    """Every `self-encryption COMMAND --option` a guide shows is one the parser accepts."""
    import argparse

    from self_encryption.cli import build_parser

    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    text = (DOCS / page).read_text(encoding="utf-8")
    for line in re.findall(r"self-encryption ([a-z][a-z-]*[^\n`]*)", text):
        command, *words = line.split()
        assert command in subparsers.choices, f"{page}: no command {command!r}"
        known = {flag for action in subparsers.choices[command]._actions for flag in action.option_strings}
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"{page}: {command} has no option {word}"
