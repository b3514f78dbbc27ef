"""Atomic directory moves for installs: rename without replacing, and atomic exchange.

On Linux, ``renameat2(2)`` with ``RENAME_NOREPLACE`` moves a staged tree into place only if
the destination does not exist, and ``RENAME_EXCHANGE`` swaps a staged tree with an existing
install in one step (glibc >= 2.28 exports it; see renameat2(2)). Elsewhere, or when the file
system does not support the flags, we fall back to ``os.rename`` (after an existence check)
and to rename-aside with rollback.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def _libc_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_RENAMEAT2 = _libc_renameat2()


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Call renameat2; True on success, False if unsupported; OSError on other failures."""
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def move_into_place(staged: Path, dest: Path) -> None:
    """Rename ``staged`` to ``dest``, which must not exist (FileExistsError if it does)."""
    if _renameat2(staged, dest, RENAME_NOREPLACE):
        return
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "already exists", str(dest))
    os.rename(staged, dest)


def swap_into_place(staged: Path, dest: Path) -> None:
    """Replace the existing tree ``dest`` by ``staged`` so that ``dest`` is always a complete
    tree (old or new). Afterwards ``staged`` holds the old tree, for the caller to delete.

    Uses RENAME_EXCHANGE; without it, renames the old tree aside, moves the new one in, and
    rolls back if that fails.
    """
    if _renameat2(staged, dest, RENAME_EXCHANGE):
        return
    aside = staged.with_name(staged.name + ".old")
    os.rename(dest, aside)
    try:
        os.rename(staged, dest)
    except OSError:
        os.rename(aside, dest)
        raise
    os.rename(aside, staged)


def remove_tree(path: Path) -> None:
    """Delete a staging entry or a replaced install, ignoring errors. A symlink (or any other
    non-directory) is removed itself, never followed: rmtree refuses links, and skipping them
    would leave the entry behind."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
