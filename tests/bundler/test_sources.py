"""The three catalog sources feed one model: uv's downloads JSON, a python-build-standalone
release read through its SHA256SUMS (served on 127.0.0.1 as a mirror), and a local directory
of PBS archives copied by hand."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest
from loopback import LoopServer, no_proxy_fixture, server_fixture  # noqa: F401 - fixtures

from conftest import TEST_BUILD, RealArchive, make_tar, tiny_interpreter_members, uv_catalog
from pybundle.bundler.build import build_bundle, make_plan
from pybundle.bundler.catalog import (
    PBS_RELEASE_PREFIX,
    CatalogEntry,
    load_catalog,
    load_local_directory,
    load_pbs_release,
    parse_pbs_file_name,
    parse_sha256sums,
)
from pybundle.bundler.resolve import resolve
from pybundle.bundler.selection import Selection
from pybundle.errors import CatalogError, DownloadError, ResolutionError
from pybundle.manifest import Manifest
from pybundle.targets import Target, parse_platform
from pybundle.versions import PythonVersion, parse_request_list

CATALOG = uv_catalog()
RELEASE = "20260814"


@pytest.fixture(scope="module")
def uv_entries() -> list[CatalogEntry]:
    return load_catalog(str(CATALOG))


def test_pbs_names_of_the_whole_catalog_parse_to_its_fields(uv_entries: list[CatalogEntry]) -> None:
    cpython = [e for e in uv_entries if e.implementation == "cpython"]
    assert len(cpython) > 5000
    for e in cpython:
        parsed = parse_pbs_file_name(e.file_name)
        assert parsed is not None, e.file_name
        assert (parsed.version, parsed.target, parsed.variant, parsed.flavour) == (
            e.version,
            e.target,
            e.variant,
            e.flavour,
        ), e.file_name
        if "+" + e.build in e.file_name:
            assert parsed.build == e.build
    assert parse_pbs_file_name("SHA256SUMS") is None
    assert parse_pbs_file_name("cpython-3.12.1+20240107-wasm32-unknown-emscripten.tar.gz") is None
    p = parse_pbs_file_name(
        "cpython-3.13.0+20241016-x86_64_v3-unknown-linux-gnu-freethreaded+debug-full.tar.zst"
    )
    assert p is not None
    assert (p.variant, p.flavour, p.config) == ("freethreaded+debug", "full", "freethreaded+debug")
    assert p.target == Target("linux", "x86_64", "gnu", "v3")
    p = parse_pbs_file_name("cpython-3.9.7-x86_64-unknown-linux-gnu-pgo+lto-20211017T1616.tar.zst")
    assert p is not None and (p.build, p.config, p.version) == (
        "20211017",
        "pgo+lto",
        PythonVersion(3, 9, 7),
    )


def test_sha256sums_format() -> None:
    a, b = "a" * 64, "B" * 64
    text = f"# comment\n\n{a}  one.tar.gz\n{b} *two.tar.gz\n"
    assert parse_sha256sums(text, "S") == [(a, "one.tar.gz"), ("b" * 64, "two.tar.gz")]
    with pytest.raises(CatalogError) as info:
        parse_sha256sums(f"{a}  ok\nnot a line\n", "https://m/20260814/SHA256SUMS")
    assert str(info.value) == (
        "https://m/20260814/SHA256SUMS: line 2 is not '<sha256>  <file name>'"
    )


def _fake_sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture
def release(server: LoopServer, uv_entries: list[CatalogEntry]) -> str:
    """A SHA256SUMS for release 20260814 on the loopback server: every archive uv's catalog
    lists from that release (real names and digests), plus for each default build the other
    flavours PBS publishes (install_only, pgo+lto-full; made-up digests). Returns the mirror."""
    lines = []
    for e in uv_entries:
        if e.build != RELEASE or e.implementation != "cpython":
            continue
        lines.append(f"{e.sha256}  {e.file_name}")
        if e.variant == "default" and e.flavour == "install_only_stripped":
            stem = e.file_name.replace("-install_only_stripped.tar.gz", "")
            for extra in (f"{stem}-install_only.tar.gz", f"{stem}-pgo+lto-full.tar.zst"):
                lines.append(f"{_fake_sha(extra)}  {extra}")
    lines.append(f"{'0' * 64}  cpython-3.12.14+{RELEASE}-wasm32-unknown-emscripten.tar.gz")
    server.add(f"/pbs/{RELEASE}/SHA256SUMS", body="\n".join(lines).encode())
    return f"{server.url}/pbs"


def test_pbs_release_resolves_like_uvs_catalog(
    release: str, server: LoopServer, uv_entries: list[CatalogEntry]
) -> None:
    entries = load_pbs_release(RELEASE, mirror=release + "/")
    assert [h.path for h in server.hits] == [f"/pbs/{RELEASE}/SHA256SUMS"]
    assert all(e.url.startswith(f"{PBS_RELEASE_PREFIX}/{RELEASE}/cpython-") for e in entries)
    assert all("%2B" in e.url and e.build == RELEASE for e in entries)
    requests = parse_request_list("3.10-3.14,3.13t")
    platforms = [
        parse_platform(p)
        for p in ("linux-x86_64", "linux-x86_64_v3", "macos-aarch64", "windows-x86_64")
    ]
    for variant, where in (("default", platforms), ("debug", platforms[:3])):
        ours = resolve(entries, requests, where, variant=variant)
        uvs = resolve(uv_entries, requests, where, variant=variant, build=RELEASE)
        assert len(ours) >= 15
        assert [(e.file_name, e.sha256) for e in ours] == [(e.file_name, e.sha256) for e in uvs]
    linux = [parse_platform("linux-x86_64")]
    (only,) = resolve(entries, parse_request_list("3.12"), linux, flavour="install_only")
    assert (
        only.file_name == f"cpython-3.12.14+{RELEASE}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    )
    (full,) = resolve(entries, parse_request_list("3.12"), linux, flavour="full")
    assert full.file_name.endswith("-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst")
    assert full.sha256 == _fake_sha(full.file_name)
    # downloads go to the mirror, the manifest keeps the upstream URL
    plan = make_plan(
        entries, Selection(tuple(parse_request_list("3.12")), tuple(linux), mirror=release)
    )
    (planned,) = plan.artifacts
    assert planned.url.startswith(f"{release}/{RELEASE}/cpython-3.12.14%2B")
    assert planned.entry.url.startswith(PBS_RELEASE_PREFIX)


def test_pbs_release_errors(server: LoopServer) -> None:
    with pytest.raises(DownloadError) as info:
        load_pbs_release("20990101", mirror=server.url)
    assert str(info.value).startswith(f"cannot fetch catalog {server.url}/20990101/SHA256SUMS")
    assert "404" in str(info.value)
    server.add("/20990102/SHA256SUMS", body=b"%s  README.md\n" % (b"a" * 64))
    with pytest.raises(CatalogError, match="lists no python-build-standalone CPython archive"):
        load_pbs_release("20990102", mirror=server.url)
    with pytest.raises(Exception, match="invalid python-build-standalone release tag"):
        load_pbs_release("../etc", mirror=server.url)


def test_local_directory_catalog(tmp_path: Path, real_archives: list[RealArchive]) -> None:
    mirror = tmp_path / "internal mirror"
    mirror.mkdir()
    real = real_archives[0]
    os.link(real.path, mirror / real.artifact.file_name)
    unhashed_name = f"cpython-3.10.9+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    make_tar(mirror / unhashed_name, tiny_interpreter_members())
    (mirror / "README.txt").write_text("copied by hand\n")
    missing = f"cpython-3.9.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    (mirror / "SHA256SUMS").write_text(
        f"{real.artifact.sha256}  {real.artifact.file_name}\n{'c' * 64}  {missing}\n"
    )
    entries = load_catalog(str(mirror))
    assert entries == load_catalog(mirror.as_uri()) == load_local_directory(mirror)
    by_name = {e.file_name: e for e in entries}
    assert sorted(by_name) == sorted([real.artifact.file_name, unhashed_name])
    assert by_name[real.artifact.file_name].sha256 == real.artifact.sha256
    assert by_name[real.artifact.file_name].size == real.artifact.size
    assert by_name[unhashed_name].sha256 is None
    assert all(e.url.startswith("file://") and "%20" in e.url for e in entries)

    linux = [parse_platform("linux-x86_64")]
    v = real.info.version
    with pytest.raises(ResolutionError, match=r"no sha256.*--allow-unhashed"):
        resolve(entries, parse_request_list("3.10"), linux)
    out = tmp_path / "b.pybundle"
    report = build_bundle(
        out,
        Selection.parse(
            [f"{v.major}.{v.minor},3.10"],
            ["linux-x86_64"],
            catalog=str(mirror),
            allow_unhashed=True,
        ),
        cache_dir=tmp_path / "cache",
        secret_key=None,
    )
    sources = {a.file_name: (a.sha256_source, a.sha256) for a in report.manifest.artifacts}
    tiny_sha = hashlib.sha256((mirror / unhashed_name).read_bytes()).hexdigest()
    assert sources == {
        real.artifact.file_name: ("catalog", real.artifact.sha256),
        unhashed_name: ("computed", tiny_sha),
    }
    with zipfile.ZipFile(out) as zf:
        manifest = Manifest.from_bytes(zf.read("pybundle.json"), str(out))
        assert zf.read(f"archives/{unhashed_name}") == (mirror / unhashed_name).read_bytes()
    assert {a.sha256_source for a in manifest.artifacts} == {"catalog", "computed"}


def test_empty_or_unreadable_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="holds no python-build-standalone CPython archive"):
        load_catalog(str(tmp_path))
    (tmp_path / "SHA256SUMS").write_text("garbage\n")
    with pytest.raises(CatalogError, match="line 1"):
        load_catalog(str(tmp_path))


def test_catalog_fetches_are_retried_like_downloads(server: LoopServer) -> None:
    from pybundle.bundler.build import load_entries
    from pybundle.bundler.selection import Selection

    name = f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    body = f"{'a' * 64}  {name}\n".encode()
    server.add(f"/{TEST_BUILD}/SHA256SUMS", body=body, mode="flaky", status=503, retry_after="0")
    (entry,) = load_entries(Selection(pbs_release=TEST_BUILD, mirror=server.url))
    assert entry.file_name == name and entry.sha256 == "a" * 64
    assert [h.status for h in server.finished()] == [503, 200]
