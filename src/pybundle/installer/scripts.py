"""Scripts in ``bin/`` that find their interpreter relative to themselves, so that a plain
``mv`` of an install does not break ``bin/pip3`` and friends.

After relocation the Python scripts of ``bin/`` start with ``#!<prefix>/bin/python3.X`` (or,
when that line is too long, pip's ``/bin/sh`` trampoline naming the same absolute path). Both
are rewritten to python-build-standalone's relative trampoline (PBS
``cpython-unix/build-cpython.sh``, "fix shebangs"), which is at once a POSIX shell script and
a Python module::

    #!/bin/sh
    '''exec' "$(dirname -- "$(realpath -- "$0")")"/'python3.12' "$0" "$@"
    ' '''

``realpath`` resolves links to the script (e.g. from ``~/.local/bin``), so the interpreter
beside the real script is run. Only scripts whose interpreter is an executable in the same
``bin/`` directory of the same tree, named like Python, with no interpreter argument, are
changed; a PEP 263 coding line is kept on line 2 or 3 as Python requires.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from contextlib import suppress
from pathlib import Path

from pybundle.errors import StorageError

_SHEBANG = re.compile(rb"#![ \t]*(?P<interp>/[^ \t\r\n]+)[ \t]*\r?\n")
_SH_TRAMPOLINE = re.compile(
    rb"#!/bin/sh\r?\n(?P<coding>[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+[^\n]*\n)?"
    rb"'''exec' \"(?P<interp>/[^\"]+)\" \"\$0\" \"\$@\"\r?\n' '''\r?\n"
)
_CODING_LINE = re.compile(rb"[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+[^\n]*\n")  # PEP 263
_PYTHON_NAME = re.compile(r"(python|pypy)[0-9.]*[a-z]*")
MAX_SCRIPT_BYTES = 1024 * 1024
"""Scripts larger than this are not Python entry points and are left alone (bytes)."""


def relative_trampoline(exe_name: str) -> bytes:
    """The two-language header that runs ``exe_name`` from the script's own directory."""
    return (
        b"#!/bin/sh\n"
        b'\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/\''
        + exe_name.encode()
        + b"' \"$0\" \"$@\"\n' '''\n"
    )


def _rewrite(data: bytes, bin_dir: str) -> bytes | None:
    """The script ``data`` with a relative trampoline, or None if it is not one to change."""
    match = _SH_TRAMPOLINE.match(data)
    coding = b""
    if match is not None:
        coding = match.group("coding") or b""
    else:
        match = _SHEBANG.match(data)
        if match is None:
            return None
    interp = os.fsdecode(match.group("interp"))
    if os.path.dirname(os.path.normpath(interp)) != bin_dir:
        return None
    name = os.path.basename(interp)
    if not _PYTHON_NAME.fullmatch(name):
        return None
    rest = data[match.end() :]
    if not coding:
        found = _CODING_LINE.match(rest)
        if found is not None:
            coding, rest = rest[: found.end()], rest[found.end() :]
    head = relative_trampoline(name)
    # keep a PEP 263 declaration within the first two lines: #! then the coding line
    if coding:
        first, second = head.split(b"\n", 1)
        head = first + b"\n" + coding + second
    return head + rest


def make_scripts_relative(root: Path, prefix: str) -> list[str]:
    """Rewrite the Python scripts of ``root/bin`` whose interpreter is ``<prefix>/bin/<python>``
    to the relative trampoline (see the module docstring). ``root`` is where the tree is now,
    ``prefix`` the path it was relocated for. Files are replaced through a temp file and a
    rename, keeping mode and mtime; symlinks, ELF files and anything else are left alone.
    Returns the rewritten paths relative to ``root``. Raises StorageError."""
    bin_path = Path(root) / "bin"
    bin_dir = os.path.normpath(os.path.join(prefix, "bin"))
    if not bin_path.is_dir() or bin_path.is_symlink():
        return []
    changed: list[str] = []
    for entry in sorted(os.scandir(bin_path), key=lambda e: e.name):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise StorageError(f"{entry.path}: cannot stat: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SCRIPT_BYTES:
            continue
        interp_name = _interpreter_of(Path(entry.path))
        if interp_name is None:
            continue
        target = bin_path / interp_name
        if not (target.is_file() and os.access(target, os.X_OK)):
            continue
        try:
            data = Path(entry.path).read_bytes()
        except OSError as exc:
            raise StorageError(f"{entry.path}: cannot read: {exc.strerror}") from exc
        new = _rewrite(data, bin_dir)
        if new is None or new == data:
            continue
        _replace(Path(entry.path), new, st)
        changed.append(f"bin/{entry.name}")
    return changed


def _interpreter_of(path: Path) -> str | None:
    """The file name of the interpreter a script's header names, or None (cheap pre-check)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    match = _SH_TRAMPOLINE.match(head) or _SHEBANG.match(head)
    if match is None:
        return None
    return os.path.basename(os.fsdecode(match.group("interp")))


def _replace(path: Path, data: bytes, st: os.stat_result) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StorageError(f"{path}: cannot rewrite: {exc.strerror}") from exc
    try:
        with open(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(tmp)
        raise StorageError(f"{path}: cannot rewrite: {exc.strerror}") from exc
