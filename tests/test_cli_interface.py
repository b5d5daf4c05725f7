"""What the command line promises as an interface: --json, option names, help, units, labels."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

import self_encryption as se
from self_encryption.cli import decrypt_cmd, main, output

SCRIPT = pathlib.Path(sys.executable).with_name("self-encryption")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "self_encryption"]


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, timeout=120, **kwargs)


def one_document(stdout: bytes) -> dict:
    """stdout holds exactly one JSON document, and nothing else."""
    text = stdout.decode()
    document, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", f"more than one document on stdout: {text!r}"
    return document


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("encrypt", "--json", "missing-file", "--store", "{tmp}/s"), 6),  # a runtime error
        (("verify", "--json", "se1:AAAA", "--store", "{tmp}/s"), 3),  # a bad map
        (("encrypt", "--json", "f", "--store", "{tmp}/s", "--level", "99"), 2),  # a bad value
        (("encrypt", "--json", "f"), 2),  # a usage error, found by the parser
        (("gc", "--json", "--store", "{tmp}/s", "--keep", "{tmp}/none", "--bogus"), 2),
    ],
)
def test_json_errors_are_one_document_on_stdout(tmp_path, args, code):
    result = run(*(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert result.returncode == code, result.stderr.decode()
    document = one_document(result.stdout)
    assert document["exit_code"] == code and document["error"]
    assert "se1:" not in result.stdout.decode() + result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_json_interrupt_is_one_document(tmp_path):
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [*COMMAND, "encrypt", "--json", str(fifo), "--store", str(tmp_path / "s"), "-o", str(tmp_path / "m")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with open(fifo, "wb") as writer:  # the command is now reading: it has begun its work
        writer.write(os.urandom(1000))
        writer.flush()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    assert one_document(out) == {"error": "interrupted", "exit_code": 130}


def test_json_with_the_map_on_stdout_keeps_one_document(tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(5000))
    result = run("encrypt", "--json", tmp_path / "f", "--store", tmp_path / "s", "-o", "-")
    assert result.returncode == 0, result.stderr.decode()
    document = one_document(result.stdout)
    root = se.DataMap.from_text(document["files"][0]["data_map_text"])
    assert se.decrypt(root, se.DirStore(tmp_path / "s")) == (tmp_path / "f").read_bytes()
    shown = run("info", "--json", "--print-map", "text", document["files"][0]["data_map_text"])
    assert one_document(shown.stdout)["data_map_text"] == root.to_text()


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "{map}", "--stor", "{tmp}/s"),
        ("verify", "{map}", "--store", "{tmp}/s", "--ful"),
        ("encrypt", "{tmp}/f", "--store", "{tmp}/s", "--chunk-size", "64,256,1024"),
    ],
)
def test_abbreviated_long_options_are_refused(tmp_path, args):
    (tmp_path / "f").write_bytes(os.urandom(5000))
    root = se.encrypt_to_store((tmp_path / "f").read_bytes(), se.DirStore(tmp_path / "s"))
    result = run(*(a.format(tmp=tmp_path, map=root.to_text()) for a in args))
    assert result.returncode == 2
    assert b"unrecognized arguments" in result.stderr or b"required" in result.stderr
    assert root.to_text().encode() not in result.stderr


def test_the_exit_code_table_is_in_the_top_level_help_only():
    top = run("--help").stdout.decode()
    for entry in se.EXIT_CODES:
        assert f"{entry.code}" in top and entry.meaning in top
    for command in ("encrypt", "decrypt", "cat", "info", "verify", "gc", "import-upstream"):
        text = run(command, "--help").stdout.decode()
        assert "corrupt chunk" not in text and "self-encryption --help" in text, command


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1 << 20, "1.0 MiB"),
        (1 << 30, "1.0 GiB"),
        (3 << 40, "3.0 TiB"),
    ],
)
def test_sizes_use_binary_units(count, shown):
    assert output.human_size(count) == shown


def test_encrypt_reports_sizes_in_binary_units(tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(2 << 20))
    result = run("encrypt", tmp_path / "f", "--store", tmp_path / "s")
    assert result.returncode == 0 and "f: 2.0 MiB in " in result.stdout.decode()


def test_decrypt_progress_names_the_output_file(tmp_path, monkeypatch):
    (tmp_path / "f").write_bytes(os.urandom(5000))
    root = se.encrypt_to_store((tmp_path / "f").read_bytes(), se.DirStore(tmp_path / "s"))
    (tmp_path / "m.sedm").write_text(root.to_text())
    labels = []

    class Recording(output.ProgressBar):
        def __init__(self, label: str, enabled: bool) -> None:
            labels.append(label)
            super().__init__(label, enabled)

    monkeypatch.setattr(decrypt_cmd, "ProgressBar", Recording)
    assert (
        main(
            ["decrypt", str(tmp_path / "m.sedm"), "--store", str(tmp_path / "s"), "-o", str(tmp_path / "out")]
        )
        == 0
    )
    assert labels == ["out"]


def test_verify_on_the_wrong_store_gives_the_hint_decrypt_gives(tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(100_000))
    assert run("encrypt", tmp_path / "f", "--store", tmp_path / "right", "-q").returncode == 0
    (tmp_path / "wrong").mkdir()
    verify = run("verify", tmp_path / "f.sedm", "--store", tmp_path / "wrong")
    decrypt = run("decrypt", tmp_path / "f.sedm", "--store", tmp_path / "wrong", "-o", tmp_path / "out")
    assert verify.returncode == decrypt.returncode == 4
    hint = "does not hold the whole file: check --store"
    assert hint in verify.stdout.decode() and hint in decrypt.stderr.decode()
