"""Reading a compact bundle's solid stream: one 7z member whose single LZMA2 folder holds the
uncompressed tars of the bundle's archives (written by :mod:`pybundle.bundler.solid`).

The 7z container is parsed by py7zr, but only after our own checks bound what it does, since
a container is outside input (even when its sha256 was checked: ``inspect`` reads unverified
bundles, and a signer's tool can be wrong):

- the 32-byte signature header (7zFormat.txt, "SignatureHeader") is read here first: the
  signature, major version 0, its CRC, and a next header that ends exactly at the member's
  end and is at most MAX_HEADER_BYTES long, so py7zr reads a bounded header into memory;
- the header must be a plain ``kHeader`` (0x01): an encoded (compressed) header, which py7zr
  would decompress before we could look at it, is refused, as pybundle never writes one;
- the parsed header must describe what the signed manifest says and nothing else: one
  folder with one LZMA2 coder (no filters, no encryption) whose dictionary is at most
  MAX_DICTIONARY and equal to the manifest's, and exactly the manifest's entries, in order,
  with the manifest's sizes.

Decompression streams through py7zr's I/O hooks (:class:`py7zr.io.WriterFactory`): py7zr runs
on a background thread and hands each decompressed piece to a writer that puts it, cut to at
most CHUNK_BYTES, into a queue of QUEUE_DEPTH items that the reader drains, so memory stays
flat whatever the tars' sizes (py7zr reads BLOCK_BYTES of compressed input at a time). Every
tar byte handed out is hashed; :meth:`SolidMember.finish` returns the tar's sha256 and size
for the caller to compare with the manifest before anything is placed. Every py7zr, lzma and
parsing failure becomes one typed error naming the bundle: UnsafeArchiveError (exit 6) for a
container that cannot be read, ManifestError (exit 5) for one that disagrees with the
manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import lzma
import queue
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Callable, Optional, Union, cast

from pybundle.errors import (
    ManifestError,
    PlatformMismatchError,
    PybundleError,
    UnsafeArchiveError,
)
from pybundle.manifest import Artifact, SolidContainer

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
"""The 7z signature (7zFormat.txt)."""
START_HEADER = struct.Struct("<6sBBLQQL")
"""Signature, major and minor version, start header CRC, next header offset, size, CRC."""
K_HEADER = 0x01
K_ENCODED_HEADER = 0x17
MAX_HEADER_BYTES = 1024 * 1024
"""Largest 7z header accepted, in bytes (ours: about 100 bytes per entry)."""
MAX_DICTIONARY = 1024 * 1024 * 1024
"""Largest LZMA2 dictionary accepted, in bytes: the decoder allocates it."""
LZMA2_ID = b"\x21"
"""7z method id of LZMA2 (7-Zip's Methods.txt)."""
BLOCK_BYTES = 1024 * 1024
"""Compressed bytes py7zr reads per step."""
CHUNK_BYTES = 1024 * 1024
"""Largest piece of decompressed data in the queue, in bytes."""
QUEUE_DEPTH = 8
"""Pieces the decoding thread may hold ahead of the reader."""


def _py7zr() -> Any:
    """The py7zr module; PlatformMismatchError when it is not installed (py7zr 1.x needs
    Python 3.10 or newer)."""
    try:
        import py7zr
        import py7zr.exceptions
    except ImportError as exc:
        raise PlatformMismatchError(
            "this pybundle cannot read compact bundles: py7zr is not installed (it needs "
            "Python 3.10 or newer)"
        ) from exc
    return py7zr


def _read_errors() -> tuple[type[BaseException], ...]:
    px = _py7zr().exceptions

    return (
        px.ArchiveError,
        px.UnsupportedCompressionMethodError,
        px.PasswordRequired,
        px.InternalError,
        px.DecompressionBombError,
        lzma.LZMAError,
        zlib.error,
        EOFError,
        struct.error,
        ValueError,  # includes UnicodeDecodeError
        IndexError,
        KeyError,
        TypeError,
        AttributeError,
        OverflowError,
        AssertionError,
        NotImplementedError,
        RecursionError,
        MemoryError,
    )


def lzma2_dictionary(prop: int) -> int:
    """The dictionary size in bytes that an LZMA2 property byte encodes (``prop`` 0..40;
    xz-file-format.txt, "LZMA2"): ``(2 | (prop & 1)) << (prop // 2 + 11)``, 40 meaning
    4 GiB - 1. Raises ValueError for a larger byte."""
    if prop > 40:
        raise ValueError(f"invalid LZMA2 dictionary property {prop}")
    if prop == 40:
        return 0xFFFFFFFF
    return (2 | (prop & 1)) << (prop // 2 + 11)


class _Window(io.RawIOBase):
    """A seekable read-only view of ``size`` bytes at ``start`` of a file offering
    ``pread_into(buffer, offset)`` (:class:`pybundle.volumes.BundleFile`)."""

    def __init__(self, file: Any, start: int, size: int) -> None:
        super().__init__()
        self._file = file
        self._start = start
        self._size = size
        self._pos = 0
        self.name = None  # py7zr names unnamed entries after the file; ours are all named

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._pos))
        if want <= 0:
            return 0
        n: int = self._file.pread_into(view[:want], self._start + self._pos)
        self._pos += n
        return n


