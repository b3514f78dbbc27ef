"""Installing interpreters from a verified bundle, in the order that keeps hosts safe.

1. verify the manifest's signature against trusted keys, validate the manifest, check the host;
2. re-hash every selected archive against the manifest before a byte is extracted;
3. extract each into a staging dir beside its destination (same file system), safely;
4. relocate the staged tree from its build prefix to the final prefix;
5. rename it into place (atomically swapping with an existing install under ``--force``).

A lock file in the install dir serialises concurrent installs; staging dirs left by a killed
run are removed by the next one. On any failure the staging dir is removed and an existing
install is left untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import multiprocessing
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from filelock import FileLock

from pybundle.archives import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_RATIO
from pybundle.errors import (
    AlreadyExistsError,
    ManifestError,
    PlatformMismatchError,
    StorageError,
    UsageError,
)
from pybundle.fileindex import IndexReader
from pybundle.hashing import check_digest
from pybundle.installer import layouts
from pybundle.installer.extract import ExtractStats, extract_archive
from pybundle.installer.fsops import move_into_place, remove_tree, swap_into_place
from pybundle.installer.layouts import INSTALL_DIR_ENV, check_layout, default_install_dir
from pybundle.installer.lifecycle import REMOVING_PREFIX, index_worthy, link_owner_lookup
from pybundle.installer.links import (
    LinkOwner,
    LinkPlan,
    default_bin_dir,
    executable_names,
    inspect_link,
    make_link,
    on_path,
)
from pybundle.installer.policy import (
    DowngradeError,
    SerialStore,
    check_freshness,
    interpreter_line,
)
from pybundle.installer.progress import (
    InstallProgress,
    SharedCounters,
    init_worker,
    worker_reporter,
)
from pybundle.installer.receipts import (
    BundleIdentity,
    Destination,
    Receipt,
    entries_from_records,
    inspect_destination,
    now_utc,
    write_receipt,
)
from pybundle.installer.registry import InstallIndex
from pybundle.installer.relocate import RelocationReport, check_prefix, find_build_prefix, relocate
from pybundle.installer.scripts import make_scripts_relative
from pybundle.installer.source import BundleSource
from pybundle.installer.verify import VerifiedBundle, verify_archives, verify_manifest
from pybundle.manifest import Artifact, Manifest
from pybundle.signing import PublicKey
from pybundle.targets import Target, host_can_run, host_target
from pybundle.versions import PythonRequest, PythonVersion, VersionRequest

__all__ = [
    "INSTALL_DIR_ENV",
    "InstallResult",
    "LinkRequest",
    "default_install_dir",
    "install_bundle",
    "select_artifacts",
]

STAGING_PREFIX = ".pybundle-staging-"
LOCK_NAME = ".pybundle.lock"
LAYOUT = "pybundle"
"""The default directory convention (see :mod:`pybundle.installer.layouts`)."""
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when its parent dies."""
BLOCK_ALLOWANCE = 4096
"""Bytes allowed per member for file-system block rounding in the space check."""
PROGRESS_POLL = 0.1
"""Seconds between two reads of the workers' progress counters (only when progress is shown)."""


@dataclass(frozen=True)
class InstallResult:
    """One installed interpreter: where it went, what relocation changed, its ``layout``, the
    ``links`` made for it (absolute paths: executables in the bin dir, uv's minor-version
    link) and one-line ``warnings`` (a link that could not be made, a pyenv rehash that
    failed)."""

    artifact: Artifact
    path: Path
    replaced: bool
    relocation: Optional[RelocationReport]
    stats: ExtractStats
    layout: str = LAYOUT
    links: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LinkRequest:
    """Executable links to make for the installed interpreters (see
    :mod:`pybundle.installer.links`): into ``bin_dir`` (None: ``$PYBUNDLE_BIN_DIR`` or
    ``~/.local/bin``); ``default`` also links ``python3`` and ``python`` to the newest
    interpreter installed."""

    bin_dir: Optional[Path] = None
    default: bool = False

    @property
    def directory(self) -> Path:
        """The bin dir links go to."""
        return Path(os.path.abspath(self.bin_dir)) if self.bin_dir else default_bin_dir()

    @property
    def on_path(self) -> bool:
        """True when :attr:`directory` is on ``$PATH``."""
        return on_path(self.directory)


