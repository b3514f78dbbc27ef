"""Platform vocabulary: which machine an interpreter build is for, in every spelling we meet.

A :class:`Target` is stored in the terms of uv's ``download-metadata.json`` catalog (fields ``os``,
``arch.family``, ``arch.variant`` and ``libc`` of each entry) and can be rendered as

* a python-build-standalone (PBS) target triple, as used in release file names
  (PBS ``docs/distributions.rst``, "Target triples"): ``x86_64_v3-unknown-linux-gnu``,
  ``aarch64-apple-darwin``, ``x86_64-pc-windows-msvc``, ``ppc64le-unknown-linux-gnu``;
* the catalog's platform key, the tail of each catalog key (``cpython-3.12.1-linux-x86_64-gnu``);
* uv's install-directory platform key, which says ``macos`` where the catalog says ``darwin``;
* a friendly name for command lines: ``linux-x86_64``, ``linux-aarch64-musl``, ``macos-arm64``.

This module is shared by the online bundler and the offline installer, so it imports only the
standard library and :mod:`pybundle.errors`.
"""

from __future__ import annotations

import glob
import os as _os
import platform
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Optional

from pybundle.errors import PlatformMismatchError, ResolutionError

__all__ = [
    "ACCEPTED_PLATFORMS",
    "ARCH_VARIANTS",
    "PLATFORM_GROUPS",
    "PlatformGroup",
    "Target",
    "cpu_supports",
    "host_can_run",
    "host_target",
    "is_known_target",
    "parse_platform",
    "parse_platform_or_group",
    "parse_triple",
]

#: Architecture families per operating system, in catalog terms (``arch.family``).
_OS_ARCHES: dict[str, tuple[str, ...]] = {
    "linux": ("x86_64", "aarch64", "armv7", "i686", "powerpc64le", "s390x", "riscv64"),
    "darwin": ("x86_64", "aarch64"),
    "windows": ("x86_64", "i686", "aarch64"),
}

#: C library names per operating system, in catalog terms (``libc``).
_OS_LIBCS: dict[str, tuple[str, ...]] = {
    "linux": ("gnu", "musl", "gnueabi", "gnueabihf"),
    "darwin": ("none",),
    "windows": ("none",),
}

#: x86_64 microarchitecture levels PBS publishes builds for (``arch.variant`` in the catalog).
ARCH_VARIANTS: tuple[str, ...] = ("v2", "v3", "v4")

#: Other spellings of an architecture (``platform.machine()`` results, Apple/Windows/Rust names).
_ARCH_ALIASES: dict[str, str] = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv7": "armv7",
    "armv7l": "armv7",
    "i686": "i686",
    "i586": "i686",
    "i386": "i686",
    "x86": "i686",
    "powerpc64le": "powerpc64le",
    "ppc64le": "powerpc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

#: Architecture names inside PBS target triples where they differ from the catalog family.
_TRIPLE_ARCH: dict[str, str] = {"powerpc64le": "ppc64le"}

#: Other spellings of an operating system; uv's install keys say ``macos``.
_OS_ALIASES: dict[str, str] = {
    "linux": "linux",
    "darwin": "darwin",
    "macos": "darwin",
    "windows": "windows",
}

#: Friendly names accepted by :func:`parse_platform`, listed in error messages.
ACCEPTED_PLATFORMS: tuple[str, ...] = (
    "linux-x86_64",
    "linux-x86_64-musl",
    "linux-x86_64_v2",
    "linux-x86_64_v3",
    "linux-x86_64_v4",
    "linux-aarch64",
    "linux-aarch64-musl",
    "linux-armv7-gnueabihf",
    "linux-armv7-gnueabi",
    "linux-i686",
    "linux-powerpc64le",
    "linux-riscv64",
    "linux-s390x",
    "macos-aarch64",
    "macos-x86_64",
    "windows-x86_64",
    "windows-i686",
    "windows-aarch64",
)

_PLATFORM_HINT = (
    "accepted: "
    + ", ".join(ACCEPTED_PLATFORMS)
    + " (aliases arm64, amd64; also uv keys like linux-x86_64-gnu or darwin-aarch64-none,"
    " and target triples like x86_64-unknown-linux-gnu)"
)

