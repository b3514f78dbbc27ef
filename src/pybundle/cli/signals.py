"""Ctrl-C and SIGTERM for commands that must clean up when stopped (``bundle``).

Python turns SIGINT (Ctrl-C) into :class:`KeyboardInterrupt` in the main thread, but SIGTERM's
default action kills the process on the spot, leaving work files behind; and typer turns a
KeyboardInterrupt that leaves a command into a silent exit 130. A command decorated with
:func:`interruptible` gets SIGTERM as :class:`pybundle.errors.Terminated` (a
KeyboardInterrupt) in the main thread, so that both signals unwind through its cleanup; the
interruption then leaves the command as :class:`Interrupted`, which passes typer untouched and
which :func:`pybundle.cli.main` reports with one line and exit 130 (``pybundle: interrupted``)
or 143 (``pybundle: terminated``).
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Optional, TypeVar

from pybundle.errors import Terminated

F = TypeVar("F", bound=Callable[..., Any])


class Interrupted(Exception):
    """A command was stopped by Ctrl-C or SIGTERM after its cleanup ran; ``exit_code`` is 130
    or 143 (128 + the signal number) and ``message`` the line to print."""

    def __init__(self, cause: KeyboardInterrupt) -> None:
        terminated = isinstance(cause, Terminated)
        self.exit_code = Terminated.exit_code if terminated else 130
        self.message = "pybundle: terminated" if terminated else "pybundle: interrupted"
        super().__init__(self.message)


def _raise_terminated(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated(f"signal {signum}")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` in the main thread; the previous
    handler comes back afterwards. Does nothing outside the main thread (where Python cannot
    set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interruptible(command: F) -> F:
    """Decorate a typer command: SIGTERM raises :class:`Terminated` while it runs, and a
    KeyboardInterrupt (Ctrl-C or Terminated) that leaves it becomes :class:`Interrupted`."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_raises():
                return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise Interrupted(exc) from exc

    return run  # type: ignore[return-value]
