"""Read uv's catalog of interpreter downloads (``crates/uv-python/download-metadata.json``).

Format (uv's downloads JSON, also accepted by ``UV_PYTHON_DOWNLOADS_JSON_URL``): one JSON object
mapping a key such as ``cpython-3.13.0+freethreaded-linux-x86_64_v3-gnu`` to an entry::

    {"name": "cpython", "arch": {"family": "x86_64", "variant": "v3"}, "os": "linux",
     "libc": "gnu", "major": 3, "minor": 13, "patch": 0, "prerelease": "",
     "url": "https://github.com/astral-sh/python-build-standalone/releases/download/...",
     "sha256": "<64 hex>" | null, "variant": null | "debug" | "freethreaded" | "freethreaded+debug",
     "build": "20241008"}

CPython archives come from python-build-standalone (PBS); their file names follow PBS
``docs/distributions.rst``: ``cpython-<version>+<build>-<triple>-<flavour>.<ext>`` where the
flavour is ``install_only``, ``install_only_stripped`` or a build configuration followed by
``-full`` (older releases: ``cpython-<version>-<triple>-<config>-<timestamp>.tar.zst``, also full
archives). PyPy and GraalPy entries point at those projects' own release archives.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from pybundle import __version__
from pybundle.errors import CatalogError, DownloadError, UsageError
from pybundle.targets import Target, is_known_target
from pybundle.versions import PythonVersion

if TYPE_CHECKING:  # imported where used: a local catalog never loads it
    import requests

__all__ = [
    "CATALOG_ENV",
    "DEFAULT_CATALOG_URL",
    "IMPLEMENTATIONS",
    "MAX_CATALOG_BYTES",
    "PBS_RELEASE_PREFIX",
    "VARIANTS",
    "CatalogEntry",
    "apply_mirror",
    "PbsName",
    "default_catalog_source",
    "entries_from_sha256sums",
    "load_catalog",
    "load_local_directory",
    "load_pbs_release",
    "parse_catalog",
    "parse_pbs_file_name",
    "parse_sha256sums",
]

#: Where PBS release assets live; uv's ``UV_PYTHON_INSTALL_MIRROR`` replaces this prefix.
PBS_RELEASE_PREFIX = "https://github.com/astral-sh/python-build-standalone/releases/download"
#: uv's catalog on its main branch.
DEFAULT_CATALOG_URL = (
    "https://raw.githubusercontent.com/astral-sh/uv/main/crates/uv-python/download-metadata.json"
)
#: Environment variable naming another catalog (path, file:// URL or http(s) URL).
CATALOG_ENV = "PYBUNDLE_CATALOG"
#: Largest catalog accepted over HTTP, in bytes (uv's is about 2 MiB today).
MAX_CATALOG_BYTES = 64 * 1024 * 1024

#: Implementations in uv's catalog (entry ``name``).
IMPLEMENTATIONS: tuple[str, ...] = ("cpython", "pypy", "graalpy")
#: Build variants, our names; the catalog says ``null`` for ``"default"``.
VARIANTS: tuple[str, ...] = ("default", "freethreaded", "debug", "freethreaded+debug")

_ARCHIVE_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".tar.gz", "tar.gz"),
    (".tgz", "tar.gz"),
    (".tar.zst", "tar.zst"),
    (".zip", "zip"),
)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 64 * 1024
#: Characters no catalog string may hold: C0/C1 controls, line and paragraph separators, lone
#: surrogates (from JSON ``\ud800`` escapes). They would break one-line messages and output.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SHOW_MAX = 80


def _show(value: object) -> str:
    """``repr(value)`` for a one-line message: control characters escaped, at most 80 chars."""
    text = repr(value)
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def _name(source: str) -> str:
    """A path or URL for a message: as is, or quoted by :func:`_show` if it holds characters
    that would break the line."""
    return _show(source) if _BAD_CHARS.search(source) else source


def _archive_format(file_name: str) -> Optional[str]:
    lower = file_name.lower()
    for suffix, fmt in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return fmt
    return None


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable interpreter archive from uv's catalog.

    Fields:
        key: the catalog's key, e.g. ``cpython-3.12.1-linux-x86_64-gnu``.
        implementation: ``"cpython"``, ``"pypy"`` or ``"graalpy"`` (catalog ``name``).
        version: the Python language version (for PyPy/GraalPy too, not their own release number).
        target: platform; ``arch_variant`` from catalog ``arch.variant``.
        variant: ``"default"``, ``"freethreaded"``, ``"debug"`` or ``"freethreaded+debug"``.
        url: download URL as in the catalog (see :func:`apply_mirror`).
        sha256: lower-case hex digest of the archive, or None when the catalog has none.
        build: release tag: a PBS date such as ``"20260814"``, or PyPy/GraalPy's own version.
    """

    key: str
    implementation: str
    version: PythonVersion
    target: Target
    variant: str
    url: str
    sha256: Optional[str]
    build: str
    size: Optional[int] = None
    """Archive size in bytes when the catalog knows it (local directories), else None."""

    @property
    def file_name(self) -> str:
        """The URL's last path segment, percent-decoded, e.g.
        ``cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz``."""
        path = urllib.parse.urlsplit(self.url).path
        return urllib.parse.unquote(path.rsplit("/", 1)[-1])

    @property
    def flavour(self) -> str:
        """The PBS archive flavour (PBS ``distributions.rst``): ``"install_only"``,
        ``"install_only_stripped"`` or ``"full"`` (the ``-full`` archives and the older
        ``<config>-<timestamp>.tar.zst`` ones). PyPy and GraalPy archives count as
        ``"install_only"``: they unpack to a ready interpreter tree."""
        if self.implementation != "cpython":
            return "install_only"
        name = self.file_name
        if "-install_only_stripped." in name:
            return "install_only_stripped"
        if "-install_only." in name:
            return "install_only"
        return "full"

    @property
    def config(self) -> str:
        """The PBS build configuration in the file name, e.g. ``"pgo+lto"``, ``"debug"``,
        ``"freethreaded+pgo+lto"``, ``"shared-pgo"``; ``""`` for plain install_only archives and
        for PyPy/GraalPy."""
        if self.implementation != "cpython":
            return ""
        parsed = parse_pbs_file_name(self.file_name)
        return parsed.config if parsed else ""

    @property
    def archive_format(self) -> str:
        """``"tar.gz"``, ``"tar.zst"`` or ``"zip"``, from the file name's suffix.

        Raises:
            CatalogError: the suffix is none of these (never for entries from
                :func:`parse_catalog`, which skips such entries).
        """
        fmt = _archive_format(self.file_name)
        if fmt is None:
            raise CatalogError(
                f"catalog entry {self.key} has an archive of unknown format: {self.file_name}"
            )
        return fmt