_VARIANT_RANK: dict[Optional[str], int] = {None: 0, "v2": 2, "v3": 3, "v4": 4}


@dataclass(frozen=True)
class Target:
    """One platform an interpreter build runs on, in uv catalog terms.

    Fields:
        os: ``"linux"``, ``"darwin"`` or ``"windows"`` (catalog ``os``; macOS is ``"darwin"``).
        arch: catalog ``arch.family``: ``"x86_64"``, ``"aarch64"``, ``"armv7"``, ``"i686"``,
            ``"powerpc64le"``, ``"s390x"`` or ``"riscv64"``.
        libc: catalog ``libc``: ``"gnu"``, ``"musl"``, ``"gnueabi"``, ``"gnueabihf"`` on Linux,
            ``"none"`` on macOS and Windows.
        arch_variant: catalog ``arch.variant``: ``None`` for the baseline build, or the x86_64
            microarchitecture level ``"v2"``, ``"v3"`` or ``"v4"`` (PBS ``distributions.rst``).

    Instances are hashable and totally ordered by ``(os, arch, libc, arch_variant)`` with the
    baseline (``None``) sorting before ``"v2"``. The constructor does not validate values (so a
    manifest written by a newer version still loads); use :func:`is_known_target` to check.
    """

    os: str
    arch: str
    libc: str
    arch_variant: Optional[str] = None

    def _sort_key(self) -> tuple[str, str, str, str]:
        return (self.os, self.arch, self.libc, self.arch_variant or "")

    def __lt__(self, other: Any) -> bool:
        if not isinstance(other, Target):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    def __le__(self, other: Any) -> bool:
        if not isinstance(other, Target):
            return NotImplemented
        return self._sort_key() <= other._sort_key()

    def __gt__(self, other: Any) -> bool:
        if not isinstance(other, Target):
            return NotImplemented
        return self._sort_key() > other._sort_key()

    def __ge__(self, other: Any) -> bool:
        if not isinstance(other, Target):
            return NotImplemented
        return self._sort_key() >= other._sort_key()

    @property
    def _arch_with_variant(self) -> str:
        """``x86_64`` or ``x86_64_v3``: how uv keys and PBS triples spell arch plus level."""
        return f"{self.arch}_{self.arch_variant}" if self.arch_variant else self.arch

    @property
    def triple(self) -> str:
        """The PBS target triple, e.g. ``x86_64_v3-unknown-linux-musl``, ``aarch64-apple-darwin``.

        Format from PBS ``docs/distributions.rst``: ``<arch>-unknown-linux-<libc>``,
        ``<arch>-apple-darwin``, ``<arch>-pc-windows-msvc``; PBS spells powerpc64le ``ppc64le``.
        """
        arch = _TRIPLE_ARCH.get(self.arch, self.arch)
        if self.arch_variant:
            arch = f"{arch}_{self.arch_variant}"
        if self.os == "darwin":
            return f"{arch}-apple-darwin"
        if self.os == "windows":
            return f"{arch}-pc-windows-msvc"
        return f"{arch}-unknown-{self.os}-{self.libc}"

    @property
    def key(self) -> str:
        """The uv catalog platform key ``<os>-<arch>[_<level>]-<libc>``: ``darwin-aarch64-none``.

        It is the tail of every key in uv's ``download-metadata.json``.
        """
        return f"{self.os}-{self._arch_with_variant}-{self.libc}"

    @property
    def install_key(self) -> str:
        """uv's install-directory platform key, e.g. ``macos-aarch64-none``, ``linux-x86_64-gnu``.

        Same as :attr:`key` except that uv names the OS ``macos`` rather than ``darwin``.
        """
        os_name = "macos" if self.os == "darwin" else self.os
        return f"{os_name}-{self._arch_with_variant}-{self.libc}"

    @property
    def friendly(self) -> str:
        """A short name for people: ``linux-x86_64``, ``linux-x86_64-musl``, ``linux-x86_64_v3``,
        ``linux-armv7-gnueabihf``, ``macos-aarch64``, ``windows-x86_64``.

        glibc (``gnu``) is implied on Linux and omitted; :func:`parse_platform` reads it back.
        """
        if self.os == "linux":
            suffix = "" if self.libc == "gnu" else f"-{self.libc}"
            return f"linux-{self._arch_with_variant}{suffix}"
        os_name = "macos" if self.os == "darwin" else self.os
        return f"{os_name}-{self._arch_with_variant}"

    def __str__(self) -> str:
        return self.friendly


