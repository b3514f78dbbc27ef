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
from contextlib import suppress
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from ..errors import PybundleError, StorageError
from .elf import ELF_MAGIC, read_runpath, set_runpath

__all__ = ["RelocationReport", "find_build_prefix", "relocate"]

# Files rewritten wholesale (every occurrence of the build prefix), as path components under root.
_TEXT_PATTERNS: tuple[tuple[str, ...], ...] = (
    ("lib", "python3.*", "_sysconfigdata_*.py"),
    ("lib", "pkgconfig", "*.pc"),
    ("bin", "python3*-config"),
    ("lib", "python3.*", "config-*", "Makefile"),
    ("lib", "python3.*", "config-*", "python-config.py"),
)

# Bytes that may continue a path name after the prefix (besides "/", which is always allowed).
_NAME_CHARS = rb"A-Za-z0-9._~+@%\x80-\xff-"
# Bytes that make up a path token when scanning backwards from a candidate match.
_PATH_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+@%-/"
    + bytes(range(128, 256))
)
# A compiler or configure option glued to a path: -L/x, -I/x, -R/x, -isystem/x.
_OPTION_TOKEN = re.compile(rb"-{1,2}[A-Za-z][A-Za-z0-9_-]*")

# Linux before 5.1 reads only 128 bytes of a "#!" line (BINPRM_BUF_SIZE); pip/distlib switch to a
# /bin/sh trampoline for longer lines or interpreter paths with spaces.
_MAX_SHEBANG = 127
_SHEBANG = re.compile(rb"#![ \t]*(?P<interp>[^ \t\r\n]+)(?P<tail>[^\r\n]*?)[ \t]*(?P<eol>\r?\n|\Z)")
_CODING_LINE = re.compile(rb"[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")  # PEP 263
_PYTHON_NAME = re.compile(rb"(python|pypy)[0-9.]*[a-z]*")
_TRAMPOLINE_UNSAFE = frozenset(b"\"'\\$`")

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


def _normalise_prefix(what: str, value: str) -> str:
    if not value.startswith("/") or "\0" in value or "\n" in value:
        raise PybundleError(f"the {what} {value!r} is not an absolute POSIX path")
    return posixpath.normpath(value)


class _Rewriter:
    """Replaces the build prefix in bytes, at path boundaries only."""

    def __init__(self, build_prefix: str, new_prefix: str) -> None:
        self.build = os.fsencode(build_prefix)
        self.new = os.fsencode(new_prefix)
        self._pattern = re.compile(re.escape(self.build) + rb"(?![" + _NAME_CHARS + rb"])")

    def _starts_path(self, data: bytes, start: int) -> bool:
        """True if the match at ``start`` begins a path (not the tail of a longer one)."""
        i = start
        while i > 0 and data[i - 1] in _PATH_BYTES:
            i -= 1
        token = data[i:start]
        # "." + prefix is CPython's WASM_ASSETS_DIR (Makefile: ".$(prefix)"), a prefix-derived path.
        return not token or token == b"." or _OPTION_TOKEN.fullmatch(token) is not None

    def sub(self, data: bytes) -> tuple[bytes, int]:
        """``data`` with every boundary-delimited build prefix replaced; and the count."""
        pieces: list[bytes] = []
        last = count = 0
        for match in self._pattern.finditer(data):
            if not self._starts_path(data, match.start()):
                continue
            pieces += (data[last : match.start()], self.new)
            last = match.end()
            count += 1
        if not count:
            return data, 0
        pieces.append(data[last:])
        return b"".join(pieces), count

    def _in_prefix(self, path: bytes) -> bool:
        return path == self.build or path.startswith(self.build + b"/")

    def shebang(self, data: bytes, where: Path) -> tuple[bytes, bytes] | None:
        """(new head, rest of the file) if ``data`` has a ``#!`` line into the build prefix."""
        match = _SHEBANG.match(data)
        if match is None or not self._in_prefix(match.group("interp")):
            return None
        interp = self.new + match.group("interp")[len(self.build) :]
        arg = match.group("tail").strip(b" \t")
        line = b"#!" + interp + (b" " + arg if arg else b"")
        rest = data[match.end() :]
        if len(line) <= _MAX_SHEBANG and not any(c in b" \t\f\v" for c in interp):
            head = data[: match.start("interp")] + interp + data[match.end("interp") : match.end()]
            return head, rest
        # Too long or contains whitespace: a /bin/sh trampoline that is also valid Python.
        if not _PYTHON_NAME.fullmatch(posixpath.basename(interp)):
            raise PybundleError(
                f"{where}: cannot relocate: its #! interpreter would need a /bin/sh trampoline, "
                "which only works for Python scripts"
            )
        if any(c in _TRAMPOLINE_UNSAFE for c in interp + arg):
            raise PybundleError(
                f"{where}: cannot relocate: the new interpreter path cannot be quoted in a "
                "/bin/sh trampoline (it contains one of \" ' \\ $ `)"
            )
        head = b"#!/bin/sh\n"
        coding = _CODING_LINE.match(rest)
        if coding is not None:  # keep a PEP 263 declaration within the first two lines
            eol = rest.find(b"\n", coding.end())
            end = len(rest) if eol < 0 else eol + 1
            head += rest[:end].rstrip(b"\r\n") + b"\n"
            rest = rest[end:]
        quoted = b'"' + interp + b'"' + (b' "' + arg + b'"' if arg else b"")
        head += b"'''exec' " + quoted + b' "$0" "$@"\n' + b"' '''\n"
        return head, rest


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


