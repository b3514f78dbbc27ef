"""The index of install prefixes in pybundle's state dir, so that ``list``, ``check`` and
``uninstall`` also find installs made with ``--prefix`` anywhere.

``<state dir>/installs.json`` (``$PYBUNDLE_STATE_DIR``, else ``~/.local/state/pybundle``) holds
``{"version": 1, "prefixes": ["/abs/prefix", ...]}``. It only helps finding installs: the
receipt inside each directory is what proves an install is pybundle's, so a stale or damaged
index costs nothing but a rewrite (a damaged one is read as empty and replaced).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from pybundle.errors import PybundleError
from pybundle.installer.policy import default_state_dir
from pybundle.jsondoc import load_json

INDEX_NAME = "installs.json"
INDEX_VERSION = 1
MAX_INDEX_BYTES = 4 * 1024 * 1024


class _Damaged(PybundleError):
    pass


class InstallIndex:
    """The prefixes pybundle installed to (absolute paths), in ``directory`` (default: the
    state dir). Every method is best effort: an index that cannot be written is not an error
    (the receipts are the record), so nothing here raises."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_state_dir()
        self.path = self.directory / INDEX_NAME

    def prefixes(self) -> list[str]:
        """The recorded prefixes, in the order recorded (empty when absent or damaged)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return []
        try:
            doc = load_json(
                data, str(self.path), "install index", _Damaged, max_bytes=MAX_INDEX_BYTES
            )
        except _Damaged:
            return []
        if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION:
            return []
        found = doc.get("prefixes")
        if not isinstance(found, list):
            return []
        return [p for p in found if isinstance(p, str) and p.startswith("/")]

    def update(self, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        """Add and remove prefixes (normalised absolute paths) under a lock."""
        add = [os.path.normpath(p) for p in add]
        drop = {os.path.normpath(p) for p in remove}
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.directory / "installs.lock")):
                current = [p for p in self.prefixes() if p not in drop]
                for p in add:
                    if p not in current:
                        current.append(p)
                text = json.dumps({"version": INDEX_VERSION, "prefixes": current}, indent=1)
                fd, tmp = tempfile.mkstemp(prefix=".installs.", suffix=".tmp", dir=self.directory)
                try:
                    with os.fdopen(fd, "w") as out:
                        out.write(text + "\n")
                    os.replace(tmp, self.path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