def check_start_header(data: bytes, size: int, where: str) -> tuple[int, int]:
    """Check the 32-byte signature header of a 7z container of ``size`` bytes and return the
    next header's ``(offset from byte 32, length)``. Raises UnsafeArchiveError."""
    if len(data) < START_HEADER.size:
        raise UnsafeArchiveError(f"{where}: the solid stream is shorter than a 7z header")
    sig, major, _minor, crc, offset, length, _next_crc = START_HEADER.unpack_from(data)
    if sig != SIGNATURE:
        raise UnsafeArchiveError(f"{where}: the solid stream is not a 7z archive")
    if major != 0:
        raise UnsafeArchiveError(f"{where}: the solid stream has 7z format version {major}")
    if zlib.crc32(data[12:32]) != crc:
        raise UnsafeArchiveError(f"{where}: the solid stream's 7z start header is damaged")
    if length == 0 or length > MAX_HEADER_BYTES:
        raise UnsafeArchiveError(
            f"{where}: the solid stream's 7z header is {length} bytes (at most "
            f"{MAX_HEADER_BYTES} are accepted)"
        )
    if START_HEADER.size + offset + length != size:
        raise UnsafeArchiveError(
            f"{where}: the solid stream's 7z header does not end where the member ends"
        )
    return offset, length


