"""Reading a ``.pybundle`` file: bounded reads of the manifest and signature, archive streams.

The reader trusts nothing in the zip: members are looked up by the names the manifest gives,
never by listing, and each must be STORED with the size the manifest records. The zip's
member list is checked only to refuse members the manifest does not account for.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from pybundle.errors import IntegrityError, ManifestError, SignatureError, StorageError
from pybundle.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, SIGNATURE_NAME, Manifest, Member
from pybundle.signing import MAX_SIGNATURE_BYTES

HASH_CHUNK = 4 * 1024 * 1024
"""Read size for hashing archive members, in bytes."""


class BundleSource:
    """An open bundle file. Use as a context manager; ``path`` is named in every error.

    Raises IntegrityError when the file is not a zip, StorageError when it cannot be read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise StorageError(f"{path}: cannot open: {exc.strerror or exc}") from exc
        try:
            self._zip = zipfile.ZipFile(self._file, "r")
            _check_end_record(path, self._file, len(self._zip.infolist()))
            for info in self._zip.infolist():
                _check_entry(path, info)
        except zipfile.BadZipFile as exc:
            self._file.close()
            raise IntegrityError(f"{path}: not a pybundle file (not a zip archive: {exc})") from exc
        except OSError as exc:
            self._file.close()
            if exc.errno not in (None, errno.EINVAL, errno.EOVERFLOW):
                raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
            raise IntegrityError(f"{path}: damaged zip directory: {exc}") from exc
        except ZIP_ERRORS as exc:
            self._file.close()
            raise IntegrityError(f"{path}: damaged zip directory: {_reason(exc)}") from exc
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> BundleSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying zip file."""
        self._zip.close()
        self._file.close()

    def _info(self, name: str) -> zipfile.ZipInfo | None:
        try:
            return self._zip.getinfo(name)
        except KeyError:
            return None

    def _read_small(self, info: zipfile.ZipInfo, cap: int) -> bytes:
        with self._zip.open(info) as stream:
            data = stream.read(cap + 1)
        if len(data) > cap:
            raise IntegrityError(f"{self.path}: member {info.filename} is larger than {cap} bytes")
        return data

    def manifest_bytes(self) -> bytes:
        """The manifest's exact bytes (at most MAX_MANIFEST_BYTES); ManifestError if absent,
        not the first member, or too large."""
        info = self._info(MANIFEST_NAME)
        if info is None:
            raise ManifestError(f"{self.path}: no {MANIFEST_NAME} in the bundle")
        first = self._zip.infolist()[0]
        if first.filename != MANIFEST_NAME:
            raise ManifestError(f"{self.path}: {MANIFEST_NAME} is not the first member")
        if info.file_size > MAX_MANIFEST_BYTES:
            raise ManifestError(
                f"{self.path}: manifest is {info.file_size} bytes, more than the "
                f"{MAX_MANIFEST_BYTES} bytes allowed"
            )
        try:
            return self._read_small(info, MAX_MANIFEST_BYTES)
        except ZIP_ERRORS as exc:
            raise ManifestError(f"{self.path}: cannot read the manifest: {_reason(exc)}") from exc

    def signature_bytes(self) -> bytes | None:
        """The detached signature's bytes, or None for an unsigned bundle."""
        info = self._info(SIGNATURE_NAME)
        if info is None:
            return None
        if info.file_size > MAX_SIGNATURE_BYTES:
            raise SignatureError(
                f"{self.path}: signature is {info.file_size} bytes, more than the "
                f"{MAX_SIGNATURE_BYTES} bytes allowed"
            )
        try:
            return self._read_small(info, MAX_SIGNATURE_BYTES)
        except ZIP_ERRORS as exc:
            raise SignatureError(f"{self.path}: cannot read the signature: {_reason(exc)}") from exc

    def check_members(self, manifest: Manifest) -> None:
        """Refuse a bundle whose zip holds members the manifest does not list, or lacks one.

        Raises ManifestError naming the first offending member.
        """
        listed = manifest.members()  # the archives and, in a self-installing file, its wheels
        expected = {MANIFEST_NAME, SIGNATURE_NAME} | {m.member for m in listed}
        names = [i.filename for i in self._zip.infolist()]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ManifestError(f"{self.path}: member {name!r} appears twice in the zip")
            seen.add(name)
            if name not in expected:
                raise ManifestError(f"{self.path}: member {name!r} is not listed in the manifest")
        for artifact in listed:
            if artifact.member not in seen:
                raise ManifestError(
                    f"{self.path}: manifest lists {artifact.member}, which is not in the bundle"
                )

    @contextmanager
    def open_archive(self, artifact: Member) -> Iterator[ArchiveReader]:
        """Stream an archive member's bytes, hashing them as they are read (see
        :meth:`ArchiveReader.finish`). The member must be STORED and exactly ``artifact.size``
        bytes long per the zip directory; ManifestError otherwise."""
        info = self._member_info(artifact)
        with open(self.path, "rb", buffering=0) as raw:
            try:
                start = self._data_offset(raw, info, artifact.member)
            except (OSError, OverflowError, ValueError) as exc:
                raise IntegrityError(
                    f"{self.path}: member {artifact.member} has a damaged local header: {exc}"
                ) from exc
            yield ArchiveReader(_Region(raw, start, info.file_size))

    def hash_archive(self, artifact: Member) -> tuple[str, int]:
        """sha256 of an archive member's bytes: ``(hex digest, bytes read)``. Same checks as
        :meth:`open_archive`; hashlib releases the GIL, so members hash in parallel threads."""
        with self.open_archive(artifact) as stream:
            return stream.finish()

    def _member_info(self, artifact: Member) -> zipfile.ZipInfo:
        info = self._info(artifact.member)
        if info is None:
            raise ManifestError(
                f"{self.path}: manifest lists {artifact.member}, which is not in the bundle"
            )
        if info.compress_type != zipfile.ZIP_STORED:
            raise ManifestError(f"{self.path}: member {artifact.member} is compressed, not STORED")
        if info.file_size != artifact.size:
            raise ManifestError(
                f"{self.path}: member {artifact.member} is {info.file_size} bytes, "
                f"the manifest says {artifact.size}"
            )
        return info

    def _data_offset(self, raw: BinaryIO, info: zipfile.ZipInfo, member: str) -> int:
        """Offset of a STORED member's first data byte, from its local file header
        (APPNOTE.TXT 4.3.7: 30 fixed bytes, then the name and the extra field)."""
        header = os.pread(raw.fileno(), 30, info.header_offset)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise IntegrityError(f"{self.path}: member {member} has a damaged local header")
        flags, method = cast(tuple[int, int], struct.unpack("<HH", header[6:10]))
        if flags & _ENCRYPTED or method != zipfile.ZIP_STORED:
            raise IntegrityError(
                f"{self.path}: member {member}'s local header says it is encrypted or "
                "compressed; bundle members are STORED"
            )
        name_len, extra_len = cast(tuple[int, int], struct.unpack("<HH", header[26:30]))
        name = os.pread(raw.fileno(), name_len, info.header_offset + 30)
        if name != info.orig_filename.encode("utf-8") and name != info.orig_filename.encode(
            "cp437", errors="replace"
        ):
            raise IntegrityError(f"{self.path}: member {member} has a mismatched local header")
        return info.header_offset + 30 + name_len + extra_len