def _problem(os_name: str, arch: str, libc: str, arch_variant: Optional[str]) -> Optional[str]:
    """Why this combination is not a platform PBS builds for, or None if it is fine."""
    if os_name not in _OS_ARCHES:
        return f"unknown operating system {os_name!r}"
    if arch not in _OS_ARCHES[os_name]:
        return f"unknown architecture {arch!r} for {os_name}"
    if libc not in _OS_LIBCS[os_name]:
        return f"unknown C library {libc!r} for {os_name}"
    if (arch == "armv7") != libc.startswith("gnueabi") and libc != "musl":
        return f"C library {libc!r} does not go with architecture {arch!r}"
    if arch_variant is not None and (
        arch_variant not in ARCH_VARIANTS or arch != "x86_64" or os_name != "linux"
    ):
        return f"unknown CPU level {arch_variant!r} for {os_name}-{arch}"
    return None


def is_known_target(target: Target) -> bool:
    """True if ``target`` is a combination of OS, arch, libc and CPU level that PBS builds for.

    The vocabulary is that of uv's ``download-metadata.json`` (see :class:`Target`).
    """
    return _problem(target.os, target.arch, target.libc, target.arch_variant) is None


def _split_arch(text: str) -> tuple[str, Optional[str]]:
    """``"x86_64_v3"`` -> ``("x86_64", "v3")``; aliases normalised; unknown arch kept as given."""
    base, variant = text, None
    head, sep, tail = text.rpartition("_")
    if sep and tail[:1] == "v" and tail[1:].isdigit():
        base, variant = head, tail
    return _ARCH_ALIASES.get(base, base), variant


def _unknown_platform(name: str, why: str) -> ResolutionError:
    return ResolutionError(f"unknown platform {name!r} ({why}); {_PLATFORM_HINT}")


def parse_triple(triple: str) -> Target:
    """Parse a PBS target triple such as ``x86_64_v2-unknown-linux-musl`` into a :class:`Target`.

    Accepted forms (PBS ``docs/distributions.rst``, case-insensitive):
    ``<arch>-unknown-linux-<libc>``, ``<arch>-apple-darwin``, ``<arch>-pc-windows-msvc``;
    ``<arch>`` may carry ``_v2``/``_v3``/``_v4`` and may be an alias (``arm64``, ``amd64``,
    ``ppc64le``).

    Raises:
        ResolutionError: the text is not such a triple, or names an unknown arch/libc/level.
    """
    text = triple.strip().lower()
    parts = text.split("-")
    if len(parts) == 4 and parts[1:3] == ["unknown", "linux"]:
        os_name, libc = "linux", parts[3]
    elif len(parts) == 3 and parts[1:] == ["apple", "darwin"]:
        os_name, libc = "darwin", "none"
    elif len(parts) == 4 and parts[1:] == ["pc", "windows", "msvc"]:
        os_name, libc = "windows", "none"
    else:
        raise _unknown_platform(triple, "not a target triple")
    arch, variant = _split_arch(parts[0])
    why = _problem(os_name, arch, libc, variant)
    if why:
        raise _unknown_platform(triple, why)
    return Target(os_name, arch, libc, variant)


def parse_platform(name: str) -> Target:
    """Parse any platform spelling a user or a file may give into a :class:`Target`.

    Accepted, case-insensitively:

    * friendly names ``<os>-<arch>[_<level>][-<libc>]`` with os ``linux``, ``macos`` or ``windows``
      (see :data:`ACCEPTED_PLATFORMS`); Linux defaults to glibc (``gnu``), except ``armv7`` which
      defaults to ``gnueabihf``; ``arm64``/``amd64``/``x64``/``ppc64le`` are aliases;
    * uv catalog keys ``linux-x86_64_v3-gnu``, ``darwin-aarch64-none``, ``windows-x86_64-none``
      and uv install keys ``macos-aarch64-none``;
    * PBS target triples (see :func:`parse_triple`).

    Raises:
        ResolutionError: unknown name; the one-line message lists the accepted friendly names.
    """
    text = name.strip().lower()
    parts = text.split("-")
    if len(parts) >= 3 and parts[1] in ("unknown", "apple", "pc"):
        return parse_triple(name)
    if len(parts) not in (2, 3) or parts[0] not in _OS_ALIASES:
        raise _unknown_platform(name, "expected <os>-<arch>[-<libc>]")
    os_name = _OS_ALIASES[parts[0]]
    arch, variant = _split_arch(parts[1])
    if len(parts) == 3:
        libc = parts[2]
    elif os_name != "linux":
        libc = "none"
    else:
        libc = "gnueabihf" if arch == "armv7" else "gnu"
    why = _problem(os_name, arch, libc, variant)
    if why:
        raise _unknown_platform(name, why)
    return Target(os_name, arch, libc, variant)


