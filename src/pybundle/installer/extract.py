"""Safe, streaming extraction of ``.tar.gz`` / ``.tar.zst`` interpreter archives.

We do not rely on tarfile's extraction filters (``filter='data'`` has known bypasses on every
Python before 3.9.23 / 3.11.13 / 3.12.11 / 3.13.4, e.g. CVE-2025-4517). tarfile is used only to
*parse* headers in stream mode; every member is checked by our own allowlist before anything
is written, and we write files ourselves:

- allowed types: regular files, directories, symlinks whose target stays inside the tree,
  hard links to an earlier regular member; anything else (devices, FIFOs, ...) is refused;
- names: no absolute paths, no ``..``, no empty components, no NUL or control characters,
  components at most 255 bytes, paths at most 4096 bytes, no duplicates, nothing written
  through a symlink;
- modes: 0755 if any execute bit was set, else 0644 (setuid/setgid/sticky and group/world
  write dropped); directories 0755; owner is the installing user.

Members outside ``strip_prefix`` are validated but not written (PBS ``full`` archives carry
build files beside ``python/install``).
"""

from __future__ import annotations

import errno
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from pybundle.archives import READ_ERRORS, open_decompressed
from pybundle.errors import StorageError, UnsafeArchiveError

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
COPY_CHUNK = 256 * 1024


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
    on_bytes: Callable[[int], None] | None = None,
) -> ExtractStats:
    """Extract the archive read from ``stream`` into the existing, empty directory ``dest``.

    ``strip_prefix`` (e.g. ``python``) is removed from member names; ``source`` names the
    archive in messages. Decompression stops as soon as the regular-file members would exceed
    ``max_bytes`` in total or the archive holds more than ``max_entries`` members (the
    manifest's budget), before the excess is written. Raises UnsafeArchiveError for a refused,
    over-budget or unreadable member (the caller discards ``dest``), StorageError for
    file-system failures (ENOSPC, EROFS, EACCES). ``on_bytes``, when given, is called after
    each regular-file member with the bytes of regular-file members read so far (the quantity
    the manifest's ``unpacked_size`` records).
    """
    prefix_parts = strip_prefix.split("/")
    stats = ExtractStats()
    kinds: dict[str, str] = {}  # relative path -> "f" | "d" | "l" (written so far)
    links: dict[str, str] = {}  # relative path of each symlink -> its target
    try:
        with (
            open_decompressed(stream, archive_format) as raw,
            tarfile.open(fileobj=raw, mode="r|", errorlevel=2) as tar,
        ):
            for member in tar:
                stats.entries += 1
                if stats.entries > max_entries:
                    raise UnsafeArchiveError(
                        f"{source}: archive holds more than its budget of {max_entries} members"
                    )
                if member.isfile():
                    stats.archive_bytes += member.size
                    if stats.archive_bytes > max_bytes:
                        raise UnsafeArchiveError(
                            f"{source}: archive unpacks to more than its budget of "
                            f"{max_bytes} bytes"
                        )
                parts = _check_name(member.name, source)
                if parts[: len(prefix_parts)] != prefix_parts:
                    stats.skipped += 1
                    _check_type(member, source)
                    continue
                rel_parts = parts[len(prefix_parts) :]
                if not rel_parts:
                    if not member.isdir():
                        raise UnsafeArchiveError(f"{source}: {member.name!r} should be a directory")
                    continue
                rel = "/".join(rel_parts)
                _write_member(tar, member, rel, dest, kinds, links, stats, prefix_parts, source)
                if on_bytes is not None and member.isfile():
                    on_bytes(stats.archive_bytes)
        # A symlink may have been checked while a path it goes through did not exist yet;
        # check every one again against the final tree.
        for rel, link in links.items():
            if resolve_link(rel.split("/")[:-1], link, links) is None:
                raise UnsafeArchiveError(f"{source}: symlink {rel!r} -> {link!r} leaves the tree")
    except UnsafeArchiveError:
        raise
    except READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{source}: archive cannot be read: {exc}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise StorageError(f"{dest}: cannot write: {os.strerror(exc.errno)}") from exc
        raise UnsafeArchiveError(f"{source}: extraction failed: {exc}") from exc
    return stats


