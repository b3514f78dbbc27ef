"""Life after install: finding pybundle's installs, removing them, moving them.

Every operation here starts from an install receipt (:mod:`pybundle.installer.receipts`): a
directory without one is never removed or moved, and a link is removed or changed only when a
receipt records it and it still points into that install.

- :func:`find_installs`: installs in the index (:mod:`pybundle.installer.registry`), in the
  default install dir, in uv's managed-Python dir and in ``$(pyenv root)/versions``.
- :func:`resolve_installs`: what ``3.12``, ``cpython-3.12.1-linux-x86_64-gnu`` or a path means.
- :func:`uninstall`: rename the install aside (atomic: it is gone from its place at once),
  remove its links, delete it.
- :func:`relocate_install`: move an install and rewrite its paths with the same relocation as
  install (build prefix = the receipt's prefix); also repairs an install moved with plain ``mv``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from filelock import FileLock

from pybundle.errors import AlreadyExistsError, PybundleError, StorageError, UsageError
from pybundle.installer import layouts
from pybundle.installer.fsops import move_into_place, remove_tree, swap_into_place
from pybundle.installer.links import inside, link_target, remove_link, repoint_link
from pybundle.installer.receipts import (
    RECEIPT_NAME,
    FileEntry,
    Receipt,
    ReceiptError,
    hash_file,
    read_receipt,
    write_receipt,
)
from pybundle.installer.registry import InstallIndex
from pybundle.installer.relocate import relocate
from pybundle.installer.scripts import make_scripts_relative
from pybundle.versions import PythonVersion, parse_version_list

STAGING_PREFIX = ".pybundle-staging-"
REMOVING_PREFIX = ".pybundle-removing-"
"""Name prefix of an install renamed aside for deletion; the next install or uninstall in that
directory removes one left by a killed run."""


@dataclass(frozen=True)
class Installed:
    """An install pybundle found: ``path`` (absolute), its ``receipt`` (without the file list;
    None when damaged) and ``problem``: None, ``"damaged receipt: ..."`` or ``"moved: ..."``
    (the receipt names another prefix: a copy, or a plain ``mv``)."""

    path: Path
    receipt: Optional[Receipt]
    problem: Optional[str] = None

    @property
    def key(self) -> str:
        """The directory name, e.g. ``cpython-3.12.1-linux-x86_64-gnu`` or ``3.12.1``."""
        return self.path.name


def scanned_dirs() -> tuple[Path, ...]:
    """The directories whose installs are found by listing them (no index entry needed): the
    default install dir, uv's managed-Python dir and ``$(pyenv root)/versions``."""
    return (
        Path(os.path.abspath(layouts.default_install_dir())),
        layouts.uv_install_dir(),
        layouts.pyenv_versions_dir(),
    )


def index_worthy(path: Path) -> bool:
    """True for an install the index must remember: one outside :func:`scanned_dirs`."""
    return Path(os.path.abspath(path)).parent not in scanned_dirs()


