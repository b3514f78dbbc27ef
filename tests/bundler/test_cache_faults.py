"""Bundle-side faults that tests/bundler/test_download.py does not already cover: a server that
cuts *every* attempt, a corrupt cache entry whose re-download is bad too, and a bad download
through the ``pybundle bundle`` CLI. After each: no unverified file under a final cache name,
and a clear one-line error or a successful retry."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from loopback import LoopServer, no_proxy_fixture, server_fixture  # noqa: F401 - fixtures

from conftest import run_cli
from pybundle.bundler.cache import Cache
from pybundle.bundler.download import Downloader, DownloadItem, make_session
from pybundle.errors import DownloadError, HashMismatchError

PAYLOAD = os.urandom(400_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = "cpython-3.12.1+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz"


def quick(cache: Cache) -> Downloader:
    """Short backoffs, three retries of each kind: the tests cannot wait for the real ones."""
    return Downloader(cache, backoff=0.05, session_factory=lambda: make_session(3, 0.05))


def assert_only_verified(root: Path) -> None:
    """Every file under a final cache name holds exactly the bytes its name promises."""
    for path in (root / "archives").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name.split("-", 1)[0], path


class _CuttingHandler(BaseHTTPRequestHandler):
    """Answers GET (with or without ``Range: bytes=N-``) correctly, but while ``cut`` is set
    sends only 1,000 bytes of the body before closing the connection."""

    protocol_version = "HTTP/1.1"
    cut = True
    ranges: ClassVar[list[str | None]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        wanted = self.headers.get("Range")
        type(self).ranges.append(wanted)
        start = int(wanted[len("bytes=") : -1]) if wanted else 0
        body = PAYLOAD[start:]
        self.send_response(206 if wanted else 200)
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:1000] if type(self).cut else body)
        self.wfile.flush()
        if type(self).cut:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def cutting_server() -> Iterator[str]:
    _CuttingHandler.cut = True
    _CuttingHandler.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CuttingHandler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/cut/a.tar.gz"
    httpd.shutdown()
    httpd.server_close()


def test_connection_cut_on_every_attempt_fails_clearly_then_resumes(
    cutting_server: str, tmp_path: Path
) -> None:
    url = cutting_server
    cache = Cache(tmp_path / "cache")
    item = DownloadItem(url, SHA, "a.tar.gz", len(PAYLOAD))
    with pytest.raises(DownloadError) as info:
        quick(cache).fetch(item)
    message = str(info.value)
    assert message.startswith(url) and "\n" not in message and info.value.exit_code == 4
    assert 2 <= len(_CuttingHandler.ranges) <= 1 + 3 + 3  # retried, but boundedly
    assert list((cache.root / "archives").iterdir()) == []
    # Once the server behaves, the next run goes on from the bytes it already has.
    _CuttingHandler.cut = False
    _CuttingHandler.ranges = []
    result = quick(cache).fetch(item)
    assert result.path.read_bytes() == PAYLOAD
    assert result.resumed_from > 0
    assert _CuttingHandler.ranges == [f"bytes={result.resumed_from}-"]
    assert cache.partial_files() == []
    assert_only_verified(cache.root)


def test_corrupt_cache_entry_and_a_bad_redownload_leave_nothing_under_the_final_name(
    server: LoopServer, tmp_path: Path
) -> None:
    url = server.add("/html/a.tar.gz", body=b"<html><body>Sign in to continue</body></html>")
    cache = Cache(tmp_path / "cache")
    seeded = cache.path_for(SHA, "a.tar.gz")
    # pre-seeded under its final name, corrupt (its last byte flipped: a constant last byte
    # would equal the random payload's own once in 256 runs)
    seeded.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF]))
    with pytest.raises(HashMismatchError) as info:
        quick(cache).fetch(DownloadItem(url, SHA, "a.tar.gz"))
    assert url in str(info.value) and "sha256" in str(info.value)
    assert not seeded.exists()  # evicted, and not replaced by the bad bytes
    assert cache.partial_files() == []
    assert_only_verified(cache.root)


def test_bundle_cli_refuses_an_html_answer_in_one_line(server: LoopServer, tmp_path: Path) -> None:
    url = server.add(f"/releases/{NAME}", body=b"<!doctype html><title>Rate limited</title>")
    entry = {
        "name": "cpython",
        "arch": {"family": "x86_64", "variant": None},
        "os": "linux",
        "libc": "gnu",
        "major": 3,
        "minor": 12,
        "patch": 1,
        "prerelease": "",
        "url": url,
        "sha256": SHA,
        "variant": None,
        "build": "20990101",
    }
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"cpython-3.12.1-linux-x86_64-gnu": entry}))
    cache = tmp_path / "cache"
    out = tmp_path / "py.pybundle"
    proc = run_cli(
        "bundle", "--versions", "3.12", "--platform", "linux-x86_64", "--catalog", str(catalog),
        "--cache-dir", str(cache), "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pybundle: error:")]
    assert len(errors) == 1 and url in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()
    assert list((cache / "archives").iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".py.pybundle")]
