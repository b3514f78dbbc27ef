"""Wheels for one target platform: resolved and downloaded by pip, kept content-addressed in the
bundle cache.

:func:`download_wheels` runs ``pip download --only-binary=:all: --platform ...
--python-version ... --implementation ... --abi ...`` (pip's documented route to wheels for
another platform; ``pip download --help``) as a subprocess of the running interpreter (pip's
own entry point, through :mod:`pybundle.bundler.pipmarkers`: see below), so the
user's index settings apply as pip reads them (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``,
``pip.conf``, proxies, certificates, ``PIP_CONSTRAINT`` to pin versions). pip resolves the
requirements and their dependencies for the target; every file it saves must be a wheel whose
tags the target supports (:meth:`WheelTarget.tags`, computed with :mod:`packaging.tags`), or the
call fails. Left alone, pip evaluates environment markers (``python_version``,
``sys_platform``, ``platform_system``, ``platform_machine``, ...) against the interpreter that
runs it, not the target: ``--python-version`` and ``--platform`` only select wheels and check
``Requires-Python`` (checked with pip 26.3: ``demo`` requiring ``oldonly; python_version <
"3.11"`` and ``winonly; sys_platform == "win32"`` got neither for a 3.10 manylinux target nor
for a 3.12 ``win_amd64`` one, run by 3.11 on Linux). So pip is run through
:mod:`pybundle.bundler.pipmarkers`, which sets pip's marker environment to the target's
(:attr:`WheelTarget.markers`) and refuses (:class:`~pybundle.errors.PipMarkersError`, exit 3)
when the installed pip does not let it and the target is not this interpreter.

Cache layout, beside ``archives/`` under the bundle cache root (:mod:`pybundle.bundler.cache`)::

    wheels/<sha256>-<wheel file name>    verified wheels only
    wheel-sets/<key>.json                the last resolution of (requirements, target)
    partial/pip-XXXXXXXX/                pip's download directory while it runs

The rules are those of the archives: a wheel gets its final name only by ``os.replace`` of a
file whose sha256 was computed from its bytes, a hit is re-hashed before use and evicted when
it no longer matches its name. When pip cannot resolve (no index reachable, say), the last
resolution of the same requirements for the same target is used if every wheel of it is still
in the cache and intact, with a warning: a bundle can be rebuilt offline from a warm cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from pybundle.bundler.cache import verified_hit
from pybundle.bundler.pipmarkers import (
    ENV_VAR,
    REFUSAL,
    REFUSED,
    marker_environment,
    runner_command,
)
from pybundle.errors import (
    DownloadError,
    MissingWheelError,
    PipMarkersError,
    ResolutionError,
    StorageError,
)
from pybundle.hashing import sha256_file
from pybundle.targets import Target

__all__ = [
    "Wheel",
    "WheelCache",
    "WheelTarget",
    "download_wheels",
    "uv_index_options",
]

WHEELS_DIR = "wheels"
SETS_DIR = "wheel-sets"
PIP_TIMEOUT = 1800.0
"""Seconds a pip run may take before it is stopped."""

_FULL_VERSION = re.compile(r"\d+\.\d+\.\d+((a|b|rc)\d+)?")
"""A full CPython version as ``platform.python_version()`` gives it."""

_TAG_ARCH: dict[str, str] = {
    "x86_64": "x86_64",
    "aarch64": "aarch64",
    "armv7": "armv7l",
    "i686": "i686",
    "powerpc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
"""Catalog architecture families as wheel platform tags spell them (PEP 599/600/656)."""

_GLIBC_FLOOR: dict[str, tuple[int, int]] = {"riscv64": (2, 31)}
"""Oldest glibc a target's wheels may need, per architecture; (2, 17) otherwise, what
python-build-standalone's glibc builds require (PBS docs/running.rst), so that the wheels run
wherever the interpreter does."""

_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
"""PEP 599/571/513 names of manylinux_2_17/2_12/2_5 (PEP 600 keeps them as aliases)."""

MUSL_VERSIONS = ((1, 2), (1, 1))
"""musllinux levels accepted for musl targets (python-build-standalone links musl 1.2)."""

MACOS_FLOOR: dict[str, tuple[int, int]] = {"aarch64": (11, 0), "x86_64": (10, 15)}
"""Oldest macOS python-build-standalone's builds run on, per architecture: the
``-mmacosx-version-min`` of its ``cpython-unix/targets.yml`` (11.0 for ``aarch64-apple-darwin``,
Apple silicon's first release; 10.15 for ``x86_64-apple-darwin``; releases before 2025 used
10.9 there, so a wheel needing 10.10-10.15 may not run where such an old build does). A
target's macOS wheels may need no newer macOS than this."""

