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
from typing import Any, BinaryIO, Optional


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
