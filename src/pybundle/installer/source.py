"""Reading a ``.pybundle`` file: bounded reads of the manifest and signature, archive streams.

The reader trusts nothing in the zip: members are looked up by the names the manifest gives,
never by listing, and each must be STORED with the size the manifest records. The zip's
member list is checked only to refuse members the manifest does not account for.

A bundle named as ``NAME.001`` is a volume set, read as one file
(:class:`pybundle.volumes.BundleFile`); a compact bundle's archives are read from its solid
stream (:meth:`BundleSource.solid_pass`, :mod:`pybundle.installer.solid`).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from pybundle.errors import IntegrityError, ManifestError, SignatureError, StorageError
from pybundle.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
    Artifact,
    Manifest,
    Member,
)
from pybundle.signing import MAX_SIGNATURE_BYTES
from pybundle.volumes import BundleFile, VolumeError, missing_end

HASH_CHUNK = 4 * 1024 * 1024
"""Read size for hashing archive members, in bytes."""


class BundleSource:
    """An open bundle file. Use as a context manager; ``path`` is named in every error.

    Raises IntegrityError when the file is not a zip, StorageError when it cannot be read,
    VolumeError (exit 5) for an incomplete or inconsistent volume set.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = BundleFile(path)
        self._solid: Any = None
        try:
            if self._file.is_volume_set and not _has_end_record(self._file):
                raise missing_end(self._file)
            self._zip = zipfile.ZipFile(self._file, "r")
            _check_end_record(path, cast(BinaryIO, self._file), len(self._zip.infolist()))
            for info in self._zip.infolist():
                _check_entry(path, info)
            if self._file.is_volume_set:
                for info in self._zip.infolist():
                    self._check_local_header(info)
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
        listed = manifest.members()  # archives or the solid stream, carried files
        expected = {MANIFEST_NAME, SIGNATURE_NAME} | {m.member for m in listed}
        names = [i.filename for i in self._zip.infolist()]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ManifestError(f"{self.path}: member {name!r} appears twice in the zip")
            seen.add(name)
            if name not in expected:
                raise ManifestError(f"{self.path}: member {name!r} is not listed in the manifest")
        for member in (m.member for m in listed):
            if member not in seen:
                raise ManifestError(
                    f"{self.path}: manifest lists {member}, which is not in the bundle"
                )

    @property
    def file(self) -> BundleFile:
        """The bundle's bytes as one file (a volume set's parts joined)."""
        return self._file

    def preamble_size(self) -> int:
        """Bytes in front of the zip (a self-installing bundle's sh stub; 0 for a plain
        bundle): the lowest member offset the zip directory records."""
        return min((i.header_offset for i in self._zip.infolist()), default=0)

    @contextmanager
    def open_archive(self, artifact: Artifact) -> Iterator[ArchiveReader]:
        """Stream the bytes the installer reads for ``artifact``, hashing them as they are read
        (see :meth:`ArchiveReader.finish`; compare with ``artifact.read_digest``): the archive
        member, which must be STORED and exactly ``artifact.size`` bytes long per the zip
        directory (ManifestError otherwise), or, for an archive in the solid stream, its tar
        from the :meth:`solid_pass` in progress."""
        if artifact.solid is not None:
            if self._solid is None:
                raise ValueError(f"{artifact.file_name}: solid entries are read in a solid_pass")
            yield ArchiveReader(self._solid.member(artifact.solid.name))
            return
        with self.open_member(artifact.member, artifact.size) as reader:
            yield reader

    @contextmanager
    def open_member(self, member: str, size: int) -> Iterator[ArchiveReader]:
        """Stream a STORED member of ``size`` bytes (per the manifest), hashing it."""
        info = self._member_info(member, size)
        try:
            start = self._data_offset(info, member)
        except (OSError, OverflowError, ValueError) as exc:
            raise IntegrityError(
                f"{self.path}: member {member} has a damaged local header: {exc}"
            ) from exc
        yield ArchiveReader(_Region(self._file, start, info.file_size))

    def hash_archive(self, artifact: Member) -> tuple[str, int]:
        """sha256 of the bytes of a member the manifest hashes (an archive that is a member, a
        carried file): ``(hex digest, bytes read)``. Same checks as :meth:`open_member`;
        hashlib releases the GIL, so members hash in parallel threads."""
        with self.open_member(artifact.member, artifact.size) as stream:
            return stream.finish()

    def hash_member(self, member: str, size: int) -> tuple[str, int]:
        """sha256 of any STORED member of ``size`` bytes (e.g. the solid stream)."""
        with self.open_member(member, size) as stream:
            return stream.finish()

    @contextmanager
    def solid_pass(self, manifest: Manifest, wanted: Sequence[Artifact]) -> Iterator[None]:
        """Within this context, :meth:`open_archive` hands out the tars of the ``wanted``
        artifacts that are in the manifest's solid stream, which must be opened in manifest
        order (one decoding pass; :class:`pybundle.installer.solid.SolidStream`). A no-op
        for a manifest without a solid stream or when none of ``wanted`` is in it. The
        container's sha256 is not checked here: verify it first (``verify_archives``)."""
        container = manifest.solid
        if container is None or not any(a.solid is not None for a in wanted):
            yield
            return
        from pybundle.installer.solid import solid_pass

        info = self._member_info(container.member, container.size)
        try:
            start = self._data_offset(info, container.member)
        except (OSError, OverflowError, ValueError) as exc:
            raise IntegrityError(
                f"{self.path}: member {container.member} has a damaged local header: {exc}"
            ) from exc
        where = f"{self.path}: {container.member}"
        with solid_pass(self._file, start, container, manifest.artifacts, wanted, where) as s:
            self._solid = s
            try:
                yield
            finally:
                self._solid = None

    def _member_info(self, member: str, size: int) -> zipfile.ZipInfo:
        info = self._info(member)
        if info is None:
            raise ManifestError(f"{self.path}: manifest lists {member}, which is not in the bundle")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ManifestError(f"{self.path}: member {member} is compressed, not STORED")
        if info.file_size != size:
            raise ManifestError(
                f"{self.path}: member {member} is {info.file_size} bytes, the manifest says {size}"
            )
        return info

    def _pread(self, size: int, offset: int) -> bytes:
        buffer = bytearray(size)
        n = self._file.pread_into(buffer, offset)
        return bytes(buffer[:n])

    def _check_local_header(self, info: zipfile.ZipInfo) -> None:
        """In a volume set: the member's local header is where the zip directory says, or
        the parts are out of order (or one is damaged); the message names the part."""
        try:
            self._data_offset(info, info.filename)
        except IntegrityError as exc:
            part = self._file.part_at(info.header_offset)
            raise VolumeError(
                f"{part}: member {info.filename} is not where the zip directory says: the "
                "volumes are out of order, or this one is damaged"
            ) from exc

    def _data_offset(self, info: zipfile.ZipInfo, member: str) -> int:
        """Offset of a STORED member's first data byte, from its local file header
        (APPNOTE.TXT 4.3.7: 30 fixed bytes, then the name and the extra field)."""
        header = self._pread(30, info.header_offset)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise IntegrityError(f"{self.path}: member {member} has a damaged local header")
        flags, method = cast(tuple[int, int], struct.unpack("<HH", header[6:10]))
        if flags & _ENCRYPTED or method != zipfile.ZIP_STORED:
            raise IntegrityError(
                f"{self.path}: member {member}'s local header says it is encrypted or "
                "compressed; bundle members are STORED"
            )
        name_len, extra_len = cast(tuple[int, int], struct.unpack("<HH", header[26:30]))
        name = self._pread(name_len, info.header_offset + 30)
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


def _has_end_record(file: BundleFile) -> bool:
    """True when the last bytes of ``file`` hold a zip end record (APPNOTE.TXT 4.3.16) that
    ends exactly at the end of the file (its comment included)."""
    size = file.size
    tail_len = min(size, _EOCD.size + 0xFFFF)
    buffer = bytearray(tail_len)
    n = file.pread_into(buffer, size - tail_len)
    tail = bytes(buffer[:n])
    at = tail.rfind(b"PK\x05\x06")
    while at >= 0:
        if at + _EOCD.size <= len(tail) and at + _EOCD.size + _EOCD.unpack_from(tail, at)[
            -1
        ] == len(tail):
            return True
        at = tail.rfind(b"PK\x05\x06", 0, at)
    return False


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

    def __init__(self, region: Any) -> None:
        super().__init__(region, buffer_size=1024 * 1024)
        self._region = region  # a _Region or a solid entry: both hash and count what they give

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

    def __init__(self, file: BundleFile, start: int, size: int) -> None:
        self._file = file
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
        n = self._file.pread_into(view[:want], self._start + self._pos)
        self.hash.update(view[:n])
        self._pos += n
        return n
