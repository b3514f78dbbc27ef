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
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import requests

from pybundle import __version__
from pybundle.errors import CatalogError, DownloadError, UsageError
from pybundle.targets import Target, is_known_target
from pybundle.versions import PythonVersion

__all__ = [
    "CATALOG_ENV",
    "DEFAULT_CATALOG_URL",
    "IMPLEMENTATIONS",
    "MAX_CATALOG_BYTES",
    "PBS_RELEASE_PREFIX",
    "VARIANTS",
    "CatalogEntry",
    "apply_mirror",
    "default_catalog_source",
    "load_catalog",
    "parse_catalog",
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
            f"catalog {source}: entry {key!r} has no valid {name!r} "
            f"(expected {kind.__name__}, got {value!r})"
        )
    return value


def _build_from_url(url: str) -> str:
    """Release tag from ``.../releases/download/<tag>/<file>`` (for catalogs without ``build``)."""
    m = re.search(r"/releases/download/([^/]+)/", url)
    return urllib.parse.unquote(m.group(1)) if m else ""


def _parse_entry(key: str, raw: Any, source: str) -> Optional[CatalogEntry]:
    """One catalog entry, or None if it is for something we do not handle (skipped)."""
    if not isinstance(raw, dict):
        raise CatalogError(f"catalog {source}: entry {key!r} is not a JSON object")
    name = _field(raw, "name", str, key, source)
    os_name = _field(raw, "os", str, key, source)
    libc = _field(raw, "libc", str, key, source)
    arch = _field(raw, "arch", dict, key, source)
    family = _field(arch, "family", str, key, source)
    arch_variant = arch.get("variant")
    if arch_variant is not None and not isinstance(arch_variant, str):
        raise CatalogError(f"catalog {source}: entry {key!r} has an invalid arch variant")
    major = _field(raw, "major", int, key, source)
    minor = _field(raw, "minor", int, key, source)
    patch = _field(raw, "patch", int, key, source)
    prerelease = raw.get("prerelease") or ""
    url = _field(raw, "url", str, key, source)
    sha256 = raw.get("sha256")
    variant = raw.get("variant") or "default"
    build = raw.get("build")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256.lower()):
            raise CatalogError(f"catalog {source}: entry {key!r} has an invalid sha256 {sha256!r}")
        sha256 = sha256.lower()
    if not isinstance(prerelease, str) or not isinstance(variant, str):
        raise CatalogError(f"catalog {source}: entry {key!r} has an invalid prerelease or variant")
    if build is not None and not isinstance(build, str):
        raise CatalogError(f"catalog {source}: entry {key!r} has an invalid build {build!r}")

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
    except UsageError as exc:  # a malformed prerelease tag or a negative number
        raise CatalogError(f"catalog {source}: entry {key!r}: {exc}") from None
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
        CatalogError: not UTF-8 JSON, not an object of objects, or an entry lacks a required
            field or has one of the wrong type; one line naming ``source`` (and the entry key).
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise CatalogError(f"catalog {source} is not valid JSON: {reason}") from None
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
        raise CatalogError(f"cannot read catalog {source}: {reason}") from None


def _fetch(url: str, session: requests.Session, timeout: float) -> bytes:
    limit = MAX_CATALOG_BYTES
    too_big = f"catalog {url} is larger than the {limit // (1024 * 1024)} MiB limit"
    try:
        with session.get(
            url, timeout=timeout, stream=True, headers={"User-Agent": f"pybundle/{__version__}"}
        ) as resp:
            if resp.status_code != 200:
                reason = " ".join((resp.reason or "").split())
                raise DownloadError(
                    f"cannot fetch catalog {url}: HTTP {resp.status_code} {reason}".rstrip()
                )
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > limit:
                raise DownloadError(too_big)
            body = bytearray()
            for chunk in resp.iter_content(_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise DownloadError(too_big)
            return bytes(body)
    except requests.RequestException as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise DownloadError(f"cannot fetch catalog {url}: {reason}") from None


def load_catalog(
    source: str, session: Optional[requests.Session] = None, timeout: float = 30.0
) -> list[CatalogEntry]:
    """Read and parse a catalog (see :func:`parse_catalog`).

    Args:
        source: a file path, a ``file://`` URL, or an ``http(s)://`` URL.
        session: requests session for HTTP (a new one, closed afterwards, if None).
        timeout: seconds for the HTTP connect and for each read.

    Raises:
        DownloadError: HTTP status other than 200, connection/timeout failure, or a body over
            :data:`MAX_CATALOG_BYTES`; names the URL.
        CatalogError: the file cannot be read, or the content is not a catalog; names the source.
    """
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        if session is not None:
            data = _fetch(source, session, timeout)
        else:
            with requests.Session() as own:
                data = _fetch(source, own, timeout)
    elif scheme == "file":
        parts = urllib.parse.urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise CatalogError(f"cannot read catalog {source}: only local file:// URLs work")
        data = _read_file(urllib.request.url2pathname(parts.path), source)
    else:
        data = _read_file(source, source)
    return parse_catalog(data, source)


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
