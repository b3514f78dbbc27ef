"""Relocate an extracted CPython tree so that it works from a new prefix as if built there.

A CPython build records its configure ``--prefix`` (the *build prefix*) in a few places. What has
to change was measured on pyenv CPython 3.11-3.13 builds packed the python-build-standalone (PBS)
way (occurrence counts per file for 3.12.1):

* text: ``lib/python3.X/_sysconfigdata_*.py`` (80-87 occurrences), ``lib/pkgconfig/*.pc``,
  ``bin/python3.X-config`` (a shell script), ``lib/python3.X/config-*/Makefile`` and
  ``python-config.py``, and the ``#!`` lines of the scripts in ``bin/`` (pip, pydoc, idle, ...);
* ELF: the absolute DT_RUNPATH/DT_RPATH ``<prefix>/lib`` of ``bin/python3.X``, ``libpython*.so``
  and the ``lib-dynload`` extensions (pyenv builds); PBS builds use ``$ORIGIN``-relative paths;
* bytecode compiled from the rewritten modules, which would otherwise be stale.

PBS builds use the placeholder prefix ``/install`` (PBS ``docs/distributions.rst``).
The compiled-in PREFIX of ``libpython`` is only getpath's last resort and is left alone.
"""

from __future__ import annotations

import ast
import os
import posixpath
import re
import stat
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable

from ..errors import PrefixError, RelocationError, StorageError
from .elf import ELF_MAGIC, read_runpath, set_runpath
from .quoting import shown, unrepresentable
from .textfiles import (
    PrefixMatcher,
    rewrite_makefile,
    rewrite_pkgconfig,
    rewrite_python,
    rewrite_shebang,
    rewrite_shell,
)

__all__ = ["RelocationReport", "check_prefix", "find_build_prefix", "relocate"]


_Writer = Callable[[bytes, PrefixMatcher, str], tuple[bytes, int]]


def _text_writer(writer: Callable[[str, PrefixMatcher, str], tuple[str, int]]) -> _Writer:
    """A str writer applied to bytes: any bytes round-trip through ``surrogateescape``."""

    def rewrite(data: bytes, matcher: PrefixMatcher, where: str) -> tuple[bytes, int]:
        text, count = writer(data.decode("utf-8", "surrogateescape"), matcher, where)
        return (text.encode("utf-8", "surrogateescape"), count) if count else (data, 0)

    return rewrite


# Files rewritten wholesale, as path components under root, and the writer for their syntax.
_TEXT_KINDS: tuple[tuple[tuple[str, ...], _Writer], ...] = (
    (("lib", "python3.*", "_sysconfigdata_*.py"), rewrite_python),
    (("lib", "pkgconfig", "*.pc"), _text_writer(rewrite_pkgconfig)),
    (("bin", "python3*-config"), _text_writer(rewrite_shell)),
    (("lib", "python3.*", "config-*", "Makefile"), _text_writer(rewrite_makefile)),
    (("lib", "python3.*", "config-*", "python-config.py"), rewrite_python),
)