def _is_text_target(parts: tuple[str, ...]) -> bool:
    """True if the root-relative ``parts`` match one of _TEXT_PATTERNS, component by component."""
    return any(
        len(parts) == len(pattern) and all(map(fnmatchcase, parts, pattern))
        for pattern in _TEXT_PATTERNS
    )


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


def relocate(root: Path, build_prefix: str, new_prefix: str) -> RelocationReport:
    """Rewrite the tree at ``root`` so that it works once moved to ``new_prefix``.

    ``root`` is where the extracted tree is now (a staging directory); ``new_prefix`` is the
    absolute path it will be renamed to afterwards; ``build_prefix`` is the prefix it was built
    for (see :func:`find_build_prefix`). Both prefixes must be absolute POSIX paths; trailing
    slashes are ignored. Nothing written mentions ``root``.

    Text: every occurrence of the build prefix that starts a path and ends at a path boundary is
    replaced in the sysconfigdata modules, ``.pc`` files, ``bin/python3*-config``, and the config
    dir's ``Makefile`` and ``python-config.py``. It starts a path when the path characters just
    before it are none, a glued option (``-L``, ``-I``...) or the ``.`` of CPython's
    ``.$(prefix)``; so ``/foo/install`` is left alone for ``/install``. It ends at a boundary when
    followed by ``/``, the end, or a byte that cannot continue a file name (whitespace, quotes,
    ``:;,)=``...); so ``.../3.12.10`` is left alone for ``.../3.12.1``. ``#!`` lines of the non-ELF
    regular files in ``bin/`` that name an interpreter inside the build prefix are pointed into
    ``new_prefix``; when that path has whitespace or the line would exceed 127 bytes, pip's
    ``#!/bin/sh`` + ``'''exec'`` trampoline is written instead. Files are handled as bytes,
    rewritten through a temp file and os.replace, keeping their mode. Bytecode of rewritten
    ``.py`` files is removed. ELF files with RUNPATH or RPATH entries inside the build prefix get
    them rewritten relative to ``$ORIGIN`` (kind and the other entries kept). Symlinks are never
    followed. Equal prefixes: nothing is done.

    Returns a :class:`RelocationReport`. Raises PybundleError for a prefix that is not absolute
    (or is ``/``), a script whose new ``#!`` line cannot be written, or a failed ELF edit;
    StorageError if the file system refuses a read or write.
    """
    root = Path(root)
    build = _normalise_prefix("build prefix", build_prefix)
    new = _normalise_prefix("new prefix", new_prefix)
    report = RelocationReport(build_prefix=build, new_prefix=new)
    if build == new:
        return report
    if build == "/":
        raise PybundleError("cannot relocate a tree whose build prefix is '/'")
    if not root.is_dir():
        raise StorageError(f"{root}: cannot relocate: not a directory")
    rewriter = _Rewriter(build, new)
    rewritten_modules: list[Path] = []

    for path_str, parts in _walk_files(root):
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
        full = parts[0] in ("lib", "bin") and _is_text_target(parts)
        script = len(parts) == 2 and parts[0] == "bin" and magic.startswith(b"#!")
        if not (full or script):
            continue
        path = Path(path_str)
        data = _read(path)
        shebang = rewriter.shebang(data, path)
        head, body = shebang if shebang is not None else (b"", data)
        count = 0
        if full:
            body, count = rewriter.sub(body)
        if shebang is None and count == 0:
            continue
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise StorageError(f"{path}: cannot stat: {exc.strerror or exc}") from exc
        _write_replacing(path, head + body, st)
        report.text_files.append(Path(*parts))
        if path.suffix == ".py":
            rewritten_modules.append(path)

    for module in rewritten_modules:  # after the walk: it listed the .pyc files too
        report.removed_bytecode += _remove_bytecode(module, root)
    report.text_files.sort()
    report.elf_files.sort()
    report.removed_bytecode.sort()
    return report
