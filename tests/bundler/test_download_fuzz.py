"""Property tests (hypothesis) of the HTTP answers the bundler reads: a server on 127.0.0.1
sends generated answers byte for byte (status lines, hostile ``Content-Length``,
``Content-Range``, ``Retry-After``, ``Location`` and encoding headers, bodies shorter or longer
than announced, broken chunked encoding, over-long or too many header lines). Downloads and
catalog fetches must end in the archive's exact bytes or a typed error (DownloadError 4,
HashMismatchError 5, StorageError 9; CatalogError 3 for catalogs) with a one-line message
naming the URL, and never leave an unverified file under a final cache name."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from loopback import RawServer, no_proxy_fixture, raw_server_fixture  # noqa: F401 - fixtures

from pybundle.bundler import download
from pybundle.bundler.cache import Cache
from pybundle.bundler.catalog import load_catalog
from pybundle.bundler.download import Downloader, DownloadItem, make_session
from pybundle.errors import (
    CatalogError,
    DownloadError,
    HashMismatchError,
    PybundleError,
    StorageError,
)

PAYLOAD = os.urandom(3000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
EXAMPLES = int(os.environ.get("PYBUNDLE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def short_retry_after() -> Iterator[None]:
    """Honour a Retry-After for 10 ms at most: the answers below ask for up to years."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(download, "MAX_RETRY_AFTER", 0.01)
        yield


# ---- answers

numbers = st.sampled_from(
    ["0", "1", "-1", "3000", "2999", "3001", "1500", "9" * 30, "9" * 5000, "1e3", "0x10",
     "\xb2", " 12 ", "12, 12", "12,13", "", "+5", "3000.0"]
) | st.integers(-5, 10**20).map(str)  # fmt: skip
content_range = st.one_of(
    st.builds(
        "bytes {}-{}/{}".format,
        numbers,
        numbers,
        numbers | st.just("*"),
    ),
    st.sampled_from(["bytes */3000", "bytes 0-2999/3000", "bytes=0-", "items 0-1/2", "", "bytes"]),
)
retry_after = st.sampled_from(
    ["0", "1", "-1", "9" * 5000, "99999999999999999999", "1.5", "soon", "",
     "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 01 Jan 99999 00:00:00 GMT",
     "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 +9999", "Sun, 06 Nov 1994"]
)  # fmt: skip
location = st.sampled_from(
    ["file:///etc/passwd", "http://[::1", "http://[zz]/", "//evil.invalid/x", "/again",
     "ftp://x/y", "\x00", "http://h:99999/", "javascript:x", "", "http://", "http://%zz/",
     "https://127.0.0.1:1/x", "data:text/plain,hi", "\xff\xfe", "http://a b/", "?q=1"]
)  # fmt: skip
latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30)
header = st.one_of(
    st.tuples(st.just("Content-Length"), numbers),
    st.tuples(st.just("Content-Range"), content_range),
    st.tuples(st.just("Retry-After"), retry_after),
    st.tuples(st.just("Location"), location),
    st.tuples(
        st.just("Transfer-Encoding"), st.sampled_from(["chunked", "gzip", "chunked, chunked", "x"])
    ),
    st.tuples(st.just("Content-Encoding"), st.sampled_from(["gzip", "br", "zstd", "deflate", "x"])),
    st.tuples(st.sampled_from(["Connection", "Accept-Ranges", "X-Any"]), latin1_text),
    st.tuples(latin1_text, latin1_text),
)
statuses = st.sampled_from(
    [200, 206, 204, 301, 302, 303, 307, 308, 304, 401, 403, 404, 416, 429, 500, 503, 100, 101]
) | st.integers(0, 1000)


def _chunked(body: bytes, damage: str) -> bytes:
    if damage == "none":
        return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    if damage == "bad size":
        return b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    if damage == "huge size":
        return b"f" * 40 + b"\r\n" + body
    if damage == "short":
        return b"%x\r\n%s" % (len(body) + 100, body)
    return b"%x\r\n%s" % (len(body), body)  # no terminating chunk


@st.composite
def answers(draw: st.DrawFn, have: int = 0) -> bytes:
    """An answer to a request for PAYLOAD (``Range: bytes=<have>-`` when ``have``): half of
    them the right one with a few things wrong, the rest anything."""
    wild = draw(st.booleans())
    if wild:
        status = draw(statuses)
    elif have and have < len(PAYLOAD) and draw(st.booleans()):
        status = 206
    else:
        status = draw(st.sampled_from([200, 200, 200, 206, 416, 503, 302]))
    reason = draw(st.sampled_from(["OK", "", "Partial Content", "\xff"]) | latin1_text)
    good_line = f"HTTP/1.1 {status} {reason}"
    line = good_line if not wild or draw(st.booleans()) else draw(
        st.sampled_from(
            [f"HTTP/1.0 {status} {reason}", f"HTTP/1.1 {status}", f"HTTP/2 {status}", "garbage",
             "", f"{good_line}\n", f"HTTP/1.1 {status}{reason}"]
        )
    )  # fmt: skip
    start = have if status == 206 and have < len(PAYLOAD) else 0
    body = PAYLOAD[start:]
    headers: list[tuple[str, str]] = []
    if status == 206:
        headers.append(("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"))
    if draw(st.booleans()):
        body = draw(
            st.sampled_from([PAYLOAD, PAYLOAD[:1500], PAYLOAD + b"extra", b"", PAYLOAD[1500:]])
            | st.binary(max_size=500)
        )
    if draw(st.integers(0, 3)):
        headers.append(("Content-Length", str(len(body))))
    headers += draw(st.lists(header, max_size=4 if wild else 1))
    if wild and draw(st.integers(0, 20)) == 0:
        headers.append(("X-Long", "a" * 70_000))  # longer than http.client's line limit
    if wild and draw(st.integers(0, 20)) == 0:
        headers += [("X-Many", "1")] * 120  # more than http.client's 100 headers
    headers = draw(st.permutations(headers))
    if any(k == "Transfer-Encoding" and "chunked" in v for k, v in headers):
        damage = draw(st.sampled_from(["none", "bad size", "huge size", "short", "unfinished"]))
        body = _chunked(body, damage)
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


