"""Install layouts: where an interpreter goes, which lock guards that place, and what the
neighbours (uv, pyenv) need to treat the install as one of their own.

Three layouts (recorded in every receipt as ``layout``):

``pybundle``
    ``<install dir>/<uv install name>`` (``$PYBUNDLE_INSTALL_DIR``, else
    ``~/.local/share/pybundle/python``), or exactly ``--prefix``. Lock: ``.pybundle.lock`` in the
    parent directory.
``uv``
    uv's managed-Python directory: ``$UV_PYTHON_INSTALL_DIR``, else ``$XDG_DATA_HOME/uv/python``,
    else ``~/.local/share/uv/python`` (uv's ``StateStore``: the user data dir + ``uv``, then
    ``python``), under uv's name ``cpython-3.12.1-linux-x86_64-gnu``. Measured on uv 0.13.8
    (strace of an offline ``uv python install``): uv takes ``flock(LOCK_EX)`` on ``<dir>/.lock``
    while it writes there, creates ``.gitignore`` (``*``) and ``.temp/`` when it creates the
    directory, writes ``BUILD`` (the PBS release) at the top of the install and
    ``lib/python3.X/EXTERNALLY-MANAGED`` (PEP 668), and links the minor version
    ``cpython-3.12-linux-x86_64-gnu`` to the newest patch it installed (an absolute symlink).
    uv finds installs by directory name alone; pybundle takes the same ``.lock`` (flock, which
    :mod:`filelock` uses on Unix too), so a concurrent ``uv python install/uninstall`` waits.
``pyenv``
    ``$(pyenv root)/versions/<name>``, ``pyenv root`` being ``$PYENV_ROOT`` or ``~/.pyenv``
    (libexec/pyenv). ``pyenv versions`` lists every directory there, so nothing else is left
    in ``versions/``: the lock lives in pybundle's state dir, and ``pyenv rehash`` is run after
    a change so that the shims know the new executables.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import platformdirs

from pybundle.errors import StorageError, UsageError
from pybundle.installer.policy import default_state_dir
from pybundle.manifest import Artifact

LAYOUTS = ("pybundle", "uv", "pyenv")
INSTALL_DIR_ENV = "PYBUNDLE_INSTALL_DIR"
UV_INSTALL_DIR_ENV = "UV_PYTHON_INSTALL_DIR"
UV_LOCK_NAME = ".lock"
PYBUNDLE_LOCK_NAME = ".pybundle.lock"
UV_EXTERNALLY_MANAGED = (
    "[externally-managed]\n"
    "Error=This Python installation is managed by uv and should not be modified.\n"
)
"""The text uv 0.13.8 writes to ``lib/python3.X/EXTERNALLY-MANAGED`` (read from an install)."""
_PYENV_VARIANT_SUFFIX = {
    "default": "",
    "freethreaded": "t",
    "debug": "-debug",
    "freethreaded+debug": "t-debug",
}


def default_install_dir() -> Path:
    """``$PYBUNDLE_INSTALL_DIR``, else ``<user data dir>/pybundle/python``
    (``~/.local/share/pybundle/python`` on Linux)."""
    env = os.environ.get(INSTALL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("pybundle")) / "python"


def check_layout(layout: str) -> str:
    """``layout`` if it is one of :data:`LAYOUTS`; UsageError otherwise."""
    if layout not in LAYOUTS:
        raise UsageError(f"unknown --layout {layout!r} (choose pybundle, uv or pyenv)")
    return layout


def uv_install_dir() -> Path:
    """uv's managed-Python directory on this host (see the module docstring)."""
    env = os.environ.get(UV_INSTALL_DIR_ENV)
    if env:
        return Path(os.path.abspath(Path(env).expanduser()))
    data = os.environ.get("XDG_DATA_HOME")
    base = Path(data) if data and os.path.isabs(data) else Path.home() / ".local" / "share"
    return base / "uv" / "python"