def _selects(request: VersionRequest | PythonRequest, artifact: Artifact) -> bool:
    version = PythonVersion.parse(artifact.version)
    if isinstance(request, PythonRequest):
        return request.selects(artifact.implementation, artifact.variant, version)
    return artifact.implementation == "cpython" and request.matches(version)


def select_artifacts(
    manifest: Manifest,
    versions: Sequence[VersionRequest | PythonRequest],
    host: Target | None,
    source: str,
) -> list[Artifact]:
    """The artifacts to install: those matching ``versions`` (all when empty; see
    :meth:`pybundle.versions.PythonRequest.selects`) that the host can run. ``host=None``
    means this machine.

    Raises UsageError when a version request matches nothing in the bundle, and
    PlatformMismatchError (listing the bundle's platforms) when nothing fits the host.
    """
    chosen = list(manifest.artifacts)
    for request in versions:
        if not any(_selects(request, a) for a in chosen):
            have = ", ".join(sorted({f"{a.implementation}-{a.version}" for a in chosen}))
            raise UsageError(
                f"{source}: no interpreter matches --versions {request} (bundle has {have})"
            )
    if versions:
        chosen = [a for a in chosen if any(_selects(r, a) for r in versions)]
    runnable = [a for a in chosen if host_can_run(a.target, host)]
    if not runnable:
        this = host or host_target()
        platforms = ", ".join(sorted({a.target.key for a in chosen}))
        raise PlatformMismatchError(
            f"{source}: bundle holds interpreters for {platforms}, none runs on this host "
            f"({this.key})"
        )
    return runnable