@st.composite
def partial_and_answer(draw: st.DrawFn) -> tuple[int, bytes]:
    have = draw(st.sampled_from([0, 0, 0, 1000, 2999, 5000]))
    return have, draw(answers(have))


def _one_line(exc: PybundleError, url: str) -> None:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text and len(text) < 2000, text
    assert url in text, text


def _session():  # type: ignore[no-untyped-def]
    session = make_session(retries=1, backoff=0.0)
    session.max_redirects = 3
    return session


# ---- the properties


@FUZZ
@given(case=partial_and_answer(), known_size=st.booleans())
@example(
    case=(
        0,
        b"HTTP/1.1 503 Busy\r\nRetry-After: " + b"9" * 5000 + b"\r\nContent-Length: 0\r\n\r\n",
    ),
    known_size=True,
)
@example(
    case=(1000, b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 1000-" + b"9" * 5000
    + b"/3000\r\nContent-Length: 2000\r\n\r\n" + PAYLOAD[1000:]),
    known_size=True,
)  # fmt: skip
@example(
    case=(0, b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n"),
    known_size=False,
)
@example(
    case=(0, b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n"),
    known_size=False,
)
@example(
    case=(0, b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + PAYLOAD + b"more bytes"),
    known_size=True,
)
def test_any_answer_to_a_download_is_the_archive_or_a_typed_error(
    raw_server: RawServer,
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[int, bytes],
    known_size: bool,
) -> None:
    have, raw_server.answer = case
    url = f"{raw_server.url}/a.tar.gz"
    root = tmp_path_factory.mktemp("cache")
    cache = Cache(root)
    item = DownloadItem(url, SHA, "a.tar.gz", len(PAYLOAD) if known_size else None)
    if have:
        cache.partial_for(item.key, item.file_name).write_bytes((PAYLOAD * 2)[:have])
    downloader = Downloader(cache, retries=1, backoff=0.0, session_factory=_session, read_timeout=5)
    try:
        result = downloader.fetch(item)
    except (DownloadError, HashMismatchError, StorageError) as exc:
        event(type(exc).__name__)
        _one_line(exc, url)
        assert list(cache.archives.iterdir()) == []  # nothing unverified under a final name
    else:
        event("downloaded")
        assert result.path.read_bytes() == PAYLOAD
    finally:
        downloader.close()
        shutil.rmtree(root)


@FUZZ
@given(answer=answers())
@example(answer=b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n{}")
@example(answer=b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}")
@example(answer=b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}")
def test_any_answer_to_a_catalog_fetch_is_a_catalog_or_a_typed_error(
    raw_server: RawServer, answer: bytes
) -> None:
    raw_server.answer = answer
    url = f"{raw_server.url}/catalog.json"
    with _session() as session:
        try:
            entries = load_catalog(url, session=session, timeout=5)
        except (DownloadError, CatalogError) as exc:
            event(type(exc).__name__)
            _one_line(exc, url)
        else:
            event("parsed")
            assert entries == []  # no answer above holds a catalog entry


def test_a_redirect_to_a_file_url_is_refused(raw_server: RawServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.tar.gz"
    secret.write_bytes(PAYLOAD)  # what a redirect to file:// would hand over if followed
    raw_server.answer = (
        f"HTTP/1.1 302 Found\r\nLocation: {secret.as_uri()}\r\nContent-Length: 0\r\n\r\n".encode()
    )
    url = f"{raw_server.url}/a.tar.gz"
    cache = Cache(tmp_path / "cache")
    with pytest.raises(DownloadError) as caught:
        Downloader(cache, session_factory=_session).fetch(
            DownloadItem(url, SHA, "a.tar.gz", len(PAYLOAD))
        )
    _one_line(caught.value, url)
    assert list(cache.archives.iterdir()) == []


def test_a_body_longer_than_the_catalog_says_is_cut_and_refused(
    raw_server: RawServer, tmp_path: Path
) -> None:
    """No Content-Length, a body that does not end: reading stops past the known size."""
    raw_server.answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + PAYLOAD * 400
    url = f"{raw_server.url}/a.tar.gz"
    cache = Cache(tmp_path / "cache")
    with pytest.raises(HashMismatchError, match="bytes, the catalog says 3000 bytes") as caught:
        Downloader(cache, session_factory=_session).fetch(
            DownloadItem(url, SHA, "a.tar.gz", len(PAYLOAD))
        )
    _one_line(caught.value, url)
    assert cache.partial_files() == [] and list(cache.archives.iterdir()) == []