def default_catalog_source() -> str:
    """The catalog to use: ``$PYBUNDLE_CATALOG`` if set and not empty, else uv's on GitHub."""
    return os.environ.get(CATALOG_ENV, "").strip() or DEFAULT_CATALOG_URL


def _field(raw: Mapping[str, Any], name: str, kind: type, key: str, source: str) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CatalogError(
            f"catalog {source}: entry {_show(key)} has no valid {name!r} "
            f"(expected {kind.__name__}, got {_show(value)})"
        )
    if isinstance(value, str):
        _check_text(value, name, key, source)
    return value


def _check_text(value: str, name: str, key: str, source: str) -> None:
    """Refuse a catalog string holding control characters or lone surrogates."""
    if _BAD_CHARS.search(value):
        raise CatalogError(
            f"catalog {source}: entry {_show(key)} has control characters or invalid "
            f"Unicode in {name!r}: {_show(value)}"
        )


def _check_url(url: str, key: str, source: str) -> None:
    """Refuse a URL that cannot be parsed or sent: no spaces, a valid host and port."""
    problem = " " in url or not url.isprintable()
    if not problem:
        try:
            _ = urllib.parse.urlsplit(url).port  # parses the host part and the port
        except ValueError:
            problem = True
    if problem:
        raise CatalogError(f"catalog {source}: entry {_show(key)} has an invalid url {_show(url)}")


