"""``pybundle check``: does an installed tree still match its receipt? (like ``rpm -V`` or
``debsums``, for interpreters).

Every regular file is re-hashed (sha256) and compared with the receipt, with its mode and
size; symlinks are compared by target; files the receipt does not list are *added*, listed
files that are gone are *removed*. Bytecode caches that Python writes on its own
(``__pycache__/*.pyc``, PEP 3147) are reported apart as ``bytecode`` and do not make a tree
unclean; everything else does. The receipt itself is not part of the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pybundle.errors import PybundleError
from pybundle.installer.receipts import FileEntry, Receipt, ReceiptError, read_receipt, scan_tree

CHECK_EXIT_CODE = 10
"""Exit code of ``pybundle check`` when an install differs from its receipt."""


class InstallModifiedError(PybundleError):
    """An installed tree differs from its receipt (exit 10; ``pybundle check``)."""

    exit_code = CHECK_EXIT_CODE


@dataclass(frozen=True)
class Change:
    """One difference: ``path`` (relative to the prefix), ``status`` (``modified``,
    ``removed`` or ``added``) and, for ``modified``, what differs: any of ``sha256``,
    ``size``, ``mode``, ``type`` (file vs symlink) and ``target`` (a symlink's text)."""

    path: str
    status: str
    what: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``{"path", "status", "changes"}``."""
        return {"path": self.path, "status": self.status, "changes": list(self.what)}


@dataclass(frozen=True)
class CheckReport:
    """The result for one install: ``changes`` (tampering or user changes) and ``bytecode``
    (caches Python writes itself), both sorted by path; ``files`` is the number of entries
    the receipt lists."""

    path: Path
    receipt: Receipt
    files: int
    changes: tuple[Change, ...] = field(default=())
    bytecode: tuple[Change, ...] = field(default=())

    @property
    def clean(self) -> bool:
        """True when nothing but bytecode caches differs."""
        return not self.changes

    def count(self, status: str) -> int:
        """How many changes have ``status``."""
        return sum(1 for c in self.changes if c.status == status)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON: path, version, clean, counts, changes and bytecode lists."""
        a = self.receipt.artifact
        return {
            "path": str(self.path),
            "implementation": a.implementation,
            "version": a.version,
            "clean": self.clean,
            "files": self.files,
            "modified": self.count("modified"),
            "removed": self.count("removed"),
            "added": self.count("added"),
            "changes": [c.to_json() for c in self.changes],
            "bytecode": [c.to_json() for c in self.bytecode],
        }


def is_bytecode(path: str) -> bool:
    """True for ``.../__pycache__/*.pyc`` (PEP 3147 caches, written by the interpreter)."""
    parts = path.rsplit("/", 2)
    return len(parts) >= 2 and parts[-2] == "__pycache__" and parts[-1].endswith(".pyc")


def _differences(want: FileEntry, have: FileEntry) -> tuple[str, ...]:
    if want.kind != have.kind:
        return ("type",)
    if want.kind == "symlink":
        return ("target",) if want.target != have.target else ()
    what = []
    if want.size != have.size:
        what.append("size")
    if want.sha256 != have.sha256:
        what.append("sha256")
    if want.mode != have.mode:
        what.append("mode")
    return tuple(what)


def check_install(path: Path) -> CheckReport:
    """Compare the tree at ``path`` with its receipt.

    Raises ReceiptError (exit 8) when there is no receipt or it cannot be read, and
    StorageError when a file cannot be read. Reading is streaming (1 MiB chunks): memory does
    not grow with file sizes.
    """
    receipt = read_receipt(path)
    if receipt is None:
        raise ReceiptError(f"{path}: has no install receipt; pybundle did not install it")
    have = {e.path: e for e in scan_tree(path)}
    changes: list[Change] = []
    bytecode: list[Change] = []
    seen: set[str] = set()
    for want in receipt.files:
        seen.add(want.path)
        now = have.get(want.path)
        change = None
        if now is None:
            change = Change(want.path, "removed")
        else:
            what = _differences(want, now)
            if what:
                change = Change(want.path, "modified", what)
        if change is not None:
            (bytecode if is_bytecode(want.path) else changes).append(change)
    for rel in sorted(set(have) - seen):
        (bytecode if is_bytecode(rel) else changes).append(Change(rel, "added"))
    changes.sort(key=lambda c: c.path)
    bytecode.sort(key=lambda c: c.path)
    return CheckReport(path, receipt, len(receipt.files), tuple(changes), tuple(bytecode))
