"""Downloads into the cache against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from pybundle.bundler.cache import Cache
from pybundle.bundler.download import DownloadItem, fetch, fetch_all, make_session
from pybundle.errors import DownloadError, HashMismatchError

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    requests_seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        Handler.requests_seen.append(self.path)
        if self.path.startswith("/missing"):
            self.send_error(404, "Not Found")
            return
        body = PAYLOAD
        if self.path.startswith("/html"):
            body = b"<html>login page</html>"
        elif self.path.startswith("/corrupt"):
            body = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    Handler.requests_seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def final_names(cache: Cache) -> list[str]:
    return sorted(p.name for p in cache.archives.iterdir())


def test_download_lands_under_hash_name_and_hits_cache(server: str, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    item = DownloadItem(f"{server}/ok/a.tar.gz", SHA, "a.tar.gz")
    first = fetch(item, cache, make_session())
    assert not first.cached and first.path.read_bytes() == PAYLOAD
    assert first.path.name == f"{SHA}-a.tar.gz"
    assert (tmp_path / "cache" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f59")
    second = fetch(item, cache, make_session())
    assert second.cached and len(Handler.requests_seen) == 1


@pytest.mark.parametrize("path", ["/corrupt/a.tar.gz", "/html/a.tar.gz"])
def test_bytes_that_fail_sha256_never_get_a_final_name(
    server: str, tmp_path: Path, path: str
) -> None:
    cache = Cache(tmp_path / "cache")
    with pytest.raises(HashMismatchError, match=r"sha256|bytes"):
        fetch(DownloadItem(f"{server}{path}", SHA, "a.tar.gz"), cache, make_session())
    assert final_names(cache) == []


def test_404_names_the_url(server: str, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    with pytest.raises(DownloadError, match=r"missing/a\.tar\.gz: HTTP 404"):
        fetch(DownloadItem(f"{server}/missing/a.tar.gz", SHA, "a.tar.gz"), cache, make_session())
    assert final_names(cache) == []


def test_corrupt_cache_entry_is_evicted_and_downloaded_again(server: str, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    cache.path_for(SHA, "a.tar.gz").write_bytes(b"corrupt, pre-seeded under the final name")
    result = fetch(DownloadItem(f"{server}/ok/a.tar.gz", SHA, "a.tar.gz"), cache, make_session())
    assert not result.cached and result.path.read_bytes() == PAYLOAD
    assert len(Handler.requests_seen) == 1


def test_parallel_fetch_keeps_order_and_downloads_each_hash_once(
    server: str, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    items = [
        DownloadItem(f"{server}/ok/a.tar.gz", SHA, "a.tar.gz"),
        DownloadItem(f"{server}/ok/a-again.tar.gz", SHA, "a.tar.gz"),
    ]
    results = fetch_all(items, cache, jobs=4)
    assert [r.path for r in results] == [cache.path_for(SHA, "a.tar.gz")] * 2
    assert len(Handler.requests_seen) == 1
