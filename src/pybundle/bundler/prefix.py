"""Packing an existing local installation (e.g. a pyenv version) as a PBS install_only archive.

The archive has python-build-standalone's install_only layout (PBS docs/distributions.rst):
every member lives under a top directory ``python/``, which the installer strips. The
interpreter is run once (``-I``, isolated mode) to learn its version, platform and the
prefix it was configured with (the *build prefix*, which relocation later rewrites).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Optional, cast

import zstandard

from pybundle.archives import ARCHIVE_FORMATS, scan_archive_indexed
from pybundle.bundler.stopping import StoppableReader, check
from pybundle.errors import PybundleError, StorageError, UsageError
from pybundle.fileindex import index_member
from pybundle.hashing import CHUNK_SIZE
from pybundle.manifest import Artifact, FileIndexRef
from pybundle.targets import Target
from pybundle.versions import PythonVersion

LOCAL_BUILD = "local"
"""The ``build`` recorded for archives packed from a local prefix."""

_PROBE = r"""
import json, platform, sys, sysconfig
v = sys.version_info
libc = platform.libc_ver()[0] if sys.platform.startswith("linux") else ""
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": [v.major, v.minor, v.micro, v.releaselevel, v.serial],
    "platform": sys.platform,
    "machine": platform.machine(),
    "libc": libc,
    "prefix": sysconfig.get_config_var("prefix"),
    "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "debug": bool(sysconfig.get_config_var("Py_DEBUG")),
    "stdlib": sysconfig.get_path("stdlib"),
}))
"""

_MACHINES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
_RELEASE_LEVELS = {"alpha": "a", "beta": "b", "candidate": "rc"}


@dataclass(frozen=True)
class PrefixInfo:
    """What the interpreter under a prefix says about itself."""

    prefix: Path
    implementation: str
    version: PythonVersion
    target: Target
    variant: str
    build_prefix: str
    stdlib_rel: str
    """The stdlib directory relative to the prefix, e.g. ``lib/python3.12``."""


def find_interpreter(prefix: Path) -> Path:
    """The interpreter executable under ``prefix`` (``bin/python3``); UsageError if absent."""
    for name in ("bin/python3", "bin/python", "python.exe"):
        candidate = prefix / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise UsageError(f"{prefix}: no Python interpreter found (looked for bin/python3)")


def probe_prefix(prefix: Path) -> PrefixInfo:
    """Run the interpreter under ``prefix`` and describe it.

    Raises UsageError when ``prefix`` holds no runnable interpreter.
    """
    prefix = prefix.resolve()
    exe = find_interpreter(prefix)
    try:
        out = subprocess.run(
            [str(exe), "-I", "-B", "-c", _PROBE], check=True, capture_output=True, timeout=60
        ).stdout
        data = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise UsageError(f"{exe}: cannot run the interpreter to describe it: {exc}") from exc
    major, minor, micro, level, serial = data["version"]
    pre = "" if level == "final" else f"{_RELEASE_LEVELS.get(level, level)}{serial}"
    if data["platform"].startswith("linux"):
        os_name = "linux"
        libc = "musl" if "musl" in (data["libc"] or "").lower() else "gnu"
    elif data["platform"] == "darwin":
        os_name, libc = "darwin", "none"
    elif data["platform"] == "win32":
        os_name, libc = "windows", "none"
    else:
        raise UsageError(f"{prefix}: unsupported platform {data['platform']!r}")
    machine = _MACHINES.get(data["machine"].lower(), data["machine"].lower())
    variant = (
        "+".join(
            name
            for name, flag in (("freethreaded", data["gil_disabled"]), ("debug", data["debug"]))
            if flag
        )
        or "default"
    )
    stdlib = Path(data["stdlib"]).resolve()
    try:
        stdlib_rel = stdlib.relative_to(prefix).as_posix()
    except ValueError as exc:
        raise UsageError(
            f"{prefix}: its standard library {stdlib} lies outside the prefix"
        ) from exc
    return PrefixInfo(
        prefix=prefix,
        implementation=data["implementation"],
        version=PythonVersion(major, minor, micro, pre),
        target=Target(os=os_name, arch=machine, libc=libc),
        variant=variant,
        build_prefix=data["prefix"] or str(prefix),
        stdlib_rel=stdlib_rel,
    )


class _CountingHashWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes to ``sink``; raises
    :class:`Stopped` once ``stop`` is set."""

    def __init__(self, sink: BinaryIO, stop: Optional[threading.Event] = None) -> None:
        import hashlib

        self._sink = sink
        self._stop = stop
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        check(self._stop)
        self._sink.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def archive_file_name(info: PrefixInfo, archive_format: str) -> str:
    """PBS-style archive name.

    E.g. ``cpython-3.12.1+local-x86_64-unknown-linux-gnu-install_only.tar.zst``.
    """
    variant = "" if info.variant == "default" else f"-{info.variant}"
    return (
        f"{info.implementation}-{info.version}+{LOCAL_BUILD}-{info.target.triple}"
        f"{variant}-install_only.{archive_format}"
    )


