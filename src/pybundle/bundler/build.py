"""The bundle command's pipeline: catalog -> plan -> downloads -> bundle file.

Each step is a plain function so tests can call it directly; :func:`build_bundle` chains them.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from pybundle.archives import ARCHIVE_FORMATS
from pybundle.bundler import reproducible
from pybundle.bundler.cache import Cache
from pybundle.bundler.catalog import (
    CatalogEntry,
    apply_mirror,
    default_catalog_source,
    load_catalog,
    load_pbs_release,
)
from pybundle.bundler.download import (
    DEFAULT_JOBS,
    Downloader,
    DownloadItem,
    DownloadResult,
    DownloadSummary,
    Progress,
    make_session,
    summarize,
)
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.resolve import Skipped, resolve_picks
from pybundle.bundler.selection import Selection
from pybundle.bundler.stopping import run_stoppable
from pybundle.bundler.workfiles import claim_output, make_work_dir
from pybundle.errors import AlreadyExistsError, HashMismatchError, ResolutionError, UsageError
from pybundle.fileindex import index_member
from pybundle.manifest import Artifact, FileIndexRef, Manifest, Member, SolidContainer
from pybundle.signing import SecretKey
from pybundle.targets import Target
from pybundle.volumes import existing_parts, write_volumes

# What only some options use is imported where they are used (--from-prefix: prefix and
# portability; --self-installing: selfinstall; -r/--with: wheelhouse; --compact: solid), so
# that a plain bundle does not load them.
if TYPE_CHECKING:
    from pybundle.bundler.selfinstall import BootCandidate
    from pybundle.bundler.solid import CompactOptions
    from pybundle.bundler.wheelhouse import WheelRequest

PBS_BUILD_PREFIX = "/install"
"""python-build-standalone configures CPython with this placeholder prefix (PBS docs)."""


@dataclass(frozen=True)
class PlannedArtifact:
    """A resolved catalog entry with the URL it will be fetched from (mirror applied).

    ``request`` and ``target`` say which request and platform chose it (None when built
    directly); ``cached`` is set by :func:`mark_cached` (None: not checked).
    """

    entry: CatalogEntry
    url: str
    request: Optional[str] = None
    target: Optional[Target] = None
    cached: Optional[bool] = None

    @property
    def item(self) -> DownloadItem:
        """What the downloader fetches for this artifact."""
        return DownloadItem(self.url, self.entry.sha256, self.entry.file_name, self.entry.size)

    def to_json(self) -> dict[str, Any]:
        """The plan line as JSON (``--dry-run --json``): sizes in bytes, null when unknown."""
        e = self.entry
        return {
            "request": self.request,
            "platform": (self.target or e.target).friendly,
            "key": e.key,
            "implementation": e.implementation,
            "version": str(e.version),
            "variant": e.variant,
            "build": e.build,
            "flavour": e.flavour,
            "target_triple": e.target.triple,
            "file_name": e.file_name,
            "url": self.url,
            "source_url": e.url,
            "sha256": e.sha256,
            "size": e.size,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class Plan:
    """What a bundle run would download: ``artifacts`` in bundle order; ``skipped`` members of
    platform groups that cannot serve a request (see :class:`pybundle.bundler.resolve.Skipped`).
    """

    artifacts: tuple[PlannedArtifact, ...]
    skipped: tuple[Skipped, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON: ``artifacts`` (see :meth:`PlannedArtifact.to_json`), ``skipped``
        (request, platform, reason), and totals (``known_bytes`` over known sizes)."""
        return {
            "artifacts": [a.to_json() for a in self.artifacts],
            "skipped": [
                {"request": str(s.request), "platform": s.target.friendly, "reason": s.reason}
                for s in self.skipped
            ],
            "total": {
                "artifacts": len(self.artifacts),
                "cached": sum(1 for a in self.artifacts if a.cached),
                "known_bytes": sum(a.entry.size or 0 for a in self.artifacts),
                "unknown_sizes": sum(1 for a in self.artifacts if a.entry.size is None),
            },
        }


