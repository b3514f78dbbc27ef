"""Safe, streaming extraction of ``.tar.gz`` / ``.tar.zst`` interpreter archives.

We do not use tarfile (its ``filter='data'`` has known bypasses on every Python before
3.9.23 / 3.11.13 / 3.12.11 / 3.13.4, e.g. CVE-2025-4517). Headers are parsed by our own strict
reader (:mod:`pybundle.tarstream`), the archive is decompressed on a background thread
(:class:`pybundle.archives.InflateThread`), and every member is checked by the allowlist
below before a byte of it is written; :mod:`pybundle.installer.treewriter` then writes it:

- allowed types: regular files, directories, symlinks whose target stays inside the tree,
  hard links to an earlier regular member; anything else (devices, FIFOs, ...) is refused;
- names: no absolute paths, no ``..``, no empty components, no NUL or control characters,
  components at most 255 bytes, paths at most 4096 bytes, no duplicates, nothing written
  through a symlink;
- modes: 0755 if any execute bit was set, else 0644 (setuid/setgid/sticky and group/world
  write dropped); directories 0755; owner is the installing user; regular files keep their
  mtime (to the nanosecond: the shipped bytecode checks it);
- budget: the members and regular-file bytes counted before anything is written.

Members outside ``strip_prefix`` are validated but not written (PBS ``full`` archives carry
build files beside ``python/install``).

With a file index (:mod:`pybundle.fileindex`, from a verified bundle), every regular-file
member, written or not, must be the next line of the index (same name, same size), and the
index must end with the archive; the receipt's digests are then the index's, and nothing is
hashed here. This is safe because the archive's own sha256 is checked against the signed
manifest (before extraction, and again on the very bytes streamed through here before the
tree is used), and the index is a signed member too (its sha256 is checked on the bytes read,
before the receipt is written): for a verified bundle, the index's digests are the digests of
the bytes written, and the lockstep check guarantees that index and archive describe the
same members in the same order.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from pybundle.archives import READ_ERRORS, InflateThread
from pybundle.errors import StorageError, UnsafeArchiveError
from pybundle.fileindex import IndexReader
from pybundle.installer.relocate import relocation_candidate
from pybundle.installer.treewriter import SMALL_FILE_BYTES, FileRecord, TreeWriter
from pybundle.tarstream import DIR, FILE, HARDLINK, SYMLINK, Chunk, TarMember, TarStream

__all__ = ["ExtractStats", "FileRecord", "extract_archive", "resolve_link"]

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
STREAM_CHUNK = 1024 * 1024
"""Piece size, in bytes, in which members over SMALL_FILE_BYTES are written."""


@dataclass
class ExtractStats:
    """Counts of what was written. ``bytes`` is the total size of regular files."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    skipped: int = 0
    entries: int = 0
    """Every member read from the archive, written or not (compare: manifest file_count)."""
    archive_bytes: int = 0
    """Total size of all regular-file members (compare: manifest unpacked_size)."""
    records: list[FileRecord] = field(default_factory=list)
    """With ``record_files``: every entry written, in archive order (implicit parent
    directories included), each with its mode and, for files, size and sha256."""
    candidates: list[str] = field(default_factory=list)
    """Relative paths of the regular files (and hard links to them) that relocation must look
    at (:func:`pybundle.installer.relocate.relocation_candidate`), so it need not walk the
    tree again."""

    @property
    def members(self) -> int:
        """Members written, of every type."""
        return self.files + self.dirs + self.symlinks + self.hardlinks


