"""Structure-aware fuzzing of the tar reader and the extractor (hypothesis).

Real tar streams (tarfile's pax and GNU output, a real stdlib directory, hand-built pax
records) are mutated where parsers go wrong: header fields (with the checksum recomputed or
not), pax records (keys, values, lengths), GNU long names, inserted and removed blocks,
truncation, flipped bytes, trailing data. Properties, for every input:

- extraction raises nothing but UnsafeArchiveError (or StorageError), and writes nothing
  outside its destination (no file, no symlink that resolves outside);
- when it succeeds, ``scan_archive`` counts the same members and bytes, and tarfile, if it
  reads the stream at all, reads the same members, data, modes, mtimes and link targets.

A short run is part of the normal suite. ``PYBUNDLE_FUZZ_EXAMPLES=N`` runs N examples per
test instead (``make fuzz``); ``PYBUNDLE_FUZZ_SEED`` fixes the seed to replay a run.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event
from tarbuild import (
    END,
    GNU_MAGIC,
    POSIX_MAGIC,
    compress,
    gnu_long,
    header,
    pax,
    record,
    regular,
    set_checksum,
    tar_bytes,
    tar_tree,
    tiny_tree,
)

from conftest import tar_dir, tar_file, tar_link, tiny_interpreter_members
from pybundle.archives import scan_archive
from pybundle.errors import StorageError, UnsafeArchiveError
from pybundle.installer.extract import extract_archive
from pybundle.tarstream import DIR, FILE, TarStream

EXAMPLES = int(os.environ.get("PYBUNDLE_FUZZ_EXAMPLES", "200"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_SEED = os.environ.get("PYBUNDLE_FUZZ_SEED")


def _maybe_seeded(test: Callable[..., Any]) -> Callable[..., Any]:
    return seed(int(_SEED))(test) if _SEED else test


# ---- seeds: real tar streams ------------------------------------------------------------------


def _seeds() -> list[bytes]:
    members = [
        *tiny_interpreter_members(),
        tar_file("python/lib/" + "n" * 120 + ".py", b"long name\n"),
        tar_link("python/lib/" + "k" * 110, "python3.12/" + "t" * 105),
        tar_link("python/lib/hard", "python/bin/python3.12", hard=True),
        tar_dir("python/lib/é"),
        tar_file("python/lib/é/data", os.urandom(3000), 0o755),
    ]
    json_dir = Path(sys.base_prefix, "lib", f"python3.{sys.version_info[1]}", "json")
    return [
        tar_bytes(members, tarfile.PAX_FORMAT),
        tar_bytes(members, tarfile.GNU_FORMAT),
        tar_tree(json_dir),  # real files, float mtimes: a pax header per member
        tiny_tree()
        + pax([record(b"path", b"python/lib/p"), record(b"mtime", b"1700000000.25")])
        + regular(b"python/lib/ignored", b"pax data")
        + gnu_long(b"python/lib/" + b"g" * 150)
        + regular(b"././@LongLink", b"gnu data", magic=GNU_MAGIC)
        + END,
    ]


SEEDS = _seeds()

# ---- mutations ----------------------------------------------------------------------------------

FIELDS = {  # (offset, length) in a header block
    "name": (0, 100),
    "mode": (100, 8),
    "uid": (108, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "chksum": (148, 8),
    "typeflag": (156, 1),
    "linkname": (157, 100),
    "magic": (257, 8),
    "prefix": (345, 155),
}
NUMBERS = [0, 1, 7, 511, 512, 513, 4096, 2**20, 2**33 - 1, 2**33, 2**62, 2**63, 8**11 - 1]
INTERESTING = st.one_of(
    st.sampled_from(
        [
            b"",
            b" ",
            b"\0",
            b"-1",
            b"9" * 12,
            b"\x80" + bytes(10) + b"\x05",
            b"\x80" + b"\xff" * 11,
            b"\xff" * 12,
            b"0000644\0",
            b"../../escape",
            b"/tmp/escape",
            b"python/../../escape",
            b"python/a/../../../escape",
            b"python/bin",
            b"python/bin/python3",
            POSIX_MAGIC,
            GNU_MAGIC,
            b"\xff\xfe",
        ]
    ),
    st.sampled_from(NUMBERS).map(lambda n: b"%011o\0" % n if n < 8**11 else b"%o" % n),
    st.sampled_from(b"0123456789ADEGKLMSVXxgZ\0").map(lambda c: bytes([c])),
    st.binary(max_size=16),
)
PAX_KEYS = st.sampled_from(
    [
        b"path",
        b"linkpath",
        b"size",
        b"mtime",
        b"atime",
        b"uid",
        b"uname",
        b"hdrcharset",
        b"comment",
        b"SCHILY.xattr.user.a",
        b"GNU.sparse.major",
        b"GNU.sparse.size",
        b"SCHILY.realsize",
        b"VENDOR.unknown",
        b"",
        b"pa=th",
    ]
)
PAX_VALUES = st.one_of(
    st.sampled_from(
        [
            b"python/bin/x",
            b"python/../../escape",
            b"/etc/passwd",
            b"../../victim",
            b"python/bin",
            b"python3.12",
            b"0",
            b"-1",
            b"nan",
            b"inf",
            b"1e9",
            b"1700000000.5",
            b"99999999999999999999",
            b"%d" % 2**33,
            b"5",
            b"512",
            b"1000000000000",
            b"\xff\xfe",
            b"BINARY",
            b"ISO-IR 10646 2000 UTF-8",
        ]
    ),
    st.binary(max_size=24),
)


def _headers(data: bytes) -> list[int]:
    """Offsets of the header blocks of ``data``, walked as far as the sizes make sense."""
    offsets: list[int] = []
    pos = 0
    while pos + 512 <= len(data) and len(offsets) < 64:
        block = data[pos : pos + 512]
        if block == bytes(512):
            break
        offsets.append(pos)
        digits = block[124:136].split(b"\0")[0].strip()
        try:
            size = int(digits or b"0", 8)
        except ValueError:
            break
        pos += 512 + size + (-size % 512)
    return offsets


@st.composite
def _field_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    offsets = _headers(data)
    if not offsets:
        return data
    at = draw(st.sampled_from(offsets))
    start, length = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
    value = draw(INTERESTING)[:length].ljust(length, b"\0") if draw(st.booleans()) else None
    block = bytearray(data[at : at + 512])
    if value is None:  # overwrite part of the field with random bytes
        raw = draw(st.binary(min_size=1, max_size=length))
        block[start : start + len(raw)] = raw
    else:
        block[start : start + length] = value
    if start != 148 and draw(st.integers(0, 9)) < 8:  # usually keep the checksum valid
        set_checksum(block, draw(st.sampled_from(["unsigned", "unsigned", "signed"])))
    return data[:at] + bytes(block) + data[at + 512 :]


@st.composite
def _pax_records(draw: st.DrawFn) -> bytes:
    records = []
    for _ in range(draw(st.integers(1, 4))):
        key, value = draw(PAX_KEYS), draw(PAX_VALUES)
        rec = record(key, value)
        how = draw(st.integers(0, 9))
        if how == 0:  # a wrong length
            rec = (
                str(int(rec.split(b" ")[0]) + draw(st.integers(-3, 3))).encode()
                + rec[rec.index(b" ") :]
            )
        elif how == 1:
            rec = rec[:-1]  # no newline
        records.append(rec)
    return b"".join(records)


@st.composite
def _insert_extended(draw: st.DrawFn, data: bytes) -> bytes:
    offsets = _headers(data) or [0]
    at = draw(st.sampled_from(offsets))
    kind = draw(st.sampled_from(["x", "g", "L", "K"]))
    if kind in ("x", "g"):
        block = pax(draw(_pax_records()), kind.encode())
    else:
        block = gnu_long(draw(PAX_VALUES), kind.encode())
    return data[:at] + block + data[at:]


@st.composite
def _block_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    blocks = max(1, len(data) // 512)
    how = draw(st.sampled_from(["truncate", "cut-block", "drop", "duplicate", "flip", "append"]))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if how == "cut-block":
        return data[: 512 * draw(st.integers(0, blocks))]
    if how in ("drop", "duplicate"):
        i = draw(st.integers(0, blocks - 1))
        n = draw(st.integers(1, 3))
        chunk = data[512 * i : 512 * (i + n)]
        rest = data[512 * (i + n) :]
        return data[: 512 * i] + (chunk + chunk if how == "duplicate" else b"") + rest
    if how == "flip":
        if not data:
            return data
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    tail = draw(st.one_of(st.binary(max_size=600), st.just(bytes(4096)), st.just(END)))
    return data + tail


@st.composite
def hostile_tar(draw: st.DrawFn) -> bytes:
    """A real tar stream with one to three structure-aware mutations."""
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        kind = draw(st.sampled_from(["field", "field", "pax", "block"]))
        if kind == "field":
            data = draw(_field_mutation(data))
        elif kind == "pax":
            data = draw(_insert_extended(data))
        else:
            data = draw(_block_mutation(data))
    return data


# ---- the properties -----------------------------------------------------------------------------


def _tarfile_view(raw: bytes) -> list[tuple[Any, ...]] | None:
    """What tarfile reads from ``raw``, or None if it refuses it in any way."""
    out = []
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r|") as tar:
            for m in tar:
                data = tar.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
                out.append(
                    (
                        m.name.rstrip("/"),
                        m.isfile(),
                        m.isdir(),
                        m.size if m.isfile() else 0,
                        m.linkname if (m.issym() or m.islnk()) else "",
                        hashlib.sha256(data).hexdigest(),
                        m.mode & 0o7777,  # the permission bits; the rest is ignored
                        m.mtime,
                    )
                )
    except Exception:  # tarfile's own failures on hostile input are not our concern
        return None
    return out


def _our_view(raw: bytes) -> list[tuple[Any, ...]]:
    pieces = iter([raw[i : i + 1000] for i in range(0, len(raw), 1000)])
    stream = TarStream(lambda: next(pieces, b""), "fuzz")
    out = []
    for m in stream:
        data = bytes(stream.read_data()) if m.kind == FILE else b""
        out.append(
            (
                m.name.rstrip("/"),
                m.kind == FILE,
                m.kind == DIR,
                m.size,
                m.linkname,
                hashlib.sha256(data).hexdigest(),
                m.mode,
                m.mtime_ns,
            )
        )
    return out


def _event(name: str) -> None:
    """Count outcomes in hypothesis's statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(name)


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def check_stream(raw: bytes, archive_format: str = "tar.gz") -> int:
    """The fuzzer's properties for one uncompressed tar stream; returns the number of
    members extracted (0 when the stream was refused). With ``PYBUNDLE_FUZZ_CORPUS=DIR``, an
    input that fails is kept as ``DIR/<sha256 prefix>.tar`` (replayed by this module)."""
    try:
        return _check_stream(raw, archive_format)
    except BaseException:
        corpus = os.environ.get("PYBUNDLE_FUZZ_CORPUS")
        if corpus:
            Path(corpus).mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(raw).hexdigest()[:16]
            Path(corpus, f"{name}.tar").write_bytes(raw)
        raise


