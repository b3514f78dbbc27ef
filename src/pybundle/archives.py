"""Decompressing interpreter archives (``.tar.gz``, ``.tar.zst``) with bounded resources.

Shared by the bundler (which records an archive's unpacked size and member count in the
manifest) and the installer (which extracts within that budget). :class:`InflateThread` runs
the decompressor (and whatever the compressed stream does as it is read, e.g. hashing) on a
background thread behind a bounded queue, so that it overlaps with parsing and writing on the
caller's thread: ISA-L, zstd and hashlib release the GIL while they work.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import queue
import threading
import zlib
from dataclasses import dataclass
from typing import IO, Union, cast

from pybundle.errors import UnsafeArchiveError
from pybundle.fileindex import IndexEntry, can_index, format_index
from pybundle.tarstream import FILE, TarStream

try:  # a self-installing bundle carries zstandard only when one of its archives is tar.zst
    import zstandard
except ImportError:  # pragma: no cover - a dependency of every full install
    zstandard = None  # type: ignore[assignment]
    _ZSTD_ERRORS: tuple[type[BaseException], ...] = ()
else:
    _ZSTD_ERRORS = (zstandard.ZstdError,)

try:  # ISA-L's inflate (PyPI isal): ~2.5x zlib's speed (see InflateThread for the overlap)
    from isal import igzip, igzip_lib
except ImportError:  # pragma: no cover - isal ships wheels for every platform we install on
    igzip = None  # type: ignore[assignment]
    _ISAL_ERRORS: tuple[type[BaseException], ...] = ()
else:
    _ISAL_ERRORS = (cast("type[BaseException]", igzip_lib.IsalError),)

ARCHIVE_FORMATS = ("tar.gz", "tar.zst")
TAR_STREAM = "tar"
"""An uncompressed tar stream (what a compact bundle's solid stream holds per archive)."""
ZSTD_MAX_WINDOW = 128 * 1024 * 1024
"""Largest zstd window accepted, in bytes: a frame asking for more is refused, so a hostile
archive cannot make the decoder allocate gigabytes (python-zstandard's ``max_window_size``)."""

DEFAULT_MAX_RATIO = 64
"""Without a manifest budget, an archive may unpack to at most this many times its size."""
DEFAULT_MAX_BYTES = 16 * 1024**3
"""Without a manifest budget, an archive may unpack to at most 16 GiB."""
DEFAULT_MAX_ENTRIES = 1_000_000
"""Without a manifest budget, an archive may hold at most this many members."""

INFLATE_CHUNK = 256 * 1024
"""Bytes asked of the decompressor per read on the background thread."""
INFLATE_DEPTH = 16
"""Decompressed chunks the background thread may hold ahead of the reader (so at most
INFLATE_DEPTH * INFLATE_CHUNK bytes, 4 MiB, are in flight)."""

READ_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    *_ZSTD_ERRORS,
    ValueError,  # a decompressor fed bytes it cannot use
    OverflowError,
    *_ISAL_ERRORS,
)
"""Exceptions that mean "this archive cannot be read" while decompressing or parsing."""


def open_decompressed(stream: IO[bytes], archive_format: str) -> IO[bytes]:
    """Wrap ``stream`` in a streaming decompressor for ``archive_format`` (``tar``: none).

    gzip is inflated by ISA-L when ``isal`` is installed (stdlib gzip otherwise), on the
    calling thread (wrap it in :class:`InflateThread` to overlap it with other work); zstd
    frames whose window exceeds ZSTD_MAX_WINDOW fail on first read with ZstdError. Raises
    UnsafeArchiveError for an unknown format.
    """
    if archive_format == "tar.gz":
        if igzip is not None:
            return cast(IO[bytes], igzip.IGzipFile(fileobj=stream, mode="rb"))  # type: ignore[no-untyped-call]
        return cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb"))
    if archive_format == "tar.zst":
        if zstandard is None:  # pragma: no cover - see the import above
            raise UnsafeArchiveError(
                "cannot read a tar.zst archive: this pybundle has no zstandard (a self-installing "
                "bundle carries it only when it holds tar.zst archives); install the zstandard "
                "package next to it"
            )
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        return cast(IO[bytes], dctx.stream_reader(stream, read_across_frames=True, closefd=False))
    if archive_format == TAR_STREAM:
        return cast(IO[bytes], _Uncompressed(stream))
    raise UnsafeArchiveError(f"unsupported archive format {archive_format!r}")


