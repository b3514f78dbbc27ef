"""Install receipts: the proof, inside every install, that pybundle made it.

Every interpreter pybundle installs carries ``.pybundle-receipt.json`` at the top of its prefix
(schema ``pybundle/schemas/receipt-v1.schema.json``, ``$id urn:pybundle:schema:receipt:v1``). It is
written into the staging tree before the tree is renamed into place, so an install and its
receipt appear together. It records the bundle (id, serial, created time, signer key id), the
manifest's artifact entry, the prefix the tree was relocated to, the layout, the links made for
it, the install time, and every regular file and symlink with sha256, mode and size.

``--force`` replaces only a directory whose receipt names that very directory: a directory of
the user's own files, a copy of an install elsewhere, or an install with a damaged receipt is
never replaced (see :func:`inspect_destination`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _json_string
from pathlib import Path
from typing import Any, Optional

from pybundle import __version__
from pybundle.errors import AlreadyExistsError, ManifestError, PybundleError, StorageError
from pybundle.installer.treewriter import FileRecord
from pybundle.jsondoc import load_json
from pybundle.manifest import V2_ARTIFACT_FIELDS, Artifact, format_timestamp, parse_timestamp
from pybundle.schema import RECEIPT_SCHEMA_FILE, validate_document, validate_manifest_document

RECEIPT_NAME = ".pybundle-receipt.json"
RECEIPT_VERSION = 1
MAX_RECEIPT_BYTES = 256 * 1024 * 1024
"""Largest receipt read back, in bytes (a 3.12 tree of 9,208 files needs about 1.5 MB)."""
HASH_CHUNK = 1024 * 1024


class ReceiptError(PybundleError):
    """A receipt exists but cannot be read or is not valid (exit 8 where it blocks a
    replacement: pybundle cannot prove it made the directory)."""

    exit_code = 8


@dataclass(frozen=True)
class FileEntry:
    """One installed file: ``path`` is POSIX and relative to the prefix; ``kind`` is ``file``
    (with ``mode``, the permission bits, ``size`` in bytes and ``sha256``) or ``symlink`` (with
    ``target``, the link's text)."""

    path: str
    kind: str
    mode: int = 0
    size: int = 0
    sha256: Optional[str] = None
    target: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        """The entry as the receipt's JSON object."""
        if self.kind == "symlink":
            return {"path": self.path, "type": "symlink", "target": self.target}
        return {
            "path": self.path,
            "type": "file",
            "mode": self.mode,
            "size": self.size,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> FileEntry:
        """Read an entry written by :meth:`to_json`; ReceiptError naming ``source`` if it is not
        one."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ReceiptError(f"{source}: receipt has a malformed file entry")
        path = data["path"]
        if data.get("type") == "symlink" and isinstance(data.get("target"), str):
            return cls(path, "symlink", target=data["target"])
        mode, size, digest = data.get("mode"), data.get("size"), data.get("sha256")
        if (
            data.get("type") != "file"
            or type(mode) is not int
            or type(size) is not int
            or not isinstance(digest, str)
        ):
            raise ReceiptError(f"{source}: receipt has a malformed entry for {path!r}")
        return cls(path, "file", mode=mode, size=size, sha256=digest)


@dataclass(frozen=True)
class BundleIdentity:
    """Which signed bundle an install came from. ``serial`` is the manifest serial; ``created``
    an aware UTC datetime; ``signer_key_id`` 16 upper-case hex digits; ``file`` the bundle path
    used at install time."""

    bundle_id: str
    serial: int
    created: datetime
    signer_key_id: str
    file: str


@dataclass(frozen=True)
class Receipt:
    """What pybundle records inside an install (see the module docstring)."""

    prefix: str
    layout: str
    installed_at: datetime
    bundle: BundleIdentity
    artifact: Artifact
    build_prefix: Optional[str]
    links: tuple[str, ...] = ()
    files: tuple[FileEntry, ...] = field(default=(), repr=False)
    tool_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON-ready dict (schema receipt-v1)."""
        return {
            "receipt_version": RECEIPT_VERSION,
            "tool": {"name": "pybundle", "version": self.tool_version},
            "prefix": self.prefix,
            "layout": self.layout,
            "installed_at": format_timestamp(self.installed_at),
            "bundle": {
                "bundle_id": self.bundle.bundle_id,
                "serial": self.bundle.serial,
                "created": format_timestamp(self.bundle.created),
                "signer_key_id": self.bundle.signer_key_id,
                "file": self.bundle.file,
            },
            "artifact": self.artifact.to_json(),
            "build_prefix": self.build_prefix,
            "links": list(self.links),
            "files": [f.to_json() for f in self.files],
        }

    def same_kind(self, artifact: Artifact, layout: str) -> bool:
        """True when ``artifact`` installed with ``layout`` may replace this install: same
        layout, implementation, operating system, architecture and C library (the CPU level,
        version and build may differ)."""
        mine, theirs = self.artifact.target, artifact.target
        return (
            self.layout == layout
            and self.artifact.implementation == artifact.implementation
            and (mine.os, mine.arch, mine.libc) == (theirs.os, theirs.arch, theirs.libc)
        )


def _iter_tree(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative POSIX path, entry) of every file and symlink under ``root``; directories are
    walked, not followed through links. The receipt itself is skipped."""
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        directory, rel = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            raise StorageError(f"{directory}: cannot list: {exc.strerror or exc}") from exc
        for entry in entries:
            path = f"{rel}{entry.name}"
            if path == RECEIPT_NAME:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, path + "/"))
            else:
                yield path, entry


def hash_file(path: str) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of a regular file, opened without following a symlink.
    Raises OSError."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as stream:
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        while n := stream.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def scan_tree(root: Path) -> list[FileEntry]:
    """Every regular file (sha256, mode, size) and symlink (target) under ``root``, sorted by
    path. Other file types are listed as files with no content (they cannot be in an install:
    the extractor refuses them). Raises StorageError if something cannot be read."""
    entries: list[FileEntry] = []
    for rel, entry in _iter_tree(root):
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                entries.append(FileEntry(rel, "symlink", target=os.readlink(entry.path)))
                continue
            if not stat.S_ISREG(st.st_mode):
                entries.append(FileEntry(rel, "file", stat.S_IMODE(st.st_mode), 0, "0" * 64))
                continue
            digest, size = hash_file(entry.path)
        except OSError as exc:
            raise StorageError(f"{entry.path}: cannot read: {exc.strerror or exc}") from exc
        entries.append(FileEntry(rel, "file", stat.S_IMODE(st.st_mode), size, digest))
    entries.sort(key=lambda e: e.path)
    return entries


def entries_from_records(
    root: Path, records: Sequence[FileRecord], changed: Iterable[str], removed: Iterable[str]
) -> list[FileEntry]:
    """The receipt's file list from what the extractor recorded while writing (no second read
    of the tree), corrected for what happened afterwards: ``changed`` paths (relative, e.g.
    rewritten by relocation, or files added after extraction) are hashed again from disk,
    together with every hard link that shares their inode; ``removed`` paths (stale bytecode)
    are dropped. Directories are not listed. Raises StorageError if a changed file cannot be
    read."""
    changed = set(changed)
    gone = set(removed)
    for record in records:
        if record.kind == "hardlink" and record.target is not None:
            if record.target in changed:
                changed.add(record.path)
            elif record.path in changed:
                changed.add(record.target)
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for record in records:
        seen.add(record.path)
        if record.kind == "dir" or record.path in gone:
            continue
        if record.kind == "symlink":
            entries.append(FileEntry(record.path, "symlink", target=record.target))
        elif record.path in changed:
            entries.append(_hashed_entry(root, record.path))
        else:
            entries.append(FileEntry(record.path, "file", record.mode, record.size, record.sha256))
    entries += [_hashed_entry(root, path) for path in sorted(changed - seen - gone)]
    entries.sort(key=lambda e: e.path)
    return entries


def _hashed_entry(root: Path, rel: str) -> FileEntry:
    """The entry of the regular file ``root/rel``, hashed from disk."""
    path = root / rel
    try:
        digest, size = hash_file(str(path))
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return FileEntry(rel, "file", mode, size, digest)


def write_receipt(root: Path, receipt: Receipt) -> Path:
    """Write ``receipt`` as ``root/.pybundle-receipt.json`` (mode 0644) through a temp file and
    a rename. Returns its path. Raises StorageError.

    The file list is written as it is encoded, a batch of lines at a time, so a tree of 60,000
    files does not need its whole receipt in memory twice over (as dicts, then as text)."""
    path = root / RECEIPT_NAME
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pybundle-receipt.", suffix=".tmp", dir=root)
        with os.fdopen(fd, "wb") as out:
            for chunk in _receipt_chunks(receipt):
                out.write(chunk)
            os.fchmod(out.fileno(), 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write the install receipt: {exc.strerror}") from exc
    return path


_RECEIPT_BATCH = 1024
"""File entries encoded into one write of the receipt."""


def _entry_line(entry: FileEntry) -> str:
    """``json.dumps(entry.to_json(), ensure_ascii=True, separators=(",", ":"))``, formatted
    directly: a third of the time for the 9,000 lines of a 3.12 tree. Only the strings need
    JSON's escaping (json's own C encoder); mode and size are ints, sha256 is hex."""
    if entry.kind == "symlink":
        return (
            f'{{"path":{_json_string(entry.path)},"type":"symlink",'
            f'"target":{_json_string(entry.target or "")}}}'
        )
    return (
        f'{{"path":{_json_string(entry.path)},"type":"file","mode":{int(entry.mode)},'
        f'"size":{int(entry.size)},"sha256":{_json_string(entry.sha256 or "")}}}'
    )


def _receipt_chunks(receipt: Receipt) -> Iterator[bytes]:
    """The receipt as ASCII JSON with one file entry per line: readable and diffable, encoded by
    json's C encoder (``indent=`` would switch to the pure-Python one, 0.1 s for a 9,000-file
    tree), in pieces of at most :data:`_RECEIPT_BATCH` entries."""
    import json

    doc = replace(receipt, files=()).to_json()
    del doc["files"]
    head = json.dumps(doc, ensure_ascii=True, separators=(", ", ": "))
    files = receipt.files
    if not files:
        yield f'{head[:-1]}, "files": []}}\n'.encode("ascii")
        return
    yield f'{head[:-1]}, "files": [\n  '.encode("ascii")
    for start in range(0, len(files), _RECEIPT_BATCH):
        batch = files[start : start + _RECEIPT_BATCH]
        text = ",\n  ".join(map(_entry_line, batch))
        yield (text if start == 0 else ",\n  " + text).encode("ascii")
    yield b"\n]}\n"


def read_receipt(root: Path, *, with_files: bool = True) -> Optional[Receipt]:
    """The receipt of the install at ``root``, or None when it has none.

    Raises ReceiptError (exit 8) when a receipt is there but is a link, unreadable, larger than
    MAX_RECEIPT_BYTES, not strict JSON or not valid against the receipt schema.
    ``with_files=False`` skips reading the file list (faster; ``files`` is then empty).
    """
    path = root / RECEIPT_NAME
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReceiptError(f"{source}: cannot read the install receipt: {exc.strerror}") from exc
    try:
        with open(fd, "rb") as stream:
            data = stream.read(MAX_RECEIPT_BYTES + 1)
    except OSError as exc:
        raise ReceiptError(f"{source}: cannot read the install receipt: {exc.strerror}") from exc
    doc = load_json(data, source, "install receipt", ReceiptError, max_bytes=MAX_RECEIPT_BYTES)
    files = doc.get("files") if isinstance(doc, dict) else None
    if isinstance(doc, dict):  # the file list is checked entry by entry below (fast)
        doc = {**doc, "files": []}
    validate_document(doc, RECEIPT_SCHEMA_FILE, source, "install receipt", ReceiptError)
    if not isinstance(files, list):
        raise ReceiptError(f"{source}: install receipt has no file list")
    try:
        artifact = _artifact_from_json(doc["artifact"], source)
        bundle = doc["bundle"]
        return Receipt(
            prefix=doc["prefix"],
            layout=doc["layout"],
            installed_at=parse_timestamp(doc["installed_at"]),
            bundle=BundleIdentity(
                bundle_id=bundle["bundle_id"],
                serial=bundle["serial"],
                created=parse_timestamp(bundle["created"]),
                signer_key_id=bundle["signer_key_id"],
                file=bundle["file"],
            ),
            artifact=artifact,
            build_prefix=doc["build_prefix"],
            links=tuple(doc["links"]),
            files=tuple(FileEntry.from_json(f, source) for f in files) if with_files else (),
            tool_version=doc["tool"]["version"],
        )
    except ValueError as exc:
        raise ReceiptError(f"{source}: install receipt has an invalid timestamp: {exc}") from exc


def _artifact_from_json(data: Any, source: str) -> Artifact:
    """The artifact entry of a receipt, validated as a manifest artifact would be."""
    wrapper = {
        # fields beyond v1 (portability, solid) exist only in v2 manifests
        "schema_version": (
            2 if isinstance(data, dict) and any(k in data for k in V2_ARTIFACT_FIELDS) else 1
        ),
        "bundle_id": "00000000-0000-0000-0000-000000000000",
        "serial": 0,
        "created": "2000-01-01T00:00:00Z",
        "tool": {"name": "pybundle", "version": "0"},
        "artifacts": [data],
    }
    try:
        validate_manifest_document(wrapper, source)
    except ManifestError as exc:
        raise ReceiptError(f"{exc.message} (in the install receipt's artifact)") from None
    return Artifact.from_json(data)


@dataclass(frozen=True)
class Destination:
    """What is at an install destination before an install: ``state`` is ``absent``,
    ``empty`` (an empty directory, which an install may take) or ``ours`` (a pybundle install,
    with its ``receipt``); ``identity`` is ``(st_dev, st_ino)`` of what is there (None when
    absent), to prove later that the same directory is replaced."""

    path: Path
    state: str
    receipt: Optional[Receipt] = None
    identity: Optional[tuple[int, int]] = None


def inspect_destination(dest: Path, artifact: Artifact, layout: str, *, force: bool) -> Destination:
    """Decide whether ``artifact`` may be installed at ``dest``.

    - nothing there: ``absent``; an empty directory: ``empty`` (taken over by the install);
    - a pybundle install of the same kind (:meth:`Receipt.same_kind`) whose receipt names
      ``dest``: ``ours`` with ``force``, else AlreadyExistsError ("use --force");
    - anything else is refused with AlreadyExistsError (exit 8) whatever ``force`` says, with
      a message that names ``dest`` and the reason: a symlink (never followed), a file, a
      non-empty directory without a receipt ("pybundle did not create it"), a damaged receipt,
      a receipt naming another prefix (a copy), or an install of another kind.
    """
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return Destination(dest, "absent")
    except OSError as exc:
        raise StorageError(
            f"{dest}: cannot inspect the install destination: {exc.strerror}"
        ) from exc
    identity = (st.st_dev, st.st_ino)
    if stat.S_ISLNK(st.st_mode):
        raise AlreadyExistsError(
            f"{dest}: is a symbolic link; pybundle does not install through or replace a link "
            "it did not create"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise AlreadyExistsError(
            f"{dest}: exists and is not a directory; pybundle did not create it and will not "
            "replace it"
        )
    try:
        with os.scandir(dest) as it:
            empty = next(it, None) is None
    except OSError as exc:
        raise StorageError(f"{dest}: cannot list: {exc.strerror}") from exc
    if empty:
        return Destination(dest, "empty", identity=identity)
    try:
        receipt = read_receipt(dest, with_files=False)
    except ReceiptError as exc:
        raise AlreadyExistsError(
            f"{dest}: its install receipt is damaged ({exc.message}); pybundle cannot prove it "
            "created this directory and will not replace it"
        ) from None
    if receipt is None:
        raise AlreadyExistsError(
            f"{dest}: exists and pybundle did not create it (no install receipt); pybundle "
            "never replaces a directory it did not install, even with --force"
        )
    if os.path.normpath(receipt.prefix) != os.path.normpath(str(dest)):
        raise AlreadyExistsError(
            f"{dest}: its install receipt says it was installed at {receipt.prefix}; a copy or "
            "moved install is not replaced (remove it yourself, or install elsewhere)"
        )
    what = f"{receipt.artifact.implementation} {receipt.artifact.version}"
    if not receipt.same_kind(artifact, layout):
        raise AlreadyExistsError(
            f"{dest}: holds {what} ({receipt.artifact.target.key}, {receipt.layout} layout), "
            f"which {artifact.implementation} {artifact.version} ({artifact.target.key}, "
            f"{layout} layout) cannot replace"
        )
    if not force:
        raise AlreadyExistsError(f"{dest}: {what} is already installed (use --force to replace it)")
    return Destination(dest, "ours", receipt, identity)


def now_utc() -> datetime:
    """The current time, UTC, whole seconds (the receipt's ``installed_at``)."""
    return datetime.now(timezone.utc).replace(microsecond=0)