def _check_type(member: tarfile.TarInfo, source: str) -> None:
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchiveError(
            f"{source}: member {member.name!r} is a device, FIFO or other special file"
        )


def _check_parents(rel_parts: list[str], kinds: dict[str, str], member: str, source: str) -> None:
    for i in range(1, len(rel_parts)):
        parent = "/".join(rel_parts[:i])
        kind = kinds.get(parent)
        if kind == "l":
            raise UnsafeArchiveError(
                f"{source}: member {member!r} would be written through a symlink"
            )
        if kind == "f":
            raise UnsafeArchiveError(f"{source}: member {member!r} is inside a regular file")


def _ensure_dirs(
    dest: Path, rel_parts: list[str], kinds: dict[str, str], stats: ExtractStats
) -> None:
    for i in range(1, len(rel_parts)):
        parent = "/".join(rel_parts[:i])
        if parent not in kinds:
            os.mkdir(dest / parent, 0o755)
            os.chmod(dest / parent, 0o755)
            kinds[parent] = "d"
            stats.dirs += 1


def _write_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    rel: str,
    dest: Path,
    kinds: dict[str, str],
    links: dict[str, str],
    stats: ExtractStats,
    prefix_parts: list[str],
    source: str,
) -> None:
    rel_parts = rel.split("/")
    _check_type(member, source)
    _check_parents(rel_parts, kinds, member.name, source)
    existing = kinds.get(rel)
    if existing is not None and not (existing == "d" and member.isdir()):
        raise UnsafeArchiveError(f"{source}: member {member.name!r} appears twice")
    target = dest / rel
    if member.isdir():
        _ensure_dirs(dest, rel_parts, kinds, stats)
        if existing is None:
            os.mkdir(target, 0o755)
            os.chmod(target, 0o755)
            kinds[rel] = "d"
            stats.dirs += 1
        return
    _ensure_dirs(dest, rel_parts, kinds, stats)
    if member.issym():
        link = member.linkname
        if (
            not link
            or link.startswith("/")
            or "\x00" in link
            or resolve_link(rel_parts[:-1], link, links) is None
        ):
            raise UnsafeArchiveError(
                f"{source}: symlink {member.name!r} -> {link!r} points outside the tree"
            )
        os.symlink(link, target)
        kinds[rel] = "l"
        links[rel] = link
        stats.symlinks += 1
        return
    if member.islnk():
        link_parts = _check_name(member.linkname, source)
        if link_parts[: len(prefix_parts)] != prefix_parts:
            raise UnsafeArchiveError(
                f"{source}: hard link {member.name!r} -> {member.linkname!r} leaves the tree"
            )
        link_rel = "/".join(link_parts[len(prefix_parts) :])
        if kinds.get(link_rel) != "f":
            raise UnsafeArchiveError(
                f"{source}: hard link {member.name!r} -> {member.linkname!r} does not name an "
                "earlier regular file"
            )
        os.link(dest / link_rel, target, follow_symlinks=False)
        kinds[rel] = "f"
        stats.hardlinks += 1
        return
    # regular file
    fileobj = tar.extractfile(member)
    if fileobj is None:  # pragma: no cover - isfile() members always have data
        raise UnsafeArchiveError(f"{source}: member {member.name!r} has no data")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    mode = _file_mode(member.mode)
    fd = os.open(target, flags, mode)
    os.fchmod(fd, mode)  # independent of the umask
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := fileobj.read(COPY_CHUNK):
            out.write(chunk)
            written += len(chunk)
    if written != member.size:
        raise UnsafeArchiveError(f"{source}: member {member.name!r} is truncated")
    os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    kinds[rel] = "f"
    stats.files += 1
    stats.bytes += written
