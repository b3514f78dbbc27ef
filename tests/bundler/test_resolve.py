"""Behaviour of pybundle.bundler.resolve against uv's real downloads catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import uv_catalog
from pybundle.bundler.catalog import CatalogEntry, load_catalog
from pybundle.bundler.resolve import resolve, resolve_picks
from pybundle.errors import ResolutionError, UsageError
from pybundle.targets import Target, parse_platform, parse_platform_or_group
from pybundle.versions import PythonVersion, VersionRequest, parse_request_list, parse_version_list

CATALOG = uv_catalog()
LINUX = parse_platform("linux-x86_64")


@pytest.fixture(scope="module")
def entries() -> list[CatalogEntry]:
    return load_catalog(str(CATALOG))


@pytest.fixture(scope="module")
def raw() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(CATALOG.read_bytes())
    return data


def _newest_stable_key(raw: dict[str, dict[str, Any]], minor: int, platform_key: str) -> str:
    """Independent expectation: the plain cpython key with the highest final 3.<minor>.N."""
    best = -1
    for e in raw.values():
        if (
            e["name"] == "cpython"
            and e["variant"] is None
            and e["prerelease"] == ""
            and e["minor"] == minor
            and f"{e['os']}-{e['arch']['family']}-{e['libc']}" == platform_key
            and e["arch"]["variant"] is None
        ):
            best = max(best, int(str(e["patch"])))
    return f"cpython-3.{minor}.{best}-{platform_key}"


def _one(entries: list[CatalogEntry], request: str, platform: str, **kw: str) -> CatalogEntry:
    (picked,) = resolve(entries, [VersionRequest.parse(request)], [parse_platform(platform)], **kw)
    return picked


def test_newest_stable_patch_for_linux(
    entries: list[CatalogEntry], raw: dict[str, dict[str, Any]]
) -> None:
    got = resolve(entries, parse_version_list("3.11,3.12"), [LINUX])
    assert [e.key for e in got] == [
        _newest_stable_key(raw, 11, "linux-x86_64-gnu"),
        _newest_stable_key(raw, 12, "linux-x86_64-gnu"),
    ]
    py312 = got[1]
    assert py312.version == PythonVersion(3, 12, 14)
    assert py312.build == "20260814"
    for e in got:
        assert e.variant == "default"
        assert e.target == Target("linux", "x86_64", "gnu", None)
        assert "x86_64-unknown-linux-gnu-install_only" in e.url
        assert e.sha256


def test_exact_patch(entries: list[CatalogEntry]) -> None:
    e = _one(entries, "3.12.1", "linux-x86_64")
    assert e.key == "cpython-3.12.1-linux-x86_64-gnu"
    assert e.file_name == "cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"


@pytest.mark.parametrize(
    ("platform", "triple"),
    [
        ("linux-x86_64-musl", "x86_64-unknown-linux-musl"),
        ("macos-aarch64", "aarch64-apple-darwin"),
        ("macos-arm64", "aarch64-apple-darwin"),
        ("windows-x86_64", "x86_64-pc-windows-msvc"),
        ("linux-aarch64", "aarch64-unknown-linux-gnu"),
    ],
)
def test_other_platforms(
    entries: list[CatalogEntry], raw: dict[str, dict[str, Any]], platform: str, triple: str
) -> None:
    target = parse_platform(platform)
    e = _one(entries, "3.12", platform)
    assert e.target == target
    assert e.key == _newest_stable_key(raw, 12, target.key)
    assert f"-{triple}-install_only" in e.file_name
    assert e.variant == "default"


def test_cpu_level_picks_that_level(entries: list[CatalogEntry]) -> None:
    e = _one(entries, "3.12", "linux-x86_64_v3")
    assert e.target.arch_variant == "v3"
    assert e.key == "cpython-3.12.14-linux-x86_64_v3-gnu"
    assert "x86_64_v3-unknown-linux-gnu" in e.file_name


def test_pypy(entries: list[CatalogEntry]) -> None:
    e = _one(entries, "3.11", "linux-x86_64", implementation="pypy")
    assert e.implementation == "pypy"
    assert e.key == "pypy-3.11.15-linux-x86_64-gnu"
    assert e.url.startswith("https://downloads.python.org/pypy/")


def test_variants(entries: list[CatalogEntry]) -> None:
    e = _one(entries, "3.13", "linux-x86_64", variant="freethreaded")
    assert e.variant == "freethreaded" and e.key.startswith("cpython-3.13.")
    assert "+freethreaded-" in e.key
    e = _one(entries, "3.12", "linux-x86_64", variant="debug")
    assert e.variant == "debug" and e.flavour == "full"
    with pytest.raises(UsageError, match="'jit'"):
        _one(entries, "3.12", "linux-x86_64", variant="jit")
    with pytest.raises(ResolutionError) as info:
        _one(entries, "3.12", "linux-x86_64", variant="freethreaded")
    assert "available: 3.13, 3.14" in str(info.value)


def test_order_and_dedup(entries: list[CatalogEntry]) -> None:
    targets = [parse_platform("macos-aarch64"), LINUX, parse_platform("darwin-aarch64-none")]
    got = resolve(entries, parse_version_list("3.12,3.11,3.12.14"), targets)
    assert [e.key for e in got] == [
        "cpython-3.12.14-darwin-aarch64-none",
        "cpython-3.12.14-linux-x86_64-gnu",
        "cpython-3.11.16-darwin-aarch64-none",
        "cpython-3.11.16-linux-x86_64-gnu",
    ]
    assert resolve(entries, [], [LINUX]) == []
    assert resolve(entries, parse_version_list("3.12"), []) == []


def test_unknown_version_is_one_line_listing_minors(entries: list[CatalogEntry]) -> None:
    with pytest.raises(ResolutionError) as info:
        _one(entries, "3.99", "linux-x86_64")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("no cpython 3.99 for linux-x86_64 in the catalog; available: ")
    assert "3.9, 3.10, 3.11, 3.12, 3.13, 3.14" in message
    assert info.value.exit_code == 3


def test_unknown_patch_lists_patches(entries: list[CatalogEntry]) -> None:
    with pytest.raises(ResolutionError, match=r"3\.12\.13, 3\.12\.14$") as info:
        _one(entries, "3.12.99", "linux-x86_64")
    assert "\n" not in str(info.value)


def test_platform_without_builds_lists_platforms(entries: list[CatalogEntry]) -> None:
    with pytest.raises(ResolutionError) as info:
        _one(entries, "3.12", "linux-riscv64", implementation="pypy")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("no pypy builds for platform linux-riscv64 in the catalog;")
    listed = message.split("available platforms: ")[1].split(", ")
    assert listed == sorted(listed)
    assert "linux-x86_64" in listed and "macos-aarch64" in listed
    with pytest.raises(ResolutionError, match=r"available platforms: .*windows-x86_64"):
        resolve(entries, parse_version_list("3.12"), [Target("linux", "sparc64", "gnu")])


def test_unknown_implementation(entries: list[CatalogEntry]) -> None:
    with pytest.raises(ResolutionError, match="available implementations: cpython, graalpy, pypy"):
        _one(entries, "3.12", "linux-x86_64", implementation="jython")


def test_prereleases_only_when_named(entries: list[CatalogEntry]) -> None:
    with pytest.raises(ResolutionError) as info:
        _one(entries, "3.15", "linux-x86_64")
    assert "3.15.0rc1" in str(info.value)
    assert "\n" not in str(info.value)
    e = _one(entries, "3.15.0rc1", "linux-x86_64")
    assert e.version == PythonVersion(3, 15, 0, "rc1")
    assert e.key == "cpython-3.15.0rc1-linux-x86_64-gnu"
    # a minor series with finals never picks a newer prerelease of it either
    for e in resolve(entries, parse_version_list("3.13,3.14"), [LINUX]):
        assert not e.version.is_prerelease


def _fake(key: str, version: str, build: str, sha256: str | None) -> CatalogEntry:
    return CatalogEntry(
        key=key,
        implementation="cpython",
        version=PythonVersion.parse(version),
        target=LINUX,
        variant="default",
        url=f"https://example.invalid/{key}.tar.gz",
        sha256=sha256,
        build=build,
    )


def test_sha256_and_build_tie_breaks() -> None:
    a = _fake("a", "3.12.2", "20240101", "a" * 64)
    b = _fake("b", "3.12.3", "20240101", None)  # newest, but unverifiable
    c = _fake("c", "3.12.2", "20240301", "c" * 64)  # same version, newer build wins
    assert resolve([a, c], parse_version_list("3.12"), [LINUX]) == [c]
    # the newest is refused, never silently replaced by an older verifiable release
    with pytest.raises(ResolutionError, match="no sha256") as info:
        resolve([a, b, c], parse_version_list("3.12"), [LINUX])
    assert "only as b.tar.gz, which has no sha256" in str(info.value)
    assert "--allow-unhashed" in str(info.value) and "\n" not in str(info.value)
    assert resolve([a, b, c], parse_version_list("3.12"), [LINUX], allow_unhashed=True) == [b]
    assert resolve([a, b, c], parse_version_list("3.12.2"), [LINUX]) == [c]


R = parse_request_list


def _keys(
    entries: list[CatalogEntry], requests: str, platforms: str = "linux-x86_64", **kw: Any
) -> list[str]:
    targets = [parse_platform_or_group(p) for p in platforms.split(",")]
    return [e.key for e in resolve(entries, R(requests), targets, **kw)]


def test_ranges_pick_the_newest_patch_of_each_minor(entries: list[CatalogEntry]) -> None:
    want = [
        "cpython-3.10.21-linux-x86_64-gnu",
        "cpython-3.11.16-linux-x86_64-gnu",
        "cpython-3.12.14-linux-x86_64-gnu",
    ]
    assert _keys(entries, ">=3.10,<3.13") == want
    assert _keys(entries, "3.10-3.12") == want
    assert _keys(entries, "cpython@>=3.10, <3.13") == want
    assert _keys(entries, ">=3.12.2,<=3.12.13") == ["cpython-3.12.13-linux-x86_64-gnu"]
    assert _keys(entries, "==3.11.*") == ["cpython-3.11.16-linux-x86_64-gnu"]
    assert _keys(entries, "~=3.13.0") == ["cpython-3.13.15-linux-x86_64-gnu"]
    # open-ended: every minor from 3.13 on, without the prerelease-only 3.15...
    assert _keys(entries, ">=3.13") == [
        "cpython-3.13.15-linux-x86_64-gnu",
        "cpython-3.14.7-linux-x86_64-gnu",
    ]
    # ...which the policies bring in
    assert (
        _keys(entries, ">=3.13", prerelease="if-necessary")[-1]
        == "cpython-3.15.0rc1-linux-x86_64-gnu"
    )
    with pytest.raises(ResolutionError, match=r"^no cpython >=3\.20 for .*available: 3\.8, 3\.9"):
        _keys(entries, ">=3.20")


def test_prerelease_policies(entries: list[CatalogEntry]) -> None:
    assert _keys(entries, "3.15", prerelease="allow") == ["cpython-3.15.0rc1-linux-x86_64-gnu"]
    assert _keys(entries, "3.15", prerelease="if-necessary") == [
        "cpython-3.15.0rc1-linux-x86_64-gnu"
    ]
    with pytest.raises(ResolutionError, match="--prerelease allow"):
        _keys(entries, "3.15")
    a = _fake("a", "3.14.4", "20260414", "a" * 64)
    b = _fake("b", "3.14.5rc1", "20260508", "b" * 64)
    assert resolve([a, b], R("3.14"), [LINUX], prerelease="allow") == [b]
    assert resolve([a, b], R("3.14"), [LINUX], prerelease="if-necessary") == [a]
    assert resolve([a, b], R("3.14"), [LINUX]) == [a]
    assert resolve([a, b], R("<3.14.5"), [LINUX], prerelease="allow") == [a]  # PEP 440
    with pytest.raises(UsageError, match="sometimes"):
        resolve([a], R("3.14"), [LINUX], prerelease="sometimes")


def test_implementations_and_variants_in_the_request(entries: list[CatalogEntry]) -> None:
    assert _keys(entries, "pypy-3.10") == ["pypy-3.10.16-linux-x86_64-gnu"]
    assert _keys(entries, "pypy@3.11,pypy3.10") == [
        "pypy-3.11.15-linux-x86_64-gnu",
        "pypy-3.10.16-linux-x86_64-gnu",
    ]
    assert _keys(entries, "graalpy-3.12") == ["graalpy-3.12.0-linux-x86_64-gnu"]
    assert _keys(entries, "cp312") == ["cpython-3.12.14-linux-x86_64-gnu"]
    assert _keys(entries, "3.13t") == ["cpython-3.13.15+freethreaded-linux-x86_64-gnu"]
    assert _keys(entries, "3.13+freethreaded") == _keys(entries, "3.13", variant="freethreaded")
    assert _keys(entries, "3.13td") == ["cpython-3.13.15+freethreaded+debug-linux-x86_64-gnu"]
    assert _keys(entries, "3.12d") == ["cpython-3.12.14+debug-linux-x86_64-gnu"]


def test_build_pin(entries: list[CatalogEntry]) -> None:
    assert _keys(entries, "3.12", build="20240107") == ["cpython-3.12.1-linux-x86_64-gnu"]
    with pytest.raises(ResolutionError, match="no cpython builds of release 20991231") as info:
        _keys(entries, "3.12", build="20991231")
    assert "20260814" in str(info.value) and "\n" not in str(info.value)


def test_platform_groups_and_cross_product(entries: list[CatalogEntry]) -> None:
    keys = _keys(entries, "3.11,3.12", "linux-x86_64,macos-aarch64")
    assert keys == [
        "cpython-3.11.16-linux-x86_64-gnu",
        "cpython-3.11.16-darwin-aarch64-none",
        "cpython-3.12.14-linux-x86_64-gnu",
        "cpython-3.12.14-darwin-aarch64-none",
    ]
    linux = _keys(entries, "3.12", "all-linux")
    assert (
        "cpython-3.12.14-linux-x86_64-musl" in linux
        and "cpython-3.12.14-linux-riscv64-gnu" in linux
    )
    assert all("-linux-" in k and "_v" not in k for k in linux)
    assert _keys(entries, "3.12", "all-macos") == [
        "cpython-3.12.14-darwin-aarch64-none",
        "cpython-3.12.14-darwin-x86_64-none",
    ]
    # a group member lacking the version is skipped and reported, not an error
    picks, skipped = resolve_picks(entries, R("3.9"), [parse_platform_or_group("all-windows")])
    assert picks and skipped
    assert {s.target.friendly for s in skipped} == {"windows-aarch64"}
    assert "no cpython 3.9 for windows-aarch64" in skipped[0].reason
    with pytest.raises(ResolutionError, match=r"no cpython 2\.7 for"):
        resolve(entries, R("2.7"), [parse_platform_or_group("all")])


def test_flavour(entries: list[CatalogEntry]) -> None:
    (e,) = resolve(entries, R("3.12.1"), [LINUX], flavour="install_only")
    assert e.flavour == "install_only"
    with pytest.raises(ResolutionError, match="only as install_only_stripped, not full") as info:
        resolve(entries, R("3.12"), [LINUX], flavour="full")
    assert "--pbs-release 20260814" in str(info.value)
    with pytest.raises(UsageError, match="flavour"):
        resolve(entries, R("3.12"), [LINUX], flavour="tiny")
