"""Behaviour of pybundle.targets: parsing every platform spelling, rendering, host detection."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from conftest import uv_catalog
from pybundle import targets
from pybundle.errors import ResolutionError
from pybundle.targets import (
    ACCEPTED_PLATFORMS,
    Target,
    cpu_supports,
    host_can_run,
    host_target,
    is_known_target,
    parse_platform,
    parse_triple,
)

CATALOG = uv_catalog()


def _catalog_targets() -> dict[Target, list[tuple[str, dict[str, object]]]]:
    """Distinct targets of the real catalog (non-emscripten), with their (key, entry) pairs."""
    raw = json.loads(CATALOG.read_bytes())
    found: dict[Target, list[tuple[str, dict[str, object]]]] = {}
    for key, e in raw.items():
        if e["os"] not in ("linux", "darwin", "windows"):
            continue
        t = Target(e["os"], e["arch"]["family"], e["libc"], e["arch"]["variant"])
        found.setdefault(t, []).append((key, e))
    return found


FRIENDLY = {
    "linux-x86_64": Target("linux", "x86_64", "gnu"),
    "linux-aarch64": Target("linux", "aarch64", "gnu"),
    "linux-x86_64-musl": Target("linux", "x86_64", "musl"),
    "linux-aarch64-musl": Target("linux", "aarch64", "musl"),
    "linux-x86_64_v2": Target("linux", "x86_64", "gnu", "v2"),
    "linux-x86_64_v3": Target("linux", "x86_64", "gnu", "v3"),
    "linux-x86_64_v4": Target("linux", "x86_64", "gnu", "v4"),
    "linux-x86_64_v3-musl": Target("linux", "x86_64", "musl", "v3"),
    "linux-i686": Target("linux", "i686", "gnu"),
    "linux-armv7-gnueabihf": Target("linux", "armv7", "gnueabihf"),
    "linux-armv7-gnueabi": Target("linux", "armv7", "gnueabi"),
    "linux-powerpc64le": Target("linux", "powerpc64le", "gnu"),
    "linux-s390x": Target("linux", "s390x", "gnu"),
    "linux-riscv64": Target("linux", "riscv64", "gnu"),
    "macos-aarch64": Target("darwin", "aarch64", "none"),
    "macos-x86_64": Target("darwin", "x86_64", "none"),
    "windows-x86_64": Target("windows", "x86_64", "none"),
    "windows-i686": Target("windows", "i686", "none"),
    "windows-aarch64": Target("windows", "aarch64", "none"),
}


@pytest.mark.parametrize(("name", "expected"), sorted(FRIENDLY.items()))
def test_friendly_names_parse_and_render(name: str, expected: Target) -> None:
    assert parse_platform(name) == expected
    assert expected.friendly == name


def test_every_accepted_platform_parses_and_round_trips() -> None:
    for name in ACCEPTED_PLATFORMS:
        assert parse_platform(name).friendly == name


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("macos-arm64", "macos-aarch64"),
        ("linux-arm64", "linux-aarch64"),
        ("linux-arm64-musl", "linux-aarch64-musl"),
        ("linux-amd64", "linux-x86_64"),
        ("windows-amd64", "windows-x86_64"),
        ("linux-amd64_v3", "linux-x86_64_v3"),
        ("linux-ppc64le", "linux-powerpc64le"),
        ("linux-armv7", "linux-armv7-gnueabihf"),
        ("LINUX-X86_64", "linux-x86_64"),
        ("  MacOS-ARM64 ", "macos-aarch64"),
        ("darwin-aarch64", "macos-aarch64"),
        ("macos-aarch64-none", "macos-aarch64"),
        ("linux-x86_64-gnu", "linux-x86_64"),
        ("arm64-apple-darwin", "macos-aarch64"),
        ("X86_64-PC-WINDOWS-MSVC", "windows-x86_64"),
    ],
)
def test_aliases(alias: str, canonical: str) -> None:
    assert parse_platform(alias) == parse_platform(canonical)


def test_concrete_renderings() -> None:
    t = Target("linux", "x86_64", "gnu")
    assert (t.triple, t.key, t.install_key, t.friendly) == (
        "x86_64-unknown-linux-gnu",
        "linux-x86_64-gnu",
        "linux-x86_64-gnu",
        "linux-x86_64",
    )
    v3 = Target("linux", "x86_64", "musl", "v3")
    assert v3.triple == "x86_64_v3-unknown-linux-musl"
    assert v3.key == "linux-x86_64_v3-musl"
    mac = Target("darwin", "aarch64", "none")
    assert mac.triple == "aarch64-apple-darwin"
    assert mac.key == "darwin-aarch64-none"
    assert mac.install_key == "macos-aarch64-none"
    assert mac.friendly == "macos-aarch64"
    win = Target("windows", "x86_64", "none")
    assert win.triple == "x86_64-pc-windows-msvc"
    assert win.install_key == "windows-x86_64-none"
    assert Target("linux", "powerpc64le", "gnu").triple == "ppc64le-unknown-linux-gnu"
    assert Target("linux", "armv7", "gnueabihf").triple == "armv7-unknown-linux-gnueabihf"


def test_catalog_targets_round_trip_through_every_spelling() -> None:
    found = _catalog_targets()
    assert len(found) >= 20
    for t, items in found.items():
        assert is_known_target(t), t
        assert parse_triple(t.triple) == t
        assert parse_platform(t.triple) == t
        assert parse_platform(t.key) == t
        assert parse_platform(t.install_key) == t
        assert parse_platform(t.friendly) == t
        for key, entry in items:
            # the uv key ends with the platform key
            assert key.endswith("-" + t.key), key
            # PBS file names carry the target triple
            file_name = unquote(str(entry["url"]).rsplit("/", 1)[1])
            if entry["name"] == "cpython":
                assert f"-{t.triple}-" in file_name, file_name


def test_unknown_platform_is_one_line_listing_names() -> None:
    for bad in ("solaris-sparc", "linux-foo", "macos-s390x", "linux", "", "linux-x86_64-glibc"):
        with pytest.raises(ResolutionError) as info:
            parse_platform(bad)
        message = str(info.value)
        assert "\n" not in message
        assert repr(bad) in message
        assert "linux-x86_64" in message and "macos-aarch64" in message
        assert "windows-x86_64" in message
        assert info.value.exit_code == 3


@pytest.mark.parametrize(
    "bad",
    [
        "x86_64-unknown-freebsd",
        "x86_64-unknown-linux-foo",
        "sparc-unknown-linux-gnu",
        "x86_64_v9-unknown-linux-gnu",
        "aarch64_v3-unknown-linux-gnu",
        "x86_64-apple-windows",
        "armv7-unknown-linux-gnu",
        "x86_64-unknown-linux-gnueabihf",
        "x86_64_v3-apple-darwin",
    ],
)
def test_parse_triple_rejects(bad: str) -> None:
    with pytest.raises(ResolutionError, match="unknown platform"):
        parse_triple(bad)


def test_host_target_on_this_machine() -> None:
    assert host_target() == Target("linux", "x86_64", "gnu", None)


def test_targets_sort_with_and_without_level() -> None:
    ts = [
        Target("linux", "x86_64", "gnu", "v3"),
        Target("linux", "x86_64", "gnu"),
        Target("darwin", "aarch64", "none"),
        Target("linux", "x86_64", "gnu", "v2"),
    ]
    assert [t.friendly for t in sorted(ts)] == [
        "macos-aarch64",
        "linux-x86_64",
        "linux-x86_64_v2",
        "linux-x86_64_v3",
    ]
    assert len({*ts, Target("linux", "x86_64", "gnu")}) == 4


def test_cpu_supports_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cpu_supports(None) is True
    assert cpu_supports("v9") is False
    assert cpu_supports("banana") is False
    v2 = {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}
    v3 = v2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"}
    monkeypatch.setattr(targets, "_read_cpu_flags", lambda: frozenset(v2))
    assert (cpu_supports("v2"), cpu_supports("v3"), cpu_supports("v4")) == (True, False, False)
    monkeypatch.setattr(targets, "_read_cpu_flags", lambda: frozenset(v3))
    assert (cpu_supports("v2"), cpu_supports("v3"), cpu_supports("v4")) == (True, True, False)
    monkeypatch.setattr(targets, "_read_cpu_flags", lambda: None)
    assert cpu_supports("v2") is False
    assert cpu_supports(None) is True


def test_cpu_flags_read_from_proc_cpuinfo() -> None:
    flags = targets._read_cpu_flags()
    assert flags is not None and "sse2" in flags
    # Linux names LZCNT "abm"; the reader adds the psABI name.
    if "abm" in flags:
        assert "lzcnt" in flags


def test_host_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    host = host_target()
    assert host_can_run(host)
    assert host_can_run(Target("linux", "x86_64", "gnu"))
    assert not host_can_run(Target("linux", "x86_64", "musl"))
    assert not host_can_run(Target("darwin", "x86_64", "none"))
    assert not host_can_run(Target("linux", "aarch64", "gnu"))
    monkeypatch.setattr(targets, "_read_cpu_flags", lambda: frozenset({"sse2"}))
    assert not host_can_run(Target("linux", "x86_64", "gnu", "v2"))
    assert not host_can_run(Target("linux", "x86_64", "gnu", "v2"), host)
    monkeypatch.setattr(targets, "_read_cpu_flags", lambda: frozenset(targets._LEVEL_FLAGS["v4"]))
    assert host_can_run(Target("linux", "x86_64", "gnu", "v4"))
    # another machine: its own level decides
    other = Target("linux", "aarch64", "gnu")
    assert host_can_run(Target("linux", "aarch64", "gnu"), other)
    assert not host_can_run(Target("linux", "x86_64", "gnu"), other)
    v3_host = Target("linux", "x86_64", "musl", "v3")
    assert host_can_run(Target("linux", "x86_64", "musl", "v2"), v3_host)
    assert host_can_run(Target("linux", "x86_64", "musl", "v3"), v3_host)
    assert not host_can_run(Target("linux", "x86_64", "musl", "v4"), v3_host)
    assert not host_can_run(
        Target("linux", "x86_64", "musl", "v2"), Target("linux", "x86_64", "musl")
    )


def test_platform_groups() -> None:
    from pybundle.targets import PLATFORM_GROUPS, PlatformGroup, parse_platform_or_group

    group = parse_platform_or_group("ALL-linux")
    assert isinstance(group, PlatformGroup) and group is PLATFORM_GROUPS["all-linux"]
    assert group.matches(Target("linux", "aarch64", "musl"))
    assert not group.matches(Target("linux", "x86_64", "gnu", "v3"))  # CPU levels are a choice
    assert not group.matches(Target("darwin", "aarch64", "none"))
    gnu = PLATFORM_GROUPS["all-linux-gnu"]
    assert gnu.matches(Target("linux", "armv7", "gnueabihf"))
    assert not gnu.matches(Target("linux", "x86_64", "musl"))
    assert PLATFORM_GROUPS["all"].matches(Target("windows", "x86_64", "none"))
    assert parse_platform_or_group("linux-x86_64_v3") == Target("linux", "x86_64", "gnu", "v3")
    with pytest.raises(ResolutionError):
        parse_platform_or_group("all-bsd")
