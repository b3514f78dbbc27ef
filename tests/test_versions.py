"""Behaviour of pybundle.versions: ordering, parsing and matching of Python versions."""

from __future__ import annotations

import pytest

from pybundle.errors import UsageError
from pybundle.versions import (
    PythonRequest,
    PythonVersion,
    VersionRequest,
    parse_python_request,
    parse_request_list,
    parse_version_list,
)

V = PythonVersion.parse


def test_parse_and_str() -> None:
    assert V("3.12.1") == PythonVersion(3, 12, 1)
    assert V("3.15.0rc1") == PythonVersion(3, 15, 0, "rc1")
    assert V(" 3.13.0A1 ") == PythonVersion(3, 13, 0, "a1")
    assert str(V("3.12.1")) == "3.12.1"
    assert str(V("3.15.0rc1")) == "3.15.0rc1"
    assert str(PythonVersion(3, 10, 0)) == "3.10.0"
    assert V("3.15.0b3").is_prerelease
    assert not V("3.15.0").is_prerelease


def test_total_ordering_with_prereleases() -> None:
    chain = [
        "3.13.0a1",
        "3.13.0a2",
        "3.13.0b2",
        "3.13.0rc1",
        "3.13.0rc2",
        "3.13.0",
        "3.13.1",
        "3.13.10",
        "3.14.0a1",
    ]
    versions = [V(s) for s in chain]
    assert sorted(reversed(versions)) == versions
    for low, high in zip(versions, versions[1:]):
        assert low < high and high > low and low <= high and high >= low and low != high
    assert V("3.9.20") < V("3.10.0")
    assert max(versions) == V("3.14.0a1")
    assert V("3.12.1") <= V("3.12.1") and V("3.12.1") >= V("3.12.1")