def install_bundle(
    bundle: Path,
    trusted: Sequence[PublicKey],
    *,
    install_dir: Path | None = None,
    prefix: Path | None = None,
    versions: Sequence[VersionRequest | PythonRequest] = (),
    force: bool = False,
    host: Target | None = None,
    allow_expired: bool = False,
    allow_downgrade: bool = False,
    serials: SerialStore | None = None,
    on_verified: Callable[[VerifiedBundle], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    progress: InstallProgress | None = None,
    layout: str = LAYOUT,
    pyenv_name: str | None = None,
    links: LinkRequest | None = None,
    index: InstallIndex | None = None,
) -> list[InstallResult]:
    """Verify ``bundle`` and install the selected interpreters; see the module docstring.

    ``install_dir``: each interpreter goes to ``<install_dir>/<uv install name>``;
    ``prefix``: exactly this directory, allowed only when one interpreter is selected.
    A destination may be absent, an empty directory, or (with ``force``) a pybundle install of
    the same kind, proven by its receipt (:func:`pybundle.installer.receipts.inspect_destination`);
    anything else is refused before extraction. Every install gets a receipt.
    Raises the typed errors of each step (SignatureError, UntrustedKeyError, ManifestError,
    HashMismatchError, UnsafeArchiveError, PlatformMismatchError, AlreadyExistsError,
    StorageError, UsageError); nothing is left behind when one is raised.
    ``allow_expired`` / ``allow_downgrade`` relax the freshness and rollback checks of
    :mod:`pybundle.installer.policy`; ``serials`` is the rollback record (default: user state);
    ``on_warning`` receives one-line warnings (e.g. a state file that was repaired);
    ``progress`` receives the bytes extracted per interpreter (:mod:`pybundle.installer.progress`).
    ``layout`` is ``pybundle``, ``uv`` or ``pyenv`` (:mod:`pybundle.installer.layouts`;
    ``pyenv_name`` names the pyenv version directory); ``links`` asks for executable links
    (:class:`LinkRequest`; None: none). Links are planned before extraction: one that would
    replace something pybundle did not make is refused (AlreadyExistsError) before anything
    changes. ``index`` records the install prefixes for ``pybundle list`` (default: state dir).
    """
    check_layout(layout)
    if install_dir is not None and prefix is not None:
        raise UsageError("--install-dir and --prefix cannot be used together")
    with BundleSource(bundle) as source:
        verified = verify_manifest(source, trusted)
        manifest = verified.manifest
        check_freshness(manifest, str(bundle), allow_expired=allow_expired)
        if on_verified is not None:
            on_verified(verified)
        selected = select_artifacts(manifest, versions, host, str(bundle))
        serials = serials or SerialStore(warn=on_warning)
        signer = verified.key.key_id_hex
        lines = [interpreter_line(a) for a in selected]
        serials.check(signer, lines, manifest.serial, str(bundle), allow_downgrade=allow_downgrade)
        destinations = layouts.destinations(
            layout,
            selected,
            install_dir=install_dir,
            prefix=prefix,
            pyenv_name=pyenv_name,
            default_install_dir=default_install_dir(),
        )
        for dest in destinations:  # before extracting: every rewritten file must hold the path
            check_prefix(str(dest))
        places = _inspect_all(selected, destinations, force, layout)
        _check_replaced_serials(places, signer, manifest.serial, str(bundle), allow_downgrade)
        index = index or InstallIndex()
        owner: LinkOwner = (
            link_owner_lookup(index) if links or layout == "uv" else (lambda _path: None)
        )
        plans = _plan_links(selected, destinations, layout, links, force, owner)
        for parent in sorted({d.parent for d in destinations}):
            layouts.prepare_parent(layout, parent)
            _check_writable(parent)
        _check_space(selected, destinations)
        # a self-installing file's carried wheels too: every listed member is what was signed
        verify_archives(
            source,
            [*selected, *manifest.index_files(selected), *manifest.carried_files()],
            manifest,
        )
        origin = BundleIdentity(
            bundle_id=manifest.bundle_id,
            serial=manifest.serial,
            created=manifest.created,
            signer_key_id=signer,
            file=os.path.abspath(bundle),
        )
        with contextlib.ExitStack() as locks:
            for parent in sorted({d.parent for d in destinations}):
                locks.enter_context(_locked(layouts.lock_file(layout, parent)))
                _remove_stale_staging(parent)
            # what is there now, under the lock, is what gets replaced (or not)
            places = _inspect_all(selected, destinations, force, layout)
            wanted = [
                tuple((str(p.path), p.target) for p in plan if p.action != "skip") for plan in plans
            ]
            staged = _stage_all(
                source, selected, destinations, origin, layout, wanted, progress, manifest
            )
            results: list[InstallResult] = []
            try:
                for artifact, place, tree in zip(selected, places, staged):
                    results.append(_place(tree, artifact, place))
            finally:
                for tree in staged[len(results) + 1 :]:
                    remove_tree(tree.staging)
            results = [
                _make_links(result, tree, plan, owner)
                for result, tree, plan in zip(results, staged, plans)
            ]
        serials.record(signer, lines, manifest.serial)
    index.update(add=[str(r.path) for r in results if index_worthy(r.path)])
    if layout == "pyenv":
        warning = layouts.pyenv_rehash()
        if warning:
            results = [replace(r, warnings=(*r.warnings, warning)) for r in results]
    return results


def _plan_links(
    selected: list[Artifact],
    destinations: list[Path],
    layout: str,
    links: LinkRequest | None,
    force: bool,
    owner: LinkOwner,
) -> list[list[LinkPlan]]:
    """The links to make for each selected artifact, decided before anything is extracted
    (:func:`pybundle.installer.links.inspect_link` raises for one that may not be replaced).

    Executable links (``links``): each name goes to the newest interpreter that wants it
    (``python3.12`` to 3.12.1 rather than 3.12.0; ``python3``/``python`` with ``default`` to
    the newest of all). uv layout: uv's minor-version link when it is absent, already points
    here, or is pybundle's and points to an older patch; a link uv made is left to uv.
    """
    plans: list[list[LinkPlan]] = [[] for _ in selected]
    order = sorted(
        range(len(selected)), key=lambda i: _version_key(selected[i].version), reverse=True
    )
    if links is not None:
        bin_dir = links.directory
        taken: set[str] = set()
        for rank, i in enumerate(order):
            names = executable_names(selected[i], default=links.default and rank == 0)
            for name, exe in names:
                if name in taken:
                    continue
                taken.add(name)
                target = str(destinations[i] / "bin" / exe)
                plans[i].append(inspect_link(bin_dir / name, target, force=force, owner=owner))
    if layout == "uv":
        minors: set[str] = set()
        for i in order:
            minor = layouts.uv_minor_link_name(selected[i])
            if minor is None or minor in minors:
                continue
            minors.add(minor)
            alias = _plan_minor_link(destinations[i].parent / minor, destinations[i], owner)
            if alias is not None:
                plans[i].append(alias)
    return plans


def _version_key(version: str) -> tuple[int, ...]:
    import re

    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def _plan_minor_link(path: Path, dest: Path, owner: LinkOwner) -> LinkPlan | None:
    """uv's minor-version link ``path`` -> ``dest``, or None when it is uv's (or something
    else) and must be left alone."""
    from pybundle.installer.links import link_target

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return LinkPlan(path, str(dest), "create")
    except OSError:
        return None
    if not stat.S_ISLNK(st.st_mode):
        return None
    current = link_target(path)
    if current == str(dest):
        return LinkPlan(path, str(dest), "keep")
    if current is None or owner(path) is None:
        return None
    if _version_key(os.path.basename(current).split("-")[1]) >= _version_key(
        dest.name.split("-")[1]
    ):
        return None
    return LinkPlan(path, str(dest), "replace")


def _make_links(
    result: InstallResult, staged: _Staged, plans: list[LinkPlan], owner: LinkOwner
) -> InstallResult:
    """Create the links of one placed install (those whose target exists in the tree); a link
    that cannot be made becomes a warning and is dropped from the receipt, which is then
    rewritten (it must never list a link pybundle did not make)."""
    made: list[str] = []
    warnings: list[str] = []
    for plan in plans:
        if plan.action == "skip":
            warnings.append(plan.note)
            continue
        if str(plan.path) not in staged.links:
            continue  # the tree has no such executable: nothing to link
        try:
            make_link(plan, owner=owner)
        except (AlreadyExistsError, StorageError) as exc:
            warnings.append(exc.message)
            continue
        made.append(str(plan.path))
    if tuple(made) != staged.links and staged.receipt is not None:
        write_receipt(result.path, replace(staged.receipt, links=tuple(made)))
    return replace(result, layout=staged.layout, links=tuple(made), warnings=tuple(warnings))


def _inspect_all(
    selected: list[Artifact], destinations: list[Path], force: bool, layout: str
) -> list[Destination]:
    """:func:`inspect_destination` for every selected artifact (the whole selection is checked
    before anything is extracted, so a refusal changes nothing)."""
    if len(set(destinations)) != len(destinations):
        raise UsageError("two selected interpreters would install to the same directory")
    return [inspect_destination(d, a, layout, force=force) for a, d in zip(selected, destinations)]


def _check_replaced_serials(
    places: list[Destination], signer: str, serial: int, source: str, allow_downgrade: bool
) -> None:
    """Refuse to replace an install that came from a newer bundle of the same signer (the
    receipt's record; a second line of defence beside the state file)."""
    for place in places:
        receipt = place.receipt
        if receipt is None or allow_downgrade:
            continue
        if receipt.bundle.signer_key_id == signer and receipt.bundle.serial > serial:
            raise DowngradeError(
                f"{source}: bundle serial {serial} is older than serial "
                f"{receipt.bundle.serial} of the install it would replace at {place.path}; "
                "use --allow-downgrade to install it anyway"
            )


def _check_writable(parent: Path) -> None:
    """Create ``parent`` if needed and prove a staging dir can be made there, before any
    hashing or extraction (a read-only or foreign-owned destination fails here)."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".pybundle-probe-", dir=parent))
    except OSError as exc:
        raise StorageError(
            f"{parent}: cannot write to the install directory: {exc.strerror}"
        ) from exc


def _budget(artifact: Artifact) -> tuple[int, int]:
    """``(max unpacked bytes, max members)`` for an archive: the manifest's record when it has
    one, else generous caps relative to the archive size (see pybundle.archives)."""
    max_bytes = (
        artifact.unpacked_size
        if artifact.unpacked_size is not None
        else min(DEFAULT_MAX_BYTES, artifact.size * DEFAULT_MAX_RATIO)
    )
    max_entries = artifact.file_count if artifact.file_count is not None else DEFAULT_MAX_ENTRIES
    return max_bytes, max_entries


def needed_bytes(artifact: Artifact) -> int | None:
    """Bytes an install of ``artifact`` needs on disk (contents plus one block per member for
    rounding), or None when the manifest does not record the unpacked size."""
    if artifact.unpacked_size is None:
        return None
    return artifact.unpacked_size + BLOCK_ALLOWANCE * (artifact.file_count or 0)


def free_bytes(directory: Path) -> int:
    """Bytes available to this user on the file system of ``directory`` (statvfs)."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def _check_space(selected: list[Artifact], destinations: list[Path]) -> None:
    """Refuse before extracting when the manifest's unpacked sizes and member counts exceed
    the free bytes or free inodes (statvfs) of the destination's file system."""
    per_device: dict[int, tuple[Path, int]] = {}
    per_files: dict[int, int] = {}
    for artifact, dest in zip(selected, destinations):
        need = needed_bytes(artifact)
        if need is None:
            continue
        dev = os.stat(dest.parent).st_dev
        where, total = per_device.get(dev, (dest.parent, 0))
        per_device[dev] = (where, total + need)
        per_files[dev] = per_files.get(dev, 0) + (artifact.file_count or 0)
    for dev, (where, need) in per_device.items():
        free = free_bytes(where)
        if free < need:
            raise StorageError(
                f"{where}: not enough space: the install needs {need} bytes, {free} bytes are free"
            )
        st = os.statvfs(where)
        if st.f_files and st.f_favail < per_files[dev]:
            raise StorageError(
                f"{where}: not enough inodes: the install needs {per_files[dev]} files, "
                f"{st.f_favail} inodes are free"
            )


class _locked:
    """Hold the lock file ``path`` (filelock: flock(2) on Unix) while installing."""

    def __init__(self, path: Path) -> None:
        self._lock = FileLock(str(path))
        self._path = path

    def __enter__(self) -> None:
        try:
            self._lock.acquire()
        except OSError as exc:
            raise StorageError(f"{self._path}: cannot take the install lock: {exc}") from exc

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _remove_stale_staging(directory: Path) -> None:
    """Under the lock no other install is running, so any staging dir is a killed run's."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith((STAGING_PREFIX, REMOVING_PREFIX)):
            remove_tree(entry)


@dataclass(frozen=True)
class _Staged:
    """An extracted, checked and relocated tree waiting in its staging dir."""

    staging: Path
    stats: ExtractStats
    report: Optional[RelocationReport]
    layout: str = LAYOUT
    links: tuple[str, ...] = ()
    receipt: Optional[Receipt] = None


def _stage_one(
    source: BundleSource,
    artifact: Artifact,
    dest: Path,
    origin: BundleIdentity,
    layout: str = LAYOUT,
    links: tuple[tuple[str, str], ...] = (),
    on_bytes: Callable[[int], None] | None = None,
) -> _Staged:
    """Extract ``artifact`` into a new staging dir beside ``dest``, check the bytes extracted
    against the manifest's sha256 and counts, relocate the tree to ``dest``, make its scripts
    find the interpreter relative to themselves, add the ``layout``'s files and write its
    receipt (``origin`` is the bundle it came from; ``links`` the planned ``(link path,
    target)`` pairs, of which those whose target exists in the tree are recorded);
    ``on_bytes`` receives the bytes extracted so far (see
    :func:`pybundle.installer.extract.extract_archive`).

    Removes the staging dir and raises on any failure (ENOSPC as a needed-vs-free message).
    """
    where = f"{source.path}: {artifact.member}"
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{dest.name}-", dir=dest.parent))
    except OSError as exc:
        raise StorageError(f"{dest.parent}: cannot create a staging directory: {exc}") from exc
    try:
        os.chmod(staging, 0o755)
        max_bytes, max_entries = _budget(artifact)
        ref = artifact.file_index
        with contextlib.ExitStack() as opened:
            index = None
            if ref is not None:
                index_stream = opened.enter_context(source.open_member(ref.member, ref.size))
                index = IndexReader(
                    index_stream,
                    f"{source.path}: {ref.member}",
                    max_lines=max_entries,
                    max_size=max_bytes,
                    max_bytes=ref.size,
                )
            with source.open_archive(artifact) as stream:
                stats = extract_archive(
                    stream,
                    artifact.read_format,
                    artifact.strip_prefix,
                    staging,
                    source=where,
                    max_bytes=max_bytes,
                    max_entries=max_entries,
                    record_files=True,
                    on_bytes=on_bytes,
                    file_index=index,
                )
                extracted = stream.finish()
            check_digest(where, extracted, *artifact.read_digest)
            if ref is not None:
                # the digests recorded came from the index: its bytes read are the signed ones
                check_digest(
                    f"{source.path}: {ref.member}", index_stream.finish(), ref.sha256, ref.size
                )
        _check_counts(artifact, stats, where)
        # The tree's own sysconfigdata is authoritative; the manifest's record is a fallback.
        build_prefix = find_build_prefix(staging) or artifact.build_prefix
        report = None
        if build_prefix is not None:
            report = relocate(
                staging, build_prefix, str(dest), source=where, candidates=stats.candidates
            )
        scripts = make_scripts_relative(staging, str(dest))
        added = layouts.write_layout_files(layout, staging, artifact)
        changed = [] if report is None else [*report.text_files, *report.elf_files]
        removed = [] if report is None else report.removed_bytecode
        recorded = tuple(
            path for path, target in links if os.path.lexists(_staged_path(staging, dest, target))
        )
        receipt = Receipt(
            prefix=str(dest),
            layout=layout,
            installed_at=now_utc(),
            bundle=origin,
            # the file index belongs to the bundle, not to the install (and a receipt without
            # it stays readable by a pybundle that predates file indexes)
            artifact=replace(artifact, file_index=None),
            build_prefix=build_prefix,
            links=recorded,
            files=tuple(
                entries_from_records(
                    staging,
                    stats.records,
                    [*map(str, changed), *scripts, *added],
                    map(str, removed),
                )
            ),
        )
        stats.records = []  # in the receipt now: memory stays with one list per tree
        write_receipt(staging, receipt)
    except OSError as exc:
        remove_tree(staging)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(artifact, dest.parent, where) from exc
        raise StorageError(f"{dest.parent}: cannot install {where}: {exc}") from exc
    except StorageError as exc:
        remove_tree(staging)
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(artifact, dest.parent, where) from cause
        raise
    except BaseException:
        remove_tree(staging)
        raise
    stats.candidates = []  # only the counts travel on (from a worker, too)
    return _Staged(staging, stats, report, layout, recorded, replace(receipt, files=()))


def _staged_path(staging: Path, dest: Path, target: str) -> str:
    """Where ``target`` (a path under ``dest``) is in the staging tree."""
    rel = os.path.relpath(target, dest)
    return str(staging) if rel == "." else os.path.join(staging, rel)


def _die_with_parent(counters: object = None) -> None:
    """In a staging worker: ask Linux to kill us if the installer dies (PR_SET_PDEATHSIG), so
    a ``kill -9`` of the installer leaves no worker writing on; the next run cleans up.
    ``counters``: the shared progress counters, or None (:func:`progress.init_worker`)."""
    init_worker(counters)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stage_in_worker(
    bundle: Path,
    artifact: Artifact,
    dest: Path,
    origin: BundleIdentity,
    layout: str,
    links: tuple[tuple[str, str], ...],
    index: int,
) -> _Staged:
    """:func:`_stage_one` in a worker process, with its own handle on the bundle file;
    ``index`` is the artifact's slot in the shared progress counters."""
    with BundleSource(bundle) as source:
        return _stage_one(source, artifact, dest, origin, layout, links, worker_reporter(index))


def _stage_all(
    source: BundleSource,
    selected: list[Artifact],
    destinations: list[Path],
    origin: BundleIdentity,
    layout: str = LAYOUT,
    links: Sequence[tuple[tuple[str, str], ...]] = (),
    progress: InstallProgress | None = None,
    manifest: Manifest | None = None,
) -> list[_Staged]:
    """Stage every selected archive: in this process for one archive, else one worker process
    per CPU (extraction is CPU-bound Python, so threads would not help). Archives in a compact
    bundle's solid stream are staged in this process, in manifest order, from one decoding
    pass (``manifest`` needed; decoding runs on a thread beside the extraction). If one fails,
    the staging dirs of the others are removed and the first failure in manifest order is
    raised.
    ``progress`` hears of every archive's bytes from this thread (workers report through
    shared counters, polled every :data:`PROGRESS_POLL` seconds).
    """
    if progress is not None:
        progress.begin(selected)
    workers = min(len(selected), os.cpu_count() or 1)
    links = list(links) or [() for _ in selected]
    solid = manifest is not None and any(a.solid is not None for a in selected)
    if workers <= 1 or solid:
        staged: list[_Staged] = []
        try:
            with source.solid_pass(manifest, selected) if manifest else contextlib.nullcontext():
                for index, (artifact, dest, wanted) in enumerate(
                    zip(selected, destinations, links)
                ):
                    report = functools.partial(progress.advance, index) if progress else None
                    staged.append(
                        _stage_one(source, artifact, dest, origin, layout, wanted, report)
                    )
                    if progress is not None:
                        progress.end(index)
        except BaseException:
            for done in staged:
                remove_tree(done.staging)
            raise
        return staged
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    counters = SharedCounters(context, len(selected)) if progress is not None else None
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_die_with_parent,
        initargs=(counters.values if counters else None,),
    ) as pool:
        futures = [
            pool.submit(
                _stage_in_worker, source.path, artifact, dest, origin, layout, wanted, index
            )
            for index, (artifact, dest, wanted) in enumerate(zip(selected, destinations, links))
        ]
        ended: set[int] = set()
        while True:
            _, pending = wait(futures, timeout=PROGRESS_POLL if counters else None)
            if counters is not None and progress is not None:
                # a finished worker's last count is in shared memory before its future is done
                finished = [i for i, f in enumerate(futures) if f.done() and i not in ended]
                counters.relay(progress)
                for index in finished:
                    ended.add(index)
                    progress.end(index)
            if not pending:
                break
    results: list[_Staged] = []
    error: Optional[BaseException] = None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:
            error = error or exc
    if error is not None:
        for done in results:
            remove_tree(done.staging)
        raise error
    return results


