"""Command-line interface: a typer app with one plain function per command.

:func:`main` is the console-script entry point and the one place that turns typed errors into
a one-line message on stderr and the error's exit code (see :mod:`pybundle.errors`).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from pybundle.cli.app import app, state
from pybundle.errors import PybundleError


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; exits with 0 on success or the documented exit code of the error."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="pybundle")
    except PybundleError as exc:
        if state.verbose:
            traceback.print_exc()
        print(f"pybundle: error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("pybundle: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if state.verbose:
            traceback.print_exc()
        print(
            f"pybundle: error: unexpected {type(exc).__name__}: {exc} (run with -v for details)",
            file=sys.stderr,
        )
        sys.exit(1)


__all__ = ["app", "main"]
