"""The ``self-encryption`` command line.

Its commands are ``encrypt``, ``decrypt``, ``cat``, ``info``, ``verify``,
``gc``, ``import-upstream``, ``locks`` and ``mount``, one module each
(``encrypt_cmd`` ... ``mount_cmd``), every command's options declared beside its body.
The options that several commands share (and the parser that never
prints a data map) are in ``options``, data map arguments and map files in
``maps``, expected failures and their exit codes in ``errors``, the
formatting of output (progress, sizes, speeds, JSON) in ``output``, the
turning of SIGTERM and SIGHUP into an interrupt in ``signals``, and the
entry point (``main``, ``run``) in ``entry``.

Every command calls the public package and formats what it returns.
Expected failures end with a one-line message and the exit code of the
error's class (``self_encryption.EXIT_CODES``), never a traceback.
"""

from .entry import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