def _host_os() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    raise PlatformMismatchError(
        f"unsupported host operating system {sys.platform!r}; supported: linux, macos, windows"
    )


def _host_arch() -> str:
    machine = platform.machine().lower()
    arch = _ARCH_ALIASES.get(machine)
    if arch is None:
        if machine.startswith("armv7") or machine.startswith("armv8l"):
            arch = "armv7"
        else:
            supported = ", ".join(sorted(set(_ARCH_ALIASES.values())))
            raise PlatformMismatchError(
                f"unsupported host architecture {machine!r}; supported: {supported}"
            )
    # A 32-bit interpreter on a 64-bit kernel runs 32-bit code: report what it can run.
    if struct.calcsize("P") == 4:
        arch = {"x86_64": "i686", "aarch64": "armv7"}.get(arch, arch)
    return arch


def _linux_is_musl() -> bool:
    """Detect a musl C library: glibc is recognised by ``platform.libc_ver()``; musl is not,
    so look for the musl dynamic loader ``/lib/ld-musl-<arch>.so.1`` and ask ``ldd``."""
    if platform.libc_ver()[0] == "glibc":
        return False
    if glob.glob("/lib/ld-musl-*.so.1"):
        return True
    try:
        out = subprocess.run(
            ["ldd", "--version"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "musl" in (out.stdout + out.stderr).lower()


def host_target() -> Target:
    """The :class:`Target` of this machine (``arch_variant`` always None: the baseline).

    OS from ``sys.platform``; arch from ``platform.machine()`` normalised (``AMD64``/``arm64``
    aliases, a 32-bit interpreter on a 64-bit kernel counts as 32-bit); libc on Linux is ``musl``
    when detected (see ``_linux_is_musl``), ``gnueabihf``/``gnueabi`` on armv7 glibc (by the
    presence of the hard-float loader ``/lib/ld-linux-armhf.so.3``), else ``gnu``; ``none`` on
    macOS and Windows.

    Raises:
        PlatformMismatchError: the OS or architecture is not one PBS builds for.
    """
    os_name = _host_os()
    arch = _host_arch()
    if os_name != "linux":
        return Target(os_name, arch, "none")
    if _linux_is_musl():
        libc = "musl"
    elif arch == "armv7":
        libc = "gnueabihf" if _os.path.exists("/lib/ld-linux-armhf.so.3") else "gnueabi"
    else:
        libc = "gnu"
    return Target("linux", arch, libc)


#: CPU flags (as named in Linux ``/proc/cpuinfo``) required by each x86-64 psABI level, cumulative.
_LEVEL_FLAGS: dict[str, frozenset[str]] = {}
_LEVEL_FLAGS["v2"] = frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})
_LEVEL_FLAGS["v3"] = _LEVEL_FLAGS["v2"] | {
    "avx",
    "avx2",
    "bmi1",
    "bmi2",
    "f16c",
    "fma",
    "lzcnt",
    "movbe",
    "xsave",
}
_LEVEL_FLAGS["v4"] = _LEVEL_FLAGS["v3"] | {
    "avx512f",
    "avx512bw",
    "avx512cd",
    "avx512dq",
    "avx512vl",
}