_SYSCONFIG_PREFIX = re.compile(
    rb"""['"]prefix['"]\s*:\s*('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
)


@dataclass
class RelocationReport:
    """What :func:`relocate` changed. All paths are relative to the relocated tree's root.

    ``build_prefix`` and ``new_prefix`` are the normalised absolute prefixes. ``text_files`` were
    rewritten (build prefix replaced or ``#!`` line changed), ``elf_files`` had their RUNPATH or
    RPATH changed, and ``removed_bytecode`` are the stale ``__pycache__/*.pyc`` files deleted.
    Each list is sorted; all are empty when the two prefixes are equal.
    """

    build_prefix: str
    new_prefix: str
    text_files: list[Path] = field(default_factory=list)
    elf_files: list[Path] = field(default_factory=list)
    removed_bytecode: list[Path] = field(default_factory=list)


def _scandir(path: str | Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError as exc:
        raise StorageError(f"{path}: cannot list: {exc.strerror or exc}") from exc


def find_build_prefix(root: Path) -> str | None:
    """The build prefix recorded in ``root/lib/python3.*/_sysconfigdata_*.py``, or None.

    Returns the value of its ``'prefix'`` key, e.g. ``"/install"`` for python-build-standalone
    builds or ``"/root/.pyenv/versions/3.12.1"`` for pyenv builds; the first file in sorted order
    that has one wins. None if there is no such file (Windows trees keep ``Lib/`` and no
    sysconfigdata module) or no ``prefix`` key. Symlinked directories and files are not followed.
    Raises StorageError if a directory or file cannot be read.
    """
    lib = Path(root) / "lib"
    if not lib.is_dir() or lib.is_symlink():
        return None
    for libdir in sorted(_scandir(lib), key=lambda e: e.name):
        if not fnmatchcase(libdir.name, "python3.*") or not libdir.is_dir(follow_symlinks=False):
            continue
        for entry in sorted(_scandir(Path(libdir.path)), key=lambda e: e.name):
            if not fnmatchcase(entry.name, "_sysconfigdata_*.py"):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            data = _read(Path(entry.path))
            match = _SYSCONFIG_PREFIX.search(data)
            if match is None:
                continue
            try:
                value = ast.literal_eval(match.group(1).decode("utf-8", "surrogateescape"))
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str) and value:
                return value
    return None


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as f:
            return f.read()
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _read_magic(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            return os.read(fd, 4)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _write_replacing(path: Path, data: bytes, st: os.stat_result) -> None:
    """Write ``data`` to a temp file beside ``path`` with its mode and owner, then os.replace."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StorageError(f"{path}: cannot rewrite: {exc.strerror or exc}") from exc
    try:
        with open(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
            if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                with suppress(PermissionError):
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(tmp)
        raise StorageError(f"{path}: cannot rewrite: {exc.strerror or exc}") from exc


def check_prefix(new_prefix: str) -> None:
    """Refuse an install path that some file kind relocation writes cannot represent.

    Call it before extracting anything. ``new_prefix`` is the absolute path the tree will live
    at. Every other character is written with the quoting of each file kind (see
    :mod:`pybundle.installer.quoting` and docs/security.md, "Escaping install paths").
    Raises PrefixError (exit 2) with a one-line message naming the character (repr) and the
    file kind: a path that is not absolute, or holds NUL, a newline (Makefile), a carriage
    return or ``${`` (pkg-config) or bytes that are not UTF-8 (Python source: pip's ``#!``
    lines).
    """
    if not new_prefix.startswith("/"):
        raise PrefixError(f"{shown(new_prefix)}: the install path is not an absolute POSIX path")
    found = unrepresentable(new_prefix)
    if found is not None:
        char, what, kind = found
        raise PrefixError(
            f"{shown(new_prefix)}: the install path contains {what} ({char!r}), which a {kind} "
            "cannot represent; choose another --prefix or --install-dir"
        )


def _build_prefix(value: str, source: str) -> str:
    """The normalised build prefix, or RelocationError if the archive's value is unusable."""
    if not value.startswith("/"):
        raise RelocationError(
            f"{source}: cannot relocate: the build prefix {value!r} is not an absolute POSIX path"
        )
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise RelocationError(
            f"{source}: cannot relocate: the build prefix {value!r} contains a control character"
        )
    build = posixpath.normpath(value)
    if build == "/":
        raise RelocationError(f"{source}: cannot relocate a tree whose build prefix is '/'")
    return build


def _remove_bytecode(source: Path, root: Path) -> list[Path]:
    """Delete ``__pycache__/<stem>.*.pyc`` beside ``source``; the removed paths, root-relative."""
    cache = source.parent / "__pycache__"
    if not cache.is_dir() or cache.is_symlink():
        return []
    removed: list[Path] = []
    stem = source.stem + "."
    for entry in _scandir(cache):
        if not entry.name.startswith(stem) or not entry.name.endswith(".pyc"):
            continue
        if entry.is_dir(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"{entry.path}: cannot remove: {exc.strerror or exc}") from exc
        removed.append(Path(entry.path).relative_to(root))
    return removed


def _walk_files(root: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(absolute path, components relative to root) of every regular file; symlinks skipped."""
    files: list[tuple[str, tuple[str, ...]]] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(str(root), ())]
    while stack:
        directory, parts = stack.pop()
        for entry in _scandir(directory):
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, (*parts, entry.name)))
                elif entry.is_file(follow_symlinks=False):
                    files.append((entry.path, (*parts, entry.name)))
            except OSError as exc:
                raise StorageError(f"{entry.path}: cannot stat: {exc.strerror or exc}") from exc
    return files


def _text_kind(parts: tuple[str, ...]) -> _Writer | None:
    """The writer for root-relative ``parts`` matching one of _TEXT_KINDS, component-wise."""
    for pattern, writer in _TEXT_KINDS:
        if len(parts) == len(pattern) and all(map(fnmatchcase, parts, pattern)):
            return writer
    return None


def _relocated_search_path(value: str, file_dir: tuple[str, ...], build: str) -> str:
    """``value`` with each entry inside ``build`` turned into a ``$ORIGIN``-relative one."""
    entries = value.split(":")
    for i, entry in enumerate(entries):
        if not entry.startswith("/"):
            continue
        norm = posixpath.normpath(entry)
        if norm != build and not norm.startswith(build + "/"):
            continue
        inside = norm[len(build) :].lstrip("/") or "."
        rel = posixpath.relpath(inside, posixpath.join(".", *file_dir))
        entries[i] = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
    return ":".join(entries)


def relocation_candidate(parts: Sequence[str], magic: bytes) -> bool:
    """Whether :func:`relocate` may have to look at the regular file at root-relative ``parts``
    whose first bytes are ``magic`` (at least 4 when the file has them): an ELF file, a ``#!``
    script directly in ``bin/``, or one of the text files it rewrites. The extractor asks this
    for every file it writes, so relocation need not walk and open the whole tree again."""
    if magic[:4] == ELF_MAGIC:
        return True
    if len(parts) == 2 and parts[0] == "bin" and magic.startswith(b"#!"):
        return True
    # every _TEXT_KINDS pattern has at most 4 components and one of these name endings
    return (
        len(parts) <= 4
        and parts[-1].endswith((".py", ".pc", "Makefile", "-config"))
        and _text_kind(tuple(parts)) is not None
    )


def _candidates(root: Path, paths: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(absolute path, components) of the listed root-relative regular files that exist and
    are not symlinks (a later step may have removed or replaced one)."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for rel in sorted(set(paths)):
        full = os.path.join(root, rel)
        try:
            if stat.S_ISREG(os.lstat(full).st_mode):
                found.append((full, tuple(rel.split("/"))))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"{full}: cannot stat: {exc.strerror or exc}") from exc
    return found


def relocate(
    root: Path,
    build_prefix: str,
    new_prefix: str,
    *,
    source: str | None = None,
    candidates: Iterable[str] | None = None,
) -> RelocationReport:
    """Rewrite the tree at ``root`` so that it works once moved to ``new_prefix``.

    ``root`` is where the extracted tree is now (a staging directory); ``new_prefix`` is the
    absolute path it will be renamed to afterwards; ``build_prefix`` is the prefix it was built
    for (see :func:`find_build_prefix`). Both must be absolute POSIX paths; trailing slashes are
    ignored. Nothing written mentions ``root``. ``source`` names the archive in messages
    (default: ``root``).

    Text: the occurrences of the build prefix that start a path and end at a path boundary
    (:class:`~pybundle.installer.textfiles.PrefixMatcher`) are rewritten in the sysconfigdata
    modules and the config dir's ``python-config.py`` (Python string literals), ``.pc`` files
    (pkg-config), ``bin/python3*-config`` (POSIX shell) and the config dir's ``Makefile`` (GNU
    make), each with the quoting of its syntax (:mod:`pybundle.installer.textfiles`), so that
    each file's reader gets exactly ``new_prefix`` back. ``#!`` lines of the non-ELF regular
    files in ``bin/`` (and of those files) that name an interpreter inside the build prefix are
    pointed into ``new_prefix``; when that path has whitespace or the line would exceed 127
    bytes, pip's ``#!/bin/sh`` + ``'''exec'`` trampoline is written instead. Files are rewritten
    through a temp file and os.replace, keeping their mode. Bytecode of rewritten ``.py`` files
    is removed. ELF files with RUNPATH or RPATH entries inside the build prefix get them
    rewritten relative to ``$ORIGIN`` (kind and the other entries kept), so the new prefix's
    characters do not matter there. Symlinks are never followed. Equal prefixes: nothing is done.

    ``candidates``, when given, are the root-relative paths of the only files that need a look
    (those for which :func:`relocation_candidate` said yes while they were written); else the
    whole tree is walked.

    Returns a :class:`RelocationReport`. Raises PrefixError for a ``new_prefix`` that
    :func:`check_prefix` refuses; RelocationError for a build prefix that is not absolute, is
    ``/`` or holds control characters, a script whose ``#!`` line cannot be rewritten, or a file
    whose syntax leaves no safe place for the path; PybundleError for a failed ELF edit;
    StorageError if the file system refuses a read or write.
    """
    root = Path(root)
    where = source or str(root)
    build = _build_prefix(build_prefix, where)
    check_prefix(new_prefix)
    new = posixpath.normpath(new_prefix)
    report = RelocationReport(build_prefix=build, new_prefix=new)
    if build == new:
        return report
    if not root.is_dir():
        raise StorageError(f"{root}: cannot relocate: not a directory")
    matcher = PrefixMatcher(build, new)
    build_bytes = os.fsencode(build)
    rewritten_modules: list[Path] = []

    files = _walk_files(root) if candidates is None else _candidates(root, candidates)
    for path_str, parts in files:
        magic = _read_magic(path_str)
        if magic == ELF_MAGIC:
            path = Path(path_str)
            runpath = read_runpath(path)
            if runpath is None:
                continue
            kind, value = runpath
            new_value = _relocated_search_path(value, parts[:-1], build)
            if new_value != value:
                set_runpath(path, new_value, kind=kind)
                report.elf_files.append(Path(*parts))
            continue
        writer = _text_kind(parts) if parts[0] in ("lib", "bin") else None
        script = len(parts) == 2 and parts[0] == "bin" and magic.startswith(b"#!")
        if writer is None and not script:
            continue
        path = Path(path_str)
        data = _read(path)
        spelled = build_bytes in data
        if not spelled and not data.startswith(b"#!/bin/sh"):
            continue  # (a trampoline may spell the build prefix quoted)
        file_where = f"{where}: {'/'.join(parts)}" if source else path_str
        count = 0
        if writer is not None and spelled:
            data, count = writer(data, matcher, file_where)
        shebang = rewrite_shebang(data, matcher, file_where) if magic.startswith(b"#!") else None
        if shebang is None and count == 0:
            continue
        if shebang is not None:
            data = shebang[0] + shebang[1]
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise StorageError(f"{path}: cannot stat: {exc.strerror or exc}") from exc
        _write_replacing(path, data, st)
        report.text_files.append(Path(*parts))
        if path.suffix == ".py":
            rewritten_modules.append(path)

    for module in rewritten_modules:  # after the walk: it listed the .pyc files too
        report.removed_bytecode += _remove_bytecode(module, root)
    report.text_files.sort()
    report.elf_files.sort()
    report.removed_bytecode.sort()
    return report
