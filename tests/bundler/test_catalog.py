"""Behaviour of pybundle.bundler.catalog on uv's real downloads catalog and on bad input."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from conftest import uv_catalog
from pybundle.bundler import catalog
from pybundle.bundler.catalog import (
    CATALOG_ENV,
    DEFAULT_CATALOG_URL,
    PBS_RELEASE_PREFIX,
    CatalogEntry,
    apply_mirror,
    default_catalog_source,
    load_catalog,
    parse_catalog,
)
from pybundle.errors import CatalogError, DownloadError
from pybundle.targets import Target
from pybundle.versions import PythonVersion

CATALOG = uv_catalog()


@pytest.fixture(scope="module")
def raw() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(CATALOG.read_bytes())
    return data


@pytest.fixture(scope="module")
def entries() -> list[CatalogEntry]:
    return parse_catalog(CATALOG.read_bytes(), str(CATALOG))


@pytest.fixture(scope="module")
def by_key(entries: list[CatalogEntry]) -> dict[str, CatalogEntry]:
    return {e.key: e for e in entries}


def test_real_catalog_count(raw: dict[str, dict[str, object]], entries: list[CatalogEntry]) -> None:
    skipped = [k for k, e in raw.items() if e["os"] not in ("linux", "darwin", "windows")]
    assert len(raw) == 5530
    assert skipped and all("emscripten" in k for k in skipped)
    assert len(entries) == len(raw) - len(skipped) == 5525
    assert [e.key for e in entries] == [k for k in raw if k not in skipped]


def test_entries_mirror_raw_fields(
    raw: dict[str, dict[str, object]], entries: list[CatalogEntry]
) -> None:
    for e in entries:
        r = raw[e.key]
        arch = r["arch"]
        assert isinstance(arch, dict)
        assert e.implementation == r["name"]
        assert e.target == Target(str(r["os"]), arch["family"], str(r["libc"]), arch["variant"])
        assert (e.version.major, e.version.minor, e.version.patch) == (
            r["major"],
            r["minor"],
            r["patch"],
        )
        assert e.version.prerelease == r["prerelease"]
        assert e.variant == (r["variant"] or "default")
        assert e.url == r["url"]
        assert e.sha256 == r["sha256"]
        assert e.build == r["build"]
        assert e.archive_format in ("tar.gz", "tar.zst", "zip")
        assert e.flavour in ("install_only", "install_only_stripped", "full")


def test_known_entries(by_key: dict[str, CatalogEntry]) -> None:
    e = by_key["cpython-3.12.1-linux-x86_64-gnu"]
    assert e.version == PythonVersion(3, 12, 1)
    assert e.build == "20240107"
    assert e.file_name == "cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    assert (e.flavour, e.archive_format) == ("install_only", "tar.gz")

    e = by_key["cpython-3.12.14-linux-x86_64-gnu"]
    assert e.file_name.endswith("-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz")
    assert (e.flavour, e.archive_format) == ("install_only_stripped", "tar.gz")

    e = by_key["cpython-3.13.0+freethreaded-linux-x86_64_v3-gnu"]
    assert e.variant == "freethreaded"
    assert e.target == Target("linux", "x86_64", "gnu", "v3")
    assert e.file_name.endswith("x86_64_v3-unknown-linux-gnu-freethreaded+pgo+lto-full.tar.zst")
    assert (e.flavour, e.archive_format) == ("full", "tar.zst")

    e = by_key["cpython-3.9.7-linux-x86_64-gnu"]  # 2021 naming: <config>-<timestamp>.tar.zst
    assert e.file_name == "cpython-3.9.7-x86_64-unknown-linux-gnu-pgo+lto-20211017T1616.tar.zst"
    assert (e.flavour, e.archive_format) == ("full", "tar.zst")

    e = by_key["cpython-3.15.0rc1-darwin-aarch64-none"]
    assert e.version.is_prerelease and e.target == Target("darwin", "aarch64", "none")

    e = by_key["pypy-3.11.15-windows-x86_64-none"]
    assert (e.implementation, e.build) == ("pypy", "7.3.23")
    assert e.file_name == "pypy3.11-v7.3.23-win64.zip"
    assert (e.flavour, e.archive_format) == ("install_only", "zip")

    e = by_key["graalpy-3.12.0-linux-x86_64-gnu"]
    assert (e.flavour, e.archive_format) == ("install_only", "tar.gz")

    assert "cpython-3.12.1-emscripten-wasm32-musl" not in by_key
    assert all(e.sha256 is not None for e in by_key.values())


def test_apply_mirror() -> None:
    tail = "/20240107/cpython-3.12.1%2B20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    url = PBS_RELEASE_PREFIX + tail
    assert apply_mirror(url, "https://mirror.example/pbs") == "https://mirror.example/pbs" + tail
    assert apply_mirror(url, "https://mirror.example/pbs/") == "https://mirror.example/pbs" + tail
    assert apply_mirror(url, "file:///srv/pbs///") == "file:///srv/pbs" + tail
    assert apply_mirror(url, None) == url
    assert apply_mirror(url, "") == url
    pypy = "https://downloads.python.org/pypy/pypy3.11-v7.3.23-linux64.tar.gz"
    assert apply_mirror(pypy, "https://mirror.example/pbs") == pypy
    lookalike = PBS_RELEASE_PREFIX + "s/x.tar.gz"
    assert apply_mirror(lookalike, "https://m") == lookalike


def test_default_catalog_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    assert default_catalog_source() == DEFAULT_CATALOG_URL
    monkeypatch.setenv(CATALOG_ENV, "/tmp/c.json")
    assert default_catalog_source() == "/tmp/c.json"
    monkeypatch.setenv(CATALOG_ENV, "")
    assert default_catalog_source() == DEFAULT_CATALOG_URL


def test_load_from_path_and_file_url() -> None:
    by_path = load_catalog(str(CATALOG))
    by_url = load_catalog(CATALOG.as_uri())
    assert len(by_path) == len(by_url) == 5525
    assert by_path == by_url


def test_load_file_url_with_escaped_path(tmp_path: Path) -> None:
    odd = tmp_path / "a dir+x" / "cat alog.json"
    odd.parent.mkdir()
    odd.write_bytes(CATALOG.read_bytes())
    assert len(load_catalog(odd.as_uri())) == 5525


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.routes = {
        "/download-metadata.json": CATALOG.read_bytes(),
        "/broken.json": b'{"cpython-3.12.1-linux-x86_64-gnu": ',
    }
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
    yield s
    s.close()


def test_load_over_http(server: str, session: requests.Session) -> None:
    got = load_catalog(f"{server}/download-metadata.json", session=session)
    assert len(got) == 5525
    assert got == load_catalog(str(CATALOG))


def test_http_404_is_download_error(server: str, session: requests.Session) -> None:
    url = f"{server}/missing.json"
    with pytest.raises(DownloadError) as info:
        load_catalog(url, session=session)
    assert url in str(info.value) and "404" in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 4


def test_http_malformed_json_is_catalog_error(server: str, session: requests.Session) -> None:
    url = f"{server}/broken.json"
    with pytest.raises(CatalogError, match="not valid JSON") as info:
        load_catalog(url, session=session)
    assert url in str(info.value)


def test_http_size_limit(
    server: str, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "MAX_CATALOG_BYTES", 1000)
    url = f"{server}/download-metadata.json"
    with pytest.raises(DownloadError, match="larger than") as info:
        load_catalog(url, session=session)
    assert url in str(info.value)


def test_connection_refused_is_download_error(session: requests.Session) -> None:
    import socket

    with socket.socket() as s:  # find a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/download-metadata.json"
    with pytest.raises(DownloadError) as info:
        load_catalog(url, session=session, timeout=5)
    assert url in str(info.value)
    assert "\n" not in str(info.value)


def test_malformed_json_names_source(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json\n at all")
    for source in (str(bad), bad.as_uri()):
        with pytest.raises(CatalogError) as info:
            load_catalog(source)
        assert source in str(info.value)
        assert "\n" not in str(info.value)
        assert info.value.exit_code == 3


def test_missing_file_names_source(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(CatalogError, match="cannot read catalog") as info:
        load_catalog(str(missing))
    assert str(missing) in str(info.value)


GOOD = {
    "name": "cpython",
    "arch": {"family": "x86_64", "variant": None},
    "os": "linux",
    "libc": "gnu",
    "major": 3,
    "minor": 12,
    "patch": 1,
    "prerelease": "",
    "url": PBS_RELEASE_PREFIX
    + "/20240107/cpython-3.12.1%2B20240107-x86_64-unknown-linux-gnu-install_only.tar.gz",
    "sha256": "A" * 64,
    "variant": None,
    "build": "20240107",
}


def _doc(**changes: object) -> bytes:
    entry = {**GOOD, **changes}
    return json.dumps({"cpython-3.12.1-linux-x86_64-gnu": entry}).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b'"text"',
        b"\xff\xfe",
        json.dumps({"k": []}).encode(),
        _doc(major="3"),
        _doc(patch=None),
        _doc(arch="x86_64"),
        _doc(url=None),
        _doc(sha256="1234"),
        _doc(sha256=5),
        _doc(prerelease="dev1"),
        _doc(os=None),
        _doc(major=True),
    ],
)
def test_wrong_shape_is_catalog_error(data: bytes) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, "my-catalog.json")
    assert "my-catalog.json" in str(info.value)
    assert "\n" not in str(info.value)


def test_minimal_entry_and_normalisation() -> None:
    (e,) = parse_catalog(_doc(), "x")
    assert e.sha256 == "a" * 64
    assert e.variant == "default"
    (e,) = parse_catalog(_doc(sha256=None), "x")
    assert e.sha256 is None
    doc = {**GOOD}
    del doc["build"]  # older uv catalogs had no "build": take the release tag from the URL
    (e,) = parse_catalog(json.dumps({"k": doc}).encode(), "x")
    assert e.build == "20240107"


@pytest.mark.parametrize(
    "change",
    [
        {"os": "emscripten", "arch": {"family": "wasm32", "variant": None}, "libc": "musl"},
        {"os": "freebsd"},
        {"arch": {"family": "sparc", "variant": None}},
        {"variant": "freethreaded+jit"},
        {"name": "micropython"},
        {"url": "https://example.com/python.tar.bz2"},
    ],
)
def test_unusable_entries_are_skipped(change: dict[str, object]) -> None:
    assert parse_catalog(_doc(**change), "x") == []