def _read_cpu_flags() -> Optional[frozenset[str]]:
    """The ``flags`` of the first CPU in ``/proc/cpuinfo``, or None if unreadable (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                label, sep, value = line.partition(":")
                if sep and label.strip() == "flags":
                    flags = set(value.split())
                    # Linux reports LZCNT as "abm" (advanced bit manipulation) on Intel and AMD.
                    if "abm" in flags:
                        flags.add("lzcnt")
                    return frozenset(flags)
    except OSError:
        return None
    return None


def cpu_supports(arch_variant: Optional[str]) -> bool:
    """True if this machine's CPU can run code built for x86-64 level ``arch_variant``.

    ``None`` (baseline) is always True. ``"v2"``, ``"v3"``, ``"v4"`` are checked against the CPU
    flags in ``/proc/cpuinfo`` per the x86-64 psABI levels: v2 needs cx16 lahf_lm popcnt sse4_1
    sse4_2 ssse3; v3 adds avx avx2 bmi1 bmi2 f16c fma lzcnt (``abm``) movbe xsave; v4 adds
    avx512f/bw/cd/dq/vl. An unknown level, a non-x86_64 machine or unreadable flags give False.
    """
    if arch_variant is None:
        return True
    needed = _LEVEL_FLAGS.get(arch_variant)
    if needed is None:
        return False
    try:
        if _host_arch() != "x86_64":
            return False
    except PlatformMismatchError:
        return False
    flags = _read_cpu_flags()
    return flags is not None and needed <= flags


def host_can_run(target: Target, host: Optional[Target] = None) -> bool:
    """True if a build for ``target`` runs on ``host`` (default: this machine).

    Requires the same os, arch and libc. For a CPU level (``target.arch_variant``): when ``host``
    is this machine (None or equal to :func:`host_target`), :func:`cpu_supports` decides;
    for another host, the host's own ``arch_variant`` must be at least the target's (a host with
    ``arch_variant`` None is taken as baseline-only).

    Raises:
        PlatformMismatchError: only when ``host`` is None and this machine is unsupported.
    """
    this_machine = host is None
    if host is None:
        host = host_target()
    if (target.os, target.arch, target.libc) != (host.os, host.arch, host.libc):
        return False
    if target.arch_variant is None:
        return True
    if not this_machine and host.arch_variant is None:
        try:
            this_machine = host == host_target()
        except PlatformMismatchError:
            this_machine = False
    if this_machine:
        return cpu_supports(target.arch_variant)
    want = _VARIANT_RANK.get(target.arch_variant)
    have = _VARIANT_RANK.get(host.arch_variant)
    return want is not None and have is not None and want <= have


@dataclass(frozen=True)
class PlatformGroup:
    """A named set of platforms for ``--platform``, expanded against a catalog: every target of
    the catalog whose OS (and libc, when given) fits. CPU levels (``x86_64_v2``...) are never
    part of a group: they are a choice, not another platform.

    Fields: ``name`` as typed (``all-linux``); ``os`` in catalog terms or None for any;
    ``libcs`` the accepted ``libc`` values, or None for any.
    """

    name: str
    os: Optional[str]
    libcs: Optional[tuple[str, ...]] = None

    def matches(self, target: Target) -> bool:
        """True if ``target`` belongs to the group (baseline CPU level only)."""
        if target.arch_variant is not None:
            return False
        if self.os is not None and target.os != self.os:
            return False
        return self.libcs is None or target.libc in self.libcs

    def __str__(self) -> str:
        return self.name


#: The groups :func:`parse_platform_or_group` knows, by name.
PLATFORM_GROUPS: dict[str, PlatformGroup] = {
    g.name: g
    for g in (
        PlatformGroup("all", None),
        PlatformGroup("all-linux", "linux"),
        PlatformGroup("all-linux-gnu", "linux", ("gnu", "gnueabi", "gnueabihf")),
        PlatformGroup("all-linux-musl", "linux", ("musl",)),
        PlatformGroup("all-macos", "darwin"),
        PlatformGroup("all-windows", "windows"),
    )
}


def parse_platform_or_group(name: str) -> Target | PlatformGroup:
    """A :data:`PLATFORM_GROUPS` name (``all``, ``all-linux``, ``all-linux-gnu``,
    ``all-linux-musl``, ``all-macos``, ``all-windows``; case-insensitive) or any spelling
    :func:`parse_platform` accepts.

    Raises:
        ResolutionError: neither a group nor a known platform (one line, names the text).
    """
    group = PLATFORM_GROUPS.get(name.strip().lower())
    if group is not None:
        return group
    return parse_platform(name)
