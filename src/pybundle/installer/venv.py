"""``pybundle install --venv DIR``: a virtual environment made by an interpreter pybundle
installed, holding its target's wheelhouse, with no network.

Steps (:func:`create_venv`):

1. ``DIR`` must be absent or an empty directory (anything else is refused: pybundle never
   replaces what it did not create);
2. the signature is checked again and the target's wheels and lock are copied out of the
   bundle into a private directory beside ``DIR``, each re-hashed against the signed manifest
   (:func:`pybundle.installer.wheelhouse.copy_wheelhouse`) before pip sees any of them;
3. ``python -I -m venv`` builds the environment in ``.DIR.pybundle-venv-XXXXXXXX`` beside
   ``DIR`` (same file system; its pip comes from the interpreter's own ``ensurepip``);
4. the environment's pip installs the lock, offline: ``python -I -m pip install --isolated
   --no-index --find-links WHEELS --require-hashes --no-compile -r lock.txt`` (no index, no
   user configuration, every wheel checked against the lock's sha256 by pip too);
5. the staging path is replaced by ``DIR`` in what records it (``bin/`` scripts' ``#!`` lines
   and activate scripts, ``pyvenv.cfg``), the installed packages are byte-compiled with their
   final paths (``compileall -s STAGING -p DIR``), and the directory is renamed to ``DIR``.

Any failure removes the staging directory and the wheel copies: ``DIR`` is then as it was.
Nothing outside ``DIR`` and the staging directories is touched.

The environment has the POSIX layout (``bin/python``, ``lib/python3.X/site-packages``), which
``venv`` makes on Linux and macOS, the hosts pybundle's installer runs on (extraction needs
``os.O_NOFOLLOW`` and ``os.O_DIRECTORY``, which Windows lacks, and only interpreters that run
on the host are installed): the wheelhouse used is always the host's. A bundle's Windows
wheelhouse is for ``pybundle wheels export`` and the target's own pip or uv.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pybundle.errors import AlreadyExistsError, StorageError, UsageError
from pybundle.installer.fsops import move_into_place, remove_tree
from pybundle.installer.pipsteps import make_venv, offline_pip, run_step
from pybundle.installer.source import BundleSource
from pybundle.installer.verify import verify_manifest
from pybundle.installer.wheelhouse import copy_wheelhouse, wheelhouse_for
from pybundle.manifest import Artifact
from pybundle.signing import PublicKey
from pybundle.wheelhouse import Wheelhouse

__all__ = [
    "STAGING_PREFIX",
    "VenvResult",
    "check_venv_destination",
    "create_venv",
    "find_installed",
    "python_of",
]

STAGING_PREFIX = ".pybundle-venv-"


@dataclass(frozen=True)
class VenvResult:
    """A venv made: its ``path``, the ``python`` that made it, the wheelhouse ``key``, the
    number of ``wheels`` installed, the requirements ``missing`` from the wheelhouse, and
    ``seconds`` it took."""

    path: Path
    python: Path
    key: str
    wheels: int
    missing: tuple[str, ...]
    seconds: float

    def to_json(self) -> dict[str, object]:
        """``{"path", "python", "wheelhouse", "wheels", "missing", "seconds"}``."""
        return {
            "path": str(self.path),
            "python": str(self.python),
            "wheelhouse": self.key,
            "wheels": self.wheels,
            "missing": list(self.missing),
            "seconds": round(self.seconds, 3),
        }


def check_venv_destination(dest: Path) -> Path:
    """``dest`` made absolute, when it is absent or an empty directory and its nearest existing
    ancestor is a writable directory (missing parents are created when the environment is
    made). Raises AlreadyExistsError (it holds something, or is not a directory) or
    StorageError (no writable directory to make it in) naming it."""
    dest = Path(os.path.abspath(dest))
    ancestor = dest.parent
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise StorageError(f"{ancestor}: is not a directory; cannot make {dest}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise StorageError(f"{ancestor}: not writable; cannot make {dest}")
    if os.path.lexists(dest):
        if dest.is_symlink() or not dest.is_dir():
            raise AlreadyExistsError(f"{dest}: exists and is not a directory; --venv refuses it")
        try:
            empty = not any(os.scandir(dest))
        except OSError as exc:
            raise StorageError(f"{dest}: cannot read: {exc.strerror}") from exc
        if not empty:
            raise AlreadyExistsError(
                f"{dest}: exists and is not empty; --venv makes a new environment only"
            )
    return dest


def _repoint(staging: Path, dest: Path) -> None:
    """Replace the staging path by ``dest`` in the venv's files that record it: regular files
    in ``bin/`` (script ``#!`` lines, activate scripts) and ``pyvenv.cfg``."""
    old, new = os.fsencode(staging), os.fsencode(dest)
    candidates = [staging / "pyvenv.cfg"]
    with os.scandir(staging / "bin") as entries:
        candidates += [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
    for path in candidates:
        data = path.read_bytes()
        if old in data:
            mode = path.stat().st_mode
            tmp = path.with_name(path.name + ".pybundle-tmp")
            tmp.write_bytes(data.replace(old, new))
            os.chmod(tmp, mode & 0o7777)
            os.replace(tmp, path)


def create_venv(
    bundle: Path,
    trusted: Sequence[PublicKey],
    artifact: Artifact,
    python: Path,
    dest: Path,
) -> VenvResult:
    """Make a venv at ``dest`` with ``python`` (an installed interpreter of ``artifact``) and
    install the wheelhouse that serves ``artifact`` in ``bundle`` (signature checked against
    ``trusted``); see the module docstring.

    Raises AlreadyExistsError (``dest`` not absent or empty), UsageError (no wheelhouse for
    the interpreter), SignatureError / ManifestError / HashMismatchError (the bundle or a
    wheel is not what was signed: nothing ran), StorageError (a step failed; its last error
    line is in the message). Nothing is left behind when one is raised.
    """
    started = time.monotonic()
    dest = check_venv_destination(dest)
    parent = dest.parent
    created = [p for p in (parent, *parent.parents) if not os.path.lexists(p)]
    staging = wheels_dir = None
    try:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}{STAGING_PREFIX}", dir=parent))
            wheels_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.wheels-", dir=parent))
            os.chmod(staging, 0o755)
        except OSError as exc:
            raise StorageError(f"{parent}: cannot create the environment: {exc.strerror}") from exc
        with BundleSource(bundle) as source:
            manifest = verify_manifest(source, trusted).manifest
            house: Wheelhouse = wheelhouse_for(manifest, artifact, str(bundle))
            wheels, lock = copy_wheelhouse(source, manifest, house, wheels_dir)
        env_python = make_venv(python, staging)
        if wheels:
            run_step(
                [
                    *offline_pip(env_python, wheels_dir),
                    "--no-compile",
                    "--require-hashes",
                    "-r",
                    str(lock),
                ],
                f"install the wheels of {house.key} into {dest}",
            )
        _repoint(staging, dest)
        site = staging / "lib"
        run_step(
            [
                str(env_python),
                "-I",
                "-m",
                "compileall",
                "-q",
                "-f",
                "-s",
                str(staging),
                "-p",
                str(dest),
                str(site),
            ],
            f"byte-compile {dest}",
        )
        if os.path.isdir(dest):
            try:
                os.rmdir(dest)  # empty, checked above: the environment takes its place
            except OSError as exc:
                raise AlreadyExistsError(
                    f"{dest}: is no longer empty; --venv makes a new environment only"
                ) from exc
        try:
            move_into_place(staging, dest)
        except FileExistsError as exc:
            raise AlreadyExistsError(f"{dest}: appeared while the environment was made") from exc
        except OSError as exc:
            raise StorageError(f"{dest}: cannot move the environment into place: {exc}") from exc
        staging = None
    except BaseException:
        if staging is not None:
            remove_tree(staging)
        if wheels_dir is not None:
            shutil.rmtree(wheels_dir, ignore_errors=True)
            wheels_dir = None
        for made in created:  # the parents made for it, innermost first, when still empty
            try:
                os.rmdir(made)
            except OSError:
                break
        raise
    finally:
        if wheels_dir is not None:
            shutil.rmtree(wheels_dir, ignore_errors=True)
    return VenvResult(
        dest,
        python,
        house.key,
        len(wheels),
        tuple(m.requirement for m in house.missing),
        time.monotonic() - started,
    )


def python_of(prefix: Path, artifact: Artifact) -> Path:
    """The interpreter of an install of ``artifact`` at ``prefix``: ``bin/python3.X``.
    Raises UsageError when it is not there."""
    parts = artifact.version.split(".")
    path = prefix / "bin" / f"python{parts[0]}.{parts[1]}"
    if not path.exists():
        raise UsageError(f"{prefix}: has no bin/{path.name} to make a venv with")
    return path


def find_installed(artifact: Artifact) -> Optional[Path]:
    """An existing pybundle install of exactly ``artifact`` (same archive file name and
    sha256, per its receipt, at the prefix its receipt names), found as ``pybundle list``
    finds installs (:func:`pybundle.installer.lifecycle.find_installs`), or None."""
    from pybundle.installer.lifecycle import find_installs

    for found in find_installs():
        r = found.receipt
        if (
            r is not None
            and found.problem is None
            and r.artifact.sha256 == artifact.sha256
            and r.artifact.file_name == artifact.file_name
        ):
            return found.path
    return None