class _Uncompressed:
    """An uncompressed stream behind the decompressors' interface: ``close`` leaves the
    underlying stream open (its owner drains and hashes the rest)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.read = stream.read

    def close(self) -> None:
        return None


class InflateThread:
    """Decompress ``stream`` (format ``archive_format``) on a background thread.

    Use as a context manager; :meth:`read_chunk` returns the next decompressed chunk (at most
    ``chunk`` bytes) and ``b""`` at the end, re-raising on the caller's thread whatever the
    decompressor or ``stream`` raised (READ_ERRORS, OSError). At most ``depth`` chunks wait in
    the queue, so memory stays flat whatever the archive's size. Leaving the context stops the
    thread and waits for it, so ``stream`` is free for the caller again (e.g. to drain and
    hash the rest). Raises UnsafeArchiveError for an unknown format.
    """

    def __init__(
        self,
        stream: IO[bytes],
        archive_format: str,
        *,
        chunk: int = INFLATE_CHUNK,
        depth: int = INFLATE_DEPTH,
    ) -> None:
        self._raw = open_decompressed(stream, archive_format)
        self._chunk = chunk
        self._queue: queue.Queue[Union[bytes, BaseException]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="pybundle-inflate", daemon=True)

    def __enter__(self) -> InflateThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a put() waiting for room
                self._queue.get(timeout=0.05)
        self._thread.join()
        self._raw.close()

    def _run(self) -> None:
        read = self._raw.read
        size = self._chunk
        try:
            while not self._stop.is_set():
                data = read(size)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the reader, which raises it
            self._put(exc)

    def _put(self, item: Union[bytes, BaseException]) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read_chunk(self) -> bytes:
        """The next decompressed chunk; ``b""`` once the stream has ended."""
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if not item:
            self._done = True
        return item


@dataclass(frozen=True)
class ArchiveShape:
    """What an archive unpacks to: total bytes of regular files and number of members."""

    unpacked_size: int
    file_count: int


def scan_archive(stream: IO[bytes], archive_format: str, source: str) -> ArchiveShape:
    """Read every tar header of an archive (streaming) and measure it.

    ``unpacked_size`` counts regular-file members' sizes in bytes, ``file_count`` every member
    (the same definitions the extractor checks), as :class:`pybundle.tarstream.TarStream`
    reads them. Raises UnsafeArchiveError naming ``source`` if the archive cannot be read or
    is refused by the reader.
    """
    return _scan(stream, archive_format, source, index=False)[0]


def scan_archive_indexed(
    stream: IO[bytes], archive_format: str, source: str
) -> tuple[ArchiveShape, bytes | None]:
    """:func:`scan_archive`, hashing every regular-file member's data on the way: returns the
    shape and the archive's file index (:mod:`pybundle.fileindex`, the whole text, about 100
    bytes per regular file), or None for the index when a member name cannot stand in one
    (a newline in it, not UTF-8: an archive the installer refuses anyway). Same errors."""
    return _scan(stream, archive_format, source, index=True)


def _scan(
    stream: IO[bytes], archive_format: str, source: str, *, index: bool
) -> tuple[ArchiveShape, bytes | None]:
    size = count = 0
    entries: list[IndexEntry] | None = [] if index else None
    try:
        with InflateThread(stream, archive_format) as inflate:
            tar = TarStream(inflate.read_chunk, source)
            for member in tar:
                count += 1
                if member.kind == FILE:
                    size += member.size
                    if entries is not None:
                        digest = hashlib.sha256()
                        for piece in tar.iter_data(INFLATE_CHUNK):
                            digest.update(piece)
                        if can_index(member.name):
                            entries.append(IndexEntry(digest.hexdigest(), member.size, member.name))
                        else:
                            entries = None
    except READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{source}: archive cannot be read: {exc}") from exc
    return ArchiveShape(size, count), None if entries is None else format_index(entries)
