"""What a bundle run asks for: one typed object shared by the plan (``--dry-run``) and the build.

:class:`Selection` holds the requests, the platforms and the options that narrow the builds
(variant, flavour, release, prerelease policy, unhashed entries) together with the catalog they
are resolved against (catalog, PBS release, mirror). The CLI parses its options into one with
:meth:`Selection.parse`; :func:`pybundle.bundler.build.make_plan` and
:func:`pybundle.bundler.build.build_bundle` take it whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional, Union

from pybundle.bundler.catalog import VARIANTS
from pybundle.bundler.resolve import FLAVOURS
from pybundle.errors import UsageError
from pybundle.targets import PlatformGroup, Target, host_target, parse_platform_or_group
from pybundle.versions import PRERELEASE_POLICIES, PythonRequest, parse_request_list

__all__ = ["Selection"]

Platform = Union[Target, PlatformGroup]


@dataclass(frozen=True)
class Selection:
    """Which interpreters a bundle holds, and which catalog they come from.

    Fields:
        requests: version requests (:class:`pybundle.versions.PythonRequest`), in bundle order.
        platforms: targets and platform groups, in bundle order within a request.
        variant: ``default``, ``freethreaded``, ``debug`` or ``freethreaded+debug``, for
            requests that name none.
        flavour: ``install_only``, ``install_only_stripped``, ``full``, or None (uv's choice).
        build: a python-build-standalone release tag to pin (``20260814``), or None.
        prerelease: ``disallow``, ``allow`` or ``if-necessary``.
        allow_unhashed: accept catalog entries without a sha256 (hashed at bundle time).
        catalog: uv downloads-JSON path or URL, or a directory of PBS archives; None for the
            default (``$PYBUNDLE_CATALOG``, else uv's).
        pbs_release: read this PBS release's ``SHA256SUMS`` instead of a catalog.
        mirror: replaces the python-build-standalone release-download URL prefix.

    Raises:
        UsageError: on construction, for an unknown variant, flavour or prerelease policy, or
            both ``catalog`` and ``pbs_release``.
    """

    requests: tuple[PythonRequest, ...] = ()
    platforms: tuple[Platform, ...] = ()
    variant: str = "default"
    flavour: Optional[str] = None
    build: Optional[str] = None
    prerelease: str = "disallow"
    allow_unhashed: bool = False
    catalog: Optional[str] = None
    pbs_release: Optional[str] = None
    mirror: Optional[str] = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise UsageError(
                f"unknown build variant {self.variant!r}; available: {', '.join(VARIANTS)}"
            )
        if self.flavour is not None and self.flavour not in FLAVOURS:
            raise UsageError(
                f"unknown archive flavour {self.flavour!r}; available: {', '.join(FLAVOURS)}"
            )
        if self.prerelease not in PRERELEASE_POLICIES:
            raise UsageError(
                f"unknown prerelease policy {self.prerelease!r}; available: "
                f"{', '.join(PRERELEASE_POLICIES)}"
            )
        if self.catalog and self.pbs_release:
            raise UsageError("give either --catalog or --pbs-release, not both")

    @classmethod
    def parse(
        cls,
        versions: Iterable[str] = (),
        platforms: Iterable[str] = (),
        *,
        variant: str = "default",
        flavour: Optional[str] = None,
        build: Optional[str] = None,
        prerelease: str = "disallow",
        allow_unhashed: bool = False,
        catalog: Optional[str] = None,
        pbs_release: Optional[str] = None,
        mirror: Optional[str] = None,
    ) -> Selection:
        """A selection from command-line text: ``versions`` are comma lists of requests
        (:func:`pybundle.versions.parse_request_list`), ``platforms`` comma lists of platforms
        or groups (:func:`pybundle.targets.parse_platform_or_group`; none means this host);
        the keyword arguments are the other fields.

        Raises:
            UsageError: an invalid request or option; ResolutionError: an unknown platform.
        """
        requests = tuple(r for text in versions for r in parse_request_list(text))
        targets = tuple(
            parse_platform_or_group(p.strip())
            for text in platforms
            for p in text.split(",")
            if p.strip()
        )
        return cls(
            requests,
            targets or (host_target(),),
            variant=variant,
            flavour=flavour,
            build=build,
            prerelease=prerelease,
            allow_unhashed=allow_unhashed,
            catalog=catalog,
            pbs_release=pbs_release,
            mirror=mirror,
        )
