"""Wheelhouses for the bundle's users (``pybundle bundle -r FILE --with PKG``): the wheels of
the requested packages, resolved by pip for every interpreter x platform the bundle holds.

Targets: the bundle's CPython archives grouped by (major.minor, os, arch, libc, free-threaded
or not): one wheelhouse per group, resolved once with
:func:`pybundle.bundler.wheels.download_wheels` (``pip download --only-binary=:all:`` with the
group's :class:`~pybundle.bundler.wheels.WheelTarget`: Python version, ABIs, and the
manylinux/musllinux tags its libc supports, or its macOS or Windows tags), through the
content-addressed wheel cache. pip
reads the requirement files itself (``-r FILE``: pins, extras, markers, ``--hash`` lines,
nested files) and the user's index settings (``--index-url``, ``--extra-index-url``,
``--find-links`` given here, ``PIP_*`` variables, ``pip.conf``, proxies). Only wheels are ever
carried: pip is told ``--only-binary=:all:``, so an sdist is never downloaded.

A requirement pip finds no wheel for fails the bundle (:class:`~pybundle.errors.
MissingWheelError`, exit 3, naming the requirement and the target), unless
``allow_missing``: then the requirement is dropped for that target, pip runs again without it,
and the manifest records it under the target's ``missing``. Only top-level requirements can
be dropped (a ``--with`` value, or a line of a requirement file, of which a filtered copy is
written in the work directory with its ``-r``/``-c`` paths made absolute); a dependency
without a wheel still fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pybundle.bundler.wheels import Wheel, WheelCache, WheelTarget, download_wheels
from pybundle.errors import MissingWheelError, StorageError, UsageError
from pybundle.hashing import sha256_file
from pybundle.manifest import Artifact
from pybundle.selfinstall.section import CarriedFile
from pybundle.targets import Target
from pybundle.wheelhouse import (
    LOCKS_DIR,
    WHEELS_DIR,
    LockFile,
    Missing,
    WheelFile,
    Wheelhouse,
    Wheelhouses,
    lock_text,
    wheelhouse_key,
)

__all__ = [
    "WheelRequest",
    "preview_wheelhouses",
    "WheelhouseParts",
    "WheelhousePlan",
    "plan_wheelhouses",
    "resolve_wheelhouses",
]


@dataclass(frozen=True)
class WheelRequest:
    """What the user asked for: requirement ``files`` (``-r``), ``packages`` (``--with``, pip
    requirement strings), index ``options`` for pip (``["--index-url", URL, ...]``), and
    ``allow_missing`` (``--allow-missing-wheels``)."""

    files: tuple[Path, ...] = ()
    packages: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    allow_missing: bool = False

    @property
    def empty(self) -> bool:
        """True when nothing was asked for."""
        return not self.files and not self.packages

    def check(self) -> None:
        """Refuse a requirement file that cannot be read (UsageError naming it)."""
        for path in self.files:
            if not path.is_file():
                raise UsageError(f"{path}: no such requirements file (-r)")
            try:
                path.read_bytes()
            except OSError as exc:
                raise UsageError(f"{path}: cannot read the requirements file: {exc}") from exc


@dataclass(frozen=True)
class WheelhousePlan:
    """One wheelhouse to resolve: ``key`` (``cpython-3.12-linux-x86_64-gnu``), the pip
    ``wheel_target``, the ``platform`` (os, arch, libc), ``python`` (``"3.12"``) and the
    ``labels`` of the interpreters it serves (archive members, or prefixes in a dry run)."""

    key: str
    python: str
    platform: Target
    wheel_target: WheelTarget
    labels: tuple[str, ...]


def _minor(version: str) -> str:
    parts = re.findall(r"\d+", version)
    return f"{parts[0]}.{parts[1]}"


def plan_wheelhouses(
    interpreters: Sequence[tuple[Target, str, str, str, str]],
) -> list[WheelhousePlan]:
    """Group ``interpreters`` (``(target, version, implementation, variant, label)``) into
    wheelhouses, sorted by key; a wheelhouse's markers take the lowest full ``version`` of its
    interpreters as ``python_full_version``. Raises UsageError for an interpreter that is not
    CPython (the message names it), ResolutionError for a platform no binary wheels exist for (armv7
    soft-float; :meth:`~pybundle.bundler.wheels.WheelTarget.for_interpreter`).
    """
    groups: dict[str, tuple[str, Target, WheelTarget, list[str]]] = {}
    for target, version, implementation, variant, label in sorted(
        interpreters, key=lambda i: _version_order(i[1])
    ):
        if implementation != "cpython":
            raise UsageError(
                f"-r/--with: wheels are resolved for CPython only, and the bundle holds "
                f"{implementation} {version} for {target.friendly} ({label})"
            )
        platform = Target(target.os, target.arch, target.libc)
        minor = _minor(version)
        # the lowest full version of the group sets the markers' python_full_version
        wheel_target = WheelTarget.for_interpreter(platform, version, variant=variant)
        key = wheelhouse_key(minor, platform, variant.startswith("freethreaded"))
        groups.setdefault(key, (minor, platform, wheel_target, []))[3].append(label)
    return [
        WheelhousePlan(key, minor, platform, wt, tuple(labels))
        for key, (minor, platform, wt, labels) in sorted(groups.items())
    ]


def _version_order(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])


@dataclass
class WheelhouseParts:
    """What :func:`resolve_wheelhouses` gathered for
    :func:`pybundle.bundler.pack.write_bundle`: the manifest ``section``, each member with the
    local file of its bytes (``files``: wheels once each, then the locks), and the seconds pip
    took (``seconds``)."""

    section: Wheelhouses
    files: list[tuple[WheelFile | LockFile, Path]]
    seconds: float = 0.0
    resolved: dict[str, list[Wheel]] = field(default_factory=dict)


def _requirement_name(line: str) -> Optional[str]:
    """The canonical project name of a requirement line (options after it ignored), or None
    for an option line or what does not parse."""
    text = line.split(" #", 1)[0].strip()
    if not text or text.startswith(("-", "#")):
        return None
    text = re.split(r"\s--?[a-z]", " " + text)[0].strip() if " -" in text else text
    try:
        return str(canonicalize_name(Requirement(text).name))
    except InvalidRequirement:
        return None


def _logical_lines(text: str) -> list[str]:
    """Requirement file lines with ``\\`` continuations joined (pip's format)."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        out.append(pending + raw)
        pending = ""
    if pending:
        out.append(pending)
    return out


_FILE_OPTION = re.compile(r"^(-r|-c|--requirement|--constraint)(\s+|=)(\S+)(.*)$")


def _filtered_copy(path: Path, dropped: set[str], copy: Path) -> tuple[Path, bool]:
    """A copy of requirement file ``path`` as ``copy`` without the requirements whose names are
    in ``dropped``, nested ``-r``/``-c`` paths made absolute. Returns it and whether a line
    was dropped. Raises StorageError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"{path}: cannot read the requirements file: {exc}") from exc
    kept = []
    removed = False
    for line in _logical_lines(text):
        name = _requirement_name(line)
        if name is not None and name in dropped:
            removed = True
            continue
        m = _FILE_OPTION.match(line.strip())
        if m is not None:
            nested = Path(m.group(3))
            if not nested.is_absolute():
                nested = path.parent / nested
            line = f"{m.group(1)} {nested}{m.group(4)}"
        kept.append(line)
    try:
        copy.write_text("\n".join(kept) + "\n", encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"{copy}: cannot write: {exc}") from exc
    return copy, removed


def _has_requirements(path: Path) -> bool:
    return any(
        line.strip() and not line.strip().startswith("#")
        for line in _logical_lines(path.read_text(encoding="utf-8"))
    )


def _resolve_one(
    plan: WheelhousePlan,
    request: WheelRequest,
    cache: WheelCache,
    work: Path,
    on_warning: Optional[Callable[[str], None]],
) -> tuple[list[Wheel], list[Missing]]:
    """Resolve one wheelhouse, dropping missing top-level requirements when allowed."""
    dropped: set[str] = set()
    missing: list[Missing] = []
    key_digests = [f"{p}:{sha256_file(p)[0]}" for p in request.files]
    while True:
        files = list(request.files)
        if dropped:
            files = []
            for i, path in enumerate(request.files):
                copy_name = f"requirements-{plan.key}-{len(dropped)}-{i}.txt"
                copy, _ = _filtered_copy(path, dropped, work / copy_name)
                if _has_requirements(copy):
                    files.append(copy)
        packages = [p for p in request.packages if _requirement_name(p) not in dropped]
        options = [*request.options]
        for path in files:
            options += ["-r", str(path)]
        if not packages and not files:
            return [], missing
        try:
            wheels = download_wheels(
                packages,
                plan.wheel_target,
                cache,
                on_warning=on_warning,
                options=options,
                key=[*key_digests, *sorted(dropped)],
            )
            return wheels, missing
        except MissingWheelError as exc:
            name = _requirement_name(exc.requirement)
            top = {n for n in (_requirement_name(p) for p in request.packages) if n} | {
                n
                for path in request.files
                for n in (
                    _requirement_name(line)
                    for line in _logical_lines(path.read_text(encoding="utf-8"))
                )
                if n
            }
            if not request.allow_missing:
                raise MissingWheelError(
                    f"no wheel of {exc.requirement} for {plan.key} "
                    f"({plan.wheel_target.describe()}); pip found none (sdists are never "
                    "carried): pin a version that has one, or give --allow-missing-wheels",
                    exc.requirement,
                ) from exc
            if name is None or name not in top or name in dropped:
                raise MissingWheelError(
                    f"no wheel of {exc.requirement} for {plan.key} "
                    f"({plan.wheel_target.describe()}); it is a dependency, which "
                    "--allow-missing-wheels cannot leave out: leave out what needs it",
                    exc.requirement,
                ) from exc
            dropped.add(name)
            missing.append(
                Missing(
                    exc.requirement,
                    f"no wheel for {plan.wheel_target.describe()}",
                )
            )
            if on_warning is not None:
                on_warning(
                    f"no wheel of {exc.requirement} for {plan.key}: left out of that "
                    "wheelhouse (--allow-missing-wheels)"
                )


def resolve_wheelhouses(
    artifacts: Sequence[Artifact],
    request: WheelRequest,
    cache_root: Path,
    work: Path,
    *,
    carried: Sequence[CarriedFile] = (),
    on_warning: Optional[Callable[[str], None]] = None,
) -> WheelhouseParts:
    """Resolve ``request`` for every wheelhouse of ``artifacts`` (the bundle's archives;
    :func:`plan_wheelhouses`) into the wheel cache under ``cache_root``, write each target's
    lock into ``work``, and return the section and its members. ``carried`` are the files of a
    self-installing bundle: a wheel of the same file name is the same member (and must have
    the same bytes).

    Raises UsageError (an interpreter wheels cannot be resolved for), MissingWheelError (exit
    3), DownloadError, ResolutionError, StorageError (two different files of one name).
    """
    plans = plan_wheelhouses(
        [(a.target, a.version, a.implementation, a.variant, a.member) for a in artifacts]
    )
    return _resolve_plans(plans, request, cache_root, work, carried, on_warning)


def preview_wheelhouses(
    interpreters: Sequence[tuple[Target, str, str, str, str]],
    request: WheelRequest,
    cache_root: Path,
    *,
    on_warning: Optional[Callable[[str], None]] = None,
) -> Wheelhouses:
    """The wheelhouses ``bundle --dry-run`` reports: those of ``interpreters`` (see
    :func:`plan_wheelhouses`), resolved by pip into the wheel cache (pip must download a wheel
    to know its size); the archives named in ``interpreters`` are not needed. Raises the
    errors of :func:`resolve_wheelhouses`."""
    import shutil
    import tempfile

    request.check()
    plans = plan_wheelhouses(interpreters)
    work = Path(tempfile.mkdtemp(prefix="pybundle-wheels-"))
    try:
        return _resolve_plans(plans, request, cache_root, work, (), on_warning).section
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _resolve_plans(
    plans: Sequence[WheelhousePlan],
    request: WheelRequest,
    cache_root: Path,
    work: Path,
    carried: Sequence[CarriedFile],
    on_warning: Optional[Callable[[str], None]],
) -> WheelhouseParts:
    cache = WheelCache(cache_root)
    req_work = work / "requirements"
    req_work.mkdir(exist_ok=True)
    by_member: dict[str, tuple[WheelFile, Path]] = {}
    known = {c.member: c.sha256 for c in carried}
    houses: list[Wheelhouse] = []
    locks: list[tuple[LockFile, Path]] = []
    resolved: dict[str, list[Wheel]] = {}
    started = time.monotonic()
    for plan in plans:
        wheels, missing = _resolve_one(plan, request, cache, req_work, on_warning)
        resolved[plan.key] = wheels
        members = []
        for wheel in wheels:
            member = f"{WHEELS_DIR}/{wheel.file_name}"
            other = by_member.get(member)
            if (other is not None and other[0].sha256 != wheel.sha256) or known.get(
                member, wheel.sha256
            ) != wheel.sha256:
                raise StorageError(
                    f"{wheel.file_name}: two different files of this name were resolved"
                )
            if other is None:
                tags = tuple(sorted(str(t) for t in wheel.tags))
                by_member[member] = (
                    WheelFile(member, wheel.size, wheel.sha256, tags),
                    wheel.path,
                )
            members.append(member)
        text = lock_text(
            plan.key, [(str(canonicalize_name(w.project)), w.version, w.sha256) for w in wheels]
        )
        lock_path = work / f"lock-{plan.key}.txt"
        try:
            lock_path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"{lock_path}: cannot write: {exc}") from exc
        sha, size = sha256_file(lock_path)
        lock = LockFile(f"{LOCKS_DIR}/{plan.key}.txt", size, sha)
        locks.append((lock, lock_path))
        houses.append(
            Wheelhouse(
                key=plan.key,
                python=plan.python,
                abi=plan.wheel_target.abis[0],
                target=plan.platform,
                artifacts=plan.labels,
                wheels=tuple(sorted(members)),
                lock=lock,
                missing=tuple(missing),
            )
        )
    wheel_files = [by_member[m] for m in sorted(by_member)]
    section = Wheelhouses(tuple(w for w, _ in wheel_files), tuple(houses))
    files: list[tuple[WheelFile | LockFile, Path]] = [*wheel_files, *locks]
    return WheelhouseParts(section, files, time.monotonic() - started, resolved)
