"""Decompressing interpreter archives (``.tar.gz``, ``.tar.zst``) with bounded resources.

Shared by the bundler (which records an archive's unpacked size and member count in the
manifest) and the installer (which extracts within that budget).
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO, cast

import zstandard

from pybundle.errors import UnsafeArchiveError

try:  # ISA-L's inflate (PyPI isal): ~2.5x zlib's speed, in a thread that overlaps with writes
    from isal import igzip, igzip_lib
except ImportError:  # pragma: no cover - isal ships wheels for every platform we install on
    igzip = None  # type: ignore[assignment]
    _ISAL_ERRORS: tuple[type[BaseException], ...] = ()
else:
    _ISAL_ERRORS = (cast("type[BaseException]", igzip_lib.IsalError),)

ARCHIVE_FORMATS = ("tar.gz", "tar.zst")
ZSTD_MAX_WINDOW = 128 * 1024 * 1024
"""Largest zstd window accepted, in bytes: a frame asking for more is refused, so a hostile
archive cannot make the decoder allocate gigabytes (python-zstandard's ``max_window_size``)."""

DEFAULT_MAX_RATIO = 64
"""Without a manifest budget, an archive may unpack to at most this many times its size."""
DEFAULT_MAX_BYTES = 16 * 1024**3
"""Without a manifest budget, an archive may unpack to at most 16 GiB."""
DEFAULT_MAX_ENTRIES = 1_000_000
"""Without a manifest budget, an archive may hold at most this many members."""

READ_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    zstandard.ZstdError,
    ValueError,  # tarfile: a PAX record or numeric field that does not parse
    OverflowError,
    *_ISAL_ERRORS,
)
"""Exceptions that mean "this archive cannot be read" while decompressing or parsing."""


def open_decompressed(stream: IO[bytes], archive_format: str) -> IO[bytes]:
    """Wrap ``stream`` in a streaming decompressor for ``archive_format``.

    gzip is inflated by ISA-L in a background thread when ``isal`` is installed (stdlib gzip
    otherwise); zstd frames whose window exceeds ZSTD_MAX_WINDOW fail on first read with
    ZstdError. Raises UnsafeArchiveError for an unknown format.
    """
    if archive_format == "tar.gz":
        if igzip is not None:
            return cast(IO[bytes], igzip.IGzipFile(fileobj=stream, mode="rb"))  # type: ignore[no-untyped-call]
        return cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb"))
    if archive_format == "tar.zst":
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        return cast(IO[bytes], dctx.stream_reader(stream, read_across_frames=True, closefd=False))
    raise UnsafeArchiveError(f"unsupported archive format {archive_format!r}")


@dataclass(frozen=True)
class ArchiveShape:
    """What an archive unpacks to: total bytes of regular files and number of members."""

    unpacked_size: int
    file_count: int


def scan_archive(stream: IO[bytes], archive_format: str, source: str) -> ArchiveShape:
    """Read every tar header of an archive (streaming) and measure it.

    ``unpacked_size`` counts regular-file members' sizes in bytes, ``file_count`` every member
    (the same definitions the extractor checks). Raises UnsafeArchiveError naming ``source`` if
    the archive cannot be read.
    """
    size = count = 0
    try:
        with (
            open_decompressed(stream, archive_format) as raw,
            tarfile.open(fileobj=raw, mode="r|") as tar,
        ):
            for member in tar:
                count += 1
                if member.isfile():
                    size += member.size
    except READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{source}: archive cannot be read: {exc}") from exc
    return ArchiveShape(size, count)
