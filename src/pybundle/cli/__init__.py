"""Command-line interface: a typer app with one plain function per command.

:func:`main` is the console-script entry point. It answers ``pybundle --version`` before Typer
and the commands are imported (start-up time is what that command measures); everything else
goes to :func:`pybundle.cli.entry.main`, the one place that turns errors into a one-line
message on stderr and an exit code (typed errors, see :mod:`pybundle.errors`, with their own
code; usage errors with 2). The conventions commands follow are in :mod:`pybundle.cli.common`;
the Typer app is :data:`pybundle.cli.app.app` (also importable from here, lazily).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; exits with 0 on success or the documented exit code of the error."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if args == ["--version"]:
        from pybundle import __version__

        print(f"pybundle {__version__}")
        return
    from pybundle.cli.entry import main as run

    run(args)


def __getattr__(name: str) -> Any:
    if name == "app":
        from pybundle.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
