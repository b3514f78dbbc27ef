"""Progress of an install, reported to whoever draws it (the CLI draws bars; the installer
never draws and never imports a progress-bar library).

:func:`pybundle.installer.install.install_bundle` calls an :class:`InstallProgress`:
:meth:`~InstallProgress.begin` once with the interpreters it will extract (after verification,
before the first byte is extracted), :meth:`~InstallProgress.advance` as each interpreter's
files are written, with the bytes of regular files extracted so far (compare: the manifest's
``unpacked_size``), and :meth:`~InstallProgress.end` when an interpreter's tree is staged.
All calls come from the installing process's main thread, also when the archives are extracted
by worker processes: workers publish their counts in shared memory (:class:`SharedCounters`)
and the main thread relays them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, Protocol

from pybundle.manifest import Artifact

__all__ = ["InstallProgress", "SharedCounters", "init_worker", "worker_reporter"]


class InstallProgress(Protocol):
    """Receives install progress; see the module docstring. Byte counts are cumulative per
    interpreter (``index`` is the position in the ``artifacts`` given to :meth:`begin`)."""

    def begin(self, artifacts: Sequence[Artifact]) -> None: ...

    def advance(self, index: int, done: int) -> None: ...

    def end(self, index: int) -> None: ...


class SharedCounters:
    """One signed 64-bit counter per interpreter in shared memory, written by the worker that
    extracts it and read by the main thread (aligned 8-byte stores: no lock is needed for a
    reader that only wants a recent value).

    Args:
        context: the multiprocessing context the workers are started with.
        n: how many interpreters.
    """

    def __init__(self, context: Any, n: int) -> None:
        self.values: Any = context.Array("q", n, lock=False)
        self._seen = [0] * n

    def relay(self, progress: Optional[InstallProgress]) -> None:
        """Report every counter that moved since the last call to ``progress``."""
        if progress is None:
            return
        for index, seen in enumerate(self._seen):
            now = int(self.values[index])
            if now != seen:
                self._seen[index] = now
                progress.advance(index, now)


_worker_values: Any = None


def init_worker(values: Any) -> None:
    """In a worker process (pool initializer): remember the shared counters
    (:attr:`SharedCounters.values`, or None when nobody watches)."""
    global _worker_values
    _worker_values = values


def worker_reporter(index: int) -> Optional[Callable[[int], None]]:
    """In a worker process: a callback storing the byte count of interpreter ``index`` in the
    shared counters, or None when :func:`init_worker` was given none."""
    values = _worker_values
    if values is None:
        return None

    def store(done: int) -> None:
        values[index] = done

    return store
