"""Writing a compact bundle's solid stream (``bundle --compact``).

Each interpreter archive is decompressed to its tar (the upstream bytes are hashed on the way
and checked against the manifest record, so provenance stays checked), and the tars are
compressed together, in manifest order, into one 7z archive with py7zr: one folder, one LZMA2
coder, a plain (not encoded) header, no encryption. Versions of CPython share most of their
files, so a dictionary that reaches from one tar back into the previous one finds them: the
dictionary is the smallest LZMA2 size at least as large as the largest tar
(:func:`dictionary_for`), at most MAX_DICTIONARY. What the installer reads back (each tar's
sha256 and size) is recorded per artifact (:class:`pybundle.manifest.SolidEntry`); the
container's sha256 and size in :class:`pybundle.manifest.SolidContainer`.

Why LZMA2 and not zstd: measured on three pyenv interpreters (see README, "Fitting the
medium"), py7zr's zstd coder takes a level only, so its window (8 MiB at level 19) cannot
reach the previous tar and the shared files are compressed again; LZMA2 with a dictionary
spanning a tar can. The reader (:mod:`pybundle.installer.solid`) accepts exactly what this
module writes.

Reproducible: entries carry ``when`` as their time and mode 0644, the header is plain, and
LZMA2 compression is deterministic, so equal inputs give equal bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Optional, cast

from pybundle.archives import READ_ERRORS, open_decompressed
from pybundle.bundler.stopping import check
from pybundle.errors import StorageError, UnsafeArchiveError
from pybundle.hashing import CHUNK_SIZE, check_digest
from pybundle.manifest import ARCHIVES_DIR, Artifact, SolidContainer, SolidEntry

SOLID_NAME = "interpreters.7z"
"""File name of the solid stream's zip member (``archives/interpreters.7z``)."""
MIN_DICTIONARY = 1024 * 1024
MAX_DICTIONARY = 512 * 1024 * 1024
"""Largest dictionary written, in bytes: the installer's decoder allocates it."""
DEFAULT_PRESET = 6
"""xz/LZMA2 preset (match finder bt4, nice length 64): measured, 9 was no smaller here."""


@dataclass(frozen=True)
class CompactOptions:
    """How to compress the solid stream: LZMA2 ``preset`` (0-9) and ``dictionary`` in bytes
    (None: :func:`dictionary_for` the largest tar)."""

    preset: int = DEFAULT_PRESET
    dictionary: Optional[int] = None


def lzma2_sizes() -> list[int]:
    """Dictionary sizes LZMA2 can encode in its property byte: 2**n and 3 * 2**(n-1)."""
    return sorted({(2 | (p & 1)) << (p // 2 + 11) for p in range(40)})


def dictionary_for(largest: int) -> int:
    """The smallest encodable LZMA2 dictionary of at least ``largest`` bytes (the largest tar),
    within MIN_DICTIONARY..MAX_DICTIONARY."""
    for size in lzma2_sizes():
        if size >= max(largest, MIN_DICTIONARY):
            return min(size, MAX_DICTIONARY)
    return MAX_DICTIONARY


def tar_name(artifact: Artifact) -> str:
    """The solid entry name: the archive's file name without its compression suffix
    (``...-install_only.tar.gz`` -> ``...-install_only.tar``)."""
    return artifact.file_name[: -len(artifact.archive_format)] + "tar"


def unpack_to_tar(
    artifact: Artifact, path: Path, dest: Path, stop: Optional[threading.Event]
) -> SolidEntry:
    """Decompress the archive at ``path`` into the tar file ``dest``, checking the archive's
    bytes against ``artifact`` (sha256, size) as they are read; returns the tar's entry.
    Raises HashMismatchError, UnsafeArchiveError (not a readable archive), StorageError."""
    source_hash = hashlib.sha256()
    tar_hash = hashlib.sha256()
    read = 0
    size = 0
    try:
        with open(path, "rb") as raw, open(dest, "wb") as out:
            counting = _HashingReader(raw, source_hash)
            stream = open_decompressed(cast(IO[bytes], counting), artifact.archive_format)
            try:
                while chunk := stream.read(CHUNK_SIZE):
                    check(stop)
                    tar_hash.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                while counting.read(CHUNK_SIZE):  # a trailer the decompressor left unread
                    pass
            finally:
                stream.close()
            read = counting.count
    except READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{path}: archive cannot be read: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"{dest}: cannot write the tar: {exc}") from exc
    check_digest(str(path), (source_hash.hexdigest(), read), artifact.sha256, artifact.size)
    return SolidEntry(name=tar_name(artifact), size=size, sha256=tar_hash.hexdigest())


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: IO[bytes], digest: hashlib._Hash) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._digest.update(data)
        self.count += n
        return n


def pack_solid(
    items: Sequence[tuple[Artifact, Path]],
    work: Path,
    *,
    when: datetime,
    options: CompactOptions = CompactOptions(),
    stop: Optional[threading.Event] = None,
) -> tuple[SolidContainer, list[Artifact], Path]:
    """Build the solid stream of ``items`` (artifact, archive path) in ``work``.

    Returns the container record, the artifacts with their ``solid`` entries set (same
    order), and the path of the 7z file (in ``work``; the caller removes ``work``). Entries
    carry ``when`` as their modification time. Raises HashMismatchError (an archive changed
    since it was verified), UnsafeArchiveError, StorageError; :class:`Stopped` soon after
    ``stop`` is set.
    """
    import py7zr

    tars: list[tuple[Artifact, Path]] = []
    entries: list[Artifact] = []
    stamp = when.timestamp()
    for artifact, path in items:
        tar = work / tar_name(artifact)
        entry = unpack_to_tar(artifact, path, tar, stop)
        os.chmod(tar, 0o644)
        os.utime(tar, (stamp, stamp))
        tars.append((artifact, tar))
        entries.append(replace(artifact, solid=entry))
    largest = max(a.solid.size for a in entries if a.solid is not None)
    dictionary = options.dictionary or dictionary_for(largest)
    filters = [{"id": py7zr.FILTER_LZMA2, "preset": options.preset, "dict_size": dictionary}]
    target = work / SOLID_NAME
    try:
        with py7zr.SevenZipFile(target, "w", filters=filters) as archive:
            archive.set_encoded_header_mode(False)
            for artifact, tar in tars:
                check(stop)
                archive.write(tar, tar_name(artifact))
                tar.unlink()
    except OSError as exc:
        raise StorageError(f"{target}: cannot write the solid stream: {exc}") from exc
    digest = hashlib.sha256()
    size = 0
    with open(target, "rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    container = SolidContainer(
        member=f"{ARCHIVES_DIR}/{SOLID_NAME}",
        size=size,
        sha256=digest.hexdigest(),
        compression="lzma2",
        dictionary=dictionary,
        unpacked_size=sum(a.solid.size for a in entries if a.solid is not None),
    )
    return container, entries, target