_MAC_ARCH: dict[str, str] = {"aarch64": "arm64", "x86_64": "x86_64"}
"""Catalog architecture families as macOS wheel tags spell them."""

_WINDOWS_PLATFORM: dict[str, str] = {
    "x86_64": "win_amd64",
    "i686": "win32",
    "aarch64": "win_arm64",
}
"""Windows wheel platform tags per catalog architecture (the tags CPython's
``sysconfig.get_platform()`` gives on Windows, with ``-`` and ``.`` as ``_``)."""


@dataclass(frozen=True)
class WheelTarget:
    """The interpreter wheels are resolved for.

    ``python_version`` is ``"3.12"``; ``implementation`` pip's short name (``cp`` for CPython);
    ``abis`` the ABI tags accepted, best first (``cp312``, ``abi3``, ``none``); ``platforms``
    the platform tags accepted, best first (``manylinux_2_17_x86_64``, ...); ``markers`` the
    target's PEP 508 marker environment as sorted ``(name, value)`` pairs
    (:func:`pybundle.bundler.pipmarkers.marker_environment`), which pip evaluates requirement
    and dependency markers against. Build one with :meth:`for_interpreter`.
    """

    python_version: str
    implementation: str
    abis: tuple[str, ...]
    platforms: tuple[str, ...]
    markers: tuple[tuple[str, str], ...]

    @classmethod
    def for_interpreter(
        cls,
        target: Target,
        version: str,
        *,
        implementation: str = "cpython",
        variant: str = "default",
    ) -> WheelTarget:
        """The wheel target of a CPython ``version`` (``"3.12"`` or ``"3.12.1"``) built for
        ``target``: on Linux, manylinux tags from the arch's glibc floor down to
        ``manylinux_2_5`` (and their legacy aliases) for glibc, musllinux 1.2 and 1.1 for musl;
        on macOS, :func:`packaging.tags.mac_platforms` from :data:`MACOS_FLOOR` down (with the
        ``universal2`` and other fat tags that hold the arch); on Windows, ``win_amd64``,
        ``win32`` or ``win_arm64``. Free-threaded builds take ``cp313t`` and no ``abi3``
        (PEP 703). The markers' ``python_full_version`` is ``version`` when it is a full one
        (``3.12.1``, ``3.14.0rc2``), else ``X.Y.0``.

        Raises ResolutionError for what has no binary wheels: an implementation other than
        CPython, armv7 soft-float (``gnueabi``), an arch or OS without wheel tags here.
        """
        parts = version.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise ResolutionError(f"{version!r} is not a Python version")
        minor = f"{parts[0]}.{parts[1]}"
        if implementation != "cpython":
            raise ResolutionError(f"no wheels are resolved for {implementation} (CPython only)")
        if target.os not in ("linux", "darwin", "windows"):
            raise ResolutionError(f"no binary wheels exist for {target.friendly}")
        full = version if _FULL_VERSION.fullmatch(version) else f"{minor}.0"
        markers = tuple(sorted(marker_environment(target, minor, full).items()))
        nodot = minor.replace(".", "")
        if variant.startswith("freethreaded"):
            abis: tuple[str, ...] = (f"cp{nodot}t", "none")
        else:
            abis = (f"cp{nodot}", "abi3", "none")
        if target.os == "darwin" and target.arch in MACOS_FLOOR:
            floor = MACOS_FLOOR[target.arch]
            platforms = tuple(mac_platforms(floor, _MAC_ARCH[target.arch]))
            return cls(minor, "cp", abis, platforms, markers)
        if target.os == "windows" and target.arch in _WINDOWS_PLATFORM:
            return cls(minor, "cp", abis, (_WINDOWS_PLATFORM[target.arch],), markers)
        arch = _TAG_ARCH.get(target.arch)
        if target.os != "linux" or arch is None or target.libc == "gnueabi":
            raise ResolutionError(f"no binary wheels exist for {target.friendly}")
        if target.libc == "musl":
            platforms = tuple(f"musllinux_{a}_{b}_{arch}" for a, b in MUSL_VERSIONS)
        else:
            top = _GLIBC_FLOOR.get(target.arch, (2, 17))
            names: list[str] = []
            for glibc_minor in range(top[1], 4, -1):
                names.append(f"manylinux_2_{glibc_minor}_{arch}")
                legacy = _LEGACY_MANYLINUX.get((2, glibc_minor))
                if legacy:
                    names.append(f"{legacy}_{arch}")
            platforms = tuple(names)
        return cls(minor, "cp", abis, platforms, markers)

    @property
    def version_tuple(self) -> tuple[int, int]:
        """``(3, 12)``."""
        major, minor = self.python_version.split(".")
        return int(major), int(minor)

    def tags(self) -> list[Tag]:
        """Every tag a wheel for this target may carry, best first: CPython tags for the ABIs and
        platforms, then the generic ``py3*-none-*`` ones (:func:`packaging.tags.cpython_tags`,
        :func:`packaging.tags.compatible_tags`)."""
        version = self.version_tuple
        interpreter = f"{self.implementation}{version[0]}{version[1]}"
        found = list(cpython_tags(version, self.abis, self.platforms))
        found += list(compatible_tags(version, interpreter, self.platforms))
        return list(dict.fromkeys(found))

    def supports(self, tags: frozenset[Tag]) -> bool:
        """True when one of ``tags`` (a wheel's) is among :meth:`tags`."""
        return not tags.isdisjoint(self.tags())

    def pip_options(self) -> list[str]:
        """The ``pip download`` options that select this target."""
        options = [
            "--only-binary=:all:",
            "--python-version",
            self.python_version,
            "--implementation",
            self.implementation,
        ]
        for abi in self.abis:
            options += ["--abi", abi]
        for platform in self.platforms:
            options += ["--platform", platform]
        return options

    def describe(self) -> str:
        """``cp312 on manylinux_2_17_x86_64``: for messages."""
        return f"{self.abis[0]} on {self.platforms[0]}"


