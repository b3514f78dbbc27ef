"""A strict, streaming tar reader: the one parser of tar headers on pybundle's hot paths.

Shared by the installer (``installer/extract.py`` feeds every member to its allowlist before a
byte is written) and the bundler (``archives.scan_archive`` measures archives with it), so
both sides count members and bytes the same way.

Formats read (POSIX.1-2001 ``pax`` and ustar: IEEE Std 1003.1-2017, "pax" utility, sections
"ustar Interchange Format" and "pax Interchange Format"; GNU extensions: the GNU tar manual,
"Basic Tar Format"):

- **headers**: 512-byte ustar headers with magic ``ustar\\0`` + ``00`` (POSIX; the ``prefix``
  field is joined to the name) or ``ustar  \\0`` (GNU; its atime/ctime/sparse area must be
  empty, because tarfile would read it as a name prefix and GNU tar would not). Old V7 headers
  (no magic) are refused. The checksum is verified; like tarfile, both the unsigned and the
  historical signed byte sum are accepted.
- **numbers**: octal (NUL/space terminated, digits only) or GNU base-256 for positive values;
  negative base-256 values are refused. ``mode``, ``uid``, ``gid``, ``size``, ``mtime``,
  ``devmajor`` and ``devminor`` must be valid in every header, even where their value is not
  used (owners never are: the installing user owns everything): tarfile silently takes a
  header with a malformed number for the end of the archive, and readers must not disagree.
- **types**: regular (``0``, NUL, ``7``), hard link ``1``, symlink ``2``, directory ``5``;
  character/block devices and FIFOs (``3``, ``4``, ``6``) are returned as kind ``special`` so
  that callers can count and refuse them. Every other type, GNU sparse ``S`` included, is
  refused. Members other than regular files must have size 0 (readers disagree on whether
  such data exists).
- **extended headers**: GNU long name ``L`` and long link ``K``; pax ``x`` records ``path``,
  ``linkpath``, ``size``, ``mtime`` override the ustar fields (as in tarfile and GNU tar; an
  overridden ustar name or link is not used, so it is not checked as a name). At most one of
  each kind may precede a member, and a member may not take its name (or link) from both a
  pax record and a GNU header. A pax header with no member after it is refused. Extended
  header data must be followed by zero padding only, and a long name must end with its NUL
  within the header's size (tarfile reads on into the padding; GNU tar stops at the size).
- **pax keys**: ``path``, ``linkpath``, ``size``, ``mtime`` are used; ``atime``, ``ctime``,
  ``uid``, ``gid``, ``uname``, ``gname``, ``comment``, ``charset``, ``hdrcharset`` (UTF-8
  only), ``SCHILY.xattr.*``, ``SCHILY.acl.*``, ``SCHILY.dev``/``ino``/``nlink``/``fflags``,
  ``LIBARCHIVE.xattr.*``, ``LIBARCHIVE.creationtime``, ``RHT.security.*`` are harmless
  metadata and are ignored (we never apply owners, times other than mtime, ACLs or xattrs).
  Every other key is refused, ``GNU.sparse.*`` and ``SCHILY.realsize`` among them, since an
  unknown key may change what another reader extracts. A global header (``g``) may carry only
  ignored keys. Records must fill the header exactly (``"%d %s=%s\\n"``), used keys may not
  repeat, and their values must be UTF-8.
- **mtime**: whole or fractional seconds (kept to the nanosecond, truncated), in the ustar
  range 0 <= mtime < 2**33 s (1970 to 2242). Anything else (negative, huge, NaN, exponent
  notation) is refused rather than clamped: ``os.utime`` cannot take every value a pax record
  can spell, and a clamped time would silently invalidate shipped bytecode anyway.
- **end**: two zero blocks, after which up to MAX_TRAILING_BYTES of zero padding are read
  (tar pads to its record size) to let the decompressor check its own trailer; any non-zero
  byte there, more padding, a lone zero block, or an archive that simply stops is refused.
- **names** are decoded as strict UTF-8 (NUL-terminated fields, as tarfile reads them).

Every refusal raises UnsafeArchiveError with a one-line message naming the archive
(``source``) and the member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple, Optional, Union

from pybundle.errors import UnsafeArchiveError

BLOCK = 512
MAX_EXTENDED_BYTES = 1024 * 1024
"""Largest pax (``x``/``g``) or GNU long-name (``L``/``K``) header data accepted, in bytes."""
MAX_TRAILING_BYTES = 1024 * 1024
"""Zero padding accepted after the end-of-archive blocks, in bytes."""
MAX_MTIME = 1 << 33
"""mtimes must be below this many seconds since the epoch (the range of ustar's 11 octal
digits; ``os.utime`` in nanoseconds takes it on every 64-bit platform)."""
MAX_SIZE = 1 << 62
"""Largest member size accepted from any size field, in bytes (budgets are far lower)."""

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
SPECIAL = "special"

_KINDS = {
    b"0": FILE,
    b"\0": FILE,
    b"7": FILE,  # contiguous file: a regular file to every reader
    b"1": HARDLINK,
    b"2": SYMLINK,
    b"5": DIR,
    b"3": SPECIAL,
    b"4": SPECIAL,
    b"6": SPECIAL,
}
_POSIX_MAGIC = b"ustar\x0000"
_GNU_MAGIC = b"ustar  \x00"
_ZERO_BLOCK = bytes(BLOCK)
_LOW_BYTES = bytes(range(128))
_NUL = b"\0"
_USED_KEYS = (b"path", b"linkpath", b"size", b"mtime")
_IGNORED_KEYS = frozenset(
    (
        b"atime",
        b"ctime",
        b"uid",
        b"gid",
        b"uname",
        b"gname",
        b"comment",
        b"charset",
        b"SCHILY.dev",
        b"SCHILY.ino",
        b"SCHILY.nlink",
        b"SCHILY.fflags",
        b"LIBARCHIVE.creationtime",
    )
)
_IGNORED_PREFIXES = (b"SCHILY.xattr.", b"SCHILY.acl.", b"LIBARCHIVE.xattr.", b"RHT.security.")
_UTF8_CHARSET = b"ISO-IR 10646 2000 UTF-8"

Chunk = Union[bytes, memoryview]


class TarMember(NamedTuple):
    """One archive member as read from its headers.

    ``kind`` is FILE, DIR, SYMLINK, HARDLINK or SPECIAL; ``mode`` the permission bits from
    the header; ``size`` the data bytes (0 for all but FILE); ``mtime_ns`` nanoseconds since
    the epoch; ``linkname`` the link target (empty unless SYMLINK or HARDLINK).
    """

    name: str
    kind: str
    mode: int
    size: int
    mtime_ns: int
    linkname: str


class TarStream:
    """Iterate the members of an uncompressed tar stream delivered in chunks.

    ``feed()`` returns the next chunk of bytes (any size), ``b""`` at the end. After a FILE
    member is returned, its data may be read with :meth:`read_data` or :meth:`iter_data`;
    data left unread is skipped when the next member is asked for. ``source`` names the
    archive in messages. Iterating raises UnsafeArchiveError for anything the module
    docstring refuses; exceptions from ``feed`` propagate unchanged.
    """

    def __init__(self, feed: Callable[[], Chunk], source: str) -> None:
        self._feed = feed
        self._source = source
        self._buf: Chunk = b""
        self._pos = 0
        self._eof = False
        self._left = 0  # unread data bytes of the current member
        self._pad = 0  # padding after them
        self._name = ""  # current (or last) member, for messages
        self._ended = False
        self.bytes_read = 0
        """Uncompressed bytes consumed so far."""

    # ---- byte level -------------------------------------------------------------------------

    def _next_chunk(self) -> bool:
        """Replace the exhausted buffer with the next chunk; False at the end of the stream."""
        while not self._eof:
            chunk = self._feed()
            if not chunk:
                self._eof = True
                break
            self._buf = chunk
            self._pos = 0
            return True
        self._buf = b""
        self._pos = 0
        return False

    def _take(self, n: int, what: str) -> bytes:
        """Exactly ``n`` bytes (a copy); UnsafeArchiveError naming ``what`` if the stream ends."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            self.bytes_read += n
            return bytes(self._buf[pos:end])
        parts = [bytes(self._buf[pos:])]
        have = len(parts[0])
        while have < n:
            if not self._next_chunk():
                raise UnsafeArchiveError(f"{self._source}: archive is truncated in {what}")
            piece = bytes(self._buf[: n - have])
            self._pos = len(piece)
            parts.append(piece)
            have += len(piece)
        self.bytes_read += n
        return b"".join(parts)

    def _skip(self, n: int, what: str) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if avail <= 0:
                if not self._next_chunk():
                    raise UnsafeArchiveError(f"{self._source}: archive is truncated in {what}")
                continue
            step = min(avail, n)
            self._pos += step
            self.bytes_read += step
            n -= step

    # ---- member data ------------------------------------------------------------------------

    def read_data(self) -> Chunk:
        """The current member's remaining data in one piece (zero-copy when it lies in one
        chunk). Meant for members small enough to hold in memory; see :meth:`iter_data`."""
        n = self._left
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            self._left = 0
            self.bytes_read += n
            return memoryview(self._buf)[pos:end]
        data = self._take(n, f"the data of member {self._name!r}")
        self._left = 0
        return data

    def iter_data(self, chunk: int = 1024 * 1024) -> Iterator[Chunk]:
        """Yield the current member's remaining data in pieces of at most ``chunk`` bytes,
        without copying (each piece is valid until the next is asked for)."""
        while self._left:
            avail = len(self._buf) - self._pos
            if avail <= 0:
                if not self._next_chunk():
                    raise UnsafeArchiveError(
                        f"{self._source}: archive is truncated in the data of member {self._name!r}"
                    )
                continue
            step = min(avail, self._left, chunk)
            pos = self._pos
            self._pos = pos + step
            self._left -= step
            self.bytes_read += step
            yield memoryview(self._buf)[pos : pos + step]

    # ---- headers ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[TarMember]:
        """Members in archive order; the iteration ends at a valid end of archive."""
        while True:
            member = self.next_member()
            if member is None:
                return
            yield member

    def next_member(self) -> Optional[TarMember]:
        """The next member, or None after a valid end of archive."""
        if self._ended:
            return None
        if self._left or self._pad:
            self._skip(self._left + self._pad, f"the data of member {self._name!r}")
            self._left = self._pad = 0
        pax: dict[bytes, bytes] | None = None
        long_name: bytes | None = None
        long_link: bytes | None = None
        first = self.bytes_read == 0
        while True:
            block = self._header_block(first)
            first = False
            if block is None:
                if pax is not None or long_name is not None or long_link is not None:
                    raise UnsafeArchiveError(
                        f"{self._source}: an extended header after member {self._name!r} "
                        "has no member after it"
                    )
                self._finish()
                self._ended = True
                return None
            typeflag = block[156:157]
            kind = _KINDS.get(typeflag)
            if kind is not None:
                return self._member(block, kind, pax, long_name, long_link)
            if typeflag == b"x":
                if pax is not None:
                    raise self._error("two pax headers in a row")
                pax = self._pax_records(block, glob=False)
            elif typeflag == b"g":
                if pax is not None or long_name is not None or long_link is not None:
                    raise self._error("a global pax header between a member's headers")
                self._pax_records(block, glob=True)
            elif typeflag == b"L":
                if long_name is not None:
                    raise self._error("two GNU long-name headers in a row")
                long_name = self._gnu_long(block)
            elif typeflag == b"K":
                if long_link is not None:
                    raise self._error("two GNU long-link headers in a row")
                long_link = self._gnu_long(block)
            elif typeflag == b"S":
                raise self._error("a GNU sparse member, which is not supported")
            else:
                raise self._error(f"a member of unsupported type {typeflag!r}")

    def _error(self, what: str) -> UnsafeArchiveError:
        where = f"after member {self._name!r}" if self._name else "at its start"
        return UnsafeArchiveError(f"{self._source}: archive has {what} {where}")

    def _header_block(self, first: bool) -> bytes | None:
        """Read and verify one header block; None for the first end-of-archive zero block."""
        pos = self._pos
        if pos + BLOCK <= len(self._buf):  # fast path: the block lies in the current chunk
            block = bytes(self._buf[pos : pos + BLOCK])
            self._pos = pos + BLOCK
            self.bytes_read += BLOCK
        else:
            if pos >= len(self._buf) and not self._next_chunk():
                if first:
                    raise UnsafeArchiveError(f"{self._source}: archive is empty")
                raise UnsafeArchiveError(
                    f"{self._source}: archive is truncated: it ends after member "
                    f"{self._name!r} without an end-of-archive marker"
                )
            block = self._take(BLOCK, f"the header after member {self._name!r}")
        if block == _ZERO_BLOCK:
            return None
        stored = _octal(block[148:156])
        total = sum(block.translate(None, _NUL)) - sum(block[148:156]) + 256
        if stored != total:
            high = len(block[:148].translate(None, _LOW_BYTES)) + len(
                block[156:].translate(None, _LOW_BYTES)
            )
            if stored is None or stored != total - 256 * high:
                raise self._error("a header with a bad checksum")
        magic = block[257:265]
        if magic != _POSIX_MAGIC:
            if magic != _GNU_MAGIC:
                raise self._error("a header that is not ustar, pax or GNU tar")
            if block[345:500] != _ZERO_BLOCK[:155]:
                raise self._error("a GNU header with atime, ctime or sparse fields set")
        # Numeric fields, even those we do not use, must be numbers: tarfile reads a header
        # with a malformed one as the end of the archive, and readers should not disagree.
        for start, end in _OTHER_NUMBERS:
            if _cached_number(block[start:end]) is None:
                raise self._error("a header with a malformed numeric field")
        return block

    def _member(
        self,
        block: bytes,
        kind: str,
        pax: dict[bytes, bytes] | None,
        long_name: bytes | None,
        long_link: bytes | None,
    ) -> TarMember:
        raw_name = block[0:100].partition(_NUL)[0]
        if block[257:263] == b"ustar\x00":
            prefix = block[345:500].partition(_NUL)[0]
            if prefix:
                raw_name = prefix + b"/" + raw_name
        if kind == FILE and block[156:157] == _NUL and raw_name.endswith(b"/"):
            # An old-style regular file (type NUL) whose header name ends with "/" is a
            # directory to tarfile and GNU tar, even when a pax or GNU long name replaces the
            # name: two readers would make different trees of it, so it is refused.
            raise self._error(
                f"a member {_show(raw_name)} of type NUL whose name ends with '/' (a file or "
                "a directory, depending on the reader)"
            )
        raw_link = block[157:257].partition(_NUL)[0]
        mode = _cached_number(block[100:108])
        size = _number(block[124:136])
        mtime = _cached_number(block[136:148])
        if long_name is not None:
            raw_name = long_name
        if long_link is not None:
            raw_link = long_link
        if pax is not None:
            if b"path" in pax:
                if long_name is not None:
                    raise self._error("a member named by both a pax and a GNU long-name header")
                raw_name = pax[b"path"]
            if b"linkpath" in pax:
                if long_link is not None:
                    raise self._error("a link named by both a pax and a GNU long-link header")
                raw_link = pax[b"linkpath"]
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(f"a member name {_show(raw_name)} that is not UTF-8") from None
        self._name = name
        try:
            linkname = raw_link.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeArchiveError(
                f"{self._source}: member {name!r} links to {_show(raw_link)}, which is not UTF-8"
            ) from None
        if mode is None or size is None or mtime is None:
            raise UnsafeArchiveError(
                f"{self._source}: member {name!r} has a malformed mode, size or mtime field"
            )
        mtime_ns = mtime * 1_000_000_000
        if pax is not None:
            if b"size" in pax:
                size = _pax_size(pax[b"size"])
                if size is None:
                    raise UnsafeArchiveError(
                        f"{self._source}: member {name!r} has a pax size "
                        f"{_show(pax[b'size'])} that is not a size up to 2**62"
                    )
            if b"mtime" in pax:
                parsed = _pax_mtime(pax[b"mtime"])
                if parsed is None:
                    raise UnsafeArchiveError(
                        f"{self._source}: member {name!r} has a pax mtime "
                        f"{_show(pax[b'mtime'])} outside 0 to 2**33 seconds"
                    )
                mtime_ns = parsed
        if size > MAX_SIZE:
            raise UnsafeArchiveError(f"{self._source}: member {name!r} has a size beyond 2**62")
        if mtime >= MAX_MTIME:
            raise UnsafeArchiveError(f"{self._source}: member {name!r} has an mtime beyond 2**33")
        if kind != FILE and size:
            raise UnsafeArchiveError(
                f"{self._source}: member {name!r} is a {kind} with {size} bytes of data"
            )
        if kind == FILE and name.endswith("/"):
            raise UnsafeArchiveError(f"{self._source}: regular file {name!r} ends with '/'")
        if kind != SYMLINK and kind != HARDLINK:
            linkname = ""
        self._left = size
        self._pad = -size % BLOCK
        return TarMember(name, kind, mode & 0o7777, size, mtime_ns, linkname)

    def _extended_data(self, block: bytes, what: str) -> bytes:
        size = _number(block[124:136])
        if size is None or size > MAX_EXTENDED_BYTES:
            raise self._error(f"a {what} header of more than {MAX_EXTENDED_BYTES} bytes")
        data = self._take(size + (-size % BLOCK), f"a {what} header after member {self._name!r}")
        if data[size:].count(0) != len(data) - size:
            # tarfile parses the padding too (pax records, the NUL ending a long name)
            raise self._error(f"a {what} header with data in its padding")
        return data[:size]

    def _gnu_long(self, block: bytes) -> bytes:
        name, nul, _ = self._extended_data(block, "GNU long-name").partition(_NUL)
        if not nul:
            raise self._error("a GNU long name without its terminating NUL")
        return name

    def _pax_records(self, block: bytes, glob: bool) -> dict[bytes, bytes]:
        """Parse ``"%d %s=%s\\n"`` records; return the used keys' values."""
        data = self._extended_data(block, "pax")
        used: dict[bytes, bytes] = {}
        pos, n = 0, len(data)
        while pos < n:
            space = data.find(b" ", pos, pos + 21)
            digits = data[pos:space]
            if space < 0 or not digits.isdigit() or digits[:1] == b"0":
                raise self._error("a pax header with a malformed record length")
            end = pos + int(digits)
            if end > n or data[end - 1 : end] != b"\n":
                raise self._error("a pax record whose length runs past its header or line")
            equals = data.find(b"=", space + 1, end - 1)
            if equals <= space + 1:
                raise self._error("a pax record with no key or no '='")
            key = data[space + 1 : equals]
            value = data[equals + 1 : end - 1]
            pos = end
            if key in _USED_KEYS:
                if glob:
                    raise self._error(f"a global pax header that sets {_show(key)}")
                if key in used:
                    raise self._error(f"a pax header that sets {_show(key)} twice")
                used[key] = value
            elif key == b"hdrcharset":
                if value != _UTF8_CHARSET:
                    raise self._error(f"a pax header with hdrcharset {_show(value)}")
            elif key not in _IGNORED_KEYS and not key.startswith(_IGNORED_PREFIXES):
                if key.startswith(b"GNU.sparse."):
                    raise self._error("a GNU sparse member, which is not supported")
                raise self._error(f"an unsupported pax key {_show(key)}")
        return used

    def _finish(self) -> None:
        """After the first zero block: a second one, then only zero padding to the end."""
        second = self._take(BLOCK, "its end-of-archive marker")
        if second != _ZERO_BLOCK:
            raise self._error("a lone zero block")
        trailing = 0
        while True:
            rest = self._buf[self._pos :]
            if rest:
                trailing += len(rest)
                if trailing > MAX_TRAILING_BYTES:
                    raise self._error(
                        f"more than {MAX_TRAILING_BYTES} bytes after the end-of-archive marker"
                    )
                if bytes(rest).count(0) != len(rest):
                    raise self._error("data after the end-of-archive marker")
                self.bytes_read += len(rest)
            if not self._next_chunk():
                return


