"""A ``cli-reference`` directive: the command line's help, made from its argument parser.

The page cannot drift from the code: every build asks the parser itself.
"""

from __future__ import annotations

import argparse

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

from self_encryption import cli


class CliReference(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        parser = cli.build_parser()
        sections = [("self-encryption", parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                sections += [(f"self-encryption {name}", sub) for name, sub in action.choices.items()]
        result: list[nodes.Node] = []
        for title, sub in sections:
            section = nodes.section(ids=[nodes.make_id(title)])
            section += nodes.title(text=title)
            text = sub.format_help().replace("sphinx-build", "self-encryption")
            section += nodes.literal_block(text, text)
            result.append(section)
        return result


def setup(app):
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
