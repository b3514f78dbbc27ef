"""Pick catalog entries for (request, platform) pairs: the newest release that matches, as
``uv python install`` would pick it from the same catalog.

The rules, in order, for each request and each platform:

1. candidates: entries of the request's implementation (``cpython`` unless the request names
   another), of exactly that platform (a platform without CPU level takes baseline builds only),
   of the build variant (the request's own ``3.13t`` / ``+debug``, else the ``variant``
   argument), and of the pinned release (``build``) when one is given;
2. versions: those the request matches; prereleases only if the request names one, or the
   policy is ``allow`` (they compete with finals) or ``if-necessary`` (only when no final
   matches: uv's behaviour);
3. the highest version wins, then the newest release (build tag); a range (``>=3.10,<3.13``,
   ``3.10-3.13``) yields the winner of *each* matching minor;
4. among the archives of that version and release, the requested ``flavour``, or by default the
   one uv's catalog lists: ``install_only_stripped`` > ``install_only`` > ``full``
   (``pgo+lto`` > ``pgo`` > ``lto`` > ``noopt`` > others);
5. the winner must have a sha256 unless ``allow_unhashed``: an unverifiable newest release is
   refused, never silently replaced by an older verifiable one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

from pybundle.bundler.catalog import VARIANTS, CatalogEntry
from pybundle.errors import ResolutionError, UsageError
from pybundle.targets import PlatformGroup, Target
from pybundle.versions import (
    PRERELEASE_POLICIES,
    PythonRequest,
    PythonVersion,
    VersionRequest,
)

__all__ = ["FLAVOURS", "Pick", "Skipped", "resolve", "resolve_picks"]

#: Archive flavours a user can ask for (PBS ``docs/distributions.rst``).
FLAVOURS: tuple[str, ...] = ("install_only", "install_only_stripped", "full")
_FLAVOUR_RANK = {"install_only_stripped": 0, "install_only": 1, "full": 2}
_CONFIG_RANK = {"pgo+lto": 0, "pgo": 1, "lto": 2, "noopt": 3}

Platform = Union[Target, PlatformGroup]
AnyRequest = Union[PythonRequest, VersionRequest]


@dataclass(frozen=True)
class Pick:
    """The entry chosen for ``request`` on ``target``."""

    request: PythonRequest
    target: Target
    entry: CatalogEntry


@dataclass(frozen=True)
class Skipped:
    """A (request, target) pair of a platform group that the catalog cannot serve; ``reason``
    is the one-line message the same pair would raise outside a group."""

    request: PythonRequest
    target: Target
    reason: str


def _build_key(build: str) -> tuple[tuple[int, ...], str]:
    """Order release tags: PBS dates ``20240107`` numerically, ``7.3.23`` part by part."""
    return (tuple(int(n) for n in re.findall(r"\d+", build)), build)


def _flavour_key(entry: CatalogEntry) -> tuple[int, int]:
    config = entry.config
    core = "+".join(
        p for p in re.split(r"[+]", config.replace("shared-", "").replace("static-", "")) if p
    )
    core = "+".join(p for p in core.split("+") if p not in ("freethreaded", "debug"))
    return (_FLAVOUR_RANK.get(entry.flavour, 3), _CONFIG_RANK.get(core, 4 if core else 0))


def _minor_list(versions: set[PythonVersion]) -> str:
    minors = sorted({(v.major, v.minor) for v in versions})
    return ", ".join(f"{major}.{minor}" for major, minor in minors)


def _as_request(request: AnyRequest) -> PythonRequest:
    if isinstance(request, VersionRequest):
        return PythonRequest.from_version_request(request)
    return request


def _no_version_message(
    label: str,
    request: PythonRequest,
    target: Target,
    candidates: Sequence[CatalogEntry],
    policy: str,
) -> str:
    """One line saying ``request`` is absent and listing what the target does have."""
    head = f"no {label} {request} for {target.friendly} in the catalog"
    versions = {e.version for e in candidates}
    minor = None if request.per_minor else request.exact_minor
    same_minor = sorted(v for v in versions if minor and (v.major, v.minor) == minor)
    if minor is not None and request.pinned is not None and same_minor:
        listed = ", ".join(str(v) for v in same_minor)
        return f"{head}; available {minor[0]}.{minor[1]} versions: {listed}"
    finals = {v for v in versions if not v.is_prerelease}
    message = f"{head}; available: {_minor_list(finals) or 'none (prereleases only)'}"
    matching_pre = sorted(v for v in versions if v.is_prerelease and request.matches(v))
    if matching_pre and policy == "disallow":
        message += (
            f"; only prereleases match, newest {matching_pre[-1]} (ask for it by its full "
            "version, or use --prerelease allow)"
        )
    return message


def _usable(
    request: PythonRequest, matching: list[CatalogEntry], policy: str
) -> list[CatalogEntry]:
    finals = [e for e in matching if not e.version.is_prerelease]
    if request.explicit_prerelease or policy == "allow":
        return matching
    if policy == "if-necessary":
        return finals or matching
    return finals


def _best(
    label: str,
    target: Target,
    entries: list[CatalogEntry],
    flavour: Optional[str],
    allow_unhashed: bool,
) -> CatalogEntry:
    """The newest version, then release, then the preferred (or requested) flavour."""
    top = max(entries, key=lambda e: (e.version, _build_key(e.build)))
    same = [e for e in entries if e.version == top.version and e.build == top.build]
    if flavour is not None:
        wanted = [e for e in same if e.flavour == flavour]
        if not wanted:
            have = ", ".join(sorted({e.flavour for e in same}))
            raise ResolutionError(
                f"{label} {top.version} for {target.friendly} (release {top.build}) is in the "
                f"catalog only as {have}, not {flavour}; a python-build-standalone release "
                f"catalog (--pbs-release {top.build}) lists every flavour"
            )
        same = wanted
    chosen = min(same, key=lambda e: (_flavour_key(e), e.file_name))
    if chosen.sha256 is None and not allow_unhashed:
        raise ResolutionError(
            f"{label} {chosen.version} for {target.friendly} is in the catalog only as "
            f"{chosen.file_name}, which has no sha256; refusing an archive that cannot be "
            "verified (--allow-unhashed hashes it at bundle time)"
        )
    return chosen


def _pick_for(
    label: str,
    request: PythonRequest,
    target: Target,
    pool: Sequence[CatalogEntry],
    *,
    policy: str,
    flavour: Optional[str],
    allow_unhashed: bool,
) -> list[CatalogEntry]:
    matching = [e for e in pool if request.matches(e.version)]
    if not request.per_minor:
        usable = _usable(request, matching, policy)
        if not usable:
            raise ResolutionError(_no_version_message(label, request, target, pool, policy))
        return [_best(label, target, usable, flavour, allow_unhashed)]
    by_minor: dict[tuple[int, int], list[CatalogEntry]] = {}
    for e in matching:
        by_minor.setdefault((e.version.major, e.version.minor), []).append(e)
    picks = []
    for minor in sorted(by_minor):
        usable = _usable(request, by_minor[minor], policy)
        if usable:
            picks.append(_best(label, target, usable, flavour, allow_unhashed))
    if not picks:
        raise ResolutionError(_no_version_message(label, request, target, pool, policy))
    return picks


def _pool(
    entries: Sequence[CatalogEntry],
    implementation: str,
    variant: str,
    target: Target,
    build: Optional[str],
) -> list[CatalogEntry]:
    """The candidates of one platform; raises ResolutionError naming what is missing."""
    same_impl = [e for e in entries if e.implementation == implementation]
    if not same_impl:
        present = ", ".join(sorted({e.implementation for e in entries})) or "none"
        raise ResolutionError(
            f"no {implementation} builds in the catalog; available implementations: {present}"
        )
    label = implementation if variant == "default" else f"{implementation} {variant}"
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
    if build is None:
        return of_variant
    of_build = [e for e in of_variant if e.build == build]
    if not of_build:
        builds = sorted({e.build for e in of_variant}, key=_build_key)
        raise ResolutionError(
            f"no {label} builds of release {build} for platform {target.friendly} in the "
            f"catalog; newest releases there: {', '.join(builds[-5:])}"
        )
    return of_build


def resolve_picks(
    entries: Sequence[CatalogEntry],
    requests: Sequence[AnyRequest],
    platforms: Sequence[Platform],
    *,
    implementation: str = "cpython",
    variant: str = "default",
    flavour: Optional[str] = None,
    build: Optional[str] = None,
    prerelease: str = "disallow",
    allow_unhashed: bool = False,
) -> tuple[list[Pick], list[Skipped]]:
    """Choose the catalog entries for every (request, platform) pair; see the module docstring.

    Args:
        entries: a parsed catalog (:mod:`pybundle.bundler.catalog`; any of its three sources).
        requests: :class:`PythonRequest` (or plain :class:`VersionRequest`), in result order.
        platforms: targets, and groups (:class:`PlatformGroup`) expanded to every target of the
            catalog that has builds of the request's implementation and variant, sorted by
            friendly name; in result order within a request.
        implementation: for requests that name none (``"cpython"``, ``"pypy"``, ``"graalpy"``).
        variant: for requests that name none: ``"default"``, ``"freethreaded"``, ``"debug"``,
            ``"freethreaded+debug"``.
        flavour: ``"install_only"``, ``"install_only_stripped"``, ``"full"``, or None (uv's
            preference, see the module docstring).
        build: a release tag to pin (``"20260814"``), or None for any.
        prerelease: ``"disallow"``, ``"allow"`` or ``"if-necessary"`` (see
            :data:`pybundle.versions.PRERELEASE_POLICIES`).
        allow_unhashed: accept a winner whose catalog entry has no sha256.

    Returns:
        ``(picks, skipped)``: picks ordered by (request, platform, minor), each archive URL at
        most once (the first position wins); skipped lists the group members that cannot serve
        a request (a named platform that cannot is an error instead).

    Raises:
        UsageError: unknown variant, flavour or prerelease policy.
        ResolutionError: one line, for the first pair that cannot be satisfied: implementation
            absent (lists those present), platform without builds (lists platforms), variant
            absent (lists variants), pinned release absent, no matching version (lists the
            minors, or the patches of the requested minor), flavour absent, no sha256; or a
            request that no member of a group can serve.
    """
    if variant not in VARIANTS:
        raise UsageError(f"unknown build variant {variant!r}; available: {', '.join(VARIANTS)}")
    if flavour is not None and flavour not in FLAVOURS:
        raise UsageError(f"unknown archive flavour {flavour!r}; available: {', '.join(FLAVOURS)}")
    if prerelease not in PRERELEASE_POLICIES:
        raise UsageError(
            f"unknown prerelease policy {prerelease!r}; available: {', '.join(PRERELEASE_POLICIES)}"
        )
    picks: list[Pick] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for raw in requests:
        request = _as_request(raw)
        impl = request.implementation or implementation
        var = request.variant or variant
        label = impl if var == "default" else f"{impl} {var}"
        got_one = False
        first_group_error: Optional[ResolutionError] = None
        for platform in platforms:
            if isinstance(platform, PlatformGroup):
                members = sorted(
                    {
                        e.target
                        for e in entries
                        if e.implementation == impl
                        and e.variant == var
                        and platform.matches(e.target)
                    },
                    key=lambda t: t.friendly,
                )
                if not members:
                    raise ResolutionError(
                        f"no {label} builds for any platform of {platform.name} in the catalog"
                    )
                in_group = True
            else:
                members = [platform]
                in_group = False
            for target in members:
                try:
                    pool = _pool(entries, impl, var, target, build)
                    chosen = _pick_for(
                        label,
                        request,
                        target,
                        pool,
                        policy=prerelease,
                        flavour=flavour,
                        allow_unhashed=allow_unhashed,
                    )
                except ResolutionError as exc:
                    if not in_group:
                        raise
                    skipped.append(Skipped(request, target, exc.message))
                    first_group_error = first_group_error or exc
                    continue
                got_one = True
                for entry in chosen:
                    if entry.url not in seen:
                        seen.add(entry.url)
                        picks.append(Pick(request, target, entry))
        if not got_one and first_group_error is not None:
            raise first_group_error
    return picks, skipped


def resolve(
    entries: Sequence[CatalogEntry],
    requests: Sequence[AnyRequest],
    targets: Sequence[Platform],
    *,
    implementation: str = "cpython",
    variant: str = "default",
    flavour: Optional[str] = None,
    build: Optional[str] = None,
    prerelease: str = "disallow",
    allow_unhashed: bool = False,
) -> list[CatalogEntry]:
    """The entries of :func:`resolve_picks` (same arguments, rules and errors), in its order."""
    picks, _ = resolve_picks(
        entries,
        requests,
        targets,
        implementation=implementation,
        variant=variant,
        flavour=flavour,
        build=build,
        prerelease=prerelease,
        allow_unhashed=allow_unhashed,
    )
    return [p.entry for p in picks]