def _show(raw: bytes) -> str:
    """A short, one-line rendering of outside bytes for messages."""
    text = repr(raw[:80])[1:]
    return text + ("..." if len(raw) > 80 else "")


def _octal(field: bytes) -> int | None:
    """An octal field (digits, then NUL or spaces, as tarfile reads them); None if malformed."""
    digits = field.partition(_NUL)[0].strip(b" ")
    if not digits:
        return 0
    if not digits.isdigit():
        return None
    try:
        return int(digits, 8)
    except ValueError:  # 8 or 9
        return None


# mode, uid, gid, mtime, devmajor, devminor (size is parsed where it is used)
_OTHER_NUMBERS = ((100, 108), (108, 116), (116, 124), (136, 148), (329, 337), (337, 345))
_FIELD_CACHE: dict[bytes, Optional[int]] = {}
_MISSING = -1


def _cached_number(field: bytes) -> int | None:
    """:func:`_number`, remembered: modes, owners and mtimes repeat across an archive."""
    value = _FIELD_CACHE.get(field, _MISSING)
    if value != _MISSING:
        return value
    value = _number(field)
    if len(_FIELD_CACHE) >= 4096:
        _FIELD_CACHE.clear()
    _FIELD_CACHE[field] = value
    return value


def _number(field: bytes) -> int | None:
    """A numeric field: octal, or GNU base-256 (first byte 0x80, big-endian); None if
    malformed or negative (first byte 0xff)."""
    if field[0] & 0x80:
        if field[0] != 0x80:
            return None
        return int.from_bytes(field[1:], "big")
    return _octal(field)


def _pax_size(value: bytes) -> int | None:
    if not value.isdigit() or len(value) > 19:
        return None
    size = int(value)
    return size if size <= MAX_SIZE else None


def _pax_mtime(value: bytes) -> int | None:
    """Decimal seconds with an optional fraction, as nanoseconds (truncated); None if
    malformed or outside ``0 <= t < MAX_MTIME``."""
    whole, dot, fraction = value.partition(b".")
    if not whole.isdigit() or len(whole) > 12 or (dot and not fraction.isdigit()):
        return None
    seconds = int(whole)
    if seconds >= MAX_MTIME:
        return None
    return seconds * 1_000_000_000 + int((fraction[:9] + b"000000000")[:9])