class SolidStream:
    """One decoding pass over the solid stream ``container`` of an open bundle file ``file``
    (a :class:`pybundle.volumes.BundleFile`), its 7z member starting at byte ``start``.

    ``entries`` are the manifest's solid entry names in manifest order; ``wanted`` those to
    hand out, which :meth:`member` must then ask for in that order (the others are decoded
    and dropped: a solid stream can only be read from its start). Use as a context manager:
    entering checks the container (see the module docstring) and starts the decoding
    thread; leaving stops it. Raises UnsafeArchiveError, ManifestError.
    """

    def __init__(
        self,
        file: Any,
        start: int,
        container: SolidContainer,
        entries: Sequence[tuple[str, int]],
        wanted: Sequence[str],
        where: str,
    ) -> None:
        self._file = file
        self._start = start
        self._container = container
        self._entries = list(entries)
        self._wanted = list(wanted)
        self._where = where
        self._queue: queue.Queue[Union[tuple[str, Any], BaseException]] = queue.Queue(
            maxsize=QUEUE_DEPTH
        )
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._archive: Any = None
        self._next = 0
        self._pending: Optional[tuple[str, Any]] = None

    def __enter__(self) -> SolidStream:
        self._archive = self.open_checked()
        self._thread = threading.Thread(target=self._run, name="pybundle-solid", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        thread = self._thread
        while thread is not None and thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a put() waiting for room
                self._queue.get(timeout=0.05)
        if thread is not None:
            thread.join()
        if self._archive is not None:
            self._archive.close()

    def open_checked(self) -> Any:
        """Check the container and open it with py7zr; returns the SevenZipFile."""
        where = self._where
        size = self._container.size
        window = _Window(self._file, self._start, size)
        head = bytearray(START_HEADER.size)
        window.readinto(head)
        offset, _length = check_start_header(bytes(head), size, where)
        first = bytearray(1)
        window.seek(START_HEADER.size + offset)
        window.readinto(first)
        if first[0] == K_ENCODED_HEADER:
            raise UnsafeArchiveError(
                f"{where}: the solid stream has an encoded (compressed) 7z header; pybundle "
                "reads plain headers only"
            )
        if first[0] != K_HEADER:
            raise UnsafeArchiveError(f"{where}: the solid stream's 7z header is damaged")
        window.seek(0)
        py7zr = _py7zr()
        try:
            archive = py7zr.SevenZipFile(cast(IO[bytes], window), "r", blocksize=BLOCK_BYTES)
        except _read_errors() as exc:
            raise UnsafeArchiveError(
                f"{where}: the solid stream cannot be read: {_reason(exc)}"
            ) from exc
        try:
            self._check_contents(archive)
        except BaseException:
            archive.close()
            raise
        return archive

    def _check_contents(self, archive: Any) -> None:
        where = self._where
        try:
            if archive.password_protected:
                raise UnsafeArchiveError(f"{where}: the solid stream is encrypted")
            streams = archive.header.main_streams
            folders = streams.unpackinfo.folders if streams is not None else []
            if len(folders) != 1:
                raise UnsafeArchiveError(
                    f"{where}: the solid stream has {len(folders)} 7z folders; pybundle writes one"
                )
            coders = folders[0].coders
            if len(coders) != 1 or coders[0].get("method") != LZMA2_ID:
                raise UnsafeArchiveError(
                    f"{where}: the solid stream uses a 7z method pybundle does not write "
                    "(it writes LZMA2 alone)"
                )
            coder = coders[0]
            props = coder.get("properties") or b""
            if (
                len(props) != 1
                or coder.get("numinstreams", 1) != 1
                or coder.get("numoutstreams", 1) != 1
            ):
                raise UnsafeArchiveError(f"{where}: the solid stream's LZMA2 coder is malformed")
            dictionary = lzma2_dictionary(props[0])
            if dictionary > MAX_DICTIONARY:
                raise UnsafeArchiveError(
                    f"{where}: the solid stream asks for a {dictionary}-byte dictionary, more "
                    f"than the {MAX_DICTIONARY} bytes allowed"
                )
            if self._container.compression != "lzma2" or dictionary != self._container.dictionary:
                raise ManifestError(
                    f"{where}: the solid stream's dictionary ({dictionary} bytes) is not the "
                    f"manifest's ({self._container.dictionary})"
                )
            files = [
                (f.filename, f.uncompressed, f.is_directory, f.emptystream) for f in archive.files
            ]
        except PybundleError:
            raise
        except _read_errors() as exc:
            raise UnsafeArchiveError(
                f"{where}: the solid stream cannot be read: {_reason(exc)}"
            ) from exc
        found = [(name, size) for name, size, _d, _e in files]
        if found != self._entries or any(d or e for _n, _s, d, e in files):
            raise ManifestError(
                f"{where}: the solid stream's entries {[n for n, _ in found][:8]} are not the "
                "manifest's"
            )

    def _run(self) -> None:
        try:
            factory = _QueueFactory(self._queue, self._stop)
            self._archive.extract(targets=self._wanted, factory=factory)
            self._put(("done", None))
        except _Stopped:
            return
        except BaseException as exc:  # handed to the reader, which raises it
            self._put(exc)

    def _put(self, item: Union[tuple[str, Any], BaseException]) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _take(self) -> tuple[str, Any]:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        item = self._queue.get()
        if isinstance(item, PybundleError):
            raise item
        if isinstance(item, BaseException):
            if isinstance(item, _read_errors()):
                raise UnsafeArchiveError(
                    f"{self._where}: the solid stream cannot be read: {_reason(item)}"
                ) from item
            raise item
        return item

    def member(self, name: str) -> SolidMember:
        """The reader of entry ``name``, the next of ``wanted``. Raises ValueError when
        asked out of order (a bug), UnsafeArchiveError when decoding fails."""
        if self._next >= len(self._wanted) or self._wanted[self._next] != name:
            raise ValueError(f"solid entry {name!r} asked out of order")
        self._next += 1
        kind, value = self._take()
        while kind == "end":  # the previous entry's end, when it ended at the next "begin"
            kind, value = self._take()
        if kind != "begin" or value != name:
            raise UnsafeArchiveError(
                f"{self._where}: the solid stream gave {value!r} where {name!r} was expected"
            )
        return SolidMember(self, name)

    def check_all(self, on_entry: Callable[[str, str, int], None]) -> None:
        """Decode every wanted entry to its end; ``on_entry(name, sha256 hex, size)`` after
        each (the caller compares with the manifest)."""
        for name in self._wanted:
            digest, size = self.member(name).finish()
            on_entry(name, digest, size)
        self._take_done()

    def _take_done(self) -> None:
        kind, _ = self._take()
        while kind == "end":
            kind, _ = self._take()
        if kind != "done":
            raise UnsafeArchiveError(f"{self._where}: the solid stream has more than expected")


class SolidMember(io.RawIOBase):
    """The decompressed tar of one solid entry, read in order, hashed as it is read."""

    def __init__(self, stream: SolidStream, name: str) -> None:
        super().__init__()
        self._stream = stream
        self.name = name
        self._piece = memoryview(b"")
        self._ended = False
        self.hash = hashlib.sha256()
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._piece and not self._ended:
            kind, value = self._stream._take()
            if kind == "data":
                self._piece = memoryview(value)
            elif kind == "end" and value == self.name:
                self._ended = True
            elif kind in ("begin", "done"):  # py7zr without the writer close() hook
                self._stream._pending = (kind, value)
                self._ended = True
            else:
                raise UnsafeArchiveError(
                    f"{self._stream._where}: the solid stream's entry {self.name} ended early"
                )
        if not self._piece:
            return 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._piece))
        view[:n] = self._piece[:n]
        self.hash.update(self._piece[:n])
        self._piece = self._piece[n:]
        self.position += n
        return n

    def finish(self) -> tuple[str, int]:
        """Read the entry to its end; return its ``(sha256 hex digest, size in bytes)``."""
        buffer = bytearray(CHUNK_BYTES)
        while self.readinto(buffer):
            pass
        return self.hash.hexdigest(), self.position