def pack_prefix(
    info: PrefixInfo,
    dest_dir: Path,
    *,
    archive_format: str = "tar.zst",
    site_packages: str = "all",
    compresslevel: int | None = None,
    file_name: str | None = None,
    build: str = LOCAL_BUILD,
    stop: Optional[threading.Event] = None,
    file_index: bool = False,
) -> tuple[Artifact, Path]:
    """Archive ``info.prefix`` in PBS install_only layout into ``dest_dir``.

    ``site_packages="all"`` keeps the prefix's site-packages as is; ``"pip"`` keeps only pip
    (what a PBS install_only archive ships) and drops the console scripts of the packages it
    drops (:func:`prefix_filter`). Member owners are reset to root (uid/gid 0);
    modes and mtimes are kept (mtimes keep the shipped bytecode valid). Returns the artifact
    description (size in bytes, sha256, unpacked size and member count) and the archive path.
    With ``file_index``, the archive written is read back (:func:`index_archive`) and its file
    index is written beside it (:func:`index_path_for`), recorded in ``artifact.file_index``.
    Raises StorageError when the archive cannot be written; :class:`Stopped` (the archive
    removed) soon after ``stop`` is set, which another thread may do.
    """
    if archive_format not in ARCHIVE_FORMATS:
        raise UsageError(f"unsupported archive format {archive_format!r} (tar.gz or tar.zst)")
    name = file_name or archive_file_name(info, archive_format)
    path = dest_dir / name
    counts = {"files": 0, "bytes": 0}
    shipped = prefix_filter(info, site_packages)

    def keep(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        check(stop)
        rel = member.name.partition("/")[2]
        if rel and not shipped(rel):
            return None
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        # whole seconds: a fractional mtime would cost a PAX header per member (and pyc
        # validation compares whole seconds anyway)
        member.mtime = int(member.mtime)
        counts["files"] += 1
        if member.isfile():
            counts["bytes"] += member.size
        return member

    try:
        with open(path, "wb") as raw:
            counter = _CountingHashWriter(raw, stop)
            _write_tar(info.prefix, counter, archive_format, compresslevel, keep)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write the archive: {exc}") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    artifact = Artifact(
        file_name=name,
        size=counter.size,
        sha256=counter.hash.hexdigest(),
        implementation=info.implementation,
        version=str(info.version),
        build=build,
        target=info.target,
        variant=info.variant,
        flavour="install_only",
        archive_format=archive_format,
        strip_prefix="python",
        build_prefix=info.build_prefix,
        local_prefix=str(info.prefix),
        unpacked_size=counts["bytes"],
        file_count=counts["files"],
    )
    if file_index:
        ref = index_archive(path, archive_format, stop)
        if ref is not None:
            artifact = replace(artifact, file_index=ref)
    return artifact, path


def index_path_for(archive: Path) -> Path:
    """Where :func:`index_archive` writes the file index of ``archive``: beside it,
    ``<archive name>.files``."""
    return archive.with_name(archive.name + ".files")


def index_archive(
    archive: Path, archive_format: str, stop: Optional[threading.Event] = None
) -> Optional[FileIndexRef]:
    """Read ``archive`` through the tar reader the installer uses, hashing every regular
    member (:func:`pybundle.archives.scan_archive_indexed`), and write its file index to
    :func:`index_path_for`; returns the manifest's reference to it, or None when a member name
    cannot stand in an index. Raises UnsafeArchiveError (unreadable archive), StorageError."""
    import hashlib

    try:
        with open(archive, "rb") as stream:
            _, data = scan_archive_indexed(
                cast(BinaryIO, StoppableReader(stream, stop)), archive_format, str(archive)
            )
        if data is None:
            return None
        index_path_for(archive).write_bytes(data)
    except OSError as exc:
        raise StorageError(f"{archive}: cannot index the archive: {exc}") from exc
    return FileIndexRef(index_member(archive.name), hashlib.sha256(data).hexdigest(), len(data))


def _is_pip_entry(top: str) -> bool:
    """True for the site-packages entries ``--prefix-site-packages pip`` keeps."""
    return top == "pip" or top.startswith("pip-") or top == "README.txt"