def _build_from_url(url: str) -> str:
    """Release tag from ``.../releases/download/<tag>/<file>`` (for catalogs without ``build``)."""
    m = re.search(r"/releases/download/([^/]+)/", url)
    return urllib.parse.unquote(m.group(1)) if m else ""


def _parse_entry(key: str, raw: Any, source: str) -> Optional[CatalogEntry]:
    """One catalog entry, or None if it is for something we do not handle (skipped)."""
    if _BAD_CHARS.search(key):
        raise CatalogError(
            f"catalog {source}: entry key {_show(key)} has control characters or invalid Unicode"
        )
    if not isinstance(raw, dict):
        raise CatalogError(f"catalog {source}: entry {_show(key)} is not a JSON object")
    name = _field(raw, "name", str, key, source)
    os_name = _field(raw, "os", str, key, source)
    libc = _field(raw, "libc", str, key, source)
    arch = _field(raw, "arch", dict, key, source)
    family = _field(arch, "family", str, key, source)
    arch_variant = arch.get("variant")
    if arch_variant is not None:
        if not isinstance(arch_variant, str):
            raise CatalogError(f"catalog {source}: entry {_show(key)} has an invalid arch variant")
        _check_text(arch_variant, "arch.variant", key, source)
    major = _field(raw, "major", int, key, source)
    minor = _field(raw, "minor", int, key, source)
    patch = _field(raw, "patch", int, key, source)
    prerelease = raw.get("prerelease") or ""
    url = _field(raw, "url", str, key, source)
    _check_url(url, key, source)
    sha256 = raw.get("sha256")
    variant = raw.get("variant") or "default"
    build = raw.get("build")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256.lower()):
            raise CatalogError(
                f"catalog {source}: entry {_show(key)} has an invalid sha256 {_show(sha256)}"
            )
        sha256 = sha256.lower()
    if not isinstance(prerelease, str) or not isinstance(variant, str):
        raise CatalogError(
            f"catalog {source}: entry {_show(key)} has an invalid prerelease or variant"
        )
    if build is not None and not isinstance(build, str):
        raise CatalogError(
            f"catalog {source}: entry {_show(key)} has an invalid build {_show(build)}"
        )
    for field, text in (("prerelease", prerelease), ("variant", variant), ("build", build or "")):
        _check_text(text, field, key, source)

    # Forward compatibility: skip what we cannot install rather than refuse the catalog.
    target = Target(os_name, family, libc, arch_variant)
    if not is_known_target(target):  # e.g. emscripten-wasm32-musl (Pyodide)
        return None
    if name not in IMPLEMENTATIONS or variant not in VARIANTS:
        return None
    url_path = urllib.parse.urlsplit(url).path
    if _archive_format(urllib.parse.unquote(url_path)) is None:
        return None
    try:
        version = PythonVersion(major, minor, patch, prerelease)
    except UsageError:  # a malformed prerelease tag or a negative number
        raise CatalogError(
            f"catalog {source}: entry {_show(key)} has an invalid version: major "
            f"{_show(major)}, minor {_show(minor)}, patch {_show(patch)}, prerelease "
            f"{_show(prerelease)} (expected non-negative numbers and '', aN, bN or rcN)"
        ) from None
    return CatalogEntry(
        key=key,
        implementation=name,
        version=version,
        target=target,
        variant=variant,
        url=url,
        sha256=sha256,
        build=build or _build_from_url(url),
    )


