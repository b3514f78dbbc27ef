"""What a catalog offers: one line per interpreter build, for ``pybundle versions``.

Like ``uv python list --all-versions``: every (implementation, version, variant, platform) the
catalog has, newest first, with the newest release (build tag) that provides it and the
archive flavours of that release.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from pybundle.bundler.catalog import VARIANTS, CatalogEntry
from pybundle.targets import PlatformGroup, Target
from pybundle.versions import IMPLEMENTATION_NAMES, PythonVersion

__all__ = ["Offer", "offers"]

Platform = Union[Target, PlatformGroup]


@dataclass(frozen=True)
class Offer:
    """One interpreter build the catalog has.

    Fields: ``implementation`` (``cpython``...), ``version``, ``variant`` (``default``,
    ``freethreaded``...), ``target``; ``build``: the newest release tag that has it;
    ``flavours``: that release's archive flavours (sorted); ``builds``: how many releases have it.
    """

    implementation: str
    version: PythonVersion
    variant: str
    target: Target
    build: str
    flavours: tuple[str, ...]
    builds: int

    @property
    def name(self) -> str:
        """uv's install name: ``cpython-3.13.1+freethreaded-linux-x86_64-gnu``."""
        variant = "" if self.variant == "default" else f"+{self.variant}"
        return f"{self.implementation}-{self.version}{variant}-{self.target.key}"

    def to_json(self) -> dict[str, Any]:
        """The offer as JSON (``pybundle versions --json``)."""
        return {
            "name": self.name,
            "implementation": self.implementation,
            "version": str(self.version),
            "prerelease": self.version.is_prerelease,
            "variant": self.variant,
            "platform": self.target.friendly,
            "target_triple": self.target.triple,
            "build": self.build,
            "flavours": list(self.flavours),
            "builds": self.builds,
        }


def _build_key(build: str) -> tuple[tuple[int, ...], str]:
    return (tuple(int(n) for n in re.findall(r"\d+", build)), build)


def offers(entries: Sequence[CatalogEntry], platforms: Sequence[Platform]) -> list[Offer]:
    """Every build in ``entries`` for one of ``platforms`` (targets match exactly, groups by
    :meth:`PlatformGroup.matches`), one :class:`Offer` per (implementation, version, variant,
    target). Ordered: implementation (cpython, pypy, graalpy), newest version first, variant,
    platform name."""

    def wanted(target: Target) -> bool:
        return any(
            p.matches(target) if isinstance(p, PlatformGroup) else p == target for p in platforms
        )

    groups: dict[tuple[str, PythonVersion, str, Target], list[CatalogEntry]] = {}
    for e in entries:
        if wanted(e.target):
            groups.setdefault((e.implementation, e.version, e.variant, e.target), []).append(e)
    result = []
    for (impl, version, variant, target), group in groups.items():
        newest = max(group, key=lambda e: _build_key(e.build)).build
        flavours = tuple(sorted({e.flavour for e in group if e.build == newest}))
        builds = len({e.build for e in group})
        result.append(Offer(impl, version, variant, target, newest, flavours, builds))

    impl_rank = {name: i for i, name in enumerate(IMPLEMENTATION_NAMES)}
    variant_rank = {name: i for i, name in enumerate(VARIANTS)}
    # stable sorts, least significant key first
    result.sort(key=lambda o: (variant_rank.get(o.variant, 9), o.target.friendly))
    result.sort(key=lambda o: o.version, reverse=True)
    result.sort(key=lambda o: impl_rank.get(o.implementation, 9))
    return result