def pyenv_root() -> Path:
    """``$PYENV_ROOT``, else ``~/.pyenv``: what ``pyenv root`` prints (libexec/pyenv)."""
    env = os.environ.get("PYENV_ROOT")
    return Path(os.path.abspath(Path(env).expanduser())) if env else Path.home() / ".pyenv"


def pyenv_versions_dir() -> Path:
    """``$(pyenv root)/versions``."""
    return pyenv_root() / "versions"


def pyenv_version_name(artifact: Artifact) -> str:
    """pyenv's name for an interpreter: ``3.12.1`` for CPython, with pyenv's suffixes ``t``
    (free-threaded, as in ``3.13.0t``) and ``-debug``; ``pypy3.10-<version>`` style names are
    not derivable from a manifest, so other implementations get ``<impl>-<version>``."""
    suffix = _PYENV_VARIANT_SUFFIX.get(artifact.variant, "")
    if artifact.implementation == "cpython":
        return f"{artifact.version}{suffix}"
    return f"{artifact.implementation}-{artifact.version}{suffix}"


def uv_minor_link_name(artifact: Artifact) -> Optional[str]:
    """uv's minor-version link name, ``cpython-3.12-linux-x86_64-gnu`` (variants as
    ``cpython-3.13+freethreaded-...``), or None where uv makes none (not CPython, or a
    prerelease)."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.\d+", artifact.version)
    if artifact.implementation != "cpython" or m is None:  # no match: a prerelease
        return None
    variant = "" if artifact.variant == "default" else f"+{artifact.variant}"
    return (
        f"{artifact.implementation}-{m.group(1)}.{m.group(2)}{variant}-"
        f"{artifact.target.install_key}"
    )


def destinations(
    layout: str,
    selected: list[Artifact],
    *,
    install_dir: Path | None,
    prefix: Path | None,
    pyenv_name: str | None,
    default_install_dir: Path,
) -> list[Path]:
    """The absolute install directory of each selected artifact under ``layout``.

    ``prefix`` (exactly one interpreter) and ``install_dir`` apply to the pybundle layout;
    ``pyenv_name`` (exactly one interpreter) to the pyenv layout. Raises UsageError for a
    combination that does not apply.
    """
    check_layout(layout)
    if install_dir is not None and prefix is not None:
        raise UsageError("--install-dir and --prefix cannot be used together")
    if layout != "pybundle" and (install_dir is not None or prefix is not None):
        where = "UV_PYTHON_INSTALL_DIR" if layout == "uv" else "PYENV_ROOT"
        raise UsageError(
            f"--install-dir and --prefix apply to the pybundle layout; the {layout} layout "
            f"installs where {layout} looks (set {where} to change it)"
        )
    if pyenv_name is not None and layout != "pyenv":
        raise UsageError("--pyenv-name applies only to --layout pyenv")
    if layout == "pybundle" and prefix is not None:
        if len(selected) != 1:
            names = ", ".join(a.install_name for a in selected)
            raise UsageError(
                f"--prefix needs exactly one interpreter, the bundle selection has {len(selected)} "
                f"({names}); choose one with --versions"
            )
        return [Path(os.path.abspath(prefix))]
    if layout == "pybundle":
        base = Path(os.path.abspath(install_dir or default_install_dir))
        return [base / a.install_name for a in selected]
    if layout == "uv":
        base = uv_install_dir()
        return [base / a.install_name for a in selected]
    versions = pyenv_versions_dir()
    if pyenv_name is not None:
        if len(selected) != 1:
            raise UsageError(
                f"--pyenv-name needs exactly one interpreter, the bundle selection has "
                f"{len(selected)}; choose one with --versions"
            )
        if pyenv_name in ("", ".", "..") or "/" in pyenv_name or pyenv_name.startswith("."):
            raise UsageError(f"--pyenv-name {pyenv_name!r} is not a plain directory name")
        return [versions / pyenv_name]
    return [versions / pyenv_version_name(a) for a in selected]


def layout_of_place(path: Path) -> str:
    """The layout a directory at ``path`` belongs to by where it is: ``uv`` inside uv's
    managed-Python dir, ``pyenv`` inside ``$(pyenv root)/versions``, else ``pybundle``."""
    parent = Path(os.path.abspath(path)).parent
    if parent == uv_install_dir():
        return "uv"
    if parent == pyenv_versions_dir():
        return "pyenv"
    return "pybundle"


def lock_file(layout: str, parent: Path) -> Path:
    """The lock file that serialises changes to installs in ``parent`` (see the module
    docstring): uv's own ``.lock``, a file in pybundle's state dir for pyenv, else
    ``parent/.pybundle.lock``."""
    if layout == "uv":
        return parent / UV_LOCK_NAME
    if layout == "pyenv":
        digest = hashlib.sha256(os.fsencode(os.path.abspath(parent))).hexdigest()[:16]
        return default_state_dir() / "locks" / f"pyenv-{digest}.lock"
    return parent / PYBUNDLE_LOCK_NAME


def prepare_parent(layout: str, parent: Path) -> None:
    """Create the directory installs go to. For the uv layout, a directory created here gets
    what uv puts in one it creates (``.gitignore`` holding ``*``, and ``.temp/``). For the pyenv
    layout the lock's directory in the state dir is created. Raises StorageError."""
    try:
        created = not parent.exists()
        parent.mkdir(parents=True, exist_ok=True)
        if layout == "uv" and created:
            (parent / ".gitignore").write_text("*")
            (parent / ".temp").mkdir(exist_ok=True)
        if layout == "pyenv":
            lock_file(layout, parent).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"{parent}: cannot create the install directory: {exc.strerror}"
        ) from exc


