"""The file index: the sha256 and size of every regular-file member of an interpreter archive.

The bundler computes it once, while it reads the archive anyway (measuring its shape), and
carries it in the bundle as a signed member ``indexes/<archive file name>.files`` (STORED; its
sha256 and size are in the manifest's ``file_index``). The installer then takes the digests
of its install receipt from the index instead of hashing every file it writes
(:func:`pybundle.installer.extract.extract_archive`, which walks archive and index in lockstep).

Format (UTF-8 text, ``\\n`` line ends, no CR anywhere)::

    pybundle-file-index 1
    <sha256: 64 lowercase hex> <size: decimal, no leading zeros> <member name>

one line per regular-file tar member (kind FILE of :mod:`pybundle.tarstream`; not
directories, symlinks or hard links), in archive order, for every member of the archive
(also those outside its ``strip_prefix``). The member name is exactly what
:class:`pybundle.tarstream.TarStream` gives; it may contain spaces (it is the rest of the
line) but no ``\\n``, ``\\r`` or NUL. The file ends with ``\\n``.

This module imports neither the bundler nor the installer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import IO, NamedTuple, Optional

from pybundle.errors import UnsafeArchiveError

HEADER = b"pybundle-file-index 1\n"
"""The exact first line of a file index."""
INDEX_DIR = "indexes"
"""Zip directory of the index members: ``indexes/<archive file name>.files``."""
INDEX_SUFFIX = ".files"
MAX_NAME_BYTES = 4096
"""Longest member name in a line, in UTF-8 bytes (the extractor's own limit on paths)."""
MAX_LINE_BYTES = 64 + 1 + 20 + 1 + MAX_NAME_BYTES + 1
"""Longest valid line, ``\\n`` included."""
MAX_SIZE = 2**63 - 1
"""Largest member size a line may give, in bytes (whatever the budget)."""

_LINE = re.compile(rb"([0-9a-f]{64}) (0|[1-9][0-9]{0,18}) ([^\n\r\x00]+)\n")


class IndexEntry(NamedTuple):
    """One regular-file member: ``sha256`` (lowercase hex), ``size`` in bytes, tar ``name``."""

    sha256: str
    size: int
    name: str


def index_member(file_name: str) -> str:
    """The zip member carrying the index of the archive ``file_name``."""
    return f"{INDEX_DIR}/{file_name}{INDEX_SUFFIX}"


def can_index(name: str) -> bool:
    """True when ``name`` can stand in an index line (UTF-8, no CR/LF/NUL, not too long)."""
    if not name or "\n" in name or "\r" in name or "\x00" in name:
        return False
    try:
        return len(name.encode("utf-8")) <= MAX_NAME_BYTES
    except UnicodeEncodeError:
        return False


def format_line(entry: IndexEntry) -> bytes:
    """One index line for ``entry``; ValueError when the name cannot be represented
    (:func:`can_index`) or the digest or size is malformed."""
    if not can_index(entry.name):
        raise ValueError(f"member name {entry.name!r} cannot be recorded in a file index")
    if not (0 <= entry.size <= MAX_SIZE) or not re.fullmatch("[0-9a-f]{64}", entry.sha256):
        raise ValueError(f"member {entry.name!r}: malformed size or sha256")
    return f"{entry.sha256} {entry.size} {entry.name}\n".encode()


def format_index(entries: Iterable[IndexEntry]) -> bytes:
    """The whole index for ``entries`` (in archive order), header included; ValueError as
    :func:`format_line`."""
    return HEADER + b"".join(format_line(e) for e in entries)


class IndexReader:
    """A strict, streaming reader of a file index read from ``stream`` (binary; e.g. a bundle
    member being hashed as it is read). ``source`` names the index in messages.

    ``max_lines`` bounds the number of entries (the archive's member budget), ``max_size`` the
    size of any one entry and of all of them together (the archive's unpacked-bytes budget),
    ``max_bytes`` the bytes read in all (the manifest's recorded index size: the index ends
    there, and a line running past it is refused). Memory: one line at a time.

    Every refusal is an UnsafeArchiveError naming ``source`` and the line number: a bad header,
    a malformed line (digest, size, name), a name that is not UTF-8, a CR or NUL, a missing
    final newline, a size over the budget, more lines or bytes than the bounds.
    """

    def __init__(
        self,
        stream: IO[bytes],
        source: str,
        *,
        max_lines: int,
        max_size: int,
        max_bytes: int,
    ) -> None:
        self._stream = stream
        self._source = source
        self._max_lines = max_lines
        self._max_size = max_size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._total = 0
        self._line = 1
        self._started = False
        self._ended = False

    @property
    def line(self) -> int:
        """Number of the line last read (1 is the header)."""
        return self._line

    def _error(self, what: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"{self._source}: line {self._line}: {what}")

    def _readline(self) -> bytes:
        left = self._max_bytes - self._bytes
        if left <= 0:
            return b""  # never a byte past the recorded size
        raw = self._stream.readline(min(MAX_LINE_BYTES, left + 1))
        self._bytes += len(raw)
        if self._bytes > self._max_bytes:
            raise self._error(f"the index is longer than {self._max_bytes} bytes")
        return raw

    def _start(self) -> None:
        self._started = True
        raw = self._readline()
        if raw != HEADER:
            raise self._error(f"not a file index (the first line is not {HEADER[:-1]!r})")

    def next_entry(self) -> Optional[IndexEntry]:
        """The next entry, or None at the valid end of the index."""
        if not self._started:
            self._start()
        if self._ended:
            return None
        raw = self._readline()
        if not raw:
            self._ended = True
            return None
        self._line += 1
        if self._line - 1 > self._max_lines:
            raise self._error(f"the index lists more than {self._max_lines} files")
        match = _LINE.fullmatch(raw)
        if match is None:
            if not raw.endswith(b"\n"):
                if len(raw) >= MAX_LINE_BYTES:
                    raise self._error(f"a line longer than {MAX_LINE_BYTES} bytes")
                raise self._error("the index does not end with a newline")
            if b"\r" in raw:
                raise self._error("a carriage return")
            raise self._error("malformed line (expected '<sha256> <size> <name>')")
        digest, size_text, name_raw = match.groups()
        try:
            name = name_raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._error("a member name that is not UTF-8") from exc
        if len(name_raw) > MAX_NAME_BYTES:
            raise self._error(f"a member name longer than {MAX_NAME_BYTES} bytes")
        size = int(size_text)
        self._total += size
        if size > self._max_size or self._total > self._max_size:
            raise self._error(f"sizes over the archive's budget of {self._max_size} bytes")
        return IndexEntry(digest.decode("ascii"), size, name)

    def entries(self) -> list[IndexEntry]:
        """Every remaining entry (for tests and tools; the installer reads one at a time)."""
        found = []
        while (entry := self.next_entry()) is not None:
            found.append(entry)
        return found

    def expect(self, name: str, size: int, archive: str) -> str:
        """The digest of the next entry, which must be the regular-file member ``name`` of
        ``size`` bytes of the archive ``archive`` (named in the message); UnsafeArchiveError
        when the index has no more entries or its next one names another member or size."""
        entry = self.next_entry()
        if entry is None:
            raise UnsafeArchiveError(
                f"{self._source}: the index ends before member {name!r} of {archive}"
            )
        if entry.name != name or entry.size != size:
            raise self._error(
                f"the index lists {entry.name!r} ({entry.size} bytes) where {archive} has "
                f"member {name!r} ({size} bytes)"
            )
        return entry.sha256

    def finish(self, archive: str) -> None:
        """Check that the index has no entry left once ``archive`` has ended."""
        entry = self.next_entry()
        if entry is not None:
            raise self._error(
                f"the index lists {entry.name!r}, which is not a regular file of {archive}"
            )


def parse_index(
    data: bytes,
    source: str,
    *,
    max_lines: int = 1_000_000,
    max_size: int = MAX_SIZE,
) -> list[IndexEntry]:
    """Every entry of the whole index ``data`` (see :class:`IndexReader` for the errors)."""
    import io

    reader = IndexReader(
        io.BytesIO(data), source, max_lines=max_lines, max_size=max_size, max_bytes=len(data)
    )
    return reader.entries()
