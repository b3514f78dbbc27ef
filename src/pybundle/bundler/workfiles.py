"""The files a bundle run keeps beside its output, the lock that guards them, and the removal of
those that a killed run left behind.

A run of ``pybundle bundle -o DIR/NAME`` works in ``DIR`` (the same file system, so that the
finished bundle is renamed into place):

* ``DIR/.NAME.XXXXXXXX.work/``: archives packed from ``--from-prefix`` (see
  :mod:`pybundle.bundler.build`);
* ``DIR/.NAME.XXXXXXXX.tmp``: the bundle being written (see :mod:`pybundle.bundler.pack`);
* ``DIR/.NAME.lock``: a lock file that the run holds (``flock``) from before its downloads
  until its bundle is in place, and removes when it lets go (a run killed outright leaves it,
  empty and unlocked; the next run reuses it).

``XXXXXXXX`` is :mod:`tempfile`'s eight random characters (``[a-z0-9_]``). The run removes its
own work files on success, on error, on Ctrl-C and on SIGTERM; a run killed outright (SIGKILL,
power loss) cannot. The next run to the same output takes the lock, which proves that no run to
that output is alive, and then removes exactly those names: real directories (``.work``) and
regular files (``.tmp``) owned by the user, never a symbolic link or any other name.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, Optional

from pybundle.errors import AlreadyExistsError, StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: filelock's lock, whose file stays
    fcntl = None  # type: ignore[assignment]

WORK_SUFFIX = ".work"
TMP_SUFFIX = ".tmp"
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's _RandomNameSequence: 8 of "a-z0-9_"


def lock_path(output: Path) -> Path:
    """``DIR/.NAME.lock`` for the output ``DIR/NAME``."""
    return output.parent / f".{output.name}.lock"


def _prefix(output: Path) -> str:
    return f".{output.name}."


def make_work_dir(output: Path) -> Path:
    """Create this run's ``DIR/.NAME.XXXXXXXX.work`` directory (mode 0700).

    Raises StorageError naming ``DIR`` when it cannot be created.
    """
    try:
        return Path(tempfile.mkdtemp(prefix=_prefix(output), suffix=WORK_SUFFIX, dir=output.parent))
    except OSError as exc:
        raise StorageError(f"{output.parent}: cannot create a work directory: {exc}") from exc


def make_temp_file(output: Path) -> tuple[int, Path]:
    """Create this run's ``DIR/.NAME.XXXXXXXX.tmp`` (mode 0600); returns ``(fd, path)``.

    Raises OSError (the caller names the output in its error).
    """
    fd, name = tempfile.mkstemp(prefix=_prefix(output), suffix=TMP_SUFFIX, dir=output.parent)
    return fd, Path(name)


def leftovers(output: Path) -> list[Path]:
    """The work directories and temporary bundles of runs to ``output`` present beside it
    (whether their runs are alive or not: only the holder of the lock may remove them), sorted.
    Only real directories and regular files owned by this user count."""
    pattern = re.compile(
        re.escape(_prefix(output)) + _RANDOM + "(" + re.escape(WORK_SUFFIX) + "|"
        + re.escape(TMP_SUFFIX) + ")"
    )  # fmt: skip
    found = []
    try:
        entries = list(os.scandir(output.parent))
    except OSError:
        return []
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if uid is not None and st.st_uid != uid:
            continue
        wanted = stat.S_ISDIR if m.group(1) == WORK_SUFFIX else stat.S_ISREG
        if wanted(st.st_mode):
            found.append(Path(entry.path))
    return sorted(found)


@contextmanager
def claim_output(output: Path) -> Iterator[list[Path]]:
    """Hold ``DIR/.NAME.lock`` for a run that writes ``output``, after removing the leftovers
    of killed runs (see the module docstring); yields the paths removed. Creates ``DIR`` if
    needed.

    Raises:
        AlreadyExistsError: another run to the same output holds the lock (it is not waited
            for: it may take minutes, and both would write the same file).
        StorageError: ``DIR`` or the lock file cannot be created.
    """
    lock_file = lock_path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        release = _lock(lock_file)
    except OSError as exc:
        raise StorageError(f"{output}: cannot create the lock file {lock_file}: {exc}") from exc
    if release is None:
        raise AlreadyExistsError(
            f"{output}: another pybundle bundle is writing it now (it holds {lock_file})"
        )
    try:
        removed = []
        for path in leftovers(output):
            if path.name.endswith(WORK_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(OSError):
                    path.unlink()
            if not os.path.lexists(path):
                removed.append(path)
        yield removed
    finally:
        release()


def _lock(path: Path) -> Optional[Callable[[], None]]:
    """Take the lock file ``path`` without waiting: returns the function that releases it (and
    removes the file), or None when another process holds it. Raises OSError.

    The file is removed while still locked; a process that locked it meanwhile through an
    older descriptor finds the path gone or naming another file, and tries again, so two
    processes never both believe they hold it.
    """
    if fcntl is None:  # pragma: no cover
        import filelock

        lock = filelock.FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            return None
        return lambda: lock.release()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            held, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            os.close(fd)
            continue
        if (held.st_dev, held.st_ino) != (named.st_dev, named.st_ino):
            os.close(fd)
            continue

        def release(fd: int = fd) -> None:
            with suppress(OSError):
                os.unlink(path)
            os.close(fd)

        return release
