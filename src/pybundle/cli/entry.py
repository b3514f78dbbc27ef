"""The CLI's one place that turns errors into a one-line message on stderr and an exit code
(:func:`main`, called by :func:`pybundle.cli.main`): typed errors (see :mod:`pybundle.errors`) exit
with their own code, Typer's usage errors (missing or unknown option, bad value, unknown
command) with 2, all as ``pybundle: error: <message>``. The conventions commands follow are in
:mod:`pybundle.cli.common`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import typer
import typer.main

from pybundle.cli.app import app
from pybundle.cli.common import state, usage_line
from pybundle.cli.signals import Interrupted
from pybundle.errors import PybundleError

try:  # recent Typer vendors click; older releases use the click package
    from typer._click.exceptions import ClickException as _ClickException
    from typer._click.exceptions import NoArgsIsHelpError as _NoArgsIsHelp
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import ClickException as _ClickException  # type: ignore[assignment,no-redef]

    class _NoArgsIsHelp(Exception):  # type: ignore[no-redef]
        """Older click prints the help for a bare command itself."""


ONLINE_ONLY = ("requests", "urllib3", "tqdm")
"""Distributions of the online side, which a kept installer (``install --keep-installer``)
does not have."""


def _fail(message: str, code: int) -> None:
    print(f"pybundle: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; exits with 0 on success or the documented exit code of the error.

    Ctrl-C exits 130 with ``pybundle: interrupted``, and SIGTERM 143 with ``pybundle:
    terminated`` in the commands that turn it into an exception (see
    :mod:`pybundle.cli.signals`), once the command's cleanup has run.
    """
    state.reset()
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        code = app(
            args=args,
            prog_name="pybundle",
            standalone_mode=False,
        )
    except PybundleError as exc:
        if state.verbose:
            traceback.print_exc()
        _fail(exc.message, exc.exit_code)
    except _NoArgsIsHelp as exc:
        # a bare `pybundle` or `pybundle cache`: the help, on stderr, as a usage error
        print(exc.format_message(), file=sys.stderr)
        sys.exit(2)
    except _ClickException as exc:
        if state.verbose:
            traceback.print_exc()
        _fail(usage_line(exc, typer.main.get_command(app), args), 2)
    except Interrupted as exc:
        print(exc.message, file=sys.stderr)
        _exit_at_once(exc.exit_code)
    except KeyboardInterrupt as exc:  # outside a command's own handling
        print(Interrupted(exc).message, file=sys.stderr)
        sys.exit(Interrupted(exc).exit_code)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ONLINE_ONLY:
            if state.verbose:
                traceback.print_exc()
            _fail(f"unexpected ModuleNotFoundError: {exc} (run with -v for details)", 1)
        _fail(
            f"this pybundle has the install side only ({exc.name} is not installed: it was kept "
            "from a self-installing bundle); this command needs a full pybundle installation",
            2,
        )
    except typer.Abort:  # click's form of a KeyboardInterrupt inside a command
        print("pybundle: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if state.verbose:
            traceback.print_exc()
        _fail(f"unexpected {type(exc).__name__}: {exc} (run with -v for details)", 1)
    if isinstance(code, int) and code:
        sys.exit(code)


def _exit_at_once(code: int) -> NoReturn:
    """Exit with ``code`` after an interruption, whose cleanup has already run while the
    exception unwound: without the interpreter's shutdown, which would first wait for threads
    that no longer matter (a download thread blocked in a TCP connect to a silent host, the
    zstd compressor's workers finishing a job of the archive that was just deleted)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


__all__ = ["main"]