def _check_name(name: str, what: str) -> list[str]:
    """Validate a member name; return its components (trailing slash removed)."""
    if not name or name in (".", "./"):
        raise UnsafeArchiveError(f"{what}: member with an empty name")
    if _CONTROL_CHARS.search(name):
        raise UnsafeArchiveError(f"{what}: member name {name!r} contains control characters")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeArchiveError(f"{what}: member name {name!r} is not valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise UnsafeArchiveError(f"{what}: member name longer than {MAX_PATH_BYTES} bytes")
    if name.startswith("/") or name.startswith("\\"):
        raise UnsafeArchiveError(f"{what}: member {name!r} has an absolute path")
    parts = name.rstrip("/").split("/")
    if parts and parts[0] == ".":
        parts = parts[1:]
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeArchiveError(f"{what}: member {name!r} has an empty, '.' or '..' component")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise UnsafeArchiveError(
                f"{what}: member {name!r} has a component longer than {MAX_COMPONENT_BYTES} bytes"
            )
    return parts


def resolve_link(
    start: list[str], link: str, links: dict[str, str], depth: int = 0
) -> list[str] | None:
    """Resolve ``link`` relative to the directory ``start`` inside the tree, following the
    symlinks recorded in ``links`` (relative path -> target) the way the kernel would.

    Returns the resolved path components, or None when resolution leaves the tree, is
    absolute, or loops (more than 40 levels, Linux's own limit).
    """
    if depth > 40 or link.startswith("/"):
        return None
    stack = list(start)
    for comp in link.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(comp)
        target = links.get("/".join(stack))
        if target is not None:
            resolved = resolve_link(stack[:-1], target, links, depth + 1)
            if resolved is None:
                return None
            stack = resolved
    return stack


def _file_mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


def extract_archive(
    stream: IO[bytes],
    archive_format: str,
    strip_prefix: str,
    dest: Path,
    *,
    source: str,
    max_bytes: int,
    max_entries: int,
    record_files: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    file_index: IndexReader | None = None,
) -> ExtractStats:
    """Extract the archive read from ``stream`` into the existing, empty directory ``dest``.

    ``strip_prefix`` (e.g. ``python``) is removed from member names; ``source`` names the
    archive in messages. Decompression stops as soon as the regular-file members would exceed
    ``max_bytes`` in total or the archive holds more than ``max_entries`` members (the
    manifest's budget), before the excess is written. With ``record_files``, the returned
    stats list a :class:`FileRecord` (path, kind, mode, size, sha256 or target) per entry
    written, computed from the bytes as they are written. ``stream`` is read on a background
    thread, which has stopped when this returns. Raises UnsafeArchiveError for a refused,
    over-budget or unreadable member (the caller discards ``dest``), StorageError for
    file-system failures (ENOSPC, EROFS, EACCES). ``on_bytes``, when given, is called after
    each regular-file member with the bytes of regular-file members read so far (the quantity
    the manifest's ``unpacked_size`` records). ``file_index``, when given, is walked in
    lockstep with the archive (see the module docstring) and gives the recorded files their
    sha256 instead of hashing them: any disagreement raises UnsafeArchiveError naming the
    index line and the archive member. The caller must check the index's own sha256 (and the
    archive's) before it uses the records.
    """
    prefix_parts = strip_prefix.split("/")
    stats = ExtractStats()
    try:
        with (
            InflateThread(stream, archive_format) as inflate,
            TreeWriter(dest, record=record_files, given_digests=file_index is not None) as writer,
        ):
            tar = TarStream(inflate.read_chunk, source)
            extraction = _Extraction(tar, writer, stats, prefix_parts, source, file_index)
            for member in tar:
                extraction.member(member, max_bytes, max_entries)
                if on_bytes is not None and member.kind == FILE:
                    on_bytes(stats.archive_bytes)
            extraction.check_links()
            if file_index is not None:
                file_index.finish(source)
        stats.records = writer.records  # complete once the writer is closed
    except UnsafeArchiveError:
        raise
    except READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{source}: archive cannot be read: {exc}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise StorageError(f"{dest}: cannot write: {os.strerror(exc.errno)}") from exc
        raise UnsafeArchiveError(f"{source}: extraction failed: {exc}") from exc
    return stats


class _Extraction:
    """The allowlist's state over one archive: what was written so far, and where."""

    def __init__(
        self,
        tar: TarStream,
        writer: TreeWriter,
        stats: ExtractStats,
        prefix_parts: list[str],
        source: str,
        index: IndexReader | None = None,
    ) -> None:
        self.tar = tar
        self.index = index
        self.writer = writer
        self.stats = stats
        self.prefix_parts = prefix_parts
        self.source = source
        self.kinds: dict[str, str] = {}  # relative path -> "f" | "d" | "l" (written so far)
        self.links: dict[str, str] = {}  # relative path of each symlink -> its target
        self.candidate_paths: set[str] = set()

    def member(self, member: TarMember, max_bytes: int, max_entries: int) -> None:
        """Check one member against the budget and the allowlist, then write it."""
        stats = self.stats
        source = self.source
        stats.entries += 1
        if stats.entries > max_entries:
            raise UnsafeArchiveError(
                f"{source}: archive holds more than its budget of {max_entries} members"
            )
        if member.kind == FILE:
            stats.archive_bytes += member.size
            if stats.archive_bytes > max_bytes:
                raise UnsafeArchiveError(
                    f"{source}: archive unpacks to more than its budget of {max_bytes} bytes"
                )
        parts = _check_name(member.name, source)
        _check_type(member, source)
        digest = None
        if self.index is not None and member.kind == FILE:
            digest = self.index.expect(member.name, member.size, source)
        prefix_parts = self.prefix_parts
        if parts[: len(prefix_parts)] != prefix_parts:
            stats.skipped += 1
            return
        rel_parts = parts[len(prefix_parts) :]
        if not rel_parts:
            if member.kind != DIR:
                raise UnsafeArchiveError(f"{source}: {member.name!r} should be a directory")
            return
        self._write(member, rel_parts, digest)

    def check_links(self) -> None:
        """A symlink may have been checked while a path it goes through did not exist yet;
        check every one again against the final tree."""
        for rel, link in self.links.items():
            if resolve_link(rel.split("/")[:-1], link, self.links) is None:
                raise UnsafeArchiveError(
                    f"{self.source}: symlink {rel!r} -> {link!r} leaves the tree"
                )

    def _parents(self, rel_parts: list[str], member: str) -> None:
        """Refuse a member below a symlink or a file; create missing parent directories."""
        kinds = self.kinds
        if len(rel_parts) == 1 or kinds.get("/".join(rel_parts[:-1])) == "d":
            return  # a recorded directory's own parents were checked when it was made
        for i in range(1, len(rel_parts)):
            parent = "/".join(rel_parts[:i])
            kind = kinds.get(parent)
            if kind == "l":
                raise UnsafeArchiveError(
                    f"{self.source}: member {member!r} would be written through a symlink"
                )
            if kind == "f":
                raise UnsafeArchiveError(
                    f"{self.source}: member {member!r} is inside a regular file"
                )
            if kind is None:
                self.writer.mkdir(parent, 0o755)
                kinds[parent] = "d"
                self.stats.dirs += 1

    def _write(self, member: TarMember, rel_parts: list[str], digest: str | None) -> None:
        source = self.source
        kinds = self.kinds
        stats = self.stats
        rel = "/".join(rel_parts)
        existing = kinds.get(rel)
        kind = member.kind
        if existing is not None and not (existing == "d" and kind == DIR):
            raise UnsafeArchiveError(f"{source}: member {member.name!r} appears twice")
        self._parents(rel_parts, member.name)
        if kind == FILE:
            size = member.size
            if size <= SMALL_FILE_BYTES:
                whole = self.tar.read_data()
                self._note_candidate(rel, rel_parts, bytes(whole[:4]))
                self.writer.write_file(
                    rel, _file_mode(member.mode), member.mtime_ns, size, whole, digest
                )
            else:
                pieces = self._noting(rel, rel_parts, self.tar.iter_data(STREAM_CHUNK))
                self.writer.write_file(
                    rel, _file_mode(member.mode), member.mtime_ns, size, pieces, digest
                )
            kinds[rel] = "f"
            stats.files += 1
            stats.bytes += size
        elif kind == DIR:
            if existing is None:
                self.writer.mkdir(rel, 0o755)
                kinds[rel] = "d"
                stats.dirs += 1
        elif kind == SYMLINK:
            link = member.linkname
            if (
                not link
                or link.startswith("/")
                or "\x00" in link
                or resolve_link(rel_parts[:-1], link, self.links) is None
            ):
                raise UnsafeArchiveError(
                    f"{source}: symlink {member.name!r} -> {link!r} points outside the tree"
                )
            self.writer.symlink(rel, link)
            kinds[rel] = "l"
            self.links[rel] = link
            stats.symlinks += 1
        else:  # HARDLINK (_check_type refused everything else)
            prefix_parts = self.prefix_parts
            link_parts = _check_name(member.linkname, source)
            if link_parts[: len(prefix_parts)] != prefix_parts:
                raise UnsafeArchiveError(
                    f"{source}: hard link {member.name!r} -> {member.linkname!r} leaves the tree"
                )
            link_rel = "/".join(link_parts[len(prefix_parts) :])
            if kinds.get(link_rel) != "f":
                raise UnsafeArchiveError(
                    f"{source}: hard link {member.name!r} -> {member.linkname!r} does not name "
                    "an earlier regular file"
                )
            self.writer.hardlink(rel, link_rel)
            kinds[rel] = "f"
            stats.hardlinks += 1
            if link_rel in self.candidate_paths:
                self.candidate_paths.add(rel)
                stats.candidates.append(rel)

    def _note_candidate(self, rel: str, rel_parts: list[str], magic: bytes) -> None:
        if relocation_candidate(rel_parts, magic):
            self.candidate_paths.add(rel)
            self.stats.candidates.append(rel)

    def _noting(self, rel: str, rel_parts: list[str], pieces: Iterator[Chunk]) -> Iterator[Chunk]:
        """``pieces`` passed through, the first one's magic checked on the way."""
        first = True
        for piece in pieces:
            if first:
                self._note_candidate(rel, rel_parts, bytes(piece[:4]))
                first = False
            yield piece


def _check_type(member: TarMember, source: str) -> None:
    if member.kind not in (FILE, DIR, SYMLINK, HARDLINK):
        raise UnsafeArchiveError(
            f"{source}: member {member.name!r} is a device, FIFO or other special file"
        )