def _place(staged: _Staged, artifact: Artifact, place: Destination) -> InstallResult:
    """Rename a staged tree to ``place.path``: without replacing anything (absent), over an
    empty directory (``rename(2)`` refuses one that is no longer empty), or by an atomic
    exchange with the pybundle install that was inspected (its identity is checked after the
    exchange, and a different directory is swapped back and refused). The staging dir is gone
    afterwards whatever happens."""
    dest = place.path
    try:
        if place.state == "absent":
            move_into_place(staged.staging, dest)
        elif place.state == "empty":
            os.rename(staged.staging, dest)
        else:
            swap_into_place(staged.staging, dest)
            st = os.lstat(staged.staging)
            if (st.st_dev, st.st_ino) != place.identity:
                swap_into_place(staged.staging, dest)
                raise AlreadyExistsError(
                    f"{dest}: was replaced by another directory during the install; it was "
                    "left as it is"
                )
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
        remove_tree(staged.staging)
        raise AlreadyExistsError(
            f"{dest}: appeared during the install; it was left as it is"
        ) from exc
    except OSError as exc:
        remove_tree(staged.staging)
        if exc.errno == errno.ENOTEMPTY:
            raise AlreadyExistsError(
                f"{dest}: files appeared in it during the install; it was left as it is"
            ) from exc
        raise StorageError(f"{dest}: cannot move the new interpreter into place: {exc}") from exc
    except BaseException:
        remove_tree(staged.staging)
        raise
    if place.state == "ours":
        remove_tree(staged.staging)  # now holds the previous install
    return InstallResult(artifact, dest, place.state == "ours", staged.report, staged.stats)