@dataclass(frozen=True)
class Wheel:
    """A verified wheel in the cache: ``file_name`` as published, ``size`` in bytes, ``sha256``
    lower-case hex, ``path`` its file under ``wheels/``; ``project`` (canonical name),
    ``version`` and ``tags`` parsed from the file name (PEP 427)."""

    file_name: str
    size: int
    sha256: str
    path: Path
    project: str = field(compare=False)
    version: str = field(compare=False)
    tags: frozenset[Tag] = field(compare=False, repr=False)

    @classmethod
    def describe(cls, file_name: str, size: int, sha256: str, path: Path) -> Wheel:
        """The record of a wheel file. Raises ResolutionError when ``file_name`` is not a valid
        wheel file name."""
        try:
            project, version, _build, tags = parse_wheel_filename(file_name)
        except InvalidWheelFilename as exc:
            raise ResolutionError(f"{file_name}: not a wheel file name ({exc})") from exc
        return cls(file_name, size, sha256, path, str(project), str(version), tags)


class WheelCache:
    """Verified wheels under ``<root>/wheels`` (see the module docstring); ``root`` is the
    bundle cache root. Raises StorageError naming the path when it cannot be written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheels = root / WHEELS_DIR
        self.sets = root / SETS_DIR
        self.partials = root / "partial"
        try:
            for d in (self.wheels, self.sets, self.partials):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{root}: cannot create the cache directory: {exc}") from exc

    def path_for(self, sha256: str, file_name: str) -> Path:
        """``wheels/<sha256>-<file name>``."""
        return self.wheels / f"{sha256.lower()}-{file_name}"

    def lookup(self, sha256: str, file_name: str, size: Optional[int] = None) -> Optional[Path]:
        """The cached wheel if present and its bytes still hash to ``sha256``; a file that no
        longer does is evicted (None). Raises StorageError when it cannot be read or evicted."""
        return verified_hit(self.path_for(sha256, file_name), sha256, size)

    def add(self, path: Path) -> Wheel:
        """Hash the wheel file ``path`` and give it its final name (an intact copy already
        there is kept and ``path`` removed). Returns its record."""
        sha256, size = sha256_file(path)
        known = self.lookup(sha256, path.name, size)
        if known is not None:
            path.unlink(missing_ok=True)
            return Wheel.describe(path.name, size, sha256, known)
        final = self.path_for(sha256, path.name)
        try:
            os.chmod(path, 0o644)
            os.replace(path, final)
        except OSError as exc:
            raise StorageError(f"{final}: cannot store the wheel: {exc}") from exc
        return Wheel.describe(path.name, size, sha256, final)

    def entries(self) -> list[Path]:
        """Every wheel under a final name, sorted."""
        try:
            return sorted(p for p in self.wheels.iterdir() if p.name.endswith(".whl"))
        except OSError as exc:
            raise StorageError(f"{self.wheels}: cannot list the cache: {exc}") from exc

    def clean(
        self, older_than: Optional[float] = None, now: Optional[float] = None
    ) -> tuple[int, int]:
        """Remove wheels not used for ``older_than`` seconds (all when None; then the
        remembered resolutions too). Returns ``(files, bytes)`` removed; raises StorageError."""
        import time

        now = time.time() if now is None else now
        files = size = 0
        victims = list(self.entries())
        if older_than is None:
            victims += sorted(self.sets.glob("*.json"))
        for path in victims:
            try:
                st = path.stat()
                if older_than is not None and now - st.st_mtime <= older_than:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"{path}: cannot remove: {exc.strerror}") from exc
            files += 1
            size += st.st_size
        return files, size

    def _set_path(self, requirements: Sequence[str], target: WheelTarget) -> Path:
        # requirements: what pip was given, plus whatever else decides the answer (the
        # digests of requirement files, index options: see download_wheels' key)
        question = {"requirements": list(requirements), "target": _target_json(target)}
        key = hashlib.sha256(json.dumps(question, sort_keys=True).encode()).hexdigest()
        return self.sets / f"{key}.json"

    def remember(
        self, requirements: Sequence[str], target: WheelTarget, wheels: list[Wheel]
    ) -> None:
        """Record ``wheels`` as the resolution of ``requirements`` for ``target`` (atomically;
        a record that cannot be written is simply not kept)."""
        doc = {
            "requirements": list(requirements),
            "target": _target_json(target),
            "wheels": [
                {"file_name": w.file_name, "size": w.size, "sha256": w.sha256} for w in wheels
            ],
        }
        record = self._set_path(requirements, target)
        tmp: Optional[str] = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".set.", dir=record.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(doc, out, indent=1, sort_keys=True)
            os.replace(tmp, record)
        except OSError:
            if tmp is not None:
                with suppress(OSError):
                    os.unlink(tmp)

    def recall(self, requirements: Sequence[str], target: WheelTarget) -> Optional[list[Wheel]]:
        """The remembered resolution of ``requirements`` for ``target`` if every wheel of it is
        in the cache and intact, else None (a damaged record counts as none)."""
        record = self._set_path(requirements, target)
        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
            entries = [(e["file_name"], e["size"], e["sha256"]) for e in doc["wheels"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        wheels = []
        for name, size, sha256 in entries:
            if not (isinstance(name, str) and isinstance(size, int) and isinstance(sha256, str)):
                return None
            if "/" in name or name.startswith("."):
                return None
            path = self.lookup(sha256, name, size)
            if path is None:
                return None
            try:
                wheel = Wheel.describe(name, size, sha256, path)
            except ResolutionError:
                return None
            if not target.supports(wheel.tags):
                return None
            wheels.append(wheel)
        return wheels


def _target_json(target: WheelTarget) -> dict[str, object]:
    # "markers": resolutions remembered before pip evaluated them for the target (which
    # lack the key, and so hash to other names) are never reused
    return {
        "python_version": target.python_version,
        "implementation": target.implementation,
        "abis": list(target.abis),
        "platforms": list(target.platforms),
        "markers": dict(target.markers),
    }


def uv_index_options(environ: Mapping[str, str], given: Sequence[str] = ()) -> list[str]:
    """pip options for the index settings a uv user has in the environment, so that
    ``bundle -r`` reaches the same indexes ``uv pip install`` would. uv's variables (uv docs,
    reference/environment): ``UV_DEFAULT_INDEX`` (or the older ``UV_INDEX_URL``), the default
    index, becomes ``--index-url``; ``UV_INDEX`` (space-separated, each ``URL`` or
    ``NAME=URL``) and ``UV_EXTRA_INDEX_URL`` (space-separated) become ``--extra-index-url``;
    ``UV_FIND_LINKS`` (comma-separated) becomes ``--find-links``.

    pip's own settings win: an option is taken from uv's variables only when it is neither in
    ``given`` (the options on pybundle's command line) nor set by pip's variable for it
    (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``), since an option on
    pip's command line would hide pip's variable. pip.conf settings are not seen here: with
    uv's variables set they are overridden, as uv would ignore pip.conf too."""
    options: list[str] = []

    def wanted(option: str, pip_variable: str) -> bool:
        return option not in given and not environ.get(pip_variable, "").strip()

    default = (environ.get("UV_DEFAULT_INDEX") or environ.get("UV_INDEX_URL") or "").strip()
    if default and wanted("--index-url", "PIP_INDEX_URL"):
        options += ["--index-url", default]
    if wanted("--extra-index-url", "PIP_EXTRA_INDEX_URL"):
        for entry in environ.get("UV_INDEX", "").split():
            name, sep, url = entry.partition("=")
            url = url if sep and "://" not in name else entry
            options += ["--extra-index-url", url]
        for url in environ.get("UV_EXTRA_INDEX_URL", "").split():
            options += ["--extra-index-url", url]
    if wanted("--find-links", "PIP_FIND_LINKS"):
        for link in environ.get("UV_FIND_LINKS", "").split(","):
            if link.strip():
                options += ["--find-links", link.strip()]
    return options


def pip_command() -> list[str]:
    """How pip is run: the running interpreter's pip, through
    :mod:`pybundle.bundler.pipmarkers` (which takes the target's markers from the
    environment variable it names)."""
    return runner_command()


def download_wheels(
    requirements: Sequence[str],
    target: WheelTarget,
    cache: WheelCache,
    *,
    on_warning: Optional[Callable[[str], None]] = None,
    pip: Optional[Sequence[str]] = None,
    options: Sequence[str] = (),
    key: Sequence[str] = (),
) -> list[Wheel]:
    """Resolve ``requirements`` (PEP 508 strings) and their dependencies for ``target`` with
    pip, store the wheels in ``cache`` and return their records sorted by file name.

    ``pip`` is the command that runs pip (default :func:`pip_command`); ``options`` go to pip
    before the requirements (``--index-url URL``, ``--find-links DIR``, ``-r FILE``: pip
    syntax); ``key`` adds what else decides the answer to the remembered question (the
    digests of requirement files). When pip fails and the cache remembers an intact
    resolution of the same question, that is returned and ``on_warning`` hears why. Raises
    MissingWheelError when pip says a requirement has no matching distribution and reached
    its indexes (no retry or fetch warnings: otherwise that is a download failure) (exit 3; its
    ``requirement`` is pip's spelling, ``bcrypt==5.0.0``), PipMarkersError (exit 3: pip cannot
    be made to evaluate markers for ``target``; no remembered answer stands in), DownloadError
    (pip failed, nothing remembered; the message ends with pip's last error line),
    ResolutionError (pip saved a file that is not a wheel for ``target``), StorageError.
    Interrupted (KeyboardInterrupt), pip is stopped and its download directory removed.
    """
    if not requirements and not options:
        return []
    command = list(pip or pip_command())
    question = [*options, *requirements, *key]
    try:
        work = Path(tempfile.mkdtemp(prefix="pip-", dir=cache.partials))
    except OSError as exc:
        raise StorageError(f"{cache.partials}: cannot create a download directory: {exc}") from exc
    try:
        argv = [
            *command,
            "download",
            "--dest",
            str(work),
            "--no-input",
            "--progress-bar",
            "off",
            "--disable-pip-version-check",
            *target.pip_options(),
            *options,
            *requirements,
        ]
        env = {**os.environ, ENV_VAR: json.dumps(dict(target.markers))}
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False, env=env
            )
            if proc.returncode == REFUSED and REFUSAL in proc.stderr:
                why = proc.stderr.split(REFUSAL, 1)[1].splitlines()[0]
                raise PipMarkersError(f"cannot resolve wheels for {target.describe()}: {why}")
            failure = None if proc.returncode == 0 else _last_error(proc.stderr, proc.returncode)
            if failure is not None:
                missing = _no_distribution(proc.stderr)
                if missing is not None and not _network_trouble(proc.stderr):
                    raise MissingWheelError(
                        f"no wheel of {missing} for {target.describe()}: {failure}", missing
                    )
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = f"cannot run {' '.join(command)}: {exc}"
        if failure is not None:
            remembered = cache.recall(question, target)
            if remembered is None:
                raise DownloadError(
                    f"pip could not download wheels of {' '.join(requirements or options)} for "
                    f"{target.describe()}: {failure}"
                )
            if on_warning is not None:
                on_warning(
                    f"pip could not resolve wheels for {target.describe()} ({failure}); using "
                    "the wheels it resolved last time, from the cache"
                )
            return remembered
        wheels = []
        for path in sorted(work.iterdir()):
            if not path.name.endswith(".whl"):
                raise ResolutionError(
                    f"pip saved {path.name} for {target.describe()}, which is not a wheel"
                )
            wheel = cache.add(path)
            if not target.supports(wheel.tags):
                raise ResolutionError(
                    f"pip saved {wheel.file_name}, which does not run on {target.describe()}"
                )
            wheels.append(wheel)
        if not wheels:
            raise ResolutionError(f"pip saved no wheels for {target.describe()}")
        cache.remember(question, target, wheels)
        return wheels
    finally:
        shutil.rmtree(work, ignore_errors=True)


_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")


_NETWORK_TROUBLE = (
    "Retrying (",
    "connection broken",
    "Could not fetch URL",
    "NewConnectionError",
    "ProxyError",
    "SSLError",
    "ConnectTimeout",
    "Max retries exceeded",
)
"""What pip prints when an index could not be reached (its retry warnings and fetch errors):
then "no matching distribution" means "no answer", not "no wheel"."""


def _network_trouble(stderr: str) -> bool:
    return any(marker in stderr for marker in _NETWORK_TROUBLE)


def _no_distribution(stderr: str) -> Optional[str]:
    """The requirement pip found no distribution for (pip's ``ERROR: No matching
    distribution found for NAME[SPEC]`` line), or None."""
    found = _NO_DISTRIBUTION.findall(stderr)
    return found[-1] if found else None


def _last_error(stderr: str, code: int) -> str:
    """pip's last line that says what went wrong (``ERROR: ...``), or its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    text = (errors or lines or [f"exit status {code}"])[-1]
    return text.removeprefix("ERROR: ")[:300]


def projects(wheels: Sequence[Wheel]) -> list[str]:
    """The canonical project names of ``wheels``, sorted (for messages and tests)."""
    return sorted(str(canonicalize_name(w.project)) for w in wheels)