def stdlib_dir(root: Path) -> Optional[Path]:
    """The standard library directory of the tree at ``root`` (``lib/python3.X`` or
    ``lib/pypy3.X``: the one holding ``os.py``), or None."""
    lib = root / "lib"
    if not lib.is_dir() or lib.is_symlink():
        return None
    for entry in sorted(lib.iterdir()):
        if (
            entry.name.startswith(("python", "pypy"))
            and entry.is_dir()
            and not entry.is_symlink()
            and (entry / "os.py").is_file()
        ):
            return entry
    return None


def write_layout_files(layout: str, root: Path, artifact: Artifact) -> list[str]:
    """Write what ``layout`` adds to a staged tree at ``root``; returns the root-relative paths
    written. uv: ``BUILD`` (the build, e.g. the PBS release ``20260814``) and
    ``lib/python3.X/EXTERNALLY-MANAGED`` (uv's text). Other layouts: nothing.
    Raises StorageError."""
    if layout != "uv":
        return []
    written: list[str] = []
    try:
        (root / "BUILD").write_text(artifact.build)
        written.append("BUILD")
        stdlib = stdlib_dir(root)
        if stdlib is not None:
            target = stdlib / "EXTERNALLY-MANAGED"
            if not target.exists():
                target.write_text(UV_EXTERNALLY_MANAGED)
                written.append(target.relative_to(root).as_posix())
    except OSError as exc:
        raise StorageError(f"{root}: cannot write uv's layout files: {exc.strerror}") from exc
    return written


def pyenv_rehash(root: Path | None = None) -> Optional[str]:
    """Run ``pyenv rehash`` for ``root`` (default :func:`pyenv_root`) so its shims know the
    executables of a new or removed version. Returns None on success, else a one-line warning
    (pyenv not on PATH, or rehash failed); never raises."""
    exe = shutil.which("pyenv")
    root = root or pyenv_root()
    if exe is None:
        return "pyenv is not on PATH; run `pyenv rehash` to update its shims"
    try:
        proc = subprocess.run(
            [exe, "rehash"],
            env={**os.environ, "PYENV_ROOT": str(root)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`pyenv rehash` failed: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return f"`pyenv rehash` failed: {last}"
    return None