def parse_catalog(data: bytes, source: str) -> list[CatalogEntry]:
    """Parse the bytes of a uv downloads-JSON catalog into entries, in file order.

    Entries we cannot use are skipped, not refused: an OS/arch/libc/level outside
    :mod:`pybundle.targets` (e.g. ``emscripten``), an implementation outside
    :data:`IMPLEMENTATIONS`, a variant outside :data:`VARIANTS`, or an archive that is not
    ``.tar.gz``/``.tar.zst``/``.zip``. ``sha256`` may be null (kept as None).

    Args:
        data: the file's bytes (UTF-8 JSON).
        source: path or URL it came from, used only in error messages.

    Raises:
        CatalogError: not UTF-8 JSON (or nested too deeply), not an object of objects, an entry
            lacks a required field or has one of the wrong type, a string holds control
            characters or lone surrogates, or a URL cannot be parsed; one line naming
            ``source`` (and the entry key).
    """
    source = _name(source)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CatalogError(f"catalog {source} is not valid JSON: {reason}") from None
    except RecursionError:
        raise CatalogError(f"catalog {source} is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise CatalogError(
            f"catalog {source} is not a JSON object of downloads (got {type(doc).__name__})"
        )
    entries: list[CatalogEntry] = []
    for key, raw in doc.items():
        entry = _parse_entry(key, raw, source)
        if entry is not None:
            entries.append(entry)
    return entries


def _read_file(path: str, source: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CatalogError(f"cannot read catalog {_name(source)}: {reason}") from None
    except ValueError:  # a NUL character in the path
        raise CatalogError(f"cannot read catalog {_name(source)}: invalid path") from None


def _scheme(source: str) -> str:
    """The lower-case URL scheme of ``source`` ("" for a plain path); CatalogError if the
    text cannot be parsed as a URL."""
    try:
        return urllib.parse.urlsplit(source).scheme.lower()
    except ValueError:  # e.g. an unbalanced "[" in the host part
        raise CatalogError(f"cannot read catalog {_name(source)}: not a valid URL") from None


def _fetch(url: str, session: requests.Session, timeout: float) -> bytes:
    limit = MAX_CATALOG_BYTES
    too_big = f"catalog {url} is larger than the {limit // (1024 * 1024)} MiB limit"
    import requests

    try:
        with session.get(
            url, timeout=timeout, stream=True, headers={"User-Agent": f"pybundle/{__version__}"}
        ) as resp:
            if resp.status_code != 200:
                reason = " ".join((resp.reason or "").split())
                raise DownloadError(
                    f"cannot fetch catalog {url}: HTTP {resp.status_code} {reason}".rstrip()
                )
            length = resp.headers.get("Content-Length", "").strip()
            if re.fullmatch(r"[0-9]+", length) and (len(length) > 18 or int(length) > limit):
                raise DownloadError(too_big)
            body = bytearray()
            for chunk in resp.iter_content(_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise DownloadError(too_big)
            return bytes(body)
    except (requests.RequestException, ValueError, UnicodeError) as exc:
        # ValueError, UnicodeError: some malformed answers (a redirect to an unparsable place)
        # get through requests as these
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise DownloadError(f"cannot fetch catalog {url}: {reason}") from None


def load_catalog(
    source: str, session: Optional[requests.Session] = None, timeout: float = 30.0
) -> list[CatalogEntry]:
    """Read and parse a catalog (see :func:`parse_catalog`), or a local directory of PBS
    archives (see :func:`load_local_directory`).

    Args:
        source: a file path, a ``file://`` URL, or an ``http(s)://`` URL of uv's downloads JSON;
            or the path / ``file://`` URL of a directory of PBS archives.
        session: requests session for HTTP (a new one, closed afterwards, if None).
        timeout: seconds for the HTTP connect and for each read.

    Raises:
        DownloadError: HTTP status other than 200, connection/timeout failure, or a body over
            :data:`MAX_CATALOG_BYTES`; names the URL.
        CatalogError: the file cannot be read, or the content is not a catalog; names the source.
    """
    local = _local_path(source)
    try:
        is_dir = local is not None and local.is_dir()
    except (OSError, ValueError):  # ValueError: a NUL character in the path
        raise CatalogError(f"cannot read catalog {_name(source)}: invalid path") from None
    if is_dir and local is not None:
        return load_local_directory(local)
    data = _load_bytes(source, session, timeout)
    return parse_catalog(data, source)


def _local_path(source: str) -> Optional[Path]:
    scheme = _scheme(source)
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        return Path(_url2pathname(urllib.parse.urlsplit(source).path))
    return Path(source)


def apply_mirror(url: str, mirror: Optional[str]) -> str:
    """Rewrite a PBS download URL to a mirror, as uv's ``UV_PYTHON_INSTALL_MIRROR`` does.

    ``https://github.com/astral-sh/python-build-standalone/releases/download/<tag>/<file>``
    becomes ``<mirror>/<tag>/<file>`` (trailing ``/`` of ``mirror`` stripped). Other URLs
    (PyPy, GraalPy), and any URL when ``mirror`` is None or empty, are returned unchanged.
    """
    if not mirror:
        return url
    prefix = PBS_RELEASE_PREFIX + "/"
    if url.startswith(prefix):
        return mirror.rstrip("/") + "/" + url[len(prefix) :]
    return url


# ---- python-build-standalone release assets, named by PBS's file-name convention -------------

#: ``cpython-<version>[+<build>]-<triple>-<rest>`` (PBS ``docs/distributions.rst``). Digits are
#: ASCII and at most 9 long, so that what matches converts to ``int`` quickly and exactly.
_PBS_NAME_RE = re.compile(
    r"cpython-(?P<version>[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9}(?:(?:a|b|rc)[0-9]{1,9})?)"
    r"(?:\+(?P<build>[0-9]{8}))?-"
    r"(?P<arch>[a-z0-9_]+)-(?:unknown-linux-(?P<libc>gnu|musl|gnueabi|gnueabihf)|"
    r"(?P<apple>apple-darwin)|(?P<windows>pc-windows-msvc))-(?P<rest>.+)"
)
_PBS_REST_RES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "install_only_stripped",
        re.compile(r"(?:(?P<config>[a-z0-9+_-]+)-)?install_only_stripped\.tar\.gz"),
    ),
    ("install_only", re.compile(r"(?:(?P<config>[a-z0-9+_-]+)-)?install_only\.tar\.gz")),
    ("full", re.compile(r"(?P<config>[a-z0-9+_-]+)-full\.tar\.zst")),
    ("full", re.compile(r"(?P<config>[a-z0-9+_-]+)-(?P<stamp>[0-9]{8})T[0-9]{4}\.tar\.zst")),
)