def prefix_filter(info: PrefixInfo, site_packages: str = "all") -> Callable[[str], bool]:
    """``shipped(rel)``: whether the prefix-relative POSIX path ``rel`` goes into the archive.
    ``"all"`` ships everything; ``"pip"`` drops every site-packages entry but pip's and every
    file the dropped distributions installed outside site-packages (console scripts in
    ``bin/`` and their ``bin/__pycache__``), read from their RECORD (:func:`dropped_files`).
    Raises UsageError for another ``site_packages`` value."""
    if site_packages not in ("all", "pip"):
        raise UsageError(f"--prefix-site-packages must be 'all' or 'pip', not {site_packages!r}")
    if site_packages == "all":
        return lambda rel: True
    site = f"{info.stdlib_rel}/site-packages/"
    dropped = dropped_files(info)

    def shipped(rel: str) -> bool:
        if rel.startswith(site):
            return _is_pip_entry(rel[len(site) :].split("/", 1)[0])
        return rel not in dropped and not any(rel.startswith(d + "/") for d in dropped)

    return shipped


def _record_paths(dist: Path) -> list[str]:
    """The paths a distribution's metadata says it installed, relative to site-packages:
    ``*.dist-info/RECORD`` (first CSV column, PEP 376 / the binary distribution format) or
    ``*.egg-info/installed-files.txt`` (setuptools; relative to the .egg-info directory).
    Unreadable metadata gives an empty list."""
    import csv

    if dist.name.endswith(".dist-info"):
        try:
            with open(dist / "RECORD", newline="", encoding="utf-8") as f:
                return [row[0] for row in csv.reader(f) if row]
        except (OSError, UnicodeDecodeError, csv.Error):
            return []
    try:
        lines = (dist / "installed-files.txt").read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [os.path.join(dist.name, line) for line in lines if line.strip()]


def dropped_files(info: PrefixInfo) -> set[str]:
    """Prefix-relative paths outside site-packages installed by the distributions that
    ``--prefix-site-packages pip`` drops (every one but pip), minus anything a kept
    distribution also lists; plus ``bin/__pycache__`` itself when all of it is dropped."""
    site_rel = f"{info.stdlib_rel}/site-packages"
    site = info.prefix / site_rel
    try:
        dists = [d for d in site.iterdir() if d.name.endswith((".dist-info", ".egg-info"))]
    except OSError:
        return set()
    dropped: set[str] = set()
    kept: set[str] = set()
    for dist in dists:
        into = kept if _is_pip_entry(dist.name) else dropped
        for entry in _record_paths(dist):
            full = os.path.normpath(os.path.join(site, entry))
            rel = os.path.relpath(full, info.prefix)
            if rel.startswith("..") or rel == site_rel or rel.startswith(site_rel + "/"):
                continue  # outside the prefix, or in site-packages (handled as a whole)
            into.add(Path(rel).as_posix())
    dropped -= kept
    cache = info.prefix / "bin" / "__pycache__"
    if cache.is_dir() and not cache.is_symlink():
        entries = {f"bin/__pycache__/{p.name}" for p in cache.iterdir()}
        if entries <= dropped:
            dropped.add("bin/__pycache__")
    return dropped


def _write_tar(
    prefix: Path,
    sink: _CountingHashWriter,
    archive_format: str,
    compresslevel: int | None,
    keep: Callable[[tarfile.TarInfo], tarfile.TarInfo | None],
) -> None:
    """Stream the tar of ``prefix`` through the compressor into ``sink``. Interrupted, it
    leaves at once: the zstd frame is not finished (compressing what is buffered would delay
    Ctrl-C by a second), since the caller deletes the archive anyway."""
    buffered = io.BufferedWriter(cast(io.RawIOBase, sink), buffer_size=CHUNK_SIZE)
    try:
        if archive_format == "tar.zst":
            level = 10 if compresslevel is None else compresslevel
            cctx = zstandard.ZstdCompressor(level=level, threads=-1)
            zout = cctx.stream_writer(buffered, closefd=False)
            _add_tree(prefix, zout, keep)
            zout.close()  # type: ignore[no-untyped-call]  # ends the frame (not a with block: see above)
        else:
            import gzip

            level = 6 if compresslevel is None else compresslevel
            with gzip.GzipFile(fileobj=buffered, mode="wb", compresslevel=level, mtime=0) as gout:
                _add_tree(prefix, gout, keep)  # type: ignore[arg-type]
    finally:
        # now, while the sink's file is open: a flush at garbage collection would write to a
        # closed file and print a warning
        buffered.flush()


def _add_tree(
    prefix: Path, out: BinaryIO, keep: Callable[[tarfile.TarInfo], tarfile.TarInfo | None]
) -> None:
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(str(prefix), arcname="python", recursive=True, filter=keep)
    except tarfile.TarError as exc:
        raise PybundleError(f"{prefix}: cannot archive: {exc}") from exc
