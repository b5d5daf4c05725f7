"""Checks on the built documentation site (run by scripts/docs.sh after the build).

- Every public name (``self_encryption.__all__``, ``open`` and the public
  names of ``self_encryption.upstream``) is documented on an API page.
- Every public function, class and method has a docstring of its own, not
  one inherited from a builtin or a base class.
- No built page shows a builtin's docstring (``int([x]) -> integer``,
  "Represent a PEP 604 union type", "Alias for field number"...).
"""

from __future__ import annotations

import inspect
import pathlib
import re
import sys

import self_encryption as se

BUILT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html")
#: Text that only a builtin's docstring (or a generated one) would put on a page.
BUILTIN_TEXT = [
    "int([x]) -> integer",
    "int(x, base=10)",
    "Represent a PEP 604 union type",
    "Alias for field number",
    "str(object=",
    "Built-in immutable sequence",
    "Create and return a new object",
    "Initialize self.  See help(type(self))",
    "Return self==value",
    "tuple() -&gt; empty tuple",
    "bytes(iterable_of_ints)",
    "dict() -&gt; new empty dictionary",
]


def public_objects() -> dict[str, object]:
    names = {f"self_encryption.{name}": getattr(se, name) for name in se.__all__}
    names["self_encryption.open"] = se.open
    try:
        from self_encryption import upstream
    except ImportError:  # the upstream extra is missing: its page is then skipped too
        return names
    for name in getattr(upstream, "__all__", ()):
        names[f"self_encryption.upstream.{name}"] = getattr(upstream, name)
    return names


def own_docstring_problems(qualified: str, value: object) -> list[str]:
    problems = []
    if inspect.isclass(value):
        if not (value.__dict__.get("__doc__") or "").strip():
            problems.append(f"{qualified} has no docstring of its own")
        for attribute, member in vars(value).items():
            if attribute.startswith("_"):
                continue
            function = member.fget if isinstance(member, property) else member
            if isinstance(function, (staticmethod, classmethod)):
                function = function.__func__
            if inspect.isfunction(function) and not (function.__doc__ or "").strip():
                problems.append(f"{qualified}.{attribute} has no docstring")
    elif inspect.isfunction(value) or inspect.isbuiltin(value):
        if not (value.__doc__ or "").strip():
            problems.append(f"{qualified} has no docstring")
    return problems


def main() -> int:
    pages = {path: path.read_text(encoding="utf-8") for path in BUILT.rglob("*.html")}
    api = "".join(text for path, text in pages.items() if "api" in path.parts)
    problems = []
    for qualified, value in public_objects().items():
        if f'id="{qualified}"' not in api:
            problems.append(f"{qualified} is not documented on an API page")
        problems += own_docstring_problems(qualified, value)
    for path, text in sorted(pages.items()):
        for needle in BUILTIN_TEXT:
            if needle in text:
                problems.append(f"{path.relative_to(BUILT)} shows a builtin's docstring: {needle!r}")
        if re.search(r'id="[^"]+"', text) is None and "api" in path.parts:
            problems.append(f"{path.relative_to(BUILT)} documents nothing")
    for problem in problems:
        print(f"docs: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"docs: built {BUILT}; {len(public_objects())} public names documented, each with its own docstring"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
