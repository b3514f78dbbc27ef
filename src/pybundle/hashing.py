"""Streaming sha256 helpers: memory stays flat whatever the size of the data.

All sizes are in bytes. Digests are lower-case hexadecimal strings, as in the uv
catalog and in ``SHA256SUMS`` files of python-build-standalone releases.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pybundle.errors import HashMismatchError, StorageError

CHUNK_SIZE = 1024 * 1024
"""Read size for hashing and copying, in bytes (1 MiB)."""


def sha256_file(path: Path) -> tuple[str, int]:
    """Hash a file. Returns ``(hex digest, size in bytes)``; raises StorageError if unreadable."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return digest.hexdigest(), size


def check_digest(
    what: str, actual: tuple[str, int], expected_sha256: str, expected_size: int | None
) -> None:
    """Raise HashMismatchError naming ``what`` unless digest and size match the expectation.

    ``actual`` is the ``(hex digest, size)`` pair returned by the functions above.
    """
    digest, size = actual
    if expected_size is not None and size != expected_size:
        raise HashMismatchError(
            f"{what}: size is {size} bytes, expected {expected_size} bytes"
            + (" (data continues past the expected end)" if size > expected_size else "")
        )
    if digest != expected_sha256.lower():
        raise HashMismatchError(f"{what}: sha256 is {digest}, expected {expected_sha256.lower()}")
