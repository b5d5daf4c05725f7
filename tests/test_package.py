"""The package's shape: a thin facade, a CLI on the public API, one exit-code table."""

from __future__ import annotations

import argparse
import ast
import pathlib
import re
import subprocess
import sys

import self_encryption as se
from self_encryption import cli
from self_encryption.cli import errors as cli_errors

PACKAGE = pathlib.Path(se.__file__).parent
#: The command-line guide, which holds the exit-code table.
CLI_GUIDE = PACKAGE.parent / "docs" / "command-line.md"


def _tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE / name).read_text(encoding="utf-8"))


def test_facade_only_imports_and_reexports():
    tree = _tree("__init__.py")
    kinds = {type(node).__name__ for node in tree.body}
    assert not kinds & {"FunctionDef", "AsyncFunctionDef", "ClassDef"}, kinds
    # Besides the docstring, only imports and the __all__ list.
    for node in tree.body:
        if isinstance(node, ast.Assign):
            assert [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__all__"]
        else:
            assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)), ast.dump(node)


def test_all_lists_the_public_names_and_they_exist():
    assert len(se.__all__) == len(set(se.__all__))
    for name in se.__all__:
        assert hasattr(se, name), name
    assert "open" not in se.__all__  # a star import must not shadow the builtin
    assert callable(se.open)
    public = {name for name in dir(se) if not name.startswith("_")}
    # Besides open, only public submodules imported on their own (self_encryption.upstream).
    extra = public - set(se.__all__) - {"open"}
    assert all(type(getattr(se, name)).__name__ == "module" for name in extra), extra


def test_star_import_keeps_the_builtin_open():
    namespace: dict = {}
    exec("from self_encryption import *", namespace)
    assert "open" not in namespace
    assert namespace["DataMap"] is se.DataMap


def test_nothing_from_typing_leaks():
    import collections.abc
    import typing

    leaked = {
        name
        for name in dir(se)
        if not name.startswith("__") and (hasattr(typing, name) or hasattr(collections.abc, name))
    }
    assert not leaked, leaked


def test_cli_imports_only_the_public_package():
    modules = sorted((PACKAGE / "cli").glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                # Relative imports stay inside the cli package (level 1); the library is reached as se.
                assert node.level in (0, 1), f"{path.name} reaches out of the cli package"
                imported.add("." if node.level else node.module or "")
        ours = {name for name in imported if name.startswith("self_encryption")}
        assert ours <= {"self_encryption", "self_encryption.upstream", "self_encryption.mount"}, (
            path.name,
            ours,
        )


def test_cli_has_a_module_per_command_and_none_over_500_lines():
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in commands.choices:
        assert (PACKAGE / "cli" / f"{name.replace('-', '_')}_cmd.py").exists(), name
        assert f"``{name}``" in cli.__doc__, name
    for path in [*PACKAGE.glob("*.py"), *PACKAGE.glob("*/*.py")]:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if path.parent.name == "cli" or path.name in ("_mapfile.py", "_options.py"):
            assert lines <= 500, (path.name, lines)


def test_the_cli_defaults_are_the_library_defaults():
    import inspect

    signature = inspect.signature(se.S3Store)
    assert signature.parameters["retry_seconds"].default == se.DEFAULT_RETRY_SECONDS
    garbage = inspect.signature(se.collect_garbage).parameters
    assert garbage["grace"].default == se.DEFAULT_GRACE
    assert garbage["lock_wait"].default == se.DEFAULT_LOCK_WAIT
    args = cli.build_parser().parse_args(["gc", "--store", "s", "--keep", "m"])
    assert (args.grace, args.lock_wait) == (se.DEFAULT_GRACE, se.DEFAULT_LOCK_WAIT)


def _code_strings(path):
    """The string constants of a module's code, its docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_the_map_suffix_is_known_in_one_module():
    holders = [
        path.relative_to(PACKAGE).as_posix()
        for path in [*PACKAGE.glob("*.py"), *PACKAGE.glob("*/*.py")]
        if any(".sedm" in text for text in _code_strings(path))
    ]
    assert holders == ["_mapfile.py"], holders


def test_the_mount_package_uses_only_the_public_api():
    for path in (PACKAGE / "mount").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                continue  # its own modules
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.startswith("self_encryption"):
                    assert name == "self_encryption", f"{path.name} imports {name}"


def test_the_cut_search_is_called_from_the_chunking_module_only():
    callers = []
    search = re.compile(r"\b(find_cut|cut_lengths|scan_candidates|resolve_cuts)\(")
    for path in PACKAGE.glob("*.py"):
        if path.name in ("_cbackend.py", "_pybackend.py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if search.search(line) and not line.lstrip().startswith(("def ", "#")):
                callers.append(f"{path.name}:{number}")
    assert callers and all(c.startswith("_chunking.py:") for c in callers), callers


def test_every_error_class_has_its_exit_code_in_the_table():
    table = {code.code: code.meaning for code in se.EXIT_CODES}
    for cls in (
        se.SelfEncryptionError,
        se.InvalidArgumentError,
        se.DataMapError,
        se.StoreError,
        se.ChunkNotFoundError,
        se.ChunkIntegrityError,
    ):
        assert cls.exit_code in table, cls
    assert (
        len(
            {
                cls.exit_code
                for cls in (
                    se.DataMapError,
                    se.StoreError,
                    se.ChunkNotFoundError,
                    se.ChunkIntegrityError,
                    se.InvalidArgumentError,
                )
            }
        )
        == 5
    )
    assert table[0] == "success" and table[130] == "interrupted"


def test_help_shows_the_exit_code_table():
    result = subprocess.run(
        [sys.executable, "-m", "self_encryption", "--help"], capture_output=True, text=True, check=True
    )
    for code in se.EXIT_CODES:
        assert re.search(rf"^\s*{code.code}\s+{re.escape(code.meaning)}$", result.stdout, re.M), code
    assert cli_errors.exit_codes_help() in result.stdout


def test_guide_exit_code_table_matches():
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", CLI_GUIDE.read_text(encoding="utf-8"), re.M)
    assert [(int(code), meaning) for code, meaning in rows] == [tuple(c) for c in se.EXIT_CODES]