@dataclass(frozen=True)
class PbsName:
    """What a python-build-standalone file name says (PBS ``docs/distributions.rst``).

    ``build`` is the release tag in the name (``20240107``), or for 2020-2021 names
    (``...-pgo+lto-20211017T1616.tar.zst``) the date of the timestamp; ``config`` the build
    configuration (``pgo+lto``, ``debug``, ``freethreaded+pgo+lto``, ``shared-pgo``, or ``""``);
    ``flavour`` ``install_only``, ``install_only_stripped`` or ``full``; ``variant`` derived from
    ``config`` (``freethreaded``, ``debug``, ``freethreaded+debug`` or ``default``).
    """

    version: PythonVersion
    build: str
    target: Target
    variant: str
    flavour: str
    config: str


def parse_pbs_file_name(file_name: str) -> Optional[PbsName]:
    """Parse a PBS CPython archive name (percent-decoded), or return None if it is not one.

    Examples: ``cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz``,
    ``cpython-3.13.0+20241016-x86_64_v3-unknown-linux-gnu-freethreaded+pgo+lto-full.tar.zst``,
    ``cpython-3.9.7-x86_64-unknown-linux-gnu-pgo+lto-20211017T1616.tar.zst``. Targets outside
    :mod:`pybundle.targets` and other assets (``SHA256SUMS``, ``.sha256`` files) give None.
    """
    m = _PBS_NAME_RE.fullmatch(file_name)
    if m is None:
        return None
    if m.group("libc"):
        os_name, libc = "linux", m.group("libc")
    elif m.group("apple"):
        os_name, libc = "darwin", "none"
    else:
        os_name, libc = "windows", "none"
    arch_text = m.group("arch")
    arch_variant: Optional[str] = None
    head, sep, tail = arch_text.rpartition("_")
    if sep and tail[:1] == "v" and tail[1:].isdigit():
        arch_text, arch_variant = head, tail
    arch = {"ppc64le": "powerpc64le", "arm64": "aarch64"}.get(arch_text, arch_text)
    target = Target(os_name, arch, libc, arch_variant)
    if not is_known_target(target):
        return None
    rest = m.group("rest")
    for flavour, pattern in _PBS_REST_RES:
        r = pattern.fullmatch(rest)
        if r is None:
            continue
        config = r.group("config") or ""
        stamp = r.groupdict().get("stamp")
        build = m.group("build") or stamp or ""
        options = set(re.split(r"[+-]", config))
        freethreaded, debug = "freethreaded" in options, "debug" in options
        variant = (
            "freethreaded+debug"
            if freethreaded and debug
            else "freethreaded"
            if freethreaded
            else "debug"
            if debug
            else "default"
        )
        try:
            version = PythonVersion.parse(m.group("version"))
        except UsageError:  # e.g. "03.10.0": not a version PBS would write
            return None
        return PbsName(version, build, target, variant, flavour, config)
    return None


