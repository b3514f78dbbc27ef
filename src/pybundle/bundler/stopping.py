"""Stopping a bundle run promptly: Ctrl-C or SIGTERM reach the main thread only, so the
download threads are told through a :class:`threading.Event` that they check between chunks,
while waiting for a cache lock and in every retry back-off.

The main thread sets the event (see :meth:`pybundle.bundler.download.Downloader.request_stop`);
a thread that notices it raises :class:`Stopped`, which unwinds it through its ``finally``
blocks (partial downloads stay on disk, resumable; locks are released) without being taken for
a failure of the download.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any, BinaryIO, Callable, Optional, TypeVar

T = TypeVar("T")


class Stopped(KeyboardInterrupt):
    """A thread stopped because a stop was requested (by Ctrl-C or SIGTERM in the main thread).

    A :class:`KeyboardInterrupt`, so that nothing catches it as an ordinary failure and the CLI
    reports it as an interruption (exit 130) if it ever reaches it.
    """


def check(stop: Optional[threading.Event]) -> None:
    """Raise :class:`Stopped` if ``stop`` is set (None: never)."""
    if stop is not None and stop.is_set():
        raise Stopped


def pause(stop: Optional[threading.Event], seconds: float) -> None:
    """Sleep ``seconds``, waking at once when ``stop`` is set (then raise :class:`Stopped`)."""
    if seconds <= 0:
        check(stop)
    elif stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise Stopped


JOIN_POLL = 0.05
"""Seconds between the checks for a pending signal while :func:`run_stoppable` waits."""


def run_stoppable(work: Callable[[threading.Event], T], name: str) -> T:
    """Run ``work(stop)`` in a daemon thread while this thread waits, and return its result or
    raise its exception. An exception raised in this thread while it waits (Ctrl-C, the CLI's
    SIGTERM exception) sets ``stop`` and goes on at once, without waiting for the worker: code
    that runs long in C (a zstd compression job) cannot delay it; ``work`` is expected to
    notice ``stop`` soon and clean up after itself.
    """
    stop = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work(stop)))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        # Not join() alone: the kernel may hand SIGINT/SIGTERM to another thread of the process
        # (the worker, or zstd's own compression threads), and a main thread asleep in an
        # untimed wait is then never woken to run the Python handler. A timed wait returns to
        # the interpreter, which runs pending handlers, every JOIN_POLL seconds.
        while thread.is_alive():
            thread.join(JOIN_POLL)
    except BaseException:
        stop.set()
        raise
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class StoppableReader(io.RawIOBase):
    """A read-only view of a binary file whose reads raise :class:`Stopped` once ``stop`` is
    set, so that a long scan of an archive (decompressing every header) can be abandoned."""

    def __init__(self, stream: BinaryIO, stop: Optional[threading.Event]) -> None:
        super().__init__()
        self._stream = stream
        self._stop = stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        check(self._stop)
        return self._stream.readinto(buffer)  # type: ignore[attr-defined, no-any-return]

    def read(self, size: int = -1) -> bytes:
        check(self._stop)
        return self._stream.read(size)
