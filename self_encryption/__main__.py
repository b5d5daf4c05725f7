"""``python -m self_encryption``: the same as the ``self-encryption`` command."""

from ._cli import run

run()
