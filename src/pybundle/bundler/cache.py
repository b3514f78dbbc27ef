"""The download cache shared by every bundle: archives stored under names that carry their sha256.

Layout (all under the cache root)::

    CACHEDIR.TAG                         marks the directory as a cache (bford.info/cachedir)
    archives/<sha256>-<file name>        verified archives only
    partial/<key>-<file name>.partial    downloads in flight or interrupted, resumable
    locks/<key>.lock                     one lock file per entry (filelock), see below
    shapes/<sha256>.json                 an archive's measured shape (see Cache.shape)
    shapes/<sha256>.files                its file index (pybundle.fileindex), beside the shape

``<key>`` is the expected sha256, or ``url-<sha256 of the URL>`` for an archive whose catalog
gives no sha256 (``--allow-unhashed``). A file gets its final name only by ``os.replace`` of a
fully written, hash-checked ``.partial``, so no partial or unverified file ever carries a final
name. A cache hit is re-hashed before use (:meth:`Cache.lookup`; a file that no longer matches
its name is evicted), or, for a caller that hashes every byte as it reads them anyway, only
checked for its size, the caller re-hashing it (:meth:`Cache.lookup_unverified`).
Each entry is fetched under its lock, so bundle processes sharing a cache download an archive
once: the second waits and then finds it. A hit refreshes the file's modification time, which
``clean(older_than=...)`` reads as the last use.

uv can read these archives from its own cache directory (``UV_PYTHON_CACHE_DIR``) under the
names of :meth:`Cache.uv_name`; :meth:`Cache.export_uv` links them there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import filelock
import platformdirs

from pybundle.archives import ArchiveShape, scan_archive_indexed
from pybundle.bundler.stopping import StoppableReader, check
from pybundle.errors import HashMismatchError, StorageError
from pybundle.hashing import check_digest, sha256_file

CACHE_ENV = "PYBUNDLE_CACHE_DIR"
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by pybundle.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
_SHA_LEN = 64
_SHAPE_RECORD_MAX = 4096
"""A ``shapes/`` record is a few dozen bytes; anything longer than this is damaged."""
_INDEX_MAX = 1024**3
"""A file index larger than this (bytes) is not trusted back from the cache."""
_LOCK_POLL = 0.1
"""Seconds between checks of the stop event while waiting for an entry's lock."""


def default_cache_dir() -> Path:
    """``$PYBUNDLE_CACHE_DIR``, else the platform's user cache dir for pybundle."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("pybundle"))


def entry_key(sha256: Optional[str], url: str) -> str:
    """The lock/partial key of an archive: its sha256, or ``url-<sha256 of url>`` without one."""
    if sha256:
        return sha256.lower()
    return "url-" + hashlib.sha256(url.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A verified archive in the cache: ``size`` in bytes, ``last_used`` in Unix seconds."""

    sha256: str
    file_name: str
    path: Path
    size: int
    last_used: float


@dataclass(frozen=True)
class CleanReport:
    """What :meth:`Cache.clean` removed: files (archives and partials), bytes, and entries
    skipped because another process held their lock."""

    files: int
    bytes: int
    busy: int


def verified_hit(path: Path, sha256: str, size: int | None) -> Path | None:
    """``path`` if it is a regular file whose bytes hash to ``sha256`` (and, when given, whose
    size is ``size`` bytes), else None.

    The check shared by every verify-on-hit cache (archives, wheels): a present file that fails
    it is deleted (evicted) and None is returned; a hit gets its modification time refreshed
    (its last use, which ``cache clean --older-than`` reads). Raises StorageError naming
    ``path`` when the file cannot be read (:func:`pybundle.hashing.sha256_file`) or evicted.
    """
    if not path.is_file():
        return None
    try:
        check_digest(str(path), sha256_file(path), sha256, size)
    except HashMismatchError:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"{path}: cannot evict a damaged cache entry: {exc}") from exc
        return None
    with suppress(OSError):
        os.utime(path)
    return path


@dataclass(frozen=True)
class IndexFile:
    """A file index (:mod:`pybundle.fileindex`) kept in the cache: its ``path``, ``sha256``
    (hex) and ``size`` in bytes, checked when it was found or written."""

    path: Path
    sha256: str
    size: int


