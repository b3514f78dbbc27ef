"""Fetching archives into the cache: parallel, resumable, retried, verified.

Each archive is streamed into its ``.partial`` file in the cache (see
:mod:`pybundle.bundler.cache`) while a sha256 runs over it, compared with the catalog's sha256
and size, and only then renamed to its final name. The rules:

* **Parallel**: ``jobs`` worker threads, each with its own ``requests`` session; the same
  archive asked for twice (same sha256, or same URL when there is none) is fetched once.
* **Resumable**: an interrupted transfer (a connection lost mid-body, or a ``.partial`` left by
  a killed process) continues with ``Range: bytes=<have>-``. A ``206`` whose ``Content-Range``
  does not start at ``<have>`` or disagrees with the known size, a ``200`` (the server ignored
  the Range) and a ``416`` all restart from byte zero. The sha256 covers the whole file either
  way (the bytes already on disk are hashed first).
* **Retried**: connection errors and ``429``/``5xx`` answers are retried by urllib3's ``Retry``
  with exponential backoff, honouring ``Retry-After`` (capped at :data:`MAX_RETRY_AFTER`
  seconds); a body cut short is resumed, with the same backoff; each archive gets at most
  ``retries`` retries of each kind. Other ``4xx`` answers fail at once, naming the URL.
* **Environment**: proxies and CA bundles come from requests' standard variables
  (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``;
  ``SSL_CERT_FILE`` is read by the TLS library); ``GITHUB_TOKEN``, when set, is sent as a bearer
  token to ``https://github.com`` and ``https://api.github.com`` only (requests drops it on a
  redirect to another host).
* ``file://`` URLs (local directory catalogs) are copied through the same hashing path.
* **Stoppable**: :meth:`Downloader.request_stop` (called by :meth:`Downloader.fetch_all` when
  Ctrl-C or SIGTERM interrupts the main thread) makes every transfer stop within a chunk: the
  worker threads check a :class:`threading.Event` between chunks, while waiting for a cache
  lock and in every retry back-off (urllib3's too), and the sockets of transfers under way are
  shut down so that a stalled read returns at once. Queued archives are cancelled. A stopped
  transfer keeps its ``.partial`` file (the next run resumes it) and never gives a file its
  final cache name.
* **Hostile answers**: whatever a server sends (bad or huge ``Content-Length``,
  ``Content-Range`` or ``Retry-After`` values, invalid chunked encoding, bodies cut short or
  longer than the catalog's size, redirects to other schemes or to unparsable locations) ends
  in :class:`DownloadError` or :class:`HashMismatchError` naming the URL; an unparsable
  ``Retry-After`` is ignored (the exponential back-off applies).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from pybundle import __version__
from pybundle.bundler.cache import Cache, entry_key
from pybundle.bundler.stopping import JOIN_POLL, Stopped, check, pause
from pybundle.errors import DownloadError, HashMismatchError, StorageError
from pybundle.hashing import CHUNK_SIZE

if TYPE_CHECKING:  # imported where used: a run served from the cache never loads them
    import requests

DEFAULT_JOBS = 4
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 60.0
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 0.5
#: Longest ``Retry-After`` honoured, in seconds; a longer one is shortened to this.
MAX_RETRY_AFTER = 60.0
#: Hosts that receive ``GITHUB_TOKEN`` (over https only).
GITHUB_HOSTS: tuple[str, ...] = ("github.com", "api.github.com")
#: Seconds :meth:`Downloader.fetch_all` waits, after a stop, for transfers to wind down.
STOP_GRACE = 0.5
_STREAM_CHUNK = 256 * 1024
_RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Digits accepted in a byte count of a header: 10**18 bytes is far beyond any archive, and a
#: longer number would be slow (or refused) to convert.
_MAX_DIGITS = 18


@dataclass(frozen=True)
class DownloadItem:
    """One archive to fetch: ``url`` (after mirror substitution), expected ``sha256`` (hex, or
    None when the catalog has none: it is then computed), ``file_name``, ``size`` in bytes if
    known."""

    url: str
    sha256: Optional[str]
    file_name: str
    size: Optional[int] = None

    @property
    def key(self) -> str:
        """The cache key: the sha256, or one derived from the URL (see :func:`entry_key`)."""
        return entry_key(self.sha256, self.url)


@dataclass(frozen=True)
class DownloadResult:
    """A verified archive in the cache.

    ``sha256`` is the digest of the bytes (equal to ``item.sha256`` when that was given);
    ``cached`` is True when no byte was transferred; ``transferred`` counts bytes received in
    this run (a resumed download counts only the rest); ``resumed_from`` is the byte offset the
    first request started at; ``seconds`` is the wall time spent on this item. ``verified`` is
    False for a cache hit that was trusted without re-hashing (``trust_hit`` of
    :class:`Downloader`): the caller must hash the bytes it reads and, when they do not match,
    fetch the item again with verification (:meth:`Downloader.fetch` with ``trust=False``).
    """

    item: DownloadItem
    path: Path
    size: int
    cached: bool
    sha256: str = ""
    transferred: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    verified: bool = True


@dataclass(frozen=True)
class DownloadSummary:
    """Totals of a :func:`fetch_all` run: files, bytes transferred, wall seconds, cache hits."""

    files: int
    transferred: int
    seconds: float
    hits: int

    @property
    def mb_per_s(self) -> float:
        """Transferred megabytes (10^6 bytes) per wall second."""
        return self.transferred / 1e6 / self.seconds if self.seconds > 0 else 0.0


class Progress(Protocol):
    """Receives transfer events; :class:`pybundle.bundler.progress.TqdmProgress` draws bars.

    Calls come from worker threads, except :meth:`expect`, which :meth:`Downloader.fetch_all`
    calls first with the number of distinct archives of the run and the sum of their known
    sizes in bytes. ``total`` may be None (unknown size); ``initial`` is the byte count already
    on disk when a transfer (re)starts.
    """

    def expect(self, files: int, known_bytes: int) -> None: ...

    def start(self, item: DownloadItem, total: Optional[int], initial: int) -> None: ...

    def advance(self, item: DownloadItem, n: int) -> None: ...

    def finish(self, item: DownloadItem, cached: bool) -> None: ...


class _NoProgress:
    def expect(self, files: int, known_bytes: int) -> None:
        pass

    def start(self, item: DownloadItem, total: Optional[int], initial: int) -> None:
        pass

    def advance(self, item: DownloadItem, n: int) -> None:
        pass

    def finish(self, item: DownloadItem, cached: bool) -> None:
        pass


@functools.cache
def _capped_retry() -> Any:
    """The class ``_CappedRetry``: urllib3's Retry with ``Retry-After`` shortened to
    :data:`MAX_RETRY_AFTER` seconds (and ignored when it cannot be parsed), and sleeps that end
    early when ``stop`` is set. Made at first use, so that importing this module does not
    load urllib3 (a bundle served from the cache never needs it)."""
    import urllib3
    from urllib3.util.retry import Retry

    class _CappedRetry(Retry):
        stop: Optional[threading.Event] = None

        def new(self, **kw: Any) -> _CappedRetry:
            retry = super().new(**kw)
            retry.stop = self.stop
            return retry

        def get_retry_after(self, response: Any) -> Optional[float]:
            try:
                value = super().get_retry_after(response)
            except (
                ValueError,
                OverflowError,
                IndexError,
                TypeError,
                urllib3.exceptions.HTTPError,
            ):
                # hostile or broken: an unparsable date, a number too long for int(), a year
                # beyond time_t; the exponential back-off applies instead
                return None
            return None if value is None else min(value, MAX_RETRY_AFTER)

        def sleep(self, response: Any = None) -> None:
            """urllib3's sleep (``Retry-After`` if the server sent a usable one, else the
            exponential back-off), interrupted by :class:`Stopped` when ``stop`` is set."""
            delay: Optional[float] = None
            if self.respect_retry_after_header and response is not None:
                delay = self.get_retry_after(response)
            pause(self.stop, delay if delay else self.get_backoff_time())

    return _CappedRetry


class GitHubTokenAuth:
    """Adds ``Authorization: Bearer <token>`` to https requests for :data:`GITHUB_HOSTS` only
    (a requests auth callable)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urllib.parse.urlsplit(r.url or "")
        if parts.scheme == "https" and (parts.hostname or "").lower() in GITHUB_HOSTS:
            r.headers["Authorization"] = f"Bearer {self.token}"
        return r


