"""Reading a bundle's wheelhouses on the install side: choose a target's wheelhouse and copy
its wheels and lock out of the bundle, each checked against the (signed) manifest's sha256 and
size as it is written, before anything uses them (``install --venv``, ``wheels export``).

The section itself is :mod:`pybundle.wheelhouse`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from pybundle.errors import StorageError, UsageError
from pybundle.hashing import check_digest
from pybundle.installer.source import BundleSource
from pybundle.manifest import Artifact, Manifest
from pybundle.targets import Target
from pybundle.wheelhouse import Wheelhouse

__all__ = ["LOCK_NAME", "choose_wheelhouse", "copy_wheelhouse", "wheelhouse_for"]

LOCK_NAME = "lock.txt"
"""The lock's file name in a written wheelhouse directory."""
CHUNK = 1024 * 1024


def wheelhouse_for(manifest: Manifest, artifact: Artifact, source: str) -> Wheelhouse:
    """The wheelhouse serving ``artifact``. Raises UsageError naming ``source`` when the
    bundle carries no wheels, or none for that interpreter."""
    section = manifest.wheelhouses
    if section is None:
        raise UsageError(f"{source}: the bundle carries no wheels (bundle it with -r or --with)")
    house = section.for_artifact(artifact.member)
    if house is None:
        raise UsageError(
            f"{source}: the bundle carries no wheels for {artifact.install_name} "
            f"(it has {', '.join(t.key for t in section.targets)})"
        )
    return house


def choose_wheelhouse(
    manifest: Manifest, name: Optional[str], host: Target, source: str
) -> Wheelhouse:
    """The wheelhouse named ``name`` (its key, or its key without the libc), or, without a
    name, the only one, else the only one for ``host``'s platform. Raises UsageError listing
    the keys when there is none or the choice is ambiguous."""
    section = manifest.wheelhouses
    if section is None:
        raise UsageError(f"{source}: the bundle carries no wheels (bundle it with -r or --with)")
    keys = ", ".join(t.key for t in section.targets)
    if name is not None:
        found = [t for t in section.targets if t.matches(name)]
        if not found:
            raise UsageError(f"{source}: no wheelhouse {name} (the bundle has {keys})")
        return found[0]
    if len(section.targets) == 1:
        return section.targets[0]
    mine = [
        t
        for t in section.targets
        if (t.target.os, t.target.arch, t.target.libc) == (host.os, host.arch, host.libc)
    ]
    if len(mine) == 1:
        return mine[0]
    raise UsageError(
        f"{source}: the bundle has several wheelhouses; choose one with --target ({keys})"
    )


def copy_wheelhouse(
    source: BundleSource, manifest: Manifest, house: Wheelhouse, dest: Path
) -> tuple[list[Path], Path]:
    """Copy the wheels of ``house`` and its lock (as ``lock.txt``) out of the bundle
    ``source`` into the existing directory ``dest``, streaming each member and checking its
    sha256 and size against ``manifest`` before the next one is written. Returns
    ``(wheel paths, lock path)``.

    Raises HashMismatchError naming the bundle and member (the file is removed),
    ManifestError / IntegrityError (a member missing or damaged in the zip), StorageError.
    """
    section = manifest.wheelhouses
    if section is None:
        raise UsageError(f"{source.path}: the bundle carries no wheels")
    records = [section.wheel(m) for m in house.wheels]
    written: list[Path] = []
    pairs: Sequence[tuple[str, int, str, Path]] = [
        *((w.member, w.size, w.sha256, dest / w.file_name) for w in records),
        (house.lock.member, house.lock.size, house.lock.sha256, dest / LOCK_NAME),
    ]
    for member, size, sha256, path in pairs:
        try:
            with source.open_member(member, size) as stream, open(path, "xb") as out:
                while block := stream.read(CHUNK):
                    out.write(block)
                digest = stream.finish()
        except OSError as exc:
            raise StorageError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        try:
            check_digest(f"{source.path}: {member}", digest, sha256, size)
        except BaseException:
            os.unlink(path)
            raise
        written.append(path)
    return written[:-1], written[-1]