def _no_space(artifact: Artifact, parent: Path, where: str) -> StorageError:
    """The ENOSPC message, measured after the staging dir was removed: needed vs free bytes,
    and inodes too when they are what ran out (ENOSPC also means "no free inodes")."""
    need = needed_bytes(artifact)
    need_text = f"{need} bytes" if need is not None else "an unknown number of bytes"
    free_text = f"{free_bytes(parent)} bytes"
    st = os.statvfs(parent)
    if artifact.file_count is not None and st.f_files and st.f_favail < artifact.file_count:
        need_text += f" and {artifact.file_count} inodes"
        free_text += f" and {st.f_favail} inodes"
    return StorageError(
        f"{parent}: no space left while installing {where}: it needs {need_text}, "
        f"{free_text} are free; nothing was installed"
    )


def _check_counts(artifact: Artifact, stats: ExtractStats, where: str) -> None:
    """Compare what was extracted with the manifest's record, when the manifest has one."""
    if artifact.file_count is not None and stats.entries != artifact.file_count:
        raise ManifestError(
            f"{where}: archive holds {stats.entries} members, "
            f"the manifest says {artifact.file_count}"
        )
    if artifact.unpacked_size is not None and stats.archive_bytes != artifact.unpacked_size:
        raise ManifestError(
            f"{where}: archive unpacks to {stats.archive_bytes} bytes, the manifest says "
            f"{artifact.unpacked_size}"
        )