@dataclass
class BundleReport:
    """What :func:`build_bundle` did. Sizes in bytes, durations in seconds."""

    manifest: Manifest
    output: Path
    downloads: list[DownloadResult] = field(default_factory=list)
    seconds: float = 0.0
    summary: Optional[DownloadSummary] = None
    plan: Optional[Plan] = None
    parts: list[Path] = field(default_factory=list)
    """With a volume size: the volumes written (``NAME.001``, ...), else empty."""
    compact_seconds: float = 0.0
    """Time spent making the solid stream (``compact``), in seconds."""
    file_signature: Optional[Path] = None
    """``<output>.minisig`` of a signed self-installing bundle (the whole file's signature;
    of the joined file for a volume set)."""
    stub_bytes: int = 0
    """Size of a self-installing bundle's sh stub, in bytes (0 for a plain bundle)."""
    wheel_seconds: float = 0.0
    """Time spent resolving and fetching wheelhouses (``-r``/``--with``), in seconds."""


def make_plan(entries: Sequence[CatalogEntry], selection: Selection) -> Plan:
    """Resolve each (request, platform) pair of ``selection``
    (:func:`pybundle.bundler.resolve.resolve_picks`) and apply its mirror (:func:`apply_mirror`).

    Raises ResolutionError (also for an archive format the bundle cannot hold: only tar.gz and
    tar.zst can, so PyPy's Windows zips are refused) and UsageError.
    """
    picks, skipped = resolve_picks(
        entries,
        selection.requests,
        selection.platforms,
        variant=selection.variant,
        flavour=selection.flavour,
        build=selection.build,
        prerelease=selection.prerelease,
        allow_unhashed=selection.allow_unhashed,
    )
    mirror = selection.mirror
    planned = []
    for pick in picks:
        entry = pick.entry
        if entry.archive_format not in ARCHIVE_FORMATS:
            raise ResolutionError(
                f"{entry.file_name}: {entry.archive_format} archives are not supported "
                "(tar.gz and tar.zst are)"
            )
        planned.append(
            PlannedArtifact(entry, apply_mirror(entry.url, mirror), str(pick.request), pick.target)
        )
    return Plan(tuple(planned), tuple(skipped))


def mark_cached(planned: Plan, cache_root: Path) -> Plan:
    """The plan with ``cached`` set: True when a file of the archive's sha256 and name is in
    the cache under ``cache_root`` (not re-hashed here: the download step verifies hits), False
    otherwise (always for archives without a sha256). Creates nothing; a cached archive's size
    fills in an unknown one."""
    marked = []
    for a in planned.artifacts:
        sha = a.entry.sha256
        path = cache_root / "archives" / f"{sha}-{a.entry.file_name}" if sha else None
        hit = path is not None and path.is_file()
        entry = a.entry
        if hit and path is not None and entry.size is None:
            entry = replace(entry, size=path.stat().st_size)
        marked.append(replace(a, entry=entry, cached=hit))
    return Plan(tuple(marked), planned.skipped)


def artifact_for_entry(entry: CatalogEntry, size: int, sha256: Optional[str] = None) -> Artifact:
    """The manifest record of a downloaded catalog archive of ``size`` bytes.

    ``sha256`` is the digest computed at download time; it is recorded with
    ``sha256_source="computed"`` when the catalog has none, else the catalog's is used
    (``"catalog"``). PBS install_only archives hold ``python/``; full archives hold
    ``python/install/`` (PBS docs/distributions.rst). CPython builds use the ``/install``
    build prefix.
    """
    digest = entry.sha256 or sha256
    if not digest:
        raise ResolutionError(f"{entry.key}: no sha256 known for {entry.url}")
    return Artifact(
        file_name=entry.file_name,
        size=size,
        sha256=digest,
        sha256_source="catalog" if entry.sha256 else "computed",
        implementation=entry.implementation,
        version=str(entry.version),
        build=entry.build,
        target=entry.target,
        variant=entry.variant,
        flavour=entry.flavour,
        archive_format=entry.archive_format,
        strip_prefix="python/install" if entry.flavour == "full" else "python",
        build_prefix=PBS_BUILD_PREFIX if entry.implementation == "cpython" else None,
        source_url=entry.url,
    )


