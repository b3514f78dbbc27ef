"""Pick one catalog entry per (version request, platform): the newest release that matches."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pybundle.bundler.catalog import VARIANTS, CatalogEntry
from pybundle.errors import ResolutionError, UsageError
from pybundle.targets import Target
from pybundle.versions import PythonVersion, VersionRequest

__all__ = ["resolve"]


def _build_key(build: str) -> tuple[tuple[int, ...], str]:
    """Order release tags: PBS dates ``20240107`` numerically, ``7.3.23`` part by part."""
    return (tuple(int(n) for n in re.findall(r"\d+", build)), build)


def _minor_list(versions: set[PythonVersion]) -> str:
    minors = sorted({(v.major, v.minor) for v in versions})
    return ", ".join(f"{major}.{minor}" for major, minor in minors)


def _no_version_message(
    label: str, request: VersionRequest, target: Target, candidates: Sequence[CatalogEntry]
) -> str:
    """One line saying ``request`` is absent and listing what the target does have."""
    head = f"no {label} {request} for {target.friendly} in the catalog"
    versions = {e.version for e in candidates}
    same_minor = sorted(v for v in versions if (v.major, v.minor) == (request.major, request.minor))
    if request.patch is not None and same_minor:
        listed = ", ".join(str(v) for v in same_minor)
        return f"{head}; available {request.major}.{request.minor} versions: {listed}"
    finals = {v for v in versions if not v.is_prerelease}
    message = f"{head}; available: {_minor_list(finals) or 'none (prereleases only)'}"
    if same_minor and all(v.is_prerelease for v in same_minor):
        message += (
            f"; {request.major}.{request.minor} has only prereleases, newest {same_minor[-1]}"
            " (ask for it by its full version)"
        )
    return message


def _pick(
    label: str,
    request: VersionRequest,
    target: Target,
    on_target: Sequence[CatalogEntry],
) -> CatalogEntry:
    matching = [e for e in on_target if request.matches(e.version)]
    if not matching:
        raise ResolutionError(_no_version_message(label, request, target, on_target))
    verifiable = [e for e in matching if e.sha256]
    if not verifiable:
        newest = max(matching, key=lambda e: (e.version, _build_key(e.build)))
        raise ResolutionError(
            f"{label} {request} for {target.friendly} is in the catalog only as {newest.key}, "
            "which has no sha256; refusing an archive that cannot be verified"
        )
    return max(verifiable, key=lambda e: (e.version, _build_key(e.build)))


def resolve(
    entries: Sequence[CatalogEntry],
    requests: Sequence[VersionRequest],
    targets: Sequence[Target],
    *,
    implementation: str = "cpython",
    variant: str = "default",
) -> list[CatalogEntry]:
    """Choose, for every (request, target) pair, the catalog entry to bundle.

    An entry qualifies when its implementation and variant equal the arguments, its target
    equals the requested one exactly (a target with ``arch_variant`` None takes baseline builds
    only; ``linux-x86_64_v3`` takes v3 builds only) and ``request.matches(entry.version)``
    (so ``3.12`` never picks a prerelease). Among qualifying entries that have a sha256, the
    highest version wins, then the newest build (release tag). Catalog format: uv's
    ``download-metadata.json`` (see :mod:`pybundle.bundler.catalog`).

    Args:
        entries: the parsed catalog.
        requests: version requests, in the order results should follow.
        targets: platforms, in the order results should follow within a request.
        implementation: ``"cpython"``, ``"pypy"`` or ``"graalpy"``.
        variant: ``"default"``, ``"freethreaded"``, ``"debug"`` or ``"freethreaded+debug"``.

    Returns:
        Entries ordered by (request order, target order), each entry at most once (two requests
        resolving to the same entry keep the first position). Empty if either input is empty.

    Raises:
        UsageError: ``variant`` is not one of the four names.
        ResolutionError: one line, for the first pair that cannot be satisfied: the
            implementation is absent (lists those present); the platform has no builds of it
            (lists the platforms that do); the variant is absent there (lists the variants); no
            version matches (lists the available minor versions, or for an exact request the
            versions of that minor); or only entries without a sha256 match.
    """
    if variant not in VARIANTS:
        raise UsageError(f"unknown build variant {variant!r}; available: {', '.join(VARIANTS)}")
    if not requests or not targets:
        return []
    same_impl = [e for e in entries if e.implementation == implementation]
    if not same_impl:
        present = ", ".join(sorted({e.implementation for e in entries})) or "none"
        raise ResolutionError(
            f"no {implementation} builds in the catalog; available implementations: {present}"
        )
    label = implementation if variant == "default" else f"{implementation} {variant}"

    per_target: dict[Target, list[CatalogEntry]] = {}
    for target in targets:
        if target in per_target:
            continue
        on_target = [e for e in same_impl if e.target == target]
        if not on_target:
            platforms = ", ".join(sorted({e.target.friendly for e in same_impl}))
            raise ResolutionError(
                f"no {implementation} builds for platform {target.friendly} in the catalog; "
                f"available platforms: {platforms}"
            )
        of_variant = [e for e in on_target if e.variant == variant]
        if not of_variant:
            have = ", ".join(v for v in VARIANTS if any(e.variant == v for e in on_target))
            raise ResolutionError(
                f"no {label} builds for platform {target.friendly} in the catalog; "
                f"available variants: {have}"
            )
        per_target[target] = of_variant

    result: list[CatalogEntry] = []
    seen: set[str] = set()
    for request in requests:
        for target in targets:
            entry = _pick(label, request, target, per_target[target])
            if entry.key not in seen:
                seen.add(entry.key)
                result.append(entry)
    return result