class Cache:
    """A content-addressed store of verified archives under ``root`` (see the module docstring).

    Raises StorageError (naming the path) when the directory cannot be created or written.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archives = root / "archives"
        self.partials = root / "partial"
        self.locks = root / "locks"
        self.shapes = root / "shapes"
        try:
            for d in (self.archives, self.partials, self.locks, self.shapes):
                d.mkdir(parents=True, exist_ok=True)
            tag = root / "CACHEDIR.TAG"
            if not tag.exists():
                tag.write_text(CACHEDIR_TAG, encoding="ascii")
        except OSError as exc:
            raise StorageError(f"{root}: cannot create the cache directory: {exc}") from exc

    # ---- names

    def path_for(self, sha256: str, file_name: str) -> Path:
        """The final name of an archive: ``archives/<sha256>-<file name>``."""
        return self.archives / f"{sha256.lower()}-{file_name}"

    def partial_for(self, key: str, file_name: str) -> Path:
        """The resumable temporary file of an entry: ``partial/<key>-<file name>.partial``."""
        return self.partials / f"{key}-{file_name}.partial"

    @staticmethod
    def uv_name(sha256: str, file_name: str) -> str:
        """The name uv 0.13 looks for in ``UV_PYTHON_CACHE_DIR``: the first 9 hex digits of the
        sha256, ``-``, and the URL's file name with ``%2B`` (``+``) replaced by ``-``
        (uv ``crates/uv-python/src/downloads.rs``)."""
        return f"{sha256.lower()[:9]}-{file_name.replace('+', '-')}"

    @contextmanager
    def locked(
        self, key: str, timeout: float = -1, stop: Optional[threading.Event] = None
    ) -> Iterator[None]:
        """Hold the entry's lock (``locks/<key>.lock``); waits ``timeout`` seconds (-1: forever),
        checking ``stop`` every :data:`_LOCK_POLL` seconds while it waits.

        Raises:
            filelock.Timeout: when the lock was not acquired in time.
            StorageError: the lock file cannot be created.
            Stopped: ``stop`` was set while waiting.
        """
        lock = filelock.FileLock(str(self.locks / f"{key}.lock"))
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            check(stop)
            wait = _LOCK_POLL if stop is not None else timeout
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                lock.acquire(timeout=wait)
                break
            except filelock.Timeout:
                if stop is None or (deadline is not None and time.monotonic() >= deadline):
                    raise
            except OSError as exc:
                raise StorageError(f"{self.locks}: cannot lock a cache entry: {exc}") from exc
        try:
            yield
        finally:
            lock.release()

    # ---- entries

    def lookup(self, sha256: str, file_name: str, size: int | None = None) -> Path | None:
        """Return the cached path if present and its bytes still hash to ``sha256``.

        Call it under the entry's lock. See :func:`verified_hit` (eviction, last use, errors).
        """
        return verified_hit(self.path_for(sha256, file_name), sha256, size)

    def lookup_unverified(
        self, sha256: str, file_name: str, size: int | None = None
    ) -> Path | None:
        """Return the cached path if a regular file of ``size`` bytes (when given) is there,
        without reading it: the caller promises to hash every byte it uses and, on a mismatch,
        to discard what it made from them and look the entry up again with :meth:`lookup`
        (which evicts it). For callers that read the whole file anyway (the bundle writer,
        :func:`pybundle.bundler.pack.write_bundle`), so a warm hit is read once, not twice.

        Call it under the entry's lock. A hit gets its modification time refreshed (its last
        use). Only a stat: raises nothing.
        """
        path = self.path_for(sha256, file_name)
        try:
            st = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
            return None
        with suppress(OSError):
            os.utime(path)
        return path

    def has_shape(self, sha256: str) -> bool:
        """Whether the shape and file index of the archive ``sha256`` are remembered (an
        intact ``shapes/`` record and index, see :meth:`shape_and_index`): then
        :meth:`shape_and_index` does not read the archive, so nothing is measured from bytes
        that are not verified yet."""
        sha256 = sha256.lower()
        return (
            _read_shape(self.shapes / f"{sha256}.json", sha256, self.shapes / f"{sha256}.files")
            is not None
        )

    def commit(self, temp: Path, sha256: str, file_name: str) -> Path:
        """Give a verified temporary file its final name (atomic rename); returns that path."""
        final = self.path_for(sha256, file_name)
        try:
            os.chmod(temp, 0o644)
            os.replace(temp, final)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"{final}: cannot store the download: {exc}") from exc
        return final

    def shape(
        self,
        sha256: str,
        path: Path,
        archive_format: str,
        stop: Optional[threading.Event] = None,
    ) -> ArchiveShape:
        """What the verified archive at ``path`` unpacks to (bytes of regular files, members),
        for the manifest's decompression budget: :meth:`shape_and_index`'s shape."""
        return self.shape_and_index(sha256, path, archive_format, stop)[0]

    def shape_and_index(
        self,
        sha256: str,
        path: Path,
        archive_format: str,
        stop: Optional[threading.Event] = None,
    ) -> tuple[ArchiveShape, Optional[IndexFile]]:
        """The shape of the verified archive at ``path`` and its file index.

        Measured once by reading every member (:func:`pybundle.archives.scan_archive_indexed`,
        which also hashes each regular file's data) and remembered in
        ``shapes/<sha256>.json`` (``{"sha256", "unpacked_size": <bytes>, "file_count":
        <members>, "index": {"sha256", "size"} or null}``) and ``shapes/<sha256>.files`` (the
        index), both written atomically, so a warm-cache bundle does not decompress again. A
        record that is damaged in any way (not JSON, another archive's, counts that are not
        non-negative integers, an older record without ``index``, an index file whose sha256
        or size differs from the record's) is ignored and measured again; one that cannot be
        written is simply not remembered (then the index is None: the bundle carries none).
        The index is None too for an archive whose member names cannot stand in one.

        Raises UnsafeArchiveError when the archive cannot be read, StorageError when it cannot
        be opened, Stopped when ``stop`` is set during the scan.
        """
        sha256 = sha256.lower()
        record = self.shapes / f"{sha256}.json"
        sidecar = self.shapes / f"{sha256}.files"
        remembered = _read_shape(record, sha256, sidecar)
        if remembered is not None:
            return remembered
        try:
            with open(path, "rb") as stream:
                shape, index = scan_archive_indexed(
                    StoppableReader(stream, stop),  # type: ignore[arg-type]
                    archive_format,
                    str(path),
                )
        except OSError as exc:
            raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        found = None
        if index is not None and _write_atomic(sidecar, index, ".files."):
            found = IndexFile(sidecar, hashlib.sha256(index).hexdigest(), len(index))
        doc = {
            "sha256": sha256,
            "unpacked_size": shape.unpacked_size,
            "file_count": shape.file_count,
            "index": None if found is None else {"sha256": found.sha256, "size": found.size},
        }
        _write_atomic(record, json.dumps(doc).encode("ascii"), ".shape.")
        return shape, found

    def entries(self) -> list[CacheEntry]:
        """Every archive under a final name, sorted by file name then sha256 (not re-hashed)."""
        found = []
        try:
            paths = list(self.archives.iterdir())
        except OSError as exc:
            raise StorageError(f"{self.archives}: cannot list the cache: {exc}") from exc
        for path in paths:
            name = path.name
            if len(name) <= _SHA_LEN + 1 or name[_SHA_LEN] != "-" or not path.is_file():
                continue
            sha = name[:_SHA_LEN]
            if any(c not in "0123456789abcdef" for c in sha):
                continue
            try:
                st = path.stat()
            except OSError:
                continue  # removed meanwhile (another process cleaning)
            found.append(CacheEntry(sha, name[_SHA_LEN + 1 :], path, st.st_size, st.st_mtime))
        return sorted(found, key=lambda e: (e.file_name, e.sha256))

    def partial_files(self) -> list[Path]:
        """Every ``.partial`` file (interrupted or in-flight downloads)."""
        try:
            return sorted(p for p in self.partials.iterdir() if p.name.endswith(".partial"))
        except OSError as exc:
            raise StorageError(f"{self.partials}: cannot list the cache: {exc}") from exc

    def clean(self, older_than: Optional[float] = None, now: Optional[float] = None) -> CleanReport:
        """Remove archives (and partial downloads) not used for ``older_than`` seconds, or all
        of them when None. Entries whose lock another process holds are left alone.

        Raises StorageError when a file cannot be removed.
        """
        now = time.time() if now is None else now
        files = size = busy = 0
        candidates: list[tuple[str, Path]] = [
            (e.sha256, e.path)
            for e in self.entries()
            if older_than is None or now - e.last_used > older_than
        ]
        for partial in self.partial_files():
            try:
                st = partial.stat()
            except OSError:
                continue  # finished or removed meanwhile
            if older_than is None or now - st.st_mtime > older_than:
                key = partial.name.split("-", 1)[0]
                if key == "url":
                    key = "url-" + partial.name.split("-", 2)[1]
                candidates.append((key, partial))
        for key, path in candidates:
            try:
                with self.locked(key, timeout=0):
                    bytes_ = path.stat().st_size if path.exists() else 0
                    path.unlink(missing_ok=True)
                    (self.shapes / f"{key}.json").unlink(missing_ok=True)
                    (self.shapes / f"{key}.files").unlink(missing_ok=True)
                    files += 1
                    size += bytes_
            except filelock.Timeout:
                busy += 1
            except OSError as exc:
                raise StorageError(f"{path}: cannot remove: {exc.strerror}") from exc
        return CleanReport(files, size, busy)

    def export_uv(self, dest: Path) -> list[Path]:
        """Make every cached archive available to uv under :meth:`uv_name` in ``dest``, for
        ``UV_PYTHON_CACHE_DIR=dest uv python install --offline``. Each archive is re-hashed
        first (a corrupt one is evicted and skipped), then hard-linked, or copied when ``dest``
        is on another file system. Existing files of the same name are replaced.

        Returns the paths written. Raises StorageError naming the path on failure.
        """
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{dest}: cannot create the directory: {exc.strerror}") from exc
        written = []
        for entry in self.entries():
            with self.locked(entry.sha256):
                path = self.lookup(entry.sha256, entry.file_name)
                if path is None:
                    continue
                target = dest / self.uv_name(entry.sha256, entry.file_name)
                tmp = dest / f".{target.name}.tmp"
                try:
                    tmp.unlink(missing_ok=True)
                    try:
                        os.link(path, tmp)
                    except OSError:
                        shutil.copyfile(path, tmp)
                    os.replace(tmp, target)
                except OSError as exc:
                    tmp.unlink(missing_ok=True)
                    raise StorageError(f"{target}: cannot export: {exc.strerror}") from exc
                written.append(target)
        return written


def _read_shape(
    record: Path, sha256: str, sidecar: Path
) -> Optional[tuple[ArchiveShape, Optional[IndexFile]]]:
    """The remembered shape in ``record`` and index in ``sidecar`` if both are intact and
    about ``sha256``, else None."""
    try:
        with open(record, "rb") as f:
            raw = f.read(_SHAPE_RECORD_MAX + 1)
    except OSError:
        return None
    if len(raw) > _SHAPE_RECORD_MAX:
        return None
    try:
        data = json.loads(raw.decode("ascii"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    if not isinstance(data, dict):
        return None
    size, count = data.get("unpacked_size"), data.get("file_count")
    if data.get("sha256", sha256) != sha256:
        return None
    if not _count(size) or not _count(count):
        return None
    shape = ArchiveShape(int(size), int(count))  # type: ignore[arg-type]
    if "index" not in data:
        return None  # a record from before file indexes: measure again to make one
    index = data["index"]
    if index is None:
        return shape, None
    if not isinstance(index, dict):
        return None
    digest, length = index.get("sha256"), index.get("size")
    if not isinstance(digest, str) or not _count(length) or int(length) > _INDEX_MAX:  # type: ignore[arg-type]
        return None
    try:
        actual, actual_size = sha256_file(sidecar)
    except (OSError, StorageError):
        return None
    if (actual, actual_size) != (digest, length):
        return None
    return shape, IndexFile(sidecar, digest, actual_size)


def _count(value: object) -> bool:
    """True for an int (not a bool) in 0 .. 2**63 - 1."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _write_atomic(target: Path, data: bytes, prefix: str) -> bool:
    """Write ``data`` to ``target`` atomically; False (nothing left behind) when it cannot."""
    tmp: Optional[str] = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)
        return False
    return True