def _format_of(path: Path) -> str:
    return "tar.zst" if path.name.endswith(".tar.zst") else "tar.gz"


def load_entries(selection: Selection) -> list[CatalogEntry]:
    """The catalog of ``selection``: its PBS release read through the release's ``SHA256SUMS``
    (:func:`load_pbs_release`, mirror honoured), else its catalog (uv downloads-JSON path/URL,
    or a directory of PBS archives: :func:`load_catalog`), else the default
    (:func:`pybundle.bundler.catalog.default_catalog_source`). HTTP goes through
    :func:`make_session` (retries, proxies, ``GITHUB_TOKEN`` for GitHub hosts only).

    Raises the errors of the loaders (CatalogError, DownloadError).
    """
    source = selection.catalog or default_catalog_source()
    if not selection.pbs_release and not _is_http(source):
        return load_catalog(source)  # a local file or directory: no session (nor requests)
    # the downloads' session: retries with Retry-After, proxies, GITHUB_TOKEN for GitHub only
    with make_session() as session:
        if selection.pbs_release:
            return load_pbs_release(selection.pbs_release, mirror=selection.mirror, session=session)
        return load_catalog(source, session=session)


def _is_http(source: str) -> bool:
    try:
        return urllib.parse.urlsplit(source).scheme.lower() in ("http", "https")
    except ValueError:  # not a valid URL: load_catalog says so
        return False


def plan_selection(selection: Selection, cache_root: Path) -> Plan:
    """The plan of a ``--dry-run``: load the catalog, resolve, mark cached archives.

    Raises UsageError when ``selection`` has no requests, and the errors of
    :func:`load_entries` and :func:`make_plan`.
    """
    if not selection.requests:
        raise UsageError("nothing to plan: give --versions")
    return mark_cached(make_plan(load_entries(selection), selection), cache_root)