class _Stopped(Exception):
    """Raised inside py7zr's writer once the reader has gone: ends the decoding thread."""


class _QueueFactory:
    """py7zr's WriterFactory: one writer per extracted entry, feeding the queue."""

    def __init__(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        self._queue = q
        self._stop = stop

    def create(self, filename: str) -> _QueueWriter:
        writer = _QueueWriter(self._queue, self._stop, filename)
        writer.put(("begin", filename))
        return writer


class _QueueWriter:
    """py7zr's Py7zIO: hands what py7zr decompresses to the queue, in pieces of at most
    CHUNK_BYTES; ``close`` (py7zr: the entry is complete) marks its end."""

    def __init__(self, q: queue.Queue[Any], stop: threading.Event, name: str) -> None:
        self._queue = q
        self._stop = stop
        self._name = name
        self._size = 0

    def put(self, item: tuple[str, Any]) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def write(self, data: Union[bytes, bytearray]) -> int:
        view = memoryview(data)
        for at in range(0, len(view), CHUNK_BYTES):
            self.put(("data", bytes(view[at : at + CHUNK_BYTES])))
        self._size += len(view)
        return len(view)

    def read(self, size: Optional[int] = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self.put(("end", self._name))


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def solid_pass(
    file: Any,
    start: int,
    container: SolidContainer,
    artifacts: Sequence[Artifact],
    wanted: Sequence[Artifact],
    where: str,
) -> Iterator[SolidStream]:
    """A :class:`SolidStream` over the manifest's solid ``artifacts`` (all of them, in
    manifest order) handing out those of ``wanted`` (in manifest order)."""
    entries = [(a.solid.name, a.solid.size) for a in artifacts if a.solid is not None]
    names = [a.solid.name for a in wanted if a.solid is not None]
    with SolidStream(file, start, container, entries, names, where) as stream:
        yield stream
