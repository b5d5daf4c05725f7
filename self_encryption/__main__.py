"""``python -m self_encryption``: the same as the ``self-encryption`` command."""

from .cli import run

run()
