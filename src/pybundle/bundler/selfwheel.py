"""pybundle's own wheel, built at bundle time from the running installation.

A self-installing bundle carries the pybundle that made it. It is never fetched from a package
index (the name ``pybundle`` there belongs to an unrelated project): this module walks the
directory of the imported :mod:`pybundle` package and reads the installed distribution's
metadata (:func:`importlib.metadata.distribution`), and writes a pure-Python wheel
(``py3-none-any``) in the format of PEP 427 / the binary distribution format specification:
the package files, then ``pybundle-<version>.dist-info/`` with ``METADATA`` and
``entry_points.txt`` as installed, a ``WHEEL`` file and a ``RECORD`` (urlsafe-base64 sha256
without padding, and the size, of every other file).

The wheel is reproducible: entries are sorted, every timestamp is 1980-01-01 00:00:00 (the
earliest a zip can hold), modes are 0644, and compiled bytecode (``__pycache__``, ``*.pyc``)
and hidden files are left out, so the same installation always gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import zipfile
from pathlib import Path

import pybundle
from pybundle.errors import StorageError
from pybundle.hashing import sha256_file

__all__ = ["SELF_WHEEL_TAG", "build_self_wheel", "self_wheel_name"]

SELF_WHEEL_TAG = "py3-none-any"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The zip format's earliest timestamp, used for every entry."""
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _version() -> str:
    return importlib.metadata.version("pybundle")


def self_wheel_name() -> str:
    """``pybundle-<installed version>-py3-none-any.whl``."""
    return f"pybundle-{_version()}-{SELF_WHEEL_TAG}.whl"


def _package_files(package_dir: Path) -> list[tuple[str, Path]]:
    """``(archive name, path)`` of every file of the package directory, sorted by name."""
    found = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(dirpath) / name
            if not path.is_file():
                continue
            rel = path.relative_to(package_dir.parent).as_posix()
            found.append((rel, path))
    return sorted(found)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # Unix, whatever the build host: part of the bytes
    return info


def build_self_wheel(dest_dir: Path) -> tuple[Path, str, int]:
    """Write pybundle's wheel into ``dest_dir``; returns ``(path, sha256 hex, size in bytes)``.

    Raises StorageError when the package or its metadata cannot be read, or the wheel cannot be
    written.
    """
    package_dir = Path(pybundle.__file__).resolve().parent
    try:
        dist = importlib.metadata.distribution("pybundle")
        metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
        entry_points = dist.read_text("entry_points.txt") or ""
    except (importlib.metadata.PackageNotFoundError, OSError) as exc:
        raise StorageError(f"cannot read pybundle's installed metadata: {exc}") from exc
    if not metadata:
        raise StorageError("cannot read pybundle's installed metadata: no METADATA file")
    version = dist.version
    info_dir = f"pybundle-{version}.dist-info"
    generated = {
        f"{info_dir}/METADATA": metadata.encode("utf-8"),
        f"{info_dir}/WHEEL": (
            "Wheel-Version: 1.0\n"
            f"Generator: pybundle {version} (self wheel)\n"
            "Root-Is-Purelib: true\n"
            f"Tag: {SELF_WHEEL_TAG}\n"
        ).encode("ascii"),
    }
    if entry_points:
        generated[f"{info_dir}/entry_points.txt"] = entry_points.encode("utf-8")
    path = dest_dir / f"pybundle-{version}-{SELF_WHEEL_TAG}.whl"
    record: list[str] = []
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, file in _package_files(package_dir):
                data = file.read_bytes()
                zf.writestr(_info(name), data)
                record.append(_record_line(name, data))
            for name in sorted(generated):
                zf.writestr(_info(name), generated[name])
                record.append(_record_line(name, generated[name]))
            record.append(f"{info_dir}/RECORD,,")
            zf.writestr(_info(f"{info_dir}/RECORD"), ("\n".join(record) + "\n").encode("utf-8"))
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write pybundle's wheel: {exc}") from exc
    digest, size = sha256_file(path)
    return path, digest, size
