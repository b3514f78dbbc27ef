"""Command-line interface: a typer app with one plain function per command.

:func:`main` is the console-script entry point and the one place that turns typed errors into
a one-line message on stderr and the error's exit code (see :mod:`pybundle.errors`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from pybundle.cli.app import app, state
from pybundle.cli.signals import Interrupted
from pybundle.errors import PybundleError


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; exits with 0 on success or the documented exit code of the error.

    Ctrl-C exits 130 with ``pybundle: interrupted``, and SIGTERM 143 with ``pybundle:
    terminated`` in the commands that turn it into an exception (see
    :mod:`pybundle.cli.signals`), once the command's cleanup has run.
    """
    try:
        app(args=list(argv) if argv is not None else None, prog_name="pybundle")
    except PybundleError as exc:
        if state.verbose:
            traceback.print_exc()
        print(f"pybundle: error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        print(exc.message, file=sys.stderr)
        _exit_at_once(exc.exit_code)
    except KeyboardInterrupt as exc:  # outside a command (typer catches those inside)
        print(Interrupted(exc).message, file=sys.stderr)
        sys.exit(Interrupted(exc).exit_code)
    except Exception as exc:
        if state.verbose:
            traceback.print_exc()
        print(
            f"pybundle: error: unexpected {type(exc).__name__}: {exc} (run with -v for details)",
            file=sys.stderr,
        )
        sys.exit(1)


def _exit_at_once(code: int) -> NoReturn:
    """Exit with ``code`` after an interruption, whose cleanup has already run while the
    exception unwound: without the interpreter's shutdown, which would first wait for threads
    that no longer matter (a download thread blocked in a TCP connect to a silent host, the
    zstd compressor's workers finishing a job of the archive that was just deleted)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


__all__ = ["app", "main"]