def parse_sha256sums(text: str, source: str) -> list[tuple[str, str]]:
    """Parse a ``SHA256SUMS`` file (``sha256sum`` output: ``<64 hex>  <name>`` or
    ``<64 hex> *<name>`` per line, as PBS releases publish) into ``(sha256, file name)`` pairs.

    Blank lines and ``#`` comments are skipped; digests are lower-cased.

    Raises:
        CatalogError: a line is not of that form (names ``source`` and the line number).
    """
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *]?(\S.*)", stripped)
        if m is None:
            raise CatalogError(f"{source}: line {number} is not '<sha256>  <file name>'")
        pairs.append((m.group(1).lower(), m.group(2).strip()))
    return pairs


def entries_from_sha256sums(
    pairs: list[tuple[str, Optional[str]]] | list[tuple[str, str]],
    url_for: Any,
    release: Optional[str] = None,
    sizes: Optional[Mapping[str, int]] = None,
) -> list[CatalogEntry]:
    """Catalog entries for PBS archives given as ``(file name, sha256 or None)`` pairs.

    ``url_for(file_name) -> str`` gives each archive's URL; ``release`` overrides the build
    read from names (the tag of the release they were listed in); ``sizes`` maps file names to
    sizes in bytes when known. Names that are not PBS CPython archives are skipped. Keys follow
    uv's catalog (``cpython-3.12.1+freethreaded-linux-x86_64-gnu``), so several flavours of one
    build share a key.
    """
    entries: list[CatalogEntry] = []
    for name, sha256 in pairs:
        parsed = parse_pbs_file_name(name)
        if parsed is None:
            continue
        variant = "" if parsed.variant == "default" else f"+{parsed.variant}"
        key = f"cpython-{parsed.version}{variant}-{parsed.target.key}"
        entries.append(
            CatalogEntry(
                key=key,
                implementation="cpython",
                version=parsed.version,
                target=parsed.target,
                variant=parsed.variant,
                url=url_for(name),
                sha256=sha256,
                build=release or parsed.build,
                size=(sizes or {}).get(name),
            )
        )
    return entries


def _release_url(base: str, tag: str, name: str) -> str:
    quoted = urllib.parse.quote(name, safe="")
    return f"{base.rstrip('/')}/{urllib.parse.quote(tag, safe='')}/{quoted}"