@pytest.mark.parametrize(
    "bad",
    [
        "3.12",
        "3",
        "",
        "3.12.x",
        "3.12.1.1",
        "v3.12.1",
        "3.12.1rc",
        "3.12.1c1",
        "3.12.1-rc1",
        "3.12.1 rc1",
        "three",
    ],
)
def test_version_parse_errors_name_the_text(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        V(bad)
    assert repr(bad) in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_prerelease_in_constructor() -> None:
    with pytest.raises(UsageError, match="prerelease"):
        PythonVersion(3, 12, 0, "dev1")
    with pytest.raises(UsageError):
        PythonVersion(3, -1, 0)


def test_request_parse_and_str() -> None:
    assert VersionRequest.parse("3.12") == VersionRequest(3, 12)
    assert VersionRequest.parse(" 3.12.1 ") == VersionRequest(3, 12, 1)
    assert VersionRequest.parse("3.15.0rc1") == VersionRequest(3, 15, 0, "rc1")
    for text in ("3.12", "3.12.1", "3.15.0rc1", "3.13.0a4"):
        assert str(VersionRequest.parse(text)) == text


@pytest.mark.parametrize(
    "bad",
    ["3", "", "  ", ">=3.11", "3.12.*", "3.12.x", "3.12rc1", "3.12.1.2", "python3.12", "3.12,3.13"],
)
def test_request_parse_errors(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        VersionRequest.parse(bad)
    assert repr(bad) in str(info.value)
    assert info.value.exit_code == 2


def test_matches() -> None:
    minor = VersionRequest.parse("3.12")
    assert minor.matches(V("3.12.0"))
    assert minor.matches(V("3.12.14"))
    assert not minor.matches(V("3.12.0rc1"))
    assert not minor.matches(V("3.13.0"))
    assert not minor.matches(V("4.12.0"))
    exact = VersionRequest.parse("3.12.1")
    assert exact.matches(V("3.12.1"))
    assert not exact.matches(V("3.12.10"))
    assert not exact.matches(V("3.12.1rc1"))
    pre = VersionRequest.parse("3.15.0rc1")
    assert pre.matches(V("3.15.0rc1"))
    assert not pre.matches(V("3.15.0"))
    assert not pre.matches(V("3.15.0rc2"))
    assert not VersionRequest.parse("3.15").matches(V("3.15.0rc1"))


def test_version_list() -> None:
    assert parse_version_list("3.11,3.12") == [VersionRequest(3, 11), VersionRequest(3, 12)]
    assert parse_version_list(" 3.12 , 3.11 ,3.12") == [
        VersionRequest(3, 12),
        VersionRequest(3, 11),
    ]
    assert parse_version_list("3.12.1") == [VersionRequest(3, 12, 1)]
    assert parse_version_list("3.12,3.12.1,3.15.0rc1") == [
        VersionRequest(3, 12),
        VersionRequest(3, 12, 1),
        VersionRequest(3, 15, 0, "rc1"),
    ]


@pytest.mark.parametrize("bad", ["", " ", "3.11,,3.12", "3.11,", ",3.11", "3.11, ,3.12"])
def test_version_list_refuses_empty_items(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_version_list(bad)
    assert repr(bad) in str(info.value)


def test_version_list_names_bad_item() -> None:
    with pytest.raises(UsageError, match=r"'3\.x'"):
        parse_version_list("3.11,3.x")


# ---- requests of `pybundle bundle --versions` -----------------------------------------------

PR = parse_python_request


@pytest.mark.parametrize(
    ("text", "impl", "variant", "per_minor", "yes", "no"),
    [
        ("3.12", None, None, False, ["3.12.0", "3.12.14", "3.12.1rc1"], ["3.13.0", "3.1.2"]),
        ("3.12.1", None, None, False, ["3.12.1"], ["3.12.10", "3.12.1rc1"]),
        ("3.15.0rc1", None, None, False, ["3.15.0rc1"], ["3.15.0", "3.15.0rc2"]),
        (">=3.10,<3.13", None, None, True, ["3.10.0", "3.12.14"], ["3.9.20", "3.13.0", "3.13.0a1"]),
        ("3.10-3.13", None, None, True, ["3.10.0", "3.13.15"], ["3.9.1", "3.14.0", "3.14.0a1"]),
        ("3.10.4-3.12.1", None, None, True, ["3.10.4", "3.12.1"], ["3.10.3", "3.12.2"]),
        ("~=3.12.1", None, None, True, ["3.12.1", "3.12.9"], ["3.12.0", "3.13.0"]),
        ("!=3.11.*", None, None, True, ["3.12.0"], ["3.11.4"]),
        ("cpython-3.12", "cpython", None, False, ["3.12.3"], ["3.11.3"]),
        ("pypy@3.10", "pypy", None, False, ["3.10.16"], []),
        ("PyPy3.10", "pypy", None, False, ["3.10.16"], []),
        ("graalpy-3.12", "graalpy", None, False, ["3.12.0"], []),
        ("cp312", "cpython", None, False, ["3.12.0"], []),
        ("pp310", "pypy", None, False, ["3.10.0"], []),
        ("python3.12", "cpython", None, False, ["3.12.0"], []),
        ("3.13t", None, "freethreaded", False, ["3.13.1"], []),
        ("3.13+freethreaded", None, "freethreaded", False, ["3.13.1"], []),
        ("3.12d", None, "debug", False, ["3.12.1"], []),
        ("3.13td", None, "freethreaded+debug", False, ["3.13.1"], []),
        ("3.13+debug+freethreaded", None, "freethreaded+debug", False, ["3.13.1"], []),
        ("pypy-3.11.15", "pypy", None, False, ["3.11.15"], ["3.11.14"]),
    ],
)
def test_python_requests(
    text: str,
    impl: str | None,
    variant: str | None,
    per_minor: bool,
    yes: list[str],
    no: list[str],
) -> None:
    r = PR(text)
    assert (r.implementation, r.variant, r.per_minor) == (impl, variant, per_minor)
    assert str(r) == "".join(text.split()).lower()
    for v in yes:
        assert r.matches(V(v)), v
    for v in no:
        assert not r.matches(V(v)), v


@pytest.mark.parametrize(
    "bad",
    ["", "3", "3.x", ">=3", "=>3.10", "3.13-3.10", "3.12tt", "3.12+jit", "jython-3.12", "3.12.*"],
)
def test_python_request_errors(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        PR(bad)
    assert repr(bad) in str(info.value) and "\n" not in str(info.value)


def test_request_list_joins_specifier_clauses() -> None:
    got = parse_request_list("3.9, >=3.11,<3.13, pypy@>=3.10,<3.11, 3.9")
    assert [str(r) for r in got] == ["3.9", ">=3.11,<3.13", "pypy@>=3.10,<3.11"]
    assert got[2].implementation == "pypy" and got[2].per_minor
    assert PR("3.15.0rc1").explicit_prerelease and not PR("3.15").explicit_prerelease
    assert PythonRequest.from_version_request(VersionRequest(3, 12, 1)) == PR("3.12.1")
    for bad in ("", "3.9,,3.10", "3.9,"):
        with pytest.raises(UsageError):
            parse_request_list(bad)
