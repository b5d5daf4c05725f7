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