def _candidates(index: InstallIndex | None) -> Iterator[Path]:
    seen: set[str] = set()
    for prefix in (index or InstallIndex()).prefixes():
        if prefix not in seen:
            seen.add(prefix)
            yield Path(prefix)
    for base in scanned_dirs():
        try:
            entries = sorted(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            path = os.path.normpath(os.path.abspath(entry))
            if path in seen or entry.name.startswith("."):
                continue
            seen.add(path)
            yield Path(path)


def inspect_install(path: Path) -> Optional[Installed]:
    """The install at ``path`` if it holds a receipt (as a regular file), else None."""
    path = Path(os.path.normpath(os.path.abspath(path)))
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or not os.path.lexists(path / RECEIPT_NAME):
        return None
    try:
        receipt = read_receipt(path, with_files=False)
    except ReceiptError as exc:
        return Installed(path, None, f"damaged receipt: {exc.message}")
    if receipt is None:
        return None
    if os.path.normpath(receipt.prefix) != str(path):
        return Installed(
            path, receipt, f"moved: the receipt says {receipt.prefix} (run pybundle relocate)"
        )
    return Installed(path, receipt)


def find_installs(index: InstallIndex | None = None) -> list[Installed]:
    """Every pybundle install found (see the module docstring), sorted by implementation,
    version and path. Directories without a receipt are skipped."""
    found = [i for p in _candidates(index) if (i := inspect_install(p)) is not None]

    def order(i: Installed) -> tuple[str, tuple[int, ...], str]:
        if i.receipt is None:
            return ("~", (), str(i.path))
        a = i.receipt.artifact
        nums = tuple(int(x) for x in a.version.split(".")[:3] if x.isdigit())
        return (a.implementation, nums, str(i.path))

    return sorted(found, key=order)


def missing_installs(index: InstallIndex | None = None) -> list[Path]:
    """Prefixes the index records that no longer exist (removed by hand, or moved with a plain
    ``mv``: ``pybundle relocate OLD NEW`` then repairs the moved install)."""
    return [Path(p) for p in (index or InstallIndex()).prefixes() if not os.path.lexists(p)]


def link_owner_lookup(index: InstallIndex | None = None) -> Callable[[Path], Optional[str]]:
    """An owner function for :mod:`pybundle.installer.links`: the prefix of the install whose
    receipt records a link path and into which that link still points, or None."""
    recorded: dict[str, list[str]] = {}
    for inst in find_installs(index):
        if inst.receipt is None or inst.problem:
            continue
        for link in inst.receipt.links:
            recorded.setdefault(os.path.normpath(link), []).append(inst.receipt.prefix)

    def owner(path: Path) -> Optional[str]:
        target = link_target(path)
        if target is None:
            return None
        for prefix in recorded.get(os.path.normpath(os.path.abspath(path)), []):
            if inside(target, prefix):
                return prefix
        return None

    return owner


def resolve_installs(spec: str, index: InstallIndex | None = None) -> list[Installed]:
    """The installs ``spec`` names: a path (it contains ``/`` or is an existing directory),
    an install's directory name or uv key (``cpython-3.12.1-linux-x86_64-gnu``, ``3.12.1`` for
    pyenv), or a version request (``3.12``, ``3.12.1``). Raises UsageError when nothing
    matches (the message lists what is installed) and AlreadyExistsError (exit 8) for a path
    that pybundle did not install (no receipt)."""
    if "/" in spec or (os.path.isdir(spec) and not spec.replace(".", "").isdigit()):
        path = Path(os.path.normpath(os.path.abspath(spec)))
        inst = inspect_install(path)
        if inst is None:
            raise AlreadyExistsError(
                f"{path}: has no install receipt; pybundle did not install it and will not touch it"
            )
        return [inst]
    installs = find_installs(index)
    named = [i for i in installs if i.key == spec] or [
        i for i in installs if i.receipt is not None and i.receipt.artifact.install_name == spec
    ]
    if named:
        return named
    try:
        requests = parse_version_list(spec)
    except PybundleError:
        requests = []
    matched = [
        i
        for i in installs
        if requests
        and i.receipt is not None
        and all(r.matches(PythonVersion.parse(i.receipt.artifact.version)) for r in requests)
    ]
    if matched:
        return matched
    have = ", ".join(str(i.path) for i in installs) or "none"
    raise UsageError(f"no pybundle install matches {spec!r} (installed: {have})")


def resolve_one(spec: str, index: InstallIndex | None = None) -> Installed:
    """:func:`resolve_installs` that must find exactly one; UsageError listing them otherwise."""
    found = resolve_installs(spec, index)
    if len(found) > 1:
        paths = ", ".join(str(i.path) for i in found)
        raise UsageError(
            f"{spec!r} matches {len(found)} installs ({paths}); name one by its path or key"
        )
    return found[0]


@contextlib.contextmanager
def locked_for(layout: str, parent: Path) -> Iterator[None]:
    """Hold the lock that guards installs in ``parent`` for ``layout``
    (:func:`pybundle.installer.layouts.lock_file`). Raises StorageError."""
    path = layouts.lock_file(layout, parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        lock.acquire()
    except OSError as exc:
        raise StorageError(f"{path}: cannot take the install lock: {exc}") from exc
    try:
        yield
    finally:
        lock.release()


def remove_leftovers(directory: Path) -> None:
    """Remove staging and set-aside trees of killed runs in ``directory`` (call under its
    lock: then no other pybundle run is using them)."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith((STAGING_PREFIX, REMOVING_PREFIX)):
            remove_tree(entry)


@dataclass(frozen=True)
class UninstallResult:
    """What :func:`uninstall` removed: the install's ``path``, its ``receipt``, the links
    removed, and the recorded links left alone because they no longer point into it."""

    path: Path
    receipt: Receipt
    removed_links: tuple[str, ...]
    kept_links: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to a fresh ``.pybundle-removing-*`` name beside it (atomic)."""
    aside = Path(tempfile.mkdtemp(prefix=f"{REMOVING_PREFIX}{path.name}-", dir=path.parent))
    os.rmdir(aside)
    os.rename(path, aside)
    return aside


def uninstall(spec: str, *, index: InstallIndex | None = None) -> UninstallResult:
    """Remove the install ``spec`` names (:func:`resolve_one`) and the links its receipt
    records that still point into it.

    Refused (AlreadyExistsError, exit 8) for a directory without a receipt, with a damaged
    receipt, or whose receipt names another prefix (a copy, or moved with ``mv``: run
    ``pybundle relocate`` first). Under the layout's lock the directory is renamed aside
    (atomic), its links removed, then the tree deleted. Raises StorageError when the rename
    is refused.
    """
    index = index or InstallIndex()
    inst = resolve_one(spec, index)
    if inst.receipt is None:
        raise AlreadyExistsError(
            f"{inst.path}: its install receipt is damaged ({inst.problem}); pybundle cannot "
            "prove it created this directory and will not remove it"
        )
    if inst.problem:
        raise AlreadyExistsError(
            f"{inst.path}: its receipt says it was installed at {inst.receipt.prefix}; a copy "
            f"or moved install is not removed (run `pybundle relocate {inst.receipt.prefix} "
            f"{inst.path}` first, or remove it yourself)"
        )
    layout = inst.receipt.layout
    parent = inst.path.parent
    removed: list[str] = []
    kept: list[str] = []
    warnings: list[str] = []
    with locked_for(layout, parent):
        again = inspect_install(inst.path)  # under the lock: still the same install?
        if again is None or again.receipt is None or again.problem:
            raise AlreadyExistsError(f"{inst.path}: changed during the uninstall; left as it is")
        try:
            aside = _set_aside(inst.path)
        except OSError as exc:
            raise StorageError(f"{inst.path}: cannot remove: {exc.strerror}") from exc
        for link in inst.receipt.links:
            (removed if remove_link(Path(link), inst.receipt.prefix) else kept).append(link)
        remove_tree(aside)
    index.update(remove=[str(inst.path)])
    if layout == "pyenv":
        warning = layouts.pyenv_rehash()
        if warning:
            warnings.append(warning)
    return UninstallResult(inst.path, inst.receipt, tuple(removed), tuple(kept), tuple(warnings))


@dataclass(frozen=True)
class RelocateResult:
    """What :func:`relocate_install` did: the tree now at ``path`` (was ``old_prefix``), the
    files rewritten (relative paths), the links updated or removed."""

    path: Path
    old_prefix: str
    layout: str
    rewritten: tuple[str, ...]
    links: tuple[str, ...]
    removed_links: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def _clone_tree(src: Path, dst: Path) -> None:
    """Recreate the tree ``src`` at the new directory ``dst``: regular files as hard links
    (copies across file systems), symlinks as symlinks, directory modes and mtimes kept.
    Relocation replaces the files it rewrites (temp file + rename; a hard-linked ELF file is
    copied before it is edited), so ``src`` stays intact until the new tree is in place."""
    can_link = True
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        here = dst if rel == "." else dst / rel
        if rel != ".":
            here.mkdir()
        for name in list(dirnames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                dirnames.remove(name)
                filenames.append(name)
        for name in filenames:
            full = os.path.join(dirpath, name)
            target = here / name
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(full), target)
                continue
            if can_link:
                try:
                    os.link(full, target, follow_symlinks=False)
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
                    can_link = False
            shutil.copy2(full, target, follow_symlinks=False)
    for dirpath, _dirnames, _files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        here = dst if rel == "." else dst / rel
        st = os.stat(dirpath)
        os.chmod(here, stat.S_IMODE(st.st_mode))
        os.utime(here, ns=(st.st_atime_ns, st.st_mtime_ns))


def _updated_files(
    receipt: Receipt, original: Path, staged: Path, rewritten: set[str], removed: set[str]
) -> tuple[FileEntry, ...]:
    """The receipt's file list after relocation: entries of files relocation rewrote get their
    new hash, but only when the original still matched the receipt (a file modified before is
    not laundered: it keeps the old record, so ``check`` still reports it); bytecode relocation
    removed is dropped."""
    out: list[FileEntry] = []
    for entry in receipt.files:
        if entry.path in removed:
            continue
        if entry.kind == "file" and entry.path in rewritten:
            try:
                before, _ = hash_file(str(original / entry.path))
                after, size = hash_file(str(staged / entry.path))
                mode = stat.S_IMODE(os.lstat(staged / entry.path).st_mode)
            except OSError as exc:
                raise StorageError(f"{staged / entry.path}: cannot read: {exc.strerror}") from exc
            if before == entry.sha256:
                entry = replace(entry, sha256=after, size=size, mode=mode)
        out.append(entry)
    return tuple(out)


def relocate_install(
    old: Path | str, new: Path | str, *, index: InstallIndex | None = None
) -> RelocateResult:
    """Move the install at ``old`` to ``new`` and relocate it there; or, when ``old`` is gone
    and ``new`` holds an install whose receipt says it was installed at ``old`` (moved with a
    plain ``mv``), relocate it in place.

    The tree is cloned beside ``new`` (hard links), relocated from the receipt's prefix with
    :func:`pybundle.installer.relocate.relocate`, its scripts made relative, its receipt updated
    (prefix, layout, rewritten files' hashes) and renamed into place; then the recorded links
    that point into the old place are pointed into the new one (uv's minor-version link is
    removed when the install leaves uv's directory), and the old tree is removed. A failure
    before the rename leaves the original untouched.

    Raises AlreadyExistsError (no receipt, a copy, ``new`` exists and is not empty),
    UsageError (``new`` inside ``old`` or the same), StorageError, and relocation's errors.
    """
    index = index or InstallIndex()
    old_path = Path(os.path.normpath(os.path.abspath(old)))
    new_path = Path(os.path.normpath(os.path.abspath(new)))
    in_place = not os.path.lexists(old_path)
    tree = new_path if in_place else old_path
    inst = inspect_install(tree)
    if inst is None or inst.receipt is None:
        raise AlreadyExistsError(
            f"{tree}: has no readable install receipt; pybundle did not install it and will "
            "not move it"
        )
    receipt = read_receipt(tree)
    assert receipt is not None
    if in_place:
        if os.path.normpath(receipt.prefix) != str(old_path):
            raise AlreadyExistsError(
                f"{new_path}: its receipt says it was installed at {receipt.prefix}, not "
                f"{old_path}; nothing was changed"
            )
    else:
        if inst.problem:
            raise AlreadyExistsError(
                f"{old_path}: its receipt says it was installed at {receipt.prefix}; it is a "
                f"copy or was moved (run `pybundle relocate {receipt.prefix} {old_path}`)"
            )
        if new_path == old_path or inside(str(new_path), str(old_path)):
            raise UsageError(f"{new_path}: cannot move an install into itself")
        _check_free(new_path)
    old_prefix = receipt.prefix
    old_layout = receipt.layout
    if new_path.parent == Path(old_prefix).parent:
        new_layout = old_layout
    else:
        new_layout = layouts.layout_of_place(new_path)
    try:
        new_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{new_path.parent}: cannot create: {exc.strerror}") from exc
    guarded = {(new_layout, new_path.parent)}
    if not in_place:
        guarded.add((old_layout, old_path.parent))
    with contextlib.ExitStack() as locks:
        for layout_name, parent in sorted(guarded):
            locks.enter_context(locked_for(layout_name, parent))
        remove_leftovers(new_path.parent)
        if not in_place:
            _check_free(new_path)
        keep_links, drop_links = _link_moves(receipt, new_layout, new_path)
        staged, rewritten, removed_bytecode = _stage_relocated(tree, new_path, old_prefix)
        try:
            files = _updated_files(receipt, tree, staged, set(rewritten), set(removed_bytecode))
            write_receipt(
                staged,
                replace(
                    receipt,
                    prefix=str(new_path),
                    layout=new_layout,
                    links=tuple(keep_links),
                    files=files,
                ),
            )
            if in_place:
                swap_into_place(staged, new_path)  # staged now holds the unrelocated tree
            elif os.path.isdir(new_path) and not os.path.islink(new_path):
                os.rename(staged, new_path)  # an empty directory: rename(2) replaces it
            else:
                move_into_place(staged, new_path)
        except OSError as exc:
            remove_tree(staged)
            raise StorageError(f"{new_path}: cannot move the install into place: {exc}") from exc
        except BaseException:
            remove_tree(staged)
            raise
        if in_place:
            remove_tree(staged)
        else:
            try:
                remove_tree(_set_aside(old_path))
            except OSError as exc:
                raise StorageError(
                    f"{old_path}: the install was moved to {new_path} but the old tree could "
                    f"not be removed: {exc.strerror}"
                ) from exc
        moved = [
            link
            for link in keep_links
            if repoint_link(Path(link), old_prefix, str(new_path)) is not None
        ]
        removed = [link for link in drop_links if remove_link(Path(link), old_prefix)]
    index.update(
        add=[str(new_path)] if index_worthy(new_path) else [], remove=[old_prefix, str(old_path)]
    )
    warnings = []
    if "pyenv" in (old_layout, new_layout):
        warning = layouts.pyenv_rehash()
        if warning:
            warnings.append(warning)
    return RelocateResult(
        new_path,
        old_prefix,
        new_layout,
        tuple(rewritten),
        tuple(moved),
        tuple(removed),
        tuple(warnings),
    )


def _check_free(path: Path) -> None:
    """``path`` must be absent or an empty directory (not a symlink)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and not any(os.scandir(path)):
        return
    raise AlreadyExistsError(
        f"{path}: already exists; pybundle moves an install only to a new place"
    )


def _stage_relocated(tree: Path, dest: Path, old_prefix: str) -> tuple[Path, list[str], list[str]]:
    """Clone ``tree`` into a staging dir beside ``dest`` and relocate it from ``old_prefix`` to
    ``dest``. Returns (staging dir, rewritten paths, removed bytecode paths), root-relative."""
    try:
        staged = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{dest.name}-", dir=dest.parent))
    except OSError as exc:
        raise StorageError(f"{dest.parent}: cannot create a staging directory: {exc}") from exc
    try:
        _clone_tree(tree, staged)
        report = relocate(staged, old_prefix, str(dest))
        rewritten = [p.as_posix() for p in (*report.text_files, *report.elf_files)]
        rewritten += make_scripts_relative(staged, str(dest))
        removed = [p.as_posix() for p in report.removed_bytecode]
    except OSError as exc:
        remove_tree(staged)
        raise StorageError(f"{dest}: cannot relocate the install: {exc.strerror or exc}") from exc
    except BaseException:
        remove_tree(staged)
        raise
    return staged, sorted(set(rewritten)), removed


def _link_moves(receipt: Receipt, new_layout: str, new_path: Path) -> tuple[list[str], list[str]]:
    """(links kept and pointed into the new place, links to remove). A recorded link whose
    target is the install directory itself is uv's minor-version link: it follows the install
    within uv's directory and is removed when the install leaves it."""
    keep: list[str] = []
    drop: list[str] = []
    for link in receipt.links:
        target = link_target(Path(link))
        alias = target is not None and os.path.normpath(target) == os.path.normpath(receipt.prefix)
        if alias and not (new_layout == "uv" and Path(link).parent == new_path.parent):
            drop.append(link)
        else:
            keep.append(link)
    return keep, drop
