"""Fetching archives into the cache: streamed through sha256, in parallel, with progress bars.

Each download is written to a temporary ``.partial`` file in the cache, hashed as it streams,
compared with the catalog's sha256 and size, and only then renamed to its final name
(see :mod:`pybundle.bundler.cache`). Transient failures (connection errors, 429, 5xx) are
retried by urllib3's ``Retry`` with exponential backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from pybundle import __version__
from pybundle.bundler.cache import Cache
from pybundle.errors import DownloadError, HashMismatchError, StorageError
from pybundle.hashing import CHUNK_SIZE

DEFAULT_JOBS = 4
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class DownloadItem:
    """One archive to fetch: ``url`` (after mirror substitution), expected ``sha256`` (hex)."""

    url: str
    sha256: str
    file_name: str
    size: int | None = None


@dataclass(frozen=True)
class DownloadResult:
    """A verified archive in the cache; ``cached`` is True when no bytes were downloaded."""

    item: DownloadItem
    path: Path
    size: int
    cached: bool


def make_session(retries: int = 5, backoff: float = 0.5) -> requests.Session:
    """A requests session with retries on connection errors, 429 and 5xx (Retry-After honoured).

    Proxies and CA bundles come from the standard environment (``HTTPS_PROXY``, ``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE``), as requests does by default.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"pybundle/{__version__}"
    return session


def _progress_enabled() -> bool:
    return sys.stderr.isatty()


def fetch(
    item: DownloadItem,
    cache: Cache,
    session: requests.Session,
    *,
    position: int = 0,
) -> DownloadResult:
    """Return the archive from the cache, downloading and verifying it first if needed.

    Raises DownloadError (URL named) on HTTP or connection failure, HashMismatchError when the
    bytes differ from the catalog's sha256 or size, StorageError when the cache cannot be
    written. On any failure the temporary file is removed.
    """
    hit = cache.lookup(item.sha256, item.file_name, item.size)
    if hit is not None:
        return DownloadResult(item, hit, hit.stat().st_size, cached=True)
    fd, temp = cache.temp_file(item.file_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _stream_to(item, session, out, position)
        if item.size is not None and size != item.size:
            raise HashMismatchError(
                f"{item.url}: downloaded {size} bytes, the catalog says {item.size} bytes"
            )
        if digest != item.sha256.lower():
            raise HashMismatchError(
                f"{item.url}: sha256 of the download is {digest}, the catalog says {item.sha256}"
            )
        path = cache.commit(temp, item.sha256, item.file_name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return DownloadResult(item, path, size, cached=False)


def _stream_to(
    item: DownloadItem, session: requests.Session, out: object, position: int
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    write = out.write  # type: ignore[attr-defined]
    try:
        with session.get(item.url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as resp:
            if resp.status_code != 200:
                raise DownloadError(f"{item.url}: HTTP {resp.status_code} {resp.reason}")
            total = int(resp.headers.get("Content-Length") or 0) or item.size
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=item.file_name[:48],
                position=position,
                leave=False,
                disable=not _progress_enabled(),
            ) as bar:
                for chunk in resp.iter_content(chunk_size=CHUNK_SIZE):
                    digest.update(chunk)
                    write(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as exc:
        raise DownloadError(f"{item.url}: download failed: {_reason(exc)}") from exc
    except OSError as exc:
        raise StorageError(f"cannot write the download of {item.url}: {exc}") from exc
    return digest.hexdigest(), size


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def fetch_all(
    items: Sequence[DownloadItem],
    cache: Cache,
    *,
    jobs: int = DEFAULT_JOBS,
    session: requests.Session | None = None,
) -> list[DownloadResult]:
    """Fetch several archives in parallel (``jobs`` threads); results follow the input order.

    Two items naming the same sha256 are fetched once. The first failure is raised after
    the other transfers have finished (their verified files stay cached).
    """
    session = session or make_session()
    unique: dict[str, DownloadItem] = {}
    for item in items:
        unique.setdefault(item.sha256.lower(), item)
    ordered = list(unique.values())
    results: dict[str, DownloadResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(ordered) or 1))) as pool:
        futures = {
            pool.submit(fetch, item, cache, session, position=i): item
            for i, item in enumerate(ordered)
        }
        first_error: BaseException | None = None
        for future, item in futures.items():
            try:
                results[item.sha256.lower()] = future.result()
            except BaseException as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error
    return [results[item.sha256.lower()] for item in items]