def _check_stream(raw: bytes, archive_format: str) -> int:
    with tempfile.TemporaryDirectory(prefix="pybundle-fuzz-") as tmp:
        work = Path(tmp)
        archive = work / f"fuzz.{archive_format}"
        archive.write_bytes(compress(raw, archive_format))
        sentinel = work / "victim"
        sentinel.write_text("untouched")
        dest = work / "dest"
        dest.mkdir()
        stats = None
        try:
            with open(archive, "rb") as stream:
                stats = extract_archive(
                    stream,
                    archive_format,
                    "python",
                    dest,
                    source=str(archive),
                    max_bytes=50_000_000,
                    max_entries=500,
                    record_files=True,
                )
        except (UnsafeArchiveError, StorageError) as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(archive))
            _event("refused")
        assert sorted(p.name for p in work.iterdir()) == ["dest", archive.name, "victim"]
        assert sentinel.read_text() == "untouched"
        for path in dest.rglob("*"):
            assert _inside(path, dest), path
        if stats is None:
            return 0
        _event("extracted")
        with open(archive, "rb") as stream:
            shape = scan_archive(stream, archive_format, str(archive))
        assert (shape.file_count, shape.unpacked_size) == (stats.entries, stats.archive_bytes)
        ours = _our_view(raw)
        theirs = _tarfile_view(raw)
        if theirs is not None:
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                assert a[:7] == b[:7], (a, b)
                assert abs(a[7] - b[7] * 1e9) < 1000, (a, b)
        return stats.entries


CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "tarstream"


def test_kept_failing_inputs_now_pass() -> None:
    """Inputs the fuzzer once failed on (tests/corpus/tarstream/*.tar), replayed."""
    for path in sorted(CORPUS.glob("*.tar")):
        check_stream(path.read_bytes())


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seeds_are_valid_archives(index: int) -> None:
    """Unmutated, every seed extracts and reads like tarfile (else the fuzzer would only test
    refusals)."""
    assert check_stream(SEEDS[index]) > 3


@_maybe_seeded
@FUZZ_SETTINGS
@given(raw=hostile_tar(), archive_format=st.sampled_from(["tar.gz", "tar.gz", "tar.zst"]))
def test_mutated_real_streams_fail_only_as_documented(raw: bytes, archive_format: str) -> None:
    check_stream(raw, archive_format)


@_maybe_seeded
@FUZZ_SETTINGS
@given(
    prefix=st.sampled_from(SEEDS).map(lambda s: s[: 512 * 4]),
    records=_pax_records(),
    member=st.sampled_from(
        [
            regular(b"python/bin/x", b"data"),
            header(b"python/bin/l", typeflag=b"2", linkname=b"python3.12"),
            header(b"python/bin/h", typeflag=b"1", linkname=b"python/bin/python3.12"),
            header(b"python/d", typeflag=b"5"),
        ]
    ),
    tail=st.sampled_from([END, END + bytes(10240), b"", bytes(512)]),
)
def test_pax_records_fail_only_as_documented(
    prefix: bytes, records: bytes, member: bytes, tail: bytes
) -> None:
    """Pax records of every key and value in front of each member type."""
    offsets = _headers(prefix)
    head = prefix[: offsets[-1]] if len(offsets) > 1 else b""
    check_stream(head + pax(records) + member + tail)