def build_bundle(
    output: Path,
    selection: Selection,
    *,
    cache_dir: Path,
    secret_key: SecretKey | None,
    from_prefixes: Sequence[Path] = (),
    prefix_site_packages: str = "all",
    prefix_format: str = "tar.zst",
    jobs: int = DEFAULT_JOBS,
    force: bool = False,
    serial: int | None = None,
    expires: datetime | None = None,
    progress: Optional[Progress] = None,
    entries: Optional[Sequence[CatalogEntry]] = None,
    strict_portability: bool = False,
    compact: Optional[CompactOptions] = None,
    volume_size: Optional[int] = None,
    keep_plain: Collection[str] = (),
    self_installing: bool = False,
    on_warning: Optional[Callable[[str], None]] = None,
    wheels: Optional[WheelRequest] = None,
) -> BundleReport:
    """Resolve ``selection``, download, pack local prefixes and write the bundle. See the CLI
    for semantics; ``entries`` replaces loading a catalog (tests, callers that loaded one
    already). Every archive's unpacked size and member count are recorded in the manifest (the
    installer's decompression budget); ``expires`` sets the manifest's expiry time.
    An archive found in the cache is read once: the bundle writer's hash is its check (a
    damaged entry is evicted, fetched again and the bundle written again; see
    :func:`_write_checked`), except in a compact bundle, whose hits are re-hashed first.
    Each ``--from-prefix`` archive is audited for host libraries
    (:func:`pybundle.bundler.portability.audit_tree`, recorded as the artifact's
    ``portability``); ``strict_portability`` refuses a prefix that needs any
    (PortabilityError, exit 7). ``self_installing`` makes the file install itself with sh
    (:mod:`pybundle.bundler.selfinstall`; a platform that cannot bootstrap is refused before
    any download) and, when signed, writes ``<output>.minisig`` over the whole file (for a
    volume set, over the joined file); with ``compact`` each bootstrap is also kept plain.
    ``on_warning`` hears one-line warnings. ``wheels`` (``-r``/``--with``) adds a wheelhouse
    per CPython version x platform (:mod:`pybundle.bundler.wheelhouse`).

    ``compact`` puts the archives in one solid stream (:mod:`pybundle.bundler.solid`), all
    but those whose file names are in ``keep_plain`` (which stay plain members, e.g. the
    bootstrap interpreter of a self-installing bundle, which its sh stub must unpack with
    tar and gzip). ``volume_size`` writes ``NAME.001``, ``NAME.002``, ... of at most that
    many bytes instead of ``NAME`` (:func:`pybundle.volumes.write_volumes`). With
    ``SOURCE_DATE_EPOCH`` set, the output is reproducible (:mod:`pybundle.bundler.reproducible`).

    From the downloads on, the run holds ``.NAME.lock`` beside the output and first removes
    what killed runs to the same output left there (:func:`pybundle.bundler.workfiles.
    claim_output`). Interrupted (KeyboardInterrupt, or the CLI's Terminated on SIGTERM), it
    stops its downloads within a chunk, keeps their ``.partial`` files for the next run, and
    removes its work directory and temporary bundle before the exception goes on.

    Raises the typed errors of each step: ResolutionError, CatalogError, DownloadError,
    HashMismatchError, AlreadyExistsError (also: another run is writing the same output),
    StorageError, UsageError.
    """
    started = time.monotonic()
    output = output.absolute()
    created = reproducible.now()
    for existing in [output] if volume_size is None else existing_parts(output)[:1]:
        if existing.exists() and not force:
            raise AlreadyExistsError(f"{existing}: already exists (use --force to replace it)")
    infos: list[Any] = []
    audits: list[Any] = []
    if from_prefixes:
        from pybundle.bundler.portability import audit_tree
        from pybundle.bundler.prefix import prefix_filter, probe_prefix

        infos = [probe_prefix(p) for p in from_prefixes]
        audits = [
            audit_tree(i.prefix, libc=i.target.libc, include=prefix_filter(i, prefix_site_packages))
            for i in infos
        ]
    for info, audit in zip(infos, audits):
        if audit is not None and strict_portability:
            from pybundle.bundler.portability import PortabilityError, describe

            raise PortabilityError(
                describe(audit, str(info.prefix)) + "; --strict-portability refuses it"
            )
    the_plan: Optional[Plan] = None
    if selection.requests:
        if entries is None:
            entries = load_entries(selection)
        the_plan = make_plan(entries, selection)
    if self_installing:
        from pybundle.bundler.selfinstall import check_bootstrappable

        check_bootstrappable(
            _boot_candidates(the_plan, infos, prefix_format), compact=compact is not None
        )
    if wheels is not None and not wheels.empty:  # refused before any download
        from pybundle.bundler.wheelhouse import plan_wheelhouses

        wheels.check()
        plan_wheelhouses(
            [
                (c.target, c.version, c.implementation, c.variant, c.label)
                for c in _boot_candidates(the_plan, infos, prefix_format)
            ]
        )
    with claim_output(output):
        items: list[tuple[Artifact, Path]] = []
        index_files: list[tuple[Member, Path]] = []
        downloads: list[DownloadResult] = []
        summary: Optional[DownloadSummary] = None
        if the_plan is not None:
            cache = Cache(cache_dir)
            # a plain bundle's writer hashes every archive as it copies it: a warm hit is not
            # re-hashed first (one read, not two; see _write_checked). The solid stream
            # transforms the archives, so a compact bundle verifies its hits first.
            downloads, summary = _download_all(
                the_plan, cache, jobs, progress, trust_hits=compact is None
            )
            for p, d in zip(the_plan.artifacts, downloads):
                artifact = artifact_for_entry(p.entry, d.size, d.sha256)
                shape, index = cache.shape_and_index(
                    artifact.sha256, d.path, artifact.archive_format
                )
                artifact = replace(
                    artifact, unpacked_size=shape.unpacked_size, file_count=shape.file_count
                )
                if index is not None:
                    ref = FileIndexRef(index_member(artifact.file_name), index.sha256, index.size)
                    artifact = replace(artifact, file_index=ref)
                    index_files.append((ref, index.path))
                items.append((artifact, d.path))
        work = make_work_dir(output)
        try:
            for info, audit in zip(infos, audits):
                from pybundle.bundler.prefix import index_path_for, pack_prefix

                # in a thread: Ctrl-C must not wait for a compression job running in C
                artifact, archive = run_stoppable(
                    lambda stop, info=info: pack_prefix(  # type: ignore[misc]
                        info,
                        work,
                        archive_format=prefix_format,
                        site_packages=prefix_site_packages,
                        stop=stop,
                        file_index=True,
                    ),
                    name="pybundle-pack",
                )
                if artifact.file_index is not None:
                    index_files.append((artifact.file_index, index_path_for(archive)))
                items.append((replace(artifact, portability=audit), archive))
            names = [a.file_name for a, _ in items]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ResolutionError(f"the bundle would hold {duplicates[0]} twice")
            boot_names: set[str] = set()
            if self_installing:  # the sh stub unpacks its bootstraps: never in the solid stream
                from pybundle.bundler.selfinstall import choose_bootstraps

                chosen = choose_bootstraps([a for a, _ in items], compact=compact is not None)
                boot_names = {a.file_name for a in chosen.values()}
            solid = None
            compact_started = time.monotonic()
            if compact is not None:
                items, solid = _compact(items, work, created, compact, {*keep_plain, *boot_names})
            compact_seconds = time.monotonic() - compact_started if solid else 0.0
            if self_installing:
                from pybundle.bundler.selfinstall import (
                    prepare_self_install,
                    whole_file_signature,
                    write_whole_file_signature,
                )
            if wheels is not None and not wheels.empty:
                from pybundle.bundler.wheelhouse import resolve_wheelhouses
            self_parts = (
                prepare_self_install(
                    items, cache_dir, work, on_warning=on_warning, solid=solid is not None
                )
                if self_installing
                else None
            )
            house = (
                resolve_wheelhouses(
                    [a for a, _ in items],
                    wheels,
                    cache_dir,
                    work,
                    carried=[f for f, _ in self_parts.files] if self_parts else (),
                    on_warning=on_warning,
                )
                if wheels is not None and not wheels.empty
                else None
            )
            target = output if volume_size is None else work / output.name
            manifest = _write_checked(
                lambda: write_bundle(
                    target,
                    items,
                    secret_key=secret_key,
                    force=force,
                    serial=serial,
                    expires=expires,
                    solid=solid,
                    now=created,
                    self_install=self_parts.section if self_parts else None,
                    carried=self_parts.files if self_parts else (),
                    preamble=self_parts.stub if self_parts else None,
                    wheelhouses=house.section if house else None,
                    wheel_files=house.files if house else (),
                    indexes=index_files,
                ),
                the_plan,
                downloads,
                cache_dir,
                jobs,
                progress,
            )
            # the whole file's signature: over the file with its stub, before it is cut into
            # volumes (whose joined bytes it then covers: cat NAME.0* > NAME); written beside
            # the output once the bundle or its volumes are in place
            signature = (
                whole_file_signature(target, secret_key, manifest, output.name)
                if self_parts is not None and secret_key is not None
                else None
            )
            stub_bytes = len(self_parts.stub.placeholder()) if self_parts else 0
            parts = (
                write_volumes(target, output, volume_size, force=force)
                if volume_size is not None
                else []
            )
            signature_path = (
                write_whole_file_signature(signature, output) if signature is not None else None
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return BundleReport(
        manifest,
        output,
        downloads,
        time.monotonic() - started,
        summary,
        the_plan,
        parts,
        compact_seconds,
        signature_path,
        stub_bytes,
        house.seconds if house else 0.0,
    )


def _compact(
    items: list[tuple[Artifact, Path]],
    work: Path,
    created: datetime,
    options: CompactOptions,
    keep_plain: Collection[str],
) -> tuple[list[tuple[Artifact, Path]], Optional[tuple[SolidContainer, Path]]]:
    """Move every archive but those named in ``keep_plain`` into the solid stream; returns
    the items with their artifacts updated and the stream (None when nothing went in)."""
    inside = [(a, p) for a, p in items if a.file_name not in keep_plain]
    if not inside:
        return items, None
    from pybundle.bundler.solid import pack_solid

    container, entries, path = run_stoppable(
        lambda stop: pack_solid(inside, work, when=created, options=options, stop=stop),
        name="pybundle-compact",
    )
    updated = {a.file_name: a for a in entries}
    return [(updated.get(a.file_name, a), p) for a, p in items], (container, path)


def _boot_candidates(
    the_plan: Optional[Plan], infos: Sequence[Any], prefix_format: str
) -> list[BootCandidate]:
    """What could bootstrap a self-installing file, before anything is downloaded or packed:
    the planned catalog archives and the prefixes (packed as ``prefix_format``)."""
    from pybundle.bundler.selfinstall import BootCandidate

    found = []
    for p in the_plan.artifacts if the_plan else ():
        e = p.entry
        found.append(
            BootCandidate(
                e.target,
                str(e.version),
                e.implementation,
                e.variant,
                e.flavour,
                e.archive_format,
                e.file_name,
            )
        )
    for info in infos:
        found.append(
            BootCandidate(
                info.target,
                str(info.version),
                info.implementation,
                info.variant,
                "install_only",
                prefix_format,
                str(info.prefix),
            )
        )
    return found


def _write_checked(
    write: Callable[[], Manifest],
    the_plan: Optional[Plan],
    downloads: Sequence[DownloadResult],
    cache_dir: Path,
    jobs: int,
    progress: Optional[Progress],
) -> Manifest:
    """Run ``write`` (the bundle writer, which hashes every archive as it copies it and
    drops its temporary file when one does not match); when it fails so and some archives
    were cache hits taken without re-hashing (``verified=False``), fetch those again with
    verify-on-hit (:meth:`Cache.lookup`: a damaged entry is evicted and downloaded again,
    into the same cache path) and write once more."""
    try:
        return write()
    except HashMismatchError:
        if the_plan is None or all(d.verified for d in downloads):
            raise
    redo = Plan(tuple(p for p, d in zip(the_plan.artifacts, downloads) if not d.verified))
    _download_all(redo, Cache(cache_dir), jobs, progress, trust_hits=False)
    return write()


def _download_all(
    the_plan: Plan,
    cache: Cache,
    jobs: int,
    progress: Optional[Progress],
    *,
    trust_hits: bool = False,
) -> tuple[list[DownloadResult], DownloadSummary]:
    """Fetch the plan's archives into the cache, measuring each (:meth:`Cache.shape`) in its
    download thread while the other downloads go on; returns the results in plan order and
    their summary. Stoppable: see :meth:`Downloader.fetch_all`.

    With ``trust_hits``, a hit whose shape is remembered is taken after a size check only
    (``verified=False``; nothing is read from it here): the caller must hash it as it reads
    it (:func:`_write_checked`). A hit whose shape must still be measured is verified first,
    so a shape is only ever measured from verified bytes."""
    trust = (
        (lambda item: item.sha256 is not None and cache.has_shape(item.sha256))
        if trust_hits
        else None
    )
    downloader = Downloader(cache, jobs=jobs, progress=progress, trust_hit=trust)
    # Measuring inflates the whole archive: CPU-bound, so no more measurements run at once
    # than there are CPUs (each holds about 4 MiB of inflated chunks). Measured with the
    # bench's cold 15-archive bundle, --jobs 4 on 2 CPUs: peak RSS 69 MB with 4 at once, 63 MB
    # with 2, in the same time (2.05 s). Downloads go on meanwhile; a stopped measurement
    # ends at once, and with it the wait of the next one.
    measuring = threading.BoundedSemaphore(max(1, min(jobs, os.cpu_count() or 1)))

    def measure(d: DownloadResult) -> None:
        with measuring:
            cache.shape(d.sha256, d.path, _format_of(d.path), downloader.stop)

    started = time.monotonic()
    try:
        downloads = downloader.fetch_all([p.item for p in the_plan.artifacts], after=measure)
    finally:
        downloader.close()
    return downloads, summarize(downloads, time.monotonic() - started)
