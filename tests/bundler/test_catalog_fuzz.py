"""Property tests (hypothesis) of the online side's parsers of outside bytes: uv's downloads
JSON (arbitrary bytes, and real entries from the committed catalog mutated field by field and
byte by byte), SHA256SUMS (arbitrary text, and real PBS names in mutated lines), PBS file names,
catalog directories, and the cache's ``shapes/`` records. Every failure must be a typed error
with a one-line message naming its source; nothing else may escape."""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import make_tar, run_cli, tiny_interpreter_members, uv_catalog_bytes
from pybundle.bundler.build import make_plan
from pybundle.bundler.cache import Cache
from pybundle.bundler.catalog import (
    PbsName,
    entries_from_sha256sums,
    load_catalog,
    load_local_directory,
    load_pbs_release,
    parse_catalog,
    parse_pbs_file_name,
    parse_sha256sums,
)
from pybundle.bundler.selection import Selection
from pybundle.errors import (
    CatalogError,
    DownloadError,
    PybundleError,
    ResolutionError,
    UsageError,
)
from pybundle.targets import parse_platform_or_group
from pybundle.versions import parse_request_list

#: Examples per property; a longer run: PYBUNDLE_FUZZ_EXAMPLES=20000 pytest tests/bundler/...
EXAMPLES = int(os.environ.get("PYBUNDLE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REAL: dict[str, dict[str, Any]] = json.loads(uv_catalog_bytes())
# a spread of real entries: every implementation, OS and archive kind
SAMPLE = [REAL[k] | {"_key": k} for k in sorted(REAL)[:: max(1, len(REAL) // 400)]]
REAL_NAMES = sorted({e["url"].rsplit("/", 1)[-1].replace("%2B", "+") for e in REAL.values()})
REQUESTS = [
    *parse_request_list("3.12"),
    *parse_request_list(">=3.10"),
    *parse_request_list("pypy-3.10"),
]
TARGETS = [parse_platform_or_group("all")]

# ---- strategies

any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates included
tricky_text = st.sampled_from(
    [
        "", " ", "\x00", "\n", "\r\n", "\t", "\ud800", "\udfff", "\u2028", "\x85", "\ufeff",
        "..", "/", "a" * 5000, "9" * 5000, "3.12", "-1", "1e9999", "\u0663", "\xb2",
        "file:///etc/passwd", "http://[::1", "http://[zz]/x.tar.gz", "http://h:99999/x.tar.gz",
        "https://x/%ZZ.tar.gz", "https://x/a b.tar.gz", "https://x/a\x00b.tar.gz",
        "https://x/cpython-3.12.1%2B20240107-x86_64-unknown-linux-gnu-install_only.tar.gz\n",
        "ftp://x/y.tar.gz", "javascript:alert(1)//x.tar.gz", "//x/y.tar.gz", "x.tar.gz",
        "A" * 64, "g" * 64, "0" * 63, "0" * 65, "linux", "x86_64", "gnu", "v3", "v9", "rc1",
        "freethreaded", "debug", "a1b2", "cpython", "pypy", "graalpy",
    ]
)  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([-1, 2**31, 2**63, 2**64, 10**30, -(10**30)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | tricky_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
SHAPE_KEYS = ("unpacked_size", "file_count")
FIELDS = [
    "name", "arch", "os", "libc", "major", "minor", "patch", "prerelease", "url", "sha256",
    "variant", "build",
]  # fmt: skip


@st.composite
def mutated_entry(draw: st.DrawFn) -> tuple[str, Any]:
    """A real catalog entry with a few fields replaced, removed, or given hostile text."""
    entry = dict(draw(st.sampled_from(SAMPLE)))
    key = entry.pop("_key")
    entry["arch"] = dict(entry["arch"])
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "delete", "text", "arch", "key", "wrap"]))
        field = draw(st.sampled_from(FIELDS))
        if op == "set":
            entry[field] = draw(json_values)
        elif op == "delete":
            entry.pop(field, None)
        elif op == "text":
            entry[field] = draw(tricky_text | any_text)
        elif op == "arch" and isinstance(entry.get("arch"), dict):
            entry["arch"][draw(st.sampled_from(["family", "variant"]))] = draw(json_values)
        elif op == "key":
            key = draw(tricky_text | any_text)
        else:
            return key, draw(st.sampled_from([[entry], "entry", None, 1]))
    return key, entry


def _encode(doc: Any, ascii_only: bool) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated_catalog(draw: st.DrawFn) -> bytes:
    """A catalog of real (mostly mutated) entries, serialised, then possibly damaged bytewise."""
    doc = dict(draw(st.lists(mutated_entry(), min_size=1, max_size=6)))
    data = bytearray(_encode(doc, draw(st.booleans())))
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    return bytes(data)


def _one_line(exc: PybundleError, *names: str) -> None:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text and len(text) < 2000, text
    text.encode("utf-8")  # printable: no lone surrogate
    for name in names:
        assert name in text, (name, text)


def _use(data: bytes) -> None:
    """Parse a catalog and plan from it, as ``bundle --dry-run --json`` does."""
    try:
        entries = parse_catalog(data, "fuzz.json")
    except CatalogError as exc:
        _one_line(exc, "fuzz.json")
        return
    for e in entries:
        assert e.file_name and e.flavour and e.archive_format
        _ = e.config
    try:
        plan = make_plan(
            entries,
            Selection(
                requests=tuple(REQUESTS),
                platforms=tuple(TARGETS),
                allow_unhashed=True,
                prerelease="allow",
            ),
        )
    except (ResolutionError, UsageError) as exc:
        _one_line(exc)
        return
    json.dumps(plan.to_json(), ensure_ascii=False).encode("utf-8")


# ---- uv downloads JSON


@FUZZ
@given(st.binary(max_size=2000))
@example(b"[" * 100_000)
@example(b'{"k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
@example(b"\xef\xbb\xbf{}")
@example(b'{"k": {"major": 1' + b"0" * 5000 + b"}}")
def test_arbitrary_bytes_are_a_catalog_or_a_catalog_error(data: bytes) -> None:
    _use(data)


@FUZZ
@given(mutated_catalog())
def test_mutated_real_catalogs_parse_or_fail_with_a_catalog_error(data: bytes) -> None:
    _use(data)


def test_the_unmutated_sample_still_parses() -> None:
    """The mutations start from entries the parser accepts (else the test above proves little)."""
    doc = {e["_key"]: {k: v for k, v in e.items() if k != "_key"} for e in SAMPLE}
    assert len(parse_catalog(_encode(doc, True), "sample.json")) >= len(SAMPLE) - 5


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("url", "https://x/\ud800.tar.gz", "url"),
        ("url", "https://x/a\nb.tar.gz", "url"),
        ("url", "http://[::1/x.tar.gz", "url"),
        ("build", "2024\x00", "build"),
        ("prerelease", "rc\udc80", "prerelease"),
        ("prerelease", "a" * 5000, "invalid version"),
        ("patch", -1, "invalid version"),
    ],
)
def test_hostile_strings_in_an_entry_are_refused_in_one_line(
    field: str, value: object, words: str
) -> None:
    entry = {k: v for k, v in SAMPLE[0].items() if k != "_key"}
    entry[field] = value
    data = json.dumps({SAMPLE[0]["_key"]: entry}).encode("utf-8", "surrogatepass")
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data, "hostile.json")
    _one_line(caught.value, "hostile.json", words)


def test_a_key_with_control_characters_is_refused() -> None:
    entry = {k: v for k, v in SAMPLE[0].items() if k != "_key"}
    with pytest.raises(CatalogError) as caught:
        parse_catalog(json.dumps({"cpython-3.12.1\n-linux": entry}).encode(), "keys.json")
    _one_line(caught.value, "keys.json")


@pytest.mark.parametrize(
    "source", ["http://[::1/catalog.json", "file://[::1/x.json", "bad\x00path.json"]
)
def test_unusable_catalog_locations_are_catalog_or_download_errors(source: str) -> None:
    with pytest.raises((CatalogError, DownloadError)) as caught:
        load_catalog(source)
    _one_line(caught.value)


# ---- SHA256SUMS and PBS names


@st.composite
def sums_text(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(REAL_NAMES) | any_text | tricky_text)
        digest = draw(
            st.sampled_from([hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()])
            | st.text("0123456789abcdefABCDEFg", min_size=60, max_size=68)
        )
        sep = draw(st.sampled_from(["  ", " *", " ", "\t", "   ", ""]))
        lines.append(draw(st.sampled_from([f"{digest}{sep}{name}", f"# {name}", "", name])))
    end = draw(st.sampled_from(["\n", "\r\n", "\x0b", "\u2028", ""]))
    return end.join(lines)


@FUZZ
@given(any_text | sums_text())
def test_sha256sums_parse_or_fail_with_a_catalog_error(text: str) -> None:
    try:
        pairs = parse_sha256sums(text, "SHA256SUMS")
    except CatalogError as exc:
        _one_line(exc, "SHA256SUMS")
        return
    for sha, name in pairs:
        assert len(sha) == 64 and set(sha) <= set(string.hexdigits.lower()) and name
    entries = entries_from_sha256sums(
        [(name, sha) for sha, name in pairs], lambda n: f"https://example.invalid/{n}"
    )
    for e in entries:
        assert e.file_name and e.archive_format and e.flavour


@FUZZ
@given(st.binary(max_size=3000) | sums_text().map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_a_release_read_through_any_sha256sums_gives_entries_or_a_typed_error(
    tmp_path: Path, data: bytes
) -> None:
    release = tmp_path / "mirror" / "20990101"
    release.mkdir(parents=True, exist_ok=True)
    (release / "SHA256SUMS").write_bytes(data)
    try:
        entries = load_pbs_release("20990101", mirror=str(tmp_path / "mirror"))
    except CatalogError as exc:
        _one_line(exc, "SHA256SUMS")
        return
    assert entries and all(e.build == "20990101" for e in entries)


def _mutate_name(name: str, rnd: random.Random) -> str:
    chars = list(name)
    for _ in range(rnd.randint(1, 3)):
        pos = rnd.randrange(len(chars) + 1)
        op = rnd.choice(["insert", "delete", "replace"])
        ch = rnd.choice("-_+.0123456789abcxyz\u0663\xb2\x00/ \ud800" + "9" * 10)
        if op == "insert":
            chars.insert(pos, ch * rnd.choice([1, 1, 5000]))
        elif chars and pos < len(chars):
            if op == "delete":
                del chars[pos]
            else:
                chars[pos] = ch
    return "".join(chars)


mutated_names = st.builds(_mutate_name, st.sampled_from(REAL_NAMES), st.randoms())


@FUZZ
@given(any_text | tricky_text | mutated_names)
@example("cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz")
@example("cpython-\u0663.\u0661\u0662.\u0661+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz")
@example("cpython-3.12." + "1" * 5000 + "+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz")
def test_any_file_name_is_a_pbs_name_or_none(name: str) -> None:
    parsed = parse_pbs_file_name(name)
    assert parsed is None or isinstance(parsed, PbsName)
    if parsed is not None:
        assert name.isascii()


@settings(max_examples=max(100, EXAMPLES // 3), deadline=None)
@given(
    names=st.lists(
        st.sampled_from(REAL_NAMES) | mutated_names,
        max_size=5,
    ),
    sums=st.binary(max_size=500) | sums_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
)
def test_a_catalog_directory_gives_entries_or_a_catalog_error(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], sums: bytes
) -> None:
    directory = tmp_path_factory.mktemp("dir")
    for name in names:
        if "/" in name or "\x00" in name or not name.strip("."):
            continue
        try:
            (directory / name).write_bytes(b"not an archive")
        except (OSError, UnicodeEncodeError):
            continue  # a name this file system cannot hold
    (directory / "SHA256SUMS").write_bytes(sums)
    try:
        entries = load_local_directory(directory)
    except CatalogError as exc:
        _one_line(exc, str(directory))
        return
    assert entries and all(e.url.startswith("file://") and e.size == 14 for e in entries)


# ---- the cache's records of unpacked sizes


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = make_tar(tmp_path_factory.mktemp("shape") / "a.tar.gz", tiny_interpreter_members())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@settings(max_examples=max(200, EXAMPLES * 2 // 3), deadline=None)
@given(
    record=st.binary(max_size=300)
    | json_values.map(lambda v: _encode(v, True))
    | st.fixed_dictionaries(
        {"unpacked_size": json_values, "file_count": json_values},
        optional={"sha256": st.sampled_from(["0" * 64]) | json_values},
    ).map(lambda v: _encode(v, True))
)
@example(record=b"[" * 100_000)
@example(record=b'{"unpacked_size": 1e999, "file_count": 7}')
@example(record=b'{"unpacked_size": -5, "file_count": 7}')
@example(record=b'{"unpacked_size": true, "file_count": 7}')
@example(record=b" " * 10_000 + b'{"unpacked_size": 1, "file_count": 7}')
def test_a_damaged_shape_record_is_measured_again(
    tmp_path_factory: pytest.TempPathFactory, small_archive: tuple[Path, str], record: bytes
) -> None:
    archive, sha = small_archive
    cache = Cache(tmp_path_factory.mktemp("cache"))
    truth = cache.shape(sha, archive, "tar.gz")
    assert truth.file_count == len(tiny_interpreter_members())
    (cache.shapes / f"{sha}.json").write_bytes(record)
    got = cache.shape(sha, archive, "tar.gz")
    try:
        doc = json.loads(record)
        intact = (
            isinstance(doc, dict)
            and doc.get("sha256", sha) == sha
            and all(type(doc.get(k)) is int and doc[k] >= 0 for k in SHAPE_KEYS)
        )
    except (ValueError, RecursionError):
        intact = False
    if not intact:
        assert got == truth
        assert cache.shape(sha, archive, "tar.gz") == truth  # and it was rewritten
    # the record and its file index, no temporary left
    assert sorted(p.name for p in cache.shapes.iterdir()) == [f"{sha}.files", f"{sha}.json"]


def test_a_shape_record_that_is_a_directory_is_measured_and_left(
    tmp_path: Path, small_archive: tuple[Path, str]
) -> None:
    archive, sha = small_archive
    cache = Cache(tmp_path / "cache")
    (cache.shapes / f"{sha}.json").mkdir()
    assert cache.shape(sha, archive, "tar.gz").file_count == 7
    names = sorted(p.name for p in cache.shapes.iterdir())
    assert names == [f"{sha}.files", f"{sha}.json"]  # no temporary left


# ---- through the real CLI


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[" * 200_000, "nested too deeply"),
        (
            json.dumps(
                {
                    SAMPLE[0]["_key"]: {k: v for k, v in SAMPLE[0].items() if k != "_key"}
                    | {"url": "https://x/\ud800.tar.gz"}
                }
            ).encode(),
            "invalid Unicode in 'url'",
        ),
        (
            json.dumps(
                {SAMPLE[0]["_key"]: {k: v for k, v in SAMPLE[0].items() if k != "_key"}}
                | {"cpython-3.12.1-linux-x86_64-gnu\u2028": {}}
            ).encode(),
            "control characters",
        ),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_the_cli_reports_a_hostile_catalog_in_one_line_with_exit_3(
    tmp_path: Path, content: bytes, words: str
) -> None:
    catalog = tmp_path / "hostile.json"
    catalog.write_bytes(content)
    proc = run_cli("bundle", "--versions", "3.12", "--catalog", str(catalog), "--dry-run")
    assert proc.returncode == 3, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"pybundle: error: catalog {catalog}") and words in line, line