_ENCRYPTED = 0x1
"""General-purpose flag bit 0: the member is encrypted (APPNOTE.TXT 4.4.4)."""

ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    OverflowError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    zlib.error,
)
"""What :mod:`zipfile` raises on damaged or hostile input (RuntimeError: "is encrypted";
NotImplementedError: an unknown compression method; ValueError/OverflowError: offsets or sizes
out of range; UnicodeDecodeError, a ValueError: a name that is not UTF-8)."""


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


_EOCD = struct.Struct("<4s4H2LH")
"""End of central directory record (APPNOTE.TXT 4.3.16): signature, number of this disk, disk
where the central directory starts, entries on this disk, entries in total, central directory
size and offset, comment length."""
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")


def _check_end_record(path: Path, stream: BinaryIO, count: int) -> None:
    """Refuse an end record that disagrees with the central directory zipfile read: a bundle
    is one disk, and both entry counts equal the number of members (zipfile ignores those
    fields, another zip reader might not: a reader differential is how members hide)."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    tail_len = min(size, _EOCD.size + 0xFFFF)
    stream.seek(size - tail_len)
    tail = stream.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    while at >= 0 and at + _EOCD.size + _EOCD.unpack_from(tail, at)[-1] != len(tail):
        at = tail.rfind(b"PK\x05\x06", 0, at)
    if at < 0:
        raise IntegrityError(f"{path}: damaged zip directory: no end record")
    _sig, disk, cd_disk, on_disk, total, _size, _offset, _comment = _EOCD.unpack_from(tail, at)
    if (on_disk, total) == (0xFFFF, 0xFFFF) or 0xFFFF in (disk, cd_disk):
        locator_at = size - tail_len + at - _ZIP64_LOCATOR.size
        stream.seek(locator_at)
        locator = stream.read(_ZIP64_LOCATOR.size)
        if len(locator) != _ZIP64_LOCATOR.size or locator[:4] != b"PK\x06\x07":
            raise IntegrityError(f"{path}: damaged zip directory: no ZIP64 end record locator")
        stream.seek(locator_at - _ZIP64_EOCD.size)  # where zipfile reads it too
        record = stream.read(_ZIP64_EOCD.size)
        if len(record) != _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
            raise IntegrityError(f"{path}: damaged zip directory: no ZIP64 end record")
        fields = _ZIP64_EOCD.unpack(record)
        disk, cd_disk, on_disk, total = fields[4], fields[5], fields[6], fields[7]
    if disk != 0 or cd_disk != 0:
        raise IntegrityError(f"{path}: damaged zip directory: it claims to span several disks")
    if on_disk != total or total != count:
        raise IntegrityError(
            f"{path}: damaged zip directory: the end record counts {total} members "
            f"({on_disk} on this disk), the central directory holds {count}"
        )


def _check_entry(path: Path, info: zipfile.ZipInfo) -> None:
    """Every member of a bundle is STORED and not encrypted (pack.py writes nothing else), so a
    flipped flag or method is refused before any member is opened."""
    if info.flag_bits & _ENCRYPTED:
        raise IntegrityError(f"{path}: member {info.filename!r} is marked as encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        raise IntegrityError(
            f"{path}: member {info.filename!r} is compressed (method {info.compress_type}); "
            "bundle members are STORED"
        )


class ArchiveReader(io.BufferedReader):
    """A buffered stream over one archive member that hashes every byte it delivers.

    After extraction, :meth:`finish` reads whatever the decompressor left unread and returns
    ``(sha256 hex, bytes)`` of the whole member: the bytes actually extracted are checked
    against the manifest before the staged tree is used, even if the file changed after the
    up-front verification pass.
    """

    def __init__(self, region: _Region) -> None:
        super().__init__(region, buffer_size=1024 * 1024)
        self._region = region

    def finish(self) -> tuple[str, int]:
        """Drain the member to its end; return its ``(sha256 hex digest, size in bytes)``."""
        buffer = bytearray(HASH_CHUNK)  # reused: large readinto calls go straight to preadv
        while self.readinto(buffer):
            pass
        return self._region.hash.hexdigest(), self._region.position


class _Region(io.RawIOBase):
    """A read-only window of ``size`` bytes at ``start`` in an open file (pread based), hashed
    as it is read. Reading stops at the window's end, so a reader can never run past the
    member.
    """

    def __init__(self, raw: BinaryIO, start: int, size: int) -> None:
        self._fd = raw.fileno()
        self._start = start
        self._size = size
        self._pos = 0
        self.hash = hashlib.sha256()

    @property
    def position(self) -> int:
        """Bytes read so far."""
        return self._pos

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._size - self._pos
        if remaining <= 0:
            return 0
        view = memoryview(buffer)
        want = min(len(view), remaining)
        n = os.preadv(self._fd, [view[:want]], self._start + self._pos)
        self.hash.update(view[:n])
        self._pos += n
        return n
