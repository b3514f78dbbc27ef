"""Executable links to installed interpreters, like uv's: ``python3.12`` (and ``python3`` /
``python`` with ``--default``) in the user's executable directory.

The directory is ``$PYBUNDLE_BIN_DIR``, else ``~/.local/bin`` (where uv and pipx put theirs on
Linux). A link is absolute and points at ``<prefix>/bin/<executable>``. pybundle never replaces
a file or a link it did not make: a link counts as pybundle's only when an install receipt
records it *and* it still points into that install (see :func:`inspect_link`); even then it is
replaced only with ``--force``. Every link made is recorded in the receipt of the install it
points into, and :func:`remove_link` removes a link only while it still points into the install
being removed.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pybundle.errors import AlreadyExistsError, StorageError
from pybundle.manifest import Artifact

BIN_DIR_ENV = "PYBUNDLE_BIN_DIR"

LinkOwner = Callable[[Path], Optional[str]]
"""``owner(link path)``: the prefix of the pybundle install whose receipt records this link
and into which it still points, or None."""


def default_bin_dir() -> Path:
    """``$PYBUNDLE_BIN_DIR``, else ``~/.local/bin``."""
    env = os.environ.get(BIN_DIR_ENV)
    if env:
        return Path(os.path.abspath(Path(env).expanduser()))
    return Path.home() / ".local" / "bin"


def executable_names(artifact: Artifact, *, default: bool) -> list[tuple[str, str]]:
    """``(link name, executable in bin/)`` pairs for ``artifact``: ``python3.12`` (uv's name;
    ``python3.13t`` for free-threaded builds, ``pypy3.10`` for PyPy), plus ``python3`` and
    ``python`` when ``default``."""
    m = re.match(r"(\d+)\.(\d+)", artifact.version)
    minor = f"{m.group(1)}.{m.group(2)}" if m else artifact.version
    stem = "pypy" if artifact.implementation == "pypy" else "python"
    suffix = "t" if artifact.variant.startswith("freethreaded") else ""
    exe = f"{stem}{minor}{suffix}"
    names = [(exe, exe)]
    if default:
        names += [(f"{stem}3", exe), (stem, exe)]
    return names


@dataclass(frozen=True)
class LinkPlan:
    """One link to make: ``path`` (absolute) -> ``target`` (absolute). ``action`` is
    ``create`` (nothing there), ``replace`` (a pybundle link of another install, ``--force``),
    ``keep`` (already exactly this link) or ``skip`` (pybundle's link to another install,
    left as it is without ``--force``; ``note`` says so)."""

    path: Path
    target: str
    action: str
    note: str = ""


def inside(target: str, prefix: str) -> bool:
    """True when the absolute path ``target`` is ``prefix`` or lies under it (lexically)."""
    target = os.path.normpath(target)
    prefix = os.path.normpath(prefix)
    return target == prefix or target.startswith(prefix.rstrip("/") + "/")


def link_target(path: Path) -> Optional[str]:
    """The absolute, normalised target of the symlink ``path`` (a relative target is taken
    relative to the link's directory, nothing is followed), or None when ``path`` is not a
    symlink or does not exist."""
    try:
        text = os.readlink(path)
    except OSError:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), text))


def inspect_link(path: Path, target: str, *, force: bool, owner: LinkOwner) -> LinkPlan:
    """Decide what to do about a wanted link ``path`` -> ``target``.

    Nothing there: ``create``. The same link already: ``keep``. A link that a receipt records
    and that points into that install: ``replace`` with ``force``, else ``skip`` (the link
    stays with the other install; the plan's ``note`` says how to move it). Anything else
    (a file, a directory, a link pybundle did not make, a dangling link no receipt records)
    raises AlreadyExistsError (exit 8) whatever ``force`` says. Raises StorageError when
    ``path`` cannot be inspected.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return LinkPlan(path, target, "create")
    except OSError as exc:
        raise StorageError(f"{path}: cannot inspect: {exc.strerror}") from exc
    if not stat.S_ISLNK(st.st_mode):
        raise AlreadyExistsError(
            f"{path}: exists and pybundle did not create it; pybundle never replaces it, even "
            "with --force (remove it yourself, or install with --no-bin)"
        )
    current = link_target(path)
    if current == os.path.normpath(target):
        return LinkPlan(path, target, "keep")
    mine = owner(path)
    if mine is None:
        raise AlreadyExistsError(
            f"{path}: is a link to {current} that pybundle did not create; pybundle never "
            "replaces it, even with --force (remove it yourself, or install with --no-bin)"
        )
    if not force:
        return LinkPlan(
            path,
            target,
            "skip",
            f"{path}: left linked to pybundle's install {mine}; use --force to point it here",
        )
    return LinkPlan(path, target, "replace")


def make_link(plan: LinkPlan, *, owner: LinkOwner) -> None:
    """Carry out ``plan``. ``create`` uses symlink(2), which fails if something appeared in
    the meantime; ``replace`` checks again that the link is still pybundle's, then renames a
    new link over it (atomic). Raises AlreadyExistsError or StorageError."""
    path = plan.path
    if plan.action in ("keep", "skip"):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if plan.action == "create":
            os.symlink(plan.target, path)
            return
        tmp = path.with_name(f".{path.name}.pybundle-{secrets.token_hex(4)}")
        os.symlink(plan.target, tmp)
        try:
            if owner(path) is None:
                raise AlreadyExistsError(
                    f"{path}: changed during the install and is no longer pybundle's; left as is"
                )
            os.replace(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    except FileExistsError as exc:
        raise AlreadyExistsError(
            f"{path}: appeared during the install; pybundle left it as it is"
        ) from exc
    except OSError as exc:
        raise StorageError(f"{path}: cannot create the link: {exc.strerror}") from exc


def remove_link(path: Path, prefix: str) -> bool:
    """Remove the symlink ``path`` if it points into ``prefix`` (the install being removed or
    moved); anything else, including a link that now points elsewhere, is left alone.
    Returns True when the link was removed. Raises StorageError if unlink fails."""
    current = link_target(path)
    if current is None or not inside(current, prefix):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"{path}: cannot remove the link: {exc.strerror}") from exc
    return True


def repoint_link(path: Path, old_prefix: str, new_prefix: str) -> Optional[str]:
    """Point the symlink ``path``, which points into ``old_prefix``, at the same place under
    ``new_prefix`` (atomically: a new link renamed over it). Returns the new target, or None
    when ``path`` no longer points into ``old_prefix`` (then it is left alone).
    Raises StorageError."""
    current = link_target(path)
    if current is None or not inside(current, old_prefix):
        return None
    rest = os.path.relpath(current, os.path.normpath(old_prefix))
    target = os.path.normpath(os.path.join(new_prefix, rest))
    tmp = path.with_name(f".{path.name}.pybundle-{secrets.token_hex(4)}")
    try:
        os.symlink(target, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise StorageError(f"{path}: cannot update the link: {exc.strerror}") from exc
    return target


def on_path(directory: Path, path_env: Optional[str] = None) -> bool:
    """True when ``directory`` is one of the entries of ``$PATH`` (``path_env`` if given),
    compared after resolving symlinks."""
    entries = (os.environ.get("PATH", "") if path_env is None else path_env).split(os.pathsep)
    wanted = os.path.realpath(directory)
    return any(e and os.path.realpath(os.path.expanduser(e)) == wanted for e in entries)


def path_hint(directory: Path) -> str:
    """The shell line that puts ``directory`` on PATH (for ``~/.profile`` or ``~/.bashrc``)."""
    return f'export PATH="{directory}:$PATH"'
