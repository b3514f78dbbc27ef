"""``pybundle wheels export FILE DIR [--target KEY]``: one wheelhouse of a verified bundle,
written as a directory of wheels plus ``lock.txt`` for ``pip install --no-index --find-links
DIR --require-hashes -r DIR/lock.txt`` (or ``uv pip install --offline --find-links DIR``).

The directory is filled beside ``DIR`` (``.DIR.pybundle-export-XXXXXXXX``) and renamed into
place, so a failure leaves ``DIR`` as it was; ``DIR`` must be absent or empty.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pybundle.errors import AlreadyExistsError, StorageError
from pybundle.installer.fsops import move_into_place, remove_tree
from pybundle.installer.policy import check_freshness
from pybundle.installer.source import BundleSource
from pybundle.installer.venv import check_venv_destination
from pybundle.installer.verify import verify_manifest
from pybundle.installer.wheelhouse import LOCK_NAME, choose_wheelhouse, copy_wheelhouse
from pybundle.signing import PublicKey
from pybundle.targets import host_target

__all__ = ["Exported", "export_wheelhouse"]


@dataclass(frozen=True)
class Exported:
    """An exported wheelhouse: its ``key``, the directory ``path``, the ``wheels`` written
    (paths inside it), the ``lock`` path and the wheels' ``bytes``."""

    key: str
    path: Path
    wheels: tuple[Path, ...]
    lock: Path
    bytes: int


def export_wheelhouse(
    bundle: Path,
    trusted: Sequence[PublicKey],
    directory: Path,
    target: Optional[str] = None,
    *,
    allow_expired: bool = False,
) -> Exported:
    """Verify ``bundle`` against ``trusted`` and write the wheelhouse named ``target`` (see
    :func:`pybundle.installer.wheelhouse.choose_wheelhouse`) into ``directory``; every file is
    checked against the signed manifest as it is written.

    Raises AlreadyExistsError (``directory`` holds something), UsageError (no or ambiguous
    wheelhouse), SignatureError / UntrustedKeyError / ManifestError / HashMismatchError,
    StorageError. Nothing is left behind when one is raised.
    """
    dest = check_venv_destination(directory)
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pybundle-export-", dir=parent))
        os.chmod(staging, 0o755)
    except OSError as exc:
        raise StorageError(f"{parent}: cannot write the wheelhouse: {exc.strerror}") from exc
    try:
        with BundleSource(bundle) as source:
            manifest = verify_manifest(source, trusted).manifest
            check_freshness(manifest, str(bundle), allow_expired=allow_expired)
            house = choose_wheelhouse(manifest, target, host_target(), str(bundle))
            wheels, _lock = copy_wheelhouse(source, manifest, house, staging)
        if os.path.isdir(dest):
            try:
                os.rmdir(dest)
            except OSError as exc:
                raise AlreadyExistsError(f"{dest}: is no longer empty") from exc
        try:
            move_into_place(staging, dest)
        except OSError as exc:
            raise StorageError(f"{dest}: cannot move the wheelhouse into place: {exc}") from exc
    except BaseException:
        remove_tree(staging)
        raise
    written = tuple(dest / p.name for p in wheels)
    return Exported(
        house.key, dest, written, dest / LOCK_NAME, sum(p.stat().st_size for p in written)
    )
