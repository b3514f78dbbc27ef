"""Downloads into the cache against real HTTP servers on 127.0.0.1: parallelism under a
per-connection throttle, resume with Range, Range ignored or answered wrongly, retries with
Retry-After, clear errors, hash mismatches, proxies and CA bundles, GITHUB_TOKEN scoping, and
two processes sharing one cache."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from loopback import (  # noqa: F401 - fixtures
    LoopServer,
    Proxy,
    no_proxy_fixture,
    proxy_fixture,
    server_fixture,
    tls_server_fixture,
)

from conftest import RealArchive
from pybundle.bundler.cache import Cache
from pybundle.bundler.download import (
    Downloader,
    DownloadItem,
    fetch,
    fetch_all,
    make_session,
    summarize,
)
from pybundle.errors import DownloadError, HashMismatchError

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def item(
    url: str, body: bytes = PAYLOAD, name: str = "a.tar.gz", size: bool = True
) -> DownloadItem:
    return DownloadItem(url, hashlib.sha256(body).hexdigest(), name, len(body) if size else None)


def quick(cache: Cache, **kw: object) -> Downloader:
    """A downloader with short backoffs, as the tests cannot wait for the real ones."""
    return Downloader(cache, backoff=0.05, session_factory=lambda: make_session(3, 0.05), **kw)  # type: ignore[arg-type]


def final_names(cache: Cache) -> list[str]:
    return sorted(p.name for p in cache.archives.iterdir())


def test_download_lands_under_hash_name_and_hits_cache(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/ok/a.tar.gz", body=PAYLOAD)
    cache = Cache(tmp_path / "cache")
    first = fetch(item(url), cache)
    assert not first.cached and first.path.read_bytes() == PAYLOAD
    assert first.path.name == f"{SHA}-a.tar.gz" and first.transferred == len(PAYLOAD)
    assert (tmp_path / "cache" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f59")
    second = fetch(item(url), cache)
    assert second.cached and second.transferred == 0
    assert len(server.hits) == 1
    assert cache.partial_files() == []


def _overlap(hits: list) -> float:  # type: ignore[type-arg]
    """Seconds during which every transfer was in flight at once (<= 0: they never were)."""
    return min(h.end for h in hits) - max(h.start for h in hits)


def test_parallel_transfers_overlap_under_a_per_connection_throttle(
    server: LoopServer, tmp_path: Path
) -> None:
    bodies = [os.urandom(1_000_000) for _ in range(4)]
    rate = 2_000_000.0  # bytes per second per connection: each file takes ~0.5 s alone
    urls = [server.add(f"/slow/{i}.tar.gz", body=b, rate=rate) for i, b in enumerate(bodies)]
    items = [item(u, b, f"{i}.tar.gz") for i, (u, b) in enumerate(zip(urls, bodies))]

    started = time.monotonic()
    serial = fetch_all(items, Cache(tmp_path / "serial"), jobs=1)
    serial_s = time.monotonic() - started
    serial_hits = server.finished()
    server.hits.clear()
    started = time.monotonic()
    parallel = fetch_all(items, Cache(tmp_path / "parallel"), jobs=4)
    parallel_s = time.monotonic() - started

    for results in (serial, parallel):
        assert [r.path.read_bytes() for r in results] == bodies
    # one at a time: each transfer ends before the next starts
    ordered = sorted(serial_hits, key=lambda h: h.start)
    assert all(a.end <= b.start for a, b in zip(ordered, ordered[1:]))
    # four at a time: all four were in flight together for most of a transfer's duration
    hits = server.finished()
    assert len(hits) == 4
    single = min(h.end - h.start for h in hits)
    assert _overlap(hits) > 0.5 * single
    print(
        f"\nspeed-up jobs=4 vs jobs=1 at {rate / 1e6:.0f} MB/s per connection: "
        f"{serial_s / parallel_s:.2f}x ({serial_s:.2f} s -> {parallel_s:.2f} s)"
    )


def test_several_real_archives_in_parallel(
    server: LoopServer, tmp_path: Path, real_archives: list[RealArchive]
) -> None:
    items = []
    for a in real_archives:
        url = server.add(f"/pbs/{a.artifact.file_name}", body=a.path.read_bytes(), rate=150e6)
        items.append(DownloadItem(url, a.artifact.sha256, a.artifact.file_name, a.artifact.size))
    results = fetch_all(items, Cache(tmp_path / "cache"), jobs=4)
    for r, a in zip(results, real_archives):
        assert r.sha256 == a.artifact.sha256 and r.size == a.artifact.size and not r.cached
    if len(real_archives) > 1:
        assert _overlap(server.finished()) > 0
    summary = summarize(results, 1.0)
    assert summary.files == len(real_archives) and summary.hits == 0
    assert summary.transferred == sum(a.artifact.size for a in real_archives)


def test_cut_mid_body_resumes_with_range(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/drop/a.tar.gz", body=PAYLOAD, mode="drop")
    result = quick(Cache(tmp_path / "cache")).fetch(item(url))
    assert result.path.read_bytes() == PAYLOAD and result.sha256 == SHA
    first, second = server.finished()
    assert (first.range, first.status, first.sent) == (None, 200, len(PAYLOAD) // 2)
    assert (second.range, second.status) == (f"bytes={len(PAYLOAD) // 2}-", 206)
    assert first.sent + second.sent == len(PAYLOAD)  # nothing transferred twice


def test_partial_left_by_a_killed_run_is_resumed(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/ok/a.tar.gz", body=PAYLOAD)
    cache = Cache(tmp_path / "cache")
    it = item(url)
    cache.partial_for(it.key, it.file_name).write_bytes(PAYLOAD[:100_000])
    result = quick(cache).fetch(it)
    assert result.path.read_bytes() == PAYLOAD
    assert result.resumed_from == 100_000 and result.transferred == len(PAYLOAD) - 100_000
    assert [h.range for h in server.hits] == ["bytes=100000-"]
    assert cache.partial_files() == []


def test_resumed_bytes_are_hashed_too(server: LoopServer, tmp_path: Path) -> None:
    """A partial whose first bytes are wrong fails the whole-file sha256: it is discarded and
    the archive fetched once more from byte zero, in the same run."""
    url = server.add("/ok/a.tar.gz", body=PAYLOAD)
    cache = Cache(tmp_path / "cache")
    it = item(url)
    cache.partial_for(it.key, it.file_name).write_bytes(b"\0" * 100_000)
    result = quick(cache).fetch(it)
    assert result.path.read_bytes() == PAYLOAD and result.resumed_from == 100_000
    assert [h.range for h in server.hits] == ["bytes=100000-", None]
    assert cache.partial_files() == []


def test_a_server_that_sends_wrong_bytes_fails_after_one_fresh_attempt(
    server: LoopServer, tmp_path: Path
) -> None:
    """Resumed or not, wrong bytes are refused; a damaged partial costs one extra attempt."""
    url = server.add("/ok/a.tar.gz", body=PAYLOAD)
    cache = Cache(tmp_path / "cache")
    wrong = DownloadItem(url, "ab" * 32, "a.tar.gz", len(PAYLOAD))
    cache.partial_for(wrong.key, wrong.file_name).write_bytes(PAYLOAD[:100_000])
    with pytest.raises(HashMismatchError, match="sha256"):
        quick(cache).fetch(wrong)
    assert [h.range for h in server.hits] == ["bytes=100000-", None]
    assert final_names(cache) == [] and cache.partial_files() == []


@pytest.mark.parametrize("mode", ["norange", "badrange"])
def test_range_ignored_or_misanswered_restarts_from_zero(
    server: LoopServer, tmp_path: Path, mode: str
) -> None:
    url = server.add(f"/{mode}/a.tar.gz", body=PAYLOAD, mode=mode)
    cache = Cache(tmp_path / "cache")
    it = item(url)
    cache.partial_for(it.key, it.file_name).write_bytes(PAYLOAD[:100_000])
    result = quick(cache).fetch(it)
    assert result.path.read_bytes() == PAYLOAD and result.resumed_from == 100_000
    assert server.hits[0].range == "bytes=100000-"
    if mode == "norange":  # a 200 to a Range request: its body is the whole file, taken as is
        assert [h.status for h in server.hits] == [200]
    else:  # a 206 starting elsewhere: dropped, then the whole file without Range
        assert [(h.range, h.status) for h in server.hits[1:]] == [(None, 200)]


def test_503_then_success_honours_retry_after(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/flaky/a.tar.gz", body=PAYLOAD, mode="flaky", status=503, retry_after="1")
    result = quick(Cache(tmp_path / "cache")).fetch(item(url))
    assert result.path.read_bytes() == PAYLOAD
    first, second = server.finished()
    assert (first.status, second.status) == (503, 200)
    assert second.start - first.end >= 0.9  # waited as told, not the 0.05 s backoff


def test_429_then_success(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/flaky/b.tar.gz", body=PAYLOAD, mode="flaky", status=429, retry_after="0")
    assert quick(Cache(tmp_path / "cache")).fetch(item(url)).path.read_bytes() == PAYLOAD
    assert [h.status for h in server.hits] == [429, 200]


def test_persistent_5xx_gives_up_after_bounded_retries(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/down/a.tar.gz", mode="status", status=502, retry_after=None)
    with pytest.raises(DownloadError) as info:
        quick(Cache(tmp_path / "cache")).fetch(item(url))
    assert str(info.value).startswith(f"{url}: HTTP 502")
    assert "\n" not in str(info.value) and info.value.exit_code == 4
    assert len(server.hits) == 4  # 1 + 3 retries


def test_404_names_the_url_and_is_not_retried(server: LoopServer, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    url = f"{server.url}/missing/a.tar.gz"
    with pytest.raises(DownloadError) as info:
        quick(cache).fetch(item(url))
    assert str(info.value) == f"{url}: HTTP 404 Not Found"
    assert len(server.hits) == 1
    assert final_names(cache) == [] and cache.partial_files() == []


def test_connection_refused_names_the_url(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.tar.gz"
    with pytest.raises(DownloadError) as info:
        quick(Cache(tmp_path / "cache")).fetch(item(url))
    assert str(info.value).startswith(url) and "\n" not in str(info.value)


@pytest.mark.parametrize("body", [PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]), b"<html>login</html>"])
def test_bytes_that_fail_sha256_never_get_a_final_name(
    server: LoopServer, tmp_path: Path, body: bytes
) -> None:
    url = server.add("/bad/a.tar.gz", body=body)
    cache = Cache(tmp_path / "cache")
    with pytest.raises(HashMismatchError, match=r"sha256|bytes") as info:
        quick(cache).fetch(DownloadItem(url, SHA, "a.tar.gz"))
    assert url in str(info.value)
    assert final_names(cache) == [] and cache.partial_files() == []


def test_corrupt_cache_entry_is_evicted_and_downloaded_again(
    server: LoopServer, tmp_path: Path
) -> None:
    url = server.add("/ok/a.tar.gz", body=PAYLOAD)
    cache = Cache(tmp_path / "cache")
    cache.path_for(SHA, "a.tar.gz").write_bytes(b"corrupt, pre-seeded under the final name")
    result = fetch(item(url), cache)
    assert not result.cached and result.path.read_bytes() == PAYLOAD
    assert len(server.hits) == 1


def test_same_archive_twice_is_fetched_once(server: LoopServer, tmp_path: Path) -> None:
    a = server.add("/ok/a.tar.gz", body=PAYLOAD)
    b = server.add("/ok/a-again.tar.gz", body=PAYLOAD)
    cache = Cache(tmp_path / "cache")
    results = fetch_all([item(a), item(b), item(a)], cache, jobs=4)
    assert [r.path for r in results] == [cache.path_for(SHA, "a.tar.gz")] * 3
    assert len(server.hits) == 1


def test_unhashed_archive_is_hashed_and_always_fetched(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/ok/u.tar.gz", body=PAYLOAD)
    cache = Cache(tmp_path / "cache")
    unhashed = DownloadItem(url, None, "u.tar.gz")
    first = fetch(unhashed, cache)
    assert first.sha256 == SHA and first.path == cache.path_for(SHA, "u.tar.gz")
    second = fetch(unhashed, cache)  # nothing vouches for the cached copy: fetched again
    assert not second.cached and len(server.hits) == 2


def test_file_urls_are_copied_and_verified(tmp_path: Path) -> None:
    src = tmp_path / "mirror" / "a.tar.gz"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    cache = Cache(tmp_path / "cache")
    assert fetch(item(src.as_uri()), cache).path.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="no such file"):
        fetch(item((tmp_path / "nope.tar.gz").as_uri(), name="n.tar.gz"), cache)


# ---- proxies, CA bundles, tokens ------------------------------------------------------------


def test_http_proxy_from_the_environment(
    server: LoopServer, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.add("/ok/a.tar.gz", body=PAYLOAD)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert fetch(item(url), Cache(tmp_path / "via-proxy")).path.read_bytes() == PAYLOAD
    assert proxy.requests == [f"GET {url}"]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fetch(item(url), Cache(tmp_path / "direct"))
    assert len(proxy.requests) == 1 and len(server.hits) == 2


def test_https_through_connect_proxy_with_ca_bundle(
    tls_server: tuple[LoopServer, Path],
    proxy: Proxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_, ca = tls_server
    url = server_.add("/ok/a.tar.gz", body=PAYLOAD)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with pytest.raises(DownloadError) as info:  # self-signed: refused without the CA bundle
        quick(Cache(tmp_path / "c1")).fetch(item(url))
    assert url in str(info.value)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    assert quick(Cache(tmp_path / "c2")).fetch(item(url)).path.read_bytes() == PAYLOAD
    port = url.split(":")[2].split("/")[0]
    assert f"CONNECT 127.0.0.1:{port}" in proxy.requests
    assert [h.status for h in server_.hits] == [200]


def test_github_token_goes_to_github_hosts_only(
    server: LoopServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_test")
    url = server.add("/ok/a.tar.gz", body=PAYLOAD)
    fetch(item(url), Cache(tmp_path / "cache"))
    assert server.hits[0].authorization is None
    session = make_session()
    sent = {
        u: session.prepare_request(requests.Request("GET", u)).headers.get("Authorization")
        for u in (
            "https://github.com/astral-sh/python-build-standalone/releases/download/x/y",
            "https://api.github.com/repos/x",
            "https://objects.githubusercontent.com/x",
            "http://github.com/x",
            "https://github.com.evil.example/x",
        )
    }
    assert list(sent.values()) == ["Bearer ghp_test", "Bearer ghp_test", None, None, None]


# ---- two processes, one cache ---------------------------------------------------------------

_FETCH_SCRIPT = """
import json, sys
from pathlib import Path
from pybundle.bundler.cache import Cache
from pybundle.bundler.download import DownloadItem, fetch
url, sha, size, cache = sys.argv[1:5]
r = fetch(DownloadItem(url, sha, "shared.tar.gz", int(size)), Cache(Path(cache)))
print(json.dumps({"cached": r.cached, "path": str(r.path)}))
"""


def test_two_processes_share_the_cache_and_download_once(
    server: LoopServer, tmp_path: Path
) -> None:
    body = os.urandom(1_500_000)
    url = server.add("/slow/shared.tar.gz", body=body, rate=3_000_000.0)  # ~0.5 s
    sha = hashlib.sha256(body).hexdigest()
    args = [sys.executable, "-c", _FETCH_SCRIPT, url, sha, str(len(body)), str(tmp_path / "cache")]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o["cached"] for o in outs) == [False, True]
    assert Path(outs[0]["path"]).read_bytes() == body
    assert len(server.hits) == 1