def load_pbs_release(
    tag: str,
    *,
    mirror: Optional[str] = None,
    session: Optional[requests.Session] = None,
    timeout: float = 30.0,
) -> list[CatalogEntry]:
    """Every CPython archive of PBS release ``tag`` (e.g. ``"20260814"``), from its
    ``SHA256SUMS`` asset and the PBS file-name convention (:func:`parse_pbs_file_name`).

    ``SHA256SUMS`` is read from ``<mirror>/<tag>/SHA256SUMS`` (or the upstream release prefix,
    :data:`PBS_RELEASE_PREFIX`, without a mirror; ``mirror`` may also be a local directory or a
    ``file://`` URL laid out the same way). Entry URLs use the upstream prefix, so the manifest
    records the upstream source; :func:`apply_mirror` redirects the downloads.

    Raises:
        UsageError: ``tag`` is not a plain release tag.
        DownloadError: the file cannot be fetched (HTTP status, connection; names the URL).
        CatalogError: it cannot be read or parsed, or lists no CPython archive.
    """
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", tag):
        raise UsageError(f"invalid python-build-standalone release tag {tag!r} (e.g. 20260814)")
    base = mirror.rstrip("/") if mirror else PBS_RELEASE_PREFIX
    sums_url = f"{base}/{tag}/SHA256SUMS"
    data = _load_bytes(sums_url, session, timeout)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"{sums_url}: not a UTF-8 text file") from None
    pairs = [(name, sha) for sha, name in parse_sha256sums(text, sums_url)]
    entries = entries_from_sha256sums(
        pairs, lambda name: _release_url(PBS_RELEASE_PREFIX, tag, name), release=tag
    )
    if not entries:
        raise CatalogError(f"{sums_url}: lists no python-build-standalone CPython archive")
    return entries


def load_local_directory(directory: Path) -> list[CatalogEntry]:
    """The PBS CPython archives in ``directory`` (an internal mirror copied by hand).

    Archives are the files whose names follow PBS's convention; their sha256 comes from a
    ``SHA256SUMS`` file in the directory when it lists them, else it is None (such entries need
    ``--allow-unhashed``). Names listed in ``SHA256SUMS`` but absent from the directory are
    left out. Entry URLs are ``file://`` URLs of the files; sizes are known.

    Raises:
        CatalogError: the directory cannot be read, ``SHA256SUMS`` is malformed, or no archive
            is present; names the directory.
    """
    try:
        files = {p.name: p for p in directory.iterdir() if p.is_file()}
    except OSError as exc:
        raise CatalogError(f"cannot read catalog directory {directory}: {exc.strerror}") from None
    sums: dict[str, str] = {}
    if "SHA256SUMS" in files:
        text = _read_file(str(files["SHA256SUMS"]), str(files["SHA256SUMS"])).decode(
            "utf-8", errors="replace"
        )
        sums = {name: sha for sha, name in parse_sha256sums(text, str(files["SHA256SUMS"]))}
    names = sorted(n for n in files if parse_pbs_file_name(n) is not None)
    try:
        sizes = {n: files[n].stat().st_size for n in names}
    except OSError as exc:
        raise CatalogError(f"cannot read catalog directory {directory}: {exc.strerror}") from None
    entries = entries_from_sha256sums(
        [(n, sums.get(n)) for n in names],
        lambda name: files[name].resolve().as_uri(),
        sizes=sizes,
    )
    if not entries:
        raise CatalogError(
            f"catalog directory {directory} holds no python-build-standalone CPython archive"
        )
    return entries


def _load_bytes(source: str, session: Optional[requests.Session], timeout: float) -> bytes:
    """The bytes of a path, ``file://`` URL or ``http(s)://`` URL (see :func:`load_catalog`)."""
    scheme = _scheme(source)
    if scheme in ("http", "https"):
        if session is not None:
            return _fetch(source, session, timeout)
        import requests

        with requests.Session() as own:
            return _fetch(source, own, timeout)
    if scheme == "file":
        parts = urllib.parse.urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise CatalogError(f"cannot read catalog {source}: only local file:// URLs work")
        return _read_file(_url2pathname(parts.path), source)
    return _read_file(source, source)


def _url2pathname(path: str) -> str:
    """``urllib.request.url2pathname`` (imported here: urllib.request loads http.client, email
    and ssl, which a local catalog does not need)."""
    import urllib.request

    return urllib.request.url2pathname(path)
