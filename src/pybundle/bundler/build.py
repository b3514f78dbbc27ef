"""The bundle command's pipeline: catalog -> plan -> downloads -> bundle file.

Each step is a plain function so tests can call it directly; :func:`build_bundle` chains them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pybundle.bundler.cache import Cache
from pybundle.bundler.catalog import CatalogEntry, apply_mirror, load_catalog
from pybundle.bundler.download import DEFAULT_JOBS, DownloadItem, DownloadResult, fetch_all
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.prefix import pack_prefix, probe_prefix
from pybundle.bundler.resolve import resolve
from pybundle.errors import AlreadyExistsError, ResolutionError, StorageError
from pybundle.manifest import Artifact, Manifest
from pybundle.signing import SecretKey
from pybundle.targets import Target
from pybundle.versions import VersionRequest

PBS_BUILD_PREFIX = "/install"
"""python-build-standalone configures CPython with this placeholder prefix (PBS docs)."""


@dataclass(frozen=True)
class PlannedArtifact:
    """A resolved catalog entry with the URL it will be fetched from (mirror applied)."""

    entry: CatalogEntry
    url: str


@dataclass
class BundleReport:
    """What :func:`build_bundle` did. Sizes in bytes, durations in seconds."""

    manifest: Manifest
    output: Path
    downloads: list[DownloadResult] = field(default_factory=list)
    seconds: float = 0.0


def plan(
    entries: Sequence[CatalogEntry],
    versions: Sequence[VersionRequest],
    targets: Sequence[Target],
    *,
    mirror: str | None = None,
    implementation: str = "cpython",
    variant: str = "default",
) -> list[PlannedArtifact]:
    """Resolve each (version, target) pair and apply the mirror. Raises ResolutionError."""
    picked = resolve(entries, versions, targets, implementation=implementation, variant=variant)
    planned = []
    for entry in picked:
        if entry.archive_format not in ("tar.gz", "tar.zst"):
            raise ResolutionError(
                f"{entry.file_name}: {entry.archive_format} archives are not supported "
                "(tar.gz and tar.zst are)"
            )
        if not entry.sha256:
            raise ResolutionError(f"{entry.key}: the catalog gives no sha256 for {entry.url}")
        planned.append(PlannedArtifact(entry, apply_mirror(entry.url, mirror)))
    return planned


def artifact_for_entry(entry: CatalogEntry, size: int) -> Artifact:
    """The manifest record of a downloaded catalog archive of ``size`` bytes.

    PBS install_only archives hold ``python/``; full archives hold ``python/install/``
    (PBS docs/distributions.rst). CPython builds use the ``/install`` build prefix.
    """
    assert entry.sha256 is not None
    return Artifact(
        file_name=entry.file_name,
        size=size,
        sha256=entry.sha256,
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


def build_bundle(
    output: Path,
    *,
    versions: Sequence[VersionRequest] = (),
    targets: Sequence[Target] = (),
    catalog: str | None = None,
    mirror: str | None = None,
    cache_dir: Path,
    secret_key: SecretKey | None,
    from_prefixes: Sequence[Path] = (),
    prefix_site_packages: str = "all",
    prefix_format: str = "tar.zst",
    jobs: int = DEFAULT_JOBS,
    force: bool = False,
    serial: int | None = None,
) -> BundleReport:
    """Resolve, download, pack local prefixes and write the bundle. See the CLI for semantics.

    Raises the typed errors of each step: ResolutionError, DownloadError, HashMismatchError,
    AlreadyExistsError, StorageError, UsageError.
    """
    started = time.monotonic()
    output = output.absolute()
    if output.exists() and not force:
        raise AlreadyExistsError(f"{output}: already exists (use --force to replace it)")
    infos = [probe_prefix(p) for p in from_prefixes]
    items: list[tuple[Artifact, Path]] = []
    downloads: list[DownloadResult] = []
    if versions:
        entries = load_catalog(catalog) if catalog else load_catalog_default()
        planned = plan(entries, versions, targets, mirror=mirror)
        cache = Cache(cache_dir)
        downloads = fetch_all(
            [DownloadItem(p.url, p.entry.sha256 or "", p.entry.file_name) for p in planned],
            cache,
            jobs=jobs,
        )
        items = [(artifact_for_entry(p.entry, d.size), d.path) for p, d in zip(planned, downloads)]
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".work", dir=output.parent))
    except OSError as exc:
        raise StorageError(f"{output.parent}: cannot create a work directory: {exc}") from exc
    try:
        for info in infos:
            items.append(
                pack_prefix(
                    info, work, archive_format=prefix_format, site_packages=prefix_site_packages
                )
            )
        names = [a.file_name for a, _ in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ResolutionError(f"the bundle would hold {duplicates[0]} twice")
        manifest = write_bundle(output, items, secret_key=secret_key, force=force, serial=serial)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BundleReport(manifest, output, downloads, time.monotonic() - started)


def load_catalog_default() -> list[CatalogEntry]:
    """Load the catalog named by ``$PYBUNDLE_CATALOG`` or uv's public download metadata."""
    from pybundle.bundler.catalog import default_catalog_source

    return load_catalog(default_catalog_source())
