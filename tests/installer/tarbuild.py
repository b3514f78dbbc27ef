"""Byte-level builders of tar streams, valid or hostile, for the reader's tests and fuzzer.

Layouts from POSIX ustar/pax (IEEE Std 1003.1-2017, pax utility) and the GNU tar manual.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import zstandard

BLOCK = 512
POSIX_MAGIC = b"ustar\x0000"
GNU_MAGIC = b"ustar  \x00"
END = bytes(2 * BLOCK)
MTIME = 1_700_000_000


def set_checksum(block: bytearray, kind: str = "unsigned") -> bytearray:
    """Write the header checksum: ``unsigned`` (POSIX), ``signed`` (old Sun tar), or ``bad``."""
    block[148:156] = b" " * 8
    signed = kind == "signed"
    total = sum(b - 256 if signed and b > 127 else b for b in block)
    if kind == "bad":
        total += 1
    block[148:156] = b"%06o\0 " % total
    return block


def header(
    name: bytes = b"python/x",
    *,
    typeflag: bytes = b"0",
    size: int = 0,
    mode: bytes = b"0000644\0",
    size_field: bytes | None = None,
    mtime_field: bytes | None = None,
    linkname: bytes = b"",
    magic: bytes = POSIX_MAGIC,
    prefix: bytes = b"",
    checksum: str = "unsigned",
) -> bytes:
    """One 512-byte header block."""
    block = bytearray(BLOCK)
    block[0:100] = name[:100].ljust(100, b"\0")
    block[100:108] = mode
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = mtime_field if mtime_field is not None else b"%011o\0" % MTIME
    block[156:157] = typeflag
    block[157:257] = linkname[:100].ljust(100, b"\0")
    block[257:265] = magic
    block[345:500] = prefix[:155].ljust(155, b"\0")
    return bytes(set_checksum(block, checksum))


def pad(data: bytes) -> bytes:
    """``data`` followed by zeros up to a whole number of blocks."""
    return data + bytes(-len(data) % BLOCK)


def record(key: bytes, value: bytes) -> bytes:
    """One pax record ``"%d %s=%s\\n"`` with its self-inclusive length."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(records: list[bytes] | bytes, typeflag: bytes = b"x") -> bytes:
    """A pax extended header (``x``) or global header (``g``) holding ``records``."""
    data = records if isinstance(records, bytes) else b"".join(records)
    return header(b"././@PaxHeader", typeflag=typeflag, size=len(data)) + pad(data)


def gnu_long(name: bytes, typeflag: bytes = b"L") -> bytes:
    """A GNU long-name (``L``) or long-link (``K``) header with its data."""
    data = name + b"\0"
    return header(b"././@LongLink", typeflag=typeflag, size=len(data), magic=GNU_MAGIC) + pad(data)


def regular(name: bytes, data: bytes = b"x", **fields: object) -> bytes:
    """A regular-file member with its data."""
    return header(name, size=len(data), **fields) + pad(data)  # type: ignore[arg-type]


def directory(name: bytes) -> bytes:
    return header(name, typeflag=b"5", mode=b"0000755\0")


def tiny_tree() -> bytes:
    """A valid small tree (no end marker): python/, python/bin/, a file, a symlink."""
    return (
        directory(b"python/")
        + directory(b"python/bin/")
        + regular(b"python/bin/python3.12", b"#!/bin/sh\necho fake\n", mode=b"0000755\0")
        + header(b"python/bin/python3", typeflag=b"2", linkname=b"python3.12")
    )


def compress(raw: bytes, archive_format: str = "tar.gz") -> bytes:
    """The tar stream ``raw`` compressed as ``archive_format`` (fast levels)."""
    if archive_format == "tar.gz":
        return gzip.compress(raw, compresslevel=1, mtime=0)
    return zstandard.ZstdCompressor(level=1).compress(raw)


def tar_bytes(
    members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    """An uncompressed tar stream written by tarfile in format ``fmt``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def tar_tree(root: Path, arcname: str = "python", fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar of a real directory, as tarfile writes it (float mtimes: a pax
    mtime record per member in PAX format)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        tar.add(str(root), arcname=arcname)
    return buf.getvalue()
