"""Streaming sha256 helpers: memory stays flat whatever the size of the data.

All sizes are in bytes. Digests are lower-case hexadecimal strings, as in the uv
catalog and in ``SHA256SUMS`` files of python-build-standalone releases.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import IO

from pybundle.errors import HashMismatchError, StorageError

CHUNK_SIZE = 1024 * 1024
"""Read size for hashing and copying, in bytes (1 MiB)."""

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def is_sha256_hex(value: str) -> bool:
    """Return True when ``value`` is 64 lower-case hex digits."""
    return bool(_SHA256_RE.match(value))


def sha256_stream(stream: IO[bytes], limit: int | None = None) -> tuple[str, int]:
    """Hash a binary stream to its end, or to ``limit`` bytes + 1 when a limit is given.

    Returns ``(hex digest, number of bytes read)``. With a limit, at most ``limit + 1``
    bytes are read, so that a caller can tell "longer than expected" from "exactly right"
    without reading an endless stream.
    """
    digest = hashlib.sha256()
    total = 0
    remaining = None if limit is None else limit + 1
    while True:
        want = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
        if want == 0:
            break
        chunk = stream.read(want)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    return digest.hexdigest(), total


def sha256_file(path: Path) -> tuple[str, int]:
    """Hash a file. Returns ``(hex digest, size in bytes)``; raises StorageError if unreadable."""
    try:
        with open(path, "rb") as stream:
            return sha256_stream(stream)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc


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
