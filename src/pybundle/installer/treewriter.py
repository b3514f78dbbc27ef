"""Creating an extracted tree with few system calls, relative to directory file descriptors.

The safe extractor (``extract.py``) decides *whether* a member may be written; this module
writes it, and nothing here checks names. Per regular file: ``openat`` (O_EXCL|O_NOFOLLOW,
relative to the parent directory's descriptor), one ``write`` for members up to
SMALL_FILE_BYTES (larger ones are streamed in pieces, so memory stays flat), ``fchmod`` only
when the umask would have changed the mode, ``futimens`` (nanoseconds) and ``close``.
Optionally, a :class:`FileRecord` (path, mode, size, sha256) is kept per entry written; the
sha256 of the content is computed on a background thread (:class:`_Hasher`) from the same
bytes as they are written, unless the caller gives each file's digest (taken from a verified
bundle's file index, :mod:`pybundle.fileindex`): then no hashing thread runs at all.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

SMALL_FILE_BYTES = 1024 * 1024
"""Members up to this size are written with one write; larger ones are streamed."""
DIR_FD_CACHE = 64
"""Directory descriptors kept open at once (archives list a directory's entries together)."""
HASH_BATCH_BYTES = 1024 * 1024
"""Content handed to the hashing thread in batches of about this many bytes..."""
HASH_BATCH_ITEMS = 64
"""... or of this many pieces, whichever comes first."""
HASH_DEPTH = 4
"""Batches waiting for the hashing thread at most (memory stays flat)."""

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Data = Union[bytes, memoryview]


@dataclass(frozen=True)
class FileRecord:
    """One entry written by an extraction.

    ``path`` is relative to the destination, with ``/`` separators; ``kind`` is ``file``,
    ``dir``, ``symlink`` or ``hardlink``; ``mode`` the permission bits given to it (0o777 for
    symlinks); ``size`` in bytes and ``sha256`` (hex) of the content for files and hard links
    (a hard link repeats its target's); ``target`` the symlink's target, or for a hard link the
    relative path of the file it links to.
    """

    path: str
    kind: str
    mode: int
    size: int = 0
    sha256: Optional[str] = None
    target: Optional[str] = None


def current_umask() -> int:
    """The process umask, read without changing it when Linux tells it (/proc/self/status,
    since Linux 4.7); otherwise set and restored at once."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class TreeWriter:
    """Writes entries below ``dest`` (an existing directory) by relative path.

    Parents must exist (the caller creates directories first). With ``record`` true, every
    entry written is appended to :attr:`records`, files with the sha256 of their content:
    computed from the bytes written, or, with ``given_digests``, the one the caller passes to
    :meth:`write_file` for every file (the caller vouches for it). Raises OSError as the
    system calls do; use as a context manager (it closes its directory descriptors).
    """

    def __init__(self, dest: Path, *, record: bool = False, given_digests: bool = False) -> None:
        self._root = os.open(dest, _DIR_FLAGS)
        self._dirs: dict[str, int] = {}
        self._umask = current_umask()
        self.record = record
        self.records: list[FileRecord] = []
        # the digest slot: an index into the hasher's digests, a given digest, or None
        self._pending: list[tuple[str, str, int, int, int | str | None, str | None]] = []
        self._hasher = _Hasher() if record and not given_digests else None

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            if self._hasher is not None:
                self._hasher.finish(check=False)  # failing anyway: no records, no second error
                self._hasher = None
            self._pending.clear()
        self.close()

    def close(self) -> None:
        """Close every directory descriptor; with ``record``, finish :attr:`records`."""
        digests: dict[int, str] = {}
        if self._hasher is not None:
            hasher, self._hasher = self._hasher, None
            digests = hasher.finish()
        if self._pending:
            by_path: dict[str, FileRecord] = {}
            for path, kind, mode, size, slot, target in self._pending:
                digest = digests[slot] if isinstance(slot, int) else slot
                if kind == "hardlink" and target in by_path:
                    old = by_path[target]
                    mode, size, digest = old.mode, old.size, old.sha256
                record = FileRecord(path, kind, mode, size, digest, target)
                by_path[path] = record
                self.records.append(record)
            self._pending.clear()
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        if self._root >= 0:
            os.close(self._root)
            self._root = -1

    def _parent(self, rel: str) -> tuple[int, str]:
        """``(descriptor of the parent directory, last component)`` of ``rel``."""
        parent, _, name = rel.rpartition("/")
        if not parent:
            return self._root, name
        fd = self._dirs.get(parent)
        if fd is None:
            if len(self._dirs) >= DIR_FD_CACHE:
                os.close(self._dirs.pop(next(iter(self._dirs))))
            fd = os.open(parent, _DIR_FLAGS, dir_fd=self._root)
            self._dirs[parent] = fd
        return fd, name

    def mkdir(self, rel: str, mode: int = 0o755) -> None:
        """Create directory ``rel`` with exactly ``mode``."""
        fd, name = self._parent(rel)
        os.mkdir(name, mode, dir_fd=fd)
        if mode & ~self._umask != mode:
            os.chmod(name, mode, dir_fd=fd)
        if self.record:
            self._pending.append((rel, "dir", mode, 0, None, None))

    def symlink(self, rel: str, target: str) -> None:
        """Create symlink ``rel`` -> ``target``."""
        fd, name = self._parent(rel)
        os.symlink(target, name, dir_fd=fd)
        if self.record:
            self._pending.append((rel, "symlink", 0o777, 0, None, target))

    def hardlink(self, rel: str, existing: str) -> None:
        """Create ``rel`` as a hard link to the regular file ``existing`` (written earlier)."""
        fd, name = self._parent(rel)
        os.link(existing, name, src_dir_fd=self._root, dst_dir_fd=fd, follow_symlinks=False)
        if self.record:
            self._pending.append((rel, "hardlink", 0, 0, None, existing))

    def write_file(
        self,
        rel: str,
        mode: int,
        mtime_ns: int,
        size: int,
        data: Union[Data, Iterable[Data]],
        digest: Optional[str] = None,
    ) -> None:
        """Create regular file ``rel`` (which must not exist) holding ``data``: one bytes-like
        object, or pieces of one (for large files); ``size`` is their total length. The file
        gets exactly ``mode`` and the mtime (and atime) ``mtime_ns`` nanoseconds. ``digest``
        (hex sha256 of ``data``) is recorded as is when the writer was made with
        ``given_digests``."""
        fd_dir, name = self._parent(rel)
        fd = os.open(name, _FILE_FLAGS, mode, dir_fd=fd_dir)
        hasher = self._hasher
        slot: int | str | None = digest
        try:
            if isinstance(data, (bytes, memoryview)):
                _write_all(fd, data)
                if hasher is not None:
                    slot = hasher.add(data)
            else:
                index = hasher.start() if hasher is not None else -1
                for piece in data:
                    _write_all(fd, piece)
                    if hasher is not None:
                        hasher.more(index, piece)
                if hasher is not None:
                    slot = index
            if mode & ~self._umask != mode:
                os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        if self.record:
            self._pending.append((rel, "file", mode, size, slot, None))


class _Hasher:
    """sha256 of file contents on a background thread, fed in batches through a bounded
    queue (hashlib releases the GIL for pieces over 2 KiB). Pieces are bytes or memoryviews
    of immutable bytes, so they are never copied."""

    def __init__(self) -> None:
        self._queue: queue.Queue[list[tuple[int, Data]] | None] = queue.Queue(HASH_DEPTH)
        self._batch: list[tuple[int, Data]] = []
        self._batch_bytes = 0
        self._count = 0
        self._digests: dict[int, str] = {}
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pybundle-hash", daemon=True)
        self._thread.start()

    def start(self) -> int:
        """A new, empty content; returns its index."""
        self._count += 1
        return self._count - 1

    def add(self, data: Data) -> int:
        """A whole content in one piece; returns its index."""
        index = self.start()
        self.more(index, data)
        return index

    def more(self, index: int, data: Data) -> None:
        """The next piece of content ``index``."""
        self._batch.append((index, data))
        self._batch_bytes += len(data)
        if self._batch_bytes >= HASH_BATCH_BYTES or len(self._batch) >= HASH_BATCH_ITEMS:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []
            self._batch_bytes = 0

    def _run(self) -> None:
        # Contents arrive one after the other (a file's pieces are never interleaved with
        # another's), so a content is complete when the next one starts: only one hash object
        # is alive at a time (60,000 of them would hold ~25 MB until the end).
        digests = self._digests
        current, h = -1, hashlib.sha256()
        try:
            while (batch := self._queue.get()) is not None:
                for index, data in batch:
                    if index != current:
                        if current >= 0:
                            digests[current] = h.hexdigest()
                        current, h = index, hashlib.sha256()
                    h.update(data)
            if current >= 0:
                digests[current] = h.hexdigest()
        except BaseException as exc:  # reported by finish()
            self._failed = exc
            while self._queue.get() is not None:
                pass

    def finish(self, check: bool = True) -> dict[int, str]:
        """Wait for every piece to be hashed; the digests (hex) by content index. Re-raises
        what failed on the thread, unless ``check`` is false."""
        self._flush()
        self._queue.put(None)
        self._thread.join()
        if self._failed is not None and check:
            raise self._failed
        empty = hashlib.sha256().hexdigest()  # contents that received no piece
        return {i: self._digests.get(i, empty) for i in range(self._count)}


def _write_all(fd: int, data: Data) -> None:
    """``write`` until all of ``data`` is written (a regular file may take less at once)."""
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)
    while written < len(view):
        written += os.write(fd, view[written:])