def make_session(
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    pool_size: int = 16,
    stop: Optional[threading.Event] = None,
) -> requests.Session:
    """A requests session with retries on connection errors, 429 and 5xx (Retry-After honoured,
    capped at :data:`MAX_RETRY_AFTER`), exponential backoff ``backoff * 2**n`` seconds.

    Proxies and CA bundles come from the standard environment, as requests does by default;
    ``GITHUB_TOKEN`` is attached for GitHub hosts only (:class:`GitHubTokenAuth`). When
    ``stop`` is given, a retry's sleep ends with :class:`Stopped` as soon as it is set.
    """
    import requests
    from requests.adapters import HTTPAdapter

    retry = _capped_retry()(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.stop = stop
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"pybundle/{__version__}"
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    if token:
        session.auth = GitHubTokenAuth(token)
    return session


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return " ".join(text.split())[:300]


_COUNT = f"[0-9]{{1,{_MAX_DIGITS}}}"
_CONTENT_RANGE_RE = re.compile(rf"bytes[ \t]+({_COUNT})-({_COUNT})/({_COUNT}|\*)")
_CONTENT_LENGTH_RE = re.compile(_COUNT)


class _Restart(Exception):
    """The server's answer to a Range request does not fit: start again from byte zero."""


class Downloader:
    """Fetches :class:`DownloadItem` s into a :class:`Cache`; see the module docstring.

    Args:
        cache: where verified archives go.
        jobs: parallel transfers (threads) for :meth:`fetch_all`.
        retries: retries per archive, for each of: failed requests (connection, 429/5xx) and
            bodies cut short.
        backoff: base of the exponential backoff, in seconds.
        progress: transfer events receiver (none by default: nothing is drawn).
        session_factory: makes one requests session per worker thread (default
            :func:`make_session` with ``retries``, ``backoff`` and :attr:`stop`).
        read_timeout: seconds without a byte before a transfer counts as cut.
        trust_hit: items (with a sha256) for which it returns True are, when cached with the
            right size, returned without re-hashing (:meth:`Cache.lookup_unverified`; their
            result has ``verified=False``): for a caller that hashes every byte it reads.

    Attributes:
        stop: the event :meth:`request_stop` sets; transfers raise :class:`Stopped` once it is.
    """

    def __init__(
        self,
        cache: Cache,
        *,
        jobs: int = DEFAULT_JOBS,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        progress: Optional[Progress] = None,
        session_factory: Optional[Callable[[], requests.Session]] = None,
        read_timeout: float = READ_TIMEOUT,
        trust_hit: Optional[Callable[[DownloadItem], bool]] = None,
    ) -> None:
        self.cache = cache
        self.trust_hit = trust_hit
        self.jobs = max(1, jobs)
        self.retries = retries
        self.backoff = backoff
        self.progress: Progress = progress or _NoProgress()
        self.stop = threading.Event()
        self._factory = session_factory or (lambda: make_session(retries, backoff, stop=self.stop))
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._streaming: set[requests.Response] = set()
        self.read_timeout = read_timeout

    def _session(self) -> requests.Session:
        session: Optional[requests.Session] = getattr(self._local, "session", None)
        if session is None:
            session = self._factory()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close the sessions the worker threads opened."""
        with self._lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()

    def request_stop(self) -> None:
        """Make every transfer stop (from any thread): sets :attr:`stop`, then shuts down the
        sockets of bodies being streamed, so that a read waiting on a stalled server returns
        at once. Each worker then raises :class:`Stopped`, keeping its ``.partial`` file."""
        self.stop.set()
        with self._lock:
            streaming = list(self._streaming)
        for resp in streaming:
            _shut_down(resp)

    def _watch(self, resp: requests.Response) -> None:
        with self._lock:
            self._streaming.add(resp)
        check(self.stop)  # a stop requested just before this response was registered

    def _unwatch(self, resp: requests.Response) -> None:
        with self._lock:
            self._streaming.discard(resp)

    # ---- one archive

    def fetch(self, item: DownloadItem, trust: bool = True) -> DownloadResult:
        """Return the archive from the cache, downloading and verifying it first if needed.

        A cache hit is re-hashed (a damaged one is evicted and downloaded again), unless
        ``trust`` and the downloader's ``trust_hit`` accepts the item: then only its size is
        checked and the result says ``verified=False``.

        Holds the entry's cache lock throughout, so concurrent processes fetch it once. An
        archive without an expected sha256 is always transferred (nothing can vouch for a
        cached copy) and stored under the digest computed while streaming. A resumed transfer
        whose result fails the check (the ``.partial`` on disk was damaged) is fetched once
        more from byte zero before the mismatch is reported.

        Raises:
            DownloadError: HTTP 4xx, 429/5xx or connection failures after the retries; names
                the URL.
            HashMismatchError: the bytes differ from the catalog's sha256 or size (the partial
                file is deleted, so the next attempt starts afresh).
            StorageError: the cache cannot be written.
            Stopped: :meth:`request_stop` was called (the ``.partial`` file stays).
        """
        started = time.monotonic()
        check(self.stop)
        with self.cache.locked(item.key, stop=self.stop):
            if item.sha256:
                trusted = trust and self.trust_hit is not None and self.trust_hit(item)
                if trusted:
                    hit = self.cache.lookup_unverified(item.sha256, item.file_name, item.size)
                else:
                    hit = self.cache.lookup(item.sha256, item.file_name, item.size)
                if hit is not None:
                    size = hit.stat().st_size
                    self.progress.finish(item, cached=True)
                    return DownloadResult(
                        item,
                        hit,
                        size,
                        True,
                        item.sha256.lower(),
                        0,
                        0,
                        time.monotonic() - started,
                        verified=not trusted,
                    )
            partial = self.cache.partial_for(item.key, item.file_name)
            if not item.sha256:
                partial.unlink(missing_ok=True)  # unverifiable bytes are never resumed
            try:
                scheme = urllib.parse.urlsplit(item.url).scheme.lower()
            except ValueError:  # e.g. an unbalanced "[" in the host part
                raise DownloadError(f"{item.url}: not a valid URL") from None
            if scheme not in ("file", "http", "https"):
                raise DownloadError(f"{item.url}: unsupported URL scheme {scheme!r}")
            transferred = 0
            resumed_from: Optional[int] = None
            while True:
                if scheme == "file":
                    digest, size, got, resumed = self._copy_local(item, partial)
                else:
                    digest, size, got, resumed = self._download(item, partial)
                transferred += got
                resumed_from = resumed if resumed_from is None else resumed_from
                check(self.stop)  # a transfer cut by a stop is not a finished one
                try:
                    _verify(item, digest, size)
                except HashMismatchError:
                    partial.unlink(missing_ok=True)
                    if resumed:  # the bytes kept from an earlier run may be the bad ones
                        continue
                    raise
                break
            path = self.cache.commit(partial, digest, item.file_name)
        self.progress.finish(item, cached=False)
        return DownloadResult(
            item, path, size, False, digest, transferred, resumed_from, time.monotonic() - started
        )

    def _copy_local(self, item: DownloadItem, partial: Path) -> tuple[str, int, int, int]:
        import urllib.request

        source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(item.url).path))
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src, open(partial, "wb") as out:
                self.progress.start(item, item.size or os.fstat(src.fileno()).st_size, 0)
                while chunk := src.read(CHUNK_SIZE):
                    check(self.stop)
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    self.progress.advance(item, len(chunk))
        except FileNotFoundError:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{item.url}: no such file") from None
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"cannot copy {item.url} into the cache: {exc.strerror}") from exc
        except Stopped:
            partial.unlink(missing_ok=True)  # a local copy is not resumed: it starts afresh
            raise
        return digest.hexdigest(), size, size, 0

    def _download(self, item: DownloadItem, partial: Path) -> tuple[str, int, int, int]:
        """Stream ``item`` into ``partial``, resuming and retrying; returns
        ``(sha256, size, bytes transferred, first offset)``."""
        import http.client

        import requests
        import urllib3

        digest = hashlib.sha256()
        offset = 0
        try:
            if partial.exists():
                offset = partial.stat().st_size
                if item.size is not None and offset > item.size:
                    partial.unlink()
                    offset = 0
                else:
                    with open(partial, "rb") as have:
                        shutil.copyfileobj(have, _HashSink(digest))
        except OSError as exc:
            raise StorageError(f"{partial}: cannot read the partial download: {exc}") from exc
        first_offset = offset
        transferred = 0
        cuts = 0
        restarts = 0
        session = self._session()
        while True:
            check(self.stop)
            in_body = False
            if item.size is not None and offset == item.size and item.sha256:
                if digest.hexdigest() == item.sha256.lower():
                    return digest.hexdigest(), offset, transferred, first_offset
                offset, digest = self._truncate(partial), hashlib.sha256()
            # identity: archives travel byte for byte, and ranges count raw bytes
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                with session.get(
                    item.url,
                    stream=True,
                    headers=headers,
                    timeout=(CONNECT_TIMEOUT, self.read_timeout),
                ) as resp:
                    self._watch(resp)
                    try:
                        mode = self._check_response(item, resp, offset)
                        if mode == "restart":
                            raise _Restart
                        if mode == "done":
                            return digest.hexdigest(), offset, transferred, first_offset
                        if mode == "whole" and offset:
                            offset, digest = self._truncate(partial), hashlib.sha256()
                        total = _total_size(resp, offset) or item.size
                        self.progress.start(item, total, offset)
                        in_body = True
                        try:
                            with open(partial, "ab") as out:
                                for chunk in _body_chunks(resp):
                                    check(self.stop)
                                    out.write(chunk)
                                    digest.update(chunk)
                                    offset += len(chunk)
                                    transferred += len(chunk)
                                    self.progress.advance(item, len(chunk))
                                    if item.size is not None and offset > item.size:
                                        break  # longer than the catalog says: fails the check
                        except OSError as exc:
                            if isinstance(exc, requests.RequestException):
                                raise  # requests' errors are OSErrors too: handled below
                            raise StorageError(
                                f"cannot write the download of {item.url} to {partial}: {exc}"
                            ) from exc
                    finally:
                        self._unwatch(resp)
                return digest.hexdigest(), offset, transferred, first_offset
            except _Restart:
                restarts += 1
                if restarts > self.retries:
                    raise DownloadError(
                        f"{item.url}: the server's answers to range requests do not fit"
                    ) from None
                offset, digest = self._truncate(partial), hashlib.sha256()
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
            ) as exc:
                # the adapter already retried connecting; this is a body cut short, or the
                # connection failing on every attempt (or our own socket shutdown on a stop)
                check(self.stop)
                cuts += 1
                if cuts > self.retries or not in_body:
                    raise DownloadError(
                        f"{item.url}: download failed after {cuts} attempts: {_reason(exc)}"
                    ) from None
                pause(self.stop, self.backoff * (2 ** (cuts - 1)))
            except requests.RequestException as exc:
                check(self.stop)
                raise DownloadError(f"{item.url}: download failed: {_reason(exc)}") from None
            except (ValueError, UnicodeError) as exc:
                # requests and http.client let some malformed answers through as these: a
                # redirect to an unparsable location, a header they cannot decode
                raise DownloadError(
                    f"{item.url}: invalid answer from the server: {_reason(exc)}"
                ) from None

    def _truncate(self, partial: Path) -> int:
        try:
            with open(partial, "wb"):
                pass
        except OSError as exc:
            raise StorageError(f"{partial}: cannot reset the partial download: {exc}") from exc
        return 0

    def _check_response(self, item: DownloadItem, resp: requests.Response, offset: int) -> str:
        """``"whole"`` (a full body follows), ``"append"`` (the rest from ``offset``),
        ``"restart"`` (range answer does not fit) or ``"done"`` (nothing left); raises
        DownloadError for failures."""
        status = resp.status_code
        if status == 200:
            return "whole"
        if status == 206:
            if not offset:
                raise DownloadError(f"{item.url}: HTTP 206 to a request without Range")
            m = _CONTENT_RANGE_RE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if m is None or int(m.group(1)) != offset or int(m.group(2)) < offset:
                return "restart"
            if m.group(3) != "*" and item.size is not None and int(m.group(3)) != item.size:
                return "restart"
            return "append"
        if status == 416 and offset:
            return "restart"
        reason = " ".join((resp.reason or "").split())
        if status in _RETRY_STATUSES:
            raise DownloadError(
                f"{item.url}: HTTP {status} {reason} (still failing after {self.retries} retries)"
            )
        hint = ""
        if status in (401, 403) and "github" in (urllib.parse.urlsplit(item.url).hostname or ""):
            hint = " (rate limited or private: set GITHUB_TOKEN, or use --mirror)"
        raise DownloadError(f"{item.url}: HTTP {status} {reason}{hint}".rstrip())

    # ---- many archives

    def fetch_all(
        self,
        items: Sequence[DownloadItem],
        after: Optional[Callable[[DownloadResult], object]] = None,
        trust: bool = True,
    ) -> list[DownloadResult]:
        """Fetch several archives with ``jobs`` threads; results follow the input order.

        Items with the same key (sha256, or URL without one) are fetched once. ``after`` runs in
        the same thread right after each archive is in the cache (e.g. to measure it while other
        downloads go on). The first failure is raised after the other transfers have finished
        (their verified files stay cached).

        An exception in the calling thread while it waits (KeyboardInterrupt from Ctrl-C, or
        the CLI's SIGTERM exception) stops everything first: queued archives are cancelled,
        :meth:`request_stop` stops the transfers under way (their ``.partial`` files stay), and
        the call waits at most :data:`STOP_GRACE` seconds for them before re-raising it.
        ``trust=False`` re-hashes every hit whatever ``trust_hit`` says (see :meth:`fetch`).
        """
        unique: dict[str, DownloadItem] = {}
        for item in items:
            unique.setdefault(item.key, item)
        self.progress.expect(len(unique), sum(i.size or 0 for i in unique.values()))
        results: dict[str, DownloadResult] = {}
        first_error: Optional[Exception] = None
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.jobs, len(unique) or 1)))
        futures: dict[str, Future[DownloadResult]] = {}
        try:
            for key, item in unique.items():
                futures[key] = pool.submit(self._fetch_then, item, after, trust)
            for key, future in futures.items():
                # a timed wait, so that a signal the kernel handed to a download thread still
                # reaches this (main) thread's handler promptly (see stopping.JOIN_POLL)
                while not wait([future], timeout=JOIN_POLL).done:
                    pass
                try:
                    results[key] = future.result()
                except Exception as exc:
                    if first_error is None:
                        first_error = exc
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            self.request_stop()
            # (a cancelled future counts as pending for wait(): leave those out)
            wait([f for f in futures.values() if not f.cancelled()], timeout=STOP_GRACE)
            raise
        pool.shutdown(wait=True)
        if first_error is not None:
            raise first_error
        return [results[item.key] for item in items]

    def _fetch_then(
        self,
        item: DownloadItem,
        after: Optional[Callable[[DownloadResult], object]],
        trust: bool = True,
    ) -> DownloadResult:
        result = self.fetch(item, trust)
        if after is not None:
            after(result)
        return result


class _HashSink:
    def __init__(self, digest: Any) -> None:
        self.digest = digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)


def _verify(item: DownloadItem, digest: str, size: int) -> None:
    """Raise HashMismatchError unless ``size`` and ``digest`` are what ``item`` expects."""
    if item.size is not None and size != item.size:
        raise HashMismatchError(
            f"{item.url}: downloaded {size} bytes, the catalog says {item.size} bytes"
        )
    if item.sha256 and digest != item.sha256.lower():
        raise HashMismatchError(
            f"{item.url}: sha256 of the download is {digest}, "
            f"the catalog says {item.sha256.lower()}"
        )


def _shut_down(resp: requests.Response) -> None:
    """Shut down the socket a streamed response reads from (if it still has one), so that a
    thread blocked reading it wakes up; the response then fails like a cut connection."""
    connection = getattr(resp.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _body_chunks(resp: requests.Response) -> Iterator[bytes]:
    """The raw body as it arrives. urllib3's ``read1`` hands over every byte received before a
    connection is cut (``iter_content`` would drop a partly filled chunk), so a resume loses
    nothing; older urllib3 falls back to ``read`` with small chunks."""
    raw = resp.raw
    read1 = getattr(raw, "read1", None)
    while True:
        if read1 is not None:
            chunk = read1(_STREAM_CHUNK, decode_content=False)
        else:
            chunk = raw.read(64 * 1024, decode_content=False)
        if not chunk:
            return
        yield chunk


def _total_size(resp: requests.Response, offset: int) -> Optional[int]:
    """The whole file's size in bytes as the answer announces it (for progress), or None."""
    if resp.status_code == 206:
        m = _CONTENT_RANGE_RE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if m and m.group(3) != "*":
            return int(m.group(3))
        return None
    length = resp.headers.get("Content-Length", "").strip()
    return int(length) if _CONTENT_LENGTH_RE.fullmatch(length) else None


def summarize(results: Sequence[DownloadResult], seconds: float) -> DownloadSummary:
    """Totals over ``results`` (unique archives) for a run that took ``seconds``."""
    unique = {r.path: r for r in results}.values()
    return DownloadSummary(
        files=len(unique),
        transferred=sum(r.transferred for r in unique),
        seconds=seconds,
        hits=sum(1 for r in unique if r.cached),
    )


def fetch(
    item: DownloadItem,
    cache: Cache,
    session: Optional[requests.Session] = None,
    **options: Any,
) -> DownloadResult:
    """Fetch one archive (see :meth:`Downloader.fetch`), with ``session`` when given."""
    factory = (lambda: session) if session is not None else None
    return Downloader(cache, session_factory=factory, **options).fetch(item)


def fetch_all(
    items: Sequence[DownloadItem],
    cache: Cache,
    *,
    jobs: int = DEFAULT_JOBS,
    session: Optional[requests.Session] = None,
    **options: Any,
) -> list[DownloadResult]:
    """Fetch several archives in parallel (see :meth:`Downloader.fetch_all`)."""
    factory = (lambda: session) if session is not None else None
    downloader = Downloader(cache, jobs=jobs, session_factory=factory, **options)
    try:
        return downloader.fetch_all(items)
    finally:
        if session is None:
            downloader.close()
