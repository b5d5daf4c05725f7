"""The README is the front page: short, and its architecture table and layout match the tree."""

from __future__ import annotations

import pathlib
import re

import self_encryption as se

PACKAGE = pathlib.Path(se.__file__).parent
ROOT = PACKAGE.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"the README has no section {title!r}"
    return match.group(1)


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 300


def test_architecture_table_names_every_module_and_only_those():
    rows = set(re.findall(r"^\| `([^`]+\.py)` \|", _section("Architecture"), re.M))
    modules = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}
    assert rows - modules == set(), "the table names modules that do not exist"
    assert modules - rows == set(), "modules missing from the README's architecture table"


def test_layout_names_every_tracked_top_level_file_of_the_code_folders():
    layout = _section("Layout")
    for folder in ("csrc", "scripts", "benchmarks", "fuzz"):
        assert f"{folder}/" in layout, folder
        for path in (ROOT / folder).iterdir():
            if path.is_file() and not path.name.startswith("."):
                assert path.stem in layout, f"{folder}/{path.name} is not in the README's layout"


def test_relative_links_lead_to_files():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target
