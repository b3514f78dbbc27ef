"""The strict tar reader (pybundle.tarstream) and the extractor built on it.

- differential: every real archive the suite has, and synthetic ones in every format tarfile
  writes, read by our reader and by tarfile: same members, bytes, modes, mtimes, link targets;
  and extracted by us: the tree on disk (and the file records) says the same;
- hostile corpus: every malformed or ambiguous stream is refused with UnsafeArchiveError, one
  line naming the archive, and nothing is written outside the destination.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tarbuild import (
    END,
    GNU_MAGIC,
    POSIX_MAGIC,
    compress,
    directory,
    gnu_long,
    header,
    pad,
    pax,
    record,
    regular,
    tar_bytes,
    tar_tree,
    tiny_tree,
)

from conftest import RealArchive, run_cli, tar_dir, tar_file, tar_link, tiny_interpreter_members
from pybundle.archives import open_decompressed, scan_archive
from pybundle.errors import UnsafeArchiveError
from pybundle.installer.extract import ExtractStats, FileRecord, extract_archive
from pybundle.tarstream import DIR, FILE, HARDLINK, SYMLINK, TarStream

BUDGET = {"max_bytes": 100 * 1024 * 1024, "max_entries": 10_000}

# ---- the differential test against tarfile ---------------------------------------------------


def _chunks(data: bytes, size: int) -> Any:
    """A feed delivering ``data`` in pieces of ``size`` bytes (headers straddle pieces)."""
    pieces = iter([data[i : i + size] for i in range(0, len(data), size)])
    return lambda: next(pieces, b"")


def _ours(raw_tar: bytes, chunk: int = 256 * 1024) -> list[tuple[Any, ...]]:
    stream = TarStream(_chunks(raw_tar, chunk), "test")
    out = []
    for m in stream:
        digest = hashlib.sha256()
        if m.kind == FILE:
            for piece in stream.iter_data(100_000):
                digest.update(piece)
        out.append((m.name, m.kind, m.mode, m.size, m.mtime_ns, m.linkname, digest.hexdigest()))
    return out


_TARFILE_KINDS = {tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: SYMLINK, tarfile.LNKTYPE: HARDLINK}


def _theirs(raw_tar: bytes) -> list[tuple[Any, ...]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw_tar), mode="r|") as tar:
        for m in tar:
            digest = hashlib.sha256()
            if m.isfile():
                digest.update(tar.extractfile(m).read())  # type: ignore[union-attr]
            kind = FILE if m.isfile() else _TARFILE_KINDS[m.type]
            name = m.name + "/" if m.isdir() and not m.name.endswith("/") else m.name
            out.append((name, kind, m.mode, m.size, m.mtime, m.linkname, digest.hexdigest()))
    return out


def _same_mtime(ours_ns: int, theirs: float) -> bool:
    """tarfile keeps a pax mtime as a float; we keep its decimal digits (to the ns)."""
    if isinstance(theirs, int):
        return ours_ns == theirs * 1_000_000_000
    return abs(ours_ns - theirs * 1e9) < 1_000


def assert_reads_like_tarfile(raw_tar: bytes) -> int:
    """Compare our reader with tarfile on one stream; return the member count."""
    theirs = _theirs(raw_tar)
    for chunk in (256 * 1024, 777):  # chunk boundaries anywhere in headers and data
        ours = _ours(raw_tar, chunk)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            name = a[0] + "/" if a[1] == DIR and not a[0].endswith("/") else a[0]
            assert (name, a[1], a[2], a[3], a[5], a[6]) == (b[0], b[1], b[2], b[3], b[5], b[6])
            assert _same_mtime(a[4], b[4]), (a, b)
    return len(theirs)


def _disk_tree(dest: Path) -> dict[str, tuple[Any, ...]]:
    tree: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(dest).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = ("l", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                tree[rel] = ("f", stat.S_IMODE(st.st_mode), digest, st.st_mtime_ns, st.st_ino)
    return tree


def assert_extracts_like_tarfile(
    raw_tar: bytes, tmp_path: Path, archive_format: str = "tar.gz", strip: str = "python"
) -> ExtractStats:
    """Extract with pybundle; compare the tree on disk and the file records with what
    tarfile reads from the same stream."""
    archive = tmp_path / f"diff.{archive_format}"
    archive.write_bytes(compress(raw_tar, archive_format))
    return assert_archive_extracts_like_tarfile(archive, archive_format, tmp_path, strip)


def assert_archive_extracts_like_tarfile(
    archive: Path, archive_format: str, tmp_path: Path, strip: str = "python"
) -> ExtractStats:
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream:
        stats = extract_archive(
            stream,
            archive_format,
            strip,
            dest,
            source=str(archive),
            max_bytes=10**10,
            max_entries=10**6,
            record_files=True,
        )
    tree = _disk_tree(dest)
    expected: dict[str, Any] = {}
    inode_of: dict[str, int] = {}
    members = 0
    with (
        open(archive, "rb") as raw,
        open_decompressed(raw, archive_format) as plain,
        tarfile.open(fileobj=plain, mode="r|") as tar,
    ):
        for m in tar:
            members += 1
            rel = m.name.rstrip("/")[len(strip) + 1 :]
            if not m.name.startswith(strip + "/") or not rel:
                continue
            if m.isdir():
                expected[rel] = ("d", 0o755)
            elif m.issym():
                expected[rel] = ("l", m.linkname)
            elif m.islnk():
                target = m.linkname[len(strip) + 1 :]
                expected[rel] = expected[target]
                inode_of[rel] = tree[target][4]
            else:
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                mode = 0o755 if m.mode & 0o111 else 0o644
                expected[rel] = ("f", mode, hashlib.sha256(data).hexdigest(), m.mtime)
    assert stats.entries == members
    for rel in list(expected):  # parents the archive does not list are made 0755
        parts = rel.split("/")
        for i in range(1, len(parts)):
            expected.setdefault("/".join(parts[:i]), ("d", 0o755))
    assert set(tree) == set(expected)
    for rel, want in expected.items():
        got = tree[rel]
        if want[0] == "f":
            assert got[:3] == want[:3], rel
            assert _same_mtime(got[3], want[3]), (rel, got[3], want[3])
        else:
            assert got == want, rel
    for rel, ino in inode_of.items():
        assert tree[rel][4] == ino, rel
    records = {r.path: r for r in stats.records}
    assert set(records) == set(tree)
    for rel, rec in records.items():
        on_disk = tree[rel]
        if rec.kind in ("file", "hardlink"):
            assert (rec.mode, rec.sha256) == on_disk[1:3], rel
            assert rec.size == (dest / rel).stat().st_size
        elif rec.kind == "symlink":
            assert on_disk == ("l", rec.target)
        else:
            assert on_disk == ("d", rec.mode) and rec.kind == "dir"
    return stats


@pytest.mark.slow
def test_real_archives_read_and_extract_like_tarfile(
    real_archives: list[RealArchive], tmp_path: Path
) -> None:
    """Every real archive the suite packs (gzip and zstd): the same members as tarfile, and
    an extracted tree with the same bytes, modes, mtimes and links."""
    for i, real in enumerate(real_archives):
        fmt = real.artifact.archive_format
        with open(real.path, "rb") as raw, open_decompressed(raw, fmt) as plain:
            raw_tar = plain.read()
        count = assert_reads_like_tarfile(raw_tar)
        assert count == real.artifact.file_count
        work = tmp_path / str(i)
        work.mkdir()
        stats = assert_archive_extracts_like_tarfile(real.path, fmt, work)
        assert stats.archive_bytes == real.artifact.unpacked_size
        with open(real.path, "rb") as raw:
            shape = scan_archive(raw, fmt, str(real.path))
        assert (shape.file_count, shape.unpacked_size) == (count, stats.archive_bytes)


def _synthetic_members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    long_dir = "python/lib/" + "/".join(["deep-directory-name"] * 8)
    members = [
        *tiny_interpreter_members(),
        tar_dir("python/lib/données"),
        tar_file("python/lib/données/é.txt", "non-ASCII ✓".encode()),
        tar_file("python/lib/empty", b""),
        tar_file("python/lib/one-mib", os.urandom(1024 * 1024)),
        tar_file("python/lib/one-mib-and-one", os.urandom(1024 * 1024 + 1), 0o755),
        tar_file("python/lib/three-mib", os.urandom(3 * 1024 * 1024 + 17)),
        tar_file(f"{long_dir}/{'f' * 90}.py", b"print('long')\n"),
        tar_file(f"python/lib/{'a' * 60}/{'b' * 70}.txt", b"ustar: prefix + name"),
        tar_link(f"python/lib/{'l' * 120}", "données/é.txt"),
        tar_link("python/lib/hard", "python/lib/données/é.txt", hard=True),
        tar_file("python/lib/fraction", b"t"),
    ]
    members[-1][0].mtime = 1_700_000_000.123456  # type: ignore[assignment]
    return members


@pytest.mark.parametrize(
    "fmt",
    [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT],
    ids=["pax", "gnu", "ustar"],
)
def test_synthetic_formats_read_and_extract_like_tarfile(tmp_path: Path, fmt: int) -> None:
    """Long names (pax path / GNU L / ustar prefix), long links (pax linkpath / GNU K),
    non-ASCII names, fractional mtimes, hard links, files around the 1 MiB streaming size."""
    members = _synthetic_members()
    if fmt == tarfile.USTAR_FORMAT:  # short names and links, ASCII, whole-second mtimes
        members = [
            (i, d)
            for i, d in members
            if len(i.linkname) <= 100
            and len(i.name) <= 200
            and i.name.isascii()
            and i.linkname.isascii()
        ]
        members[-1][0].mtime = 1_700_000_000
    raw_tar = tar_bytes(members, fmt)
    assert_reads_like_tarfile(raw_tar)
    assert_extracts_like_tarfile(raw_tar, tmp_path)


@pytest.mark.parametrize("archive_format", ["tar.gz", "tar.zst"])
def test_a_real_directory_as_tarfile_packs_it(tmp_path: Path, archive_format: str) -> None:
    """A real stdlib package packed by tarfile's defaults: float mtimes (a pax mtime record
    per member), the real modes, owners and names."""
    raw_tar = tar_tree(Path(sys.base_prefix, "lib", f"python3.{sys.version_info[1]}", "json"))
    assert assert_reads_like_tarfile(raw_tar) > 5
    assert_extracts_like_tarfile(raw_tar, tmp_path, archive_format)


def test_file_records_are_optional(tmp_path: Path) -> None:
    raw_tar = tar_bytes(_synthetic_members())
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(compress(raw_tar))
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream:
        stats = extract_archive(stream, "tar.gz", "python", dest, source="a", **BUDGET)
    assert stats.records == [] and stats.files > 5
    work = tmp_path / "with-records"
    work.mkdir()
    records = assert_extracts_like_tarfile(raw_tar, work).records
    by_path = {r.path: r for r in records}
    assert by_path["lib/hard"] == FileRecord(
        "lib/hard",
        "hardlink",
        0o644,
        len("non-ASCII ✓".encode()),
        hashlib.sha256("non-ASCII ✓".encode()).hexdigest(),
        "lib/données/é.txt",
    )
    assert by_path["bin/python3"] == FileRecord(
        "bin/python3", "symlink", 0o777, target="python3.12"
    )
    assert by_path["bin"] == FileRecord("bin", "dir", 0o755)


# ---- hostile corpus ---------------------------------------------------------------------------

F = regular(b"python/bin/ok", b"ok")
HUGE = b"\x80" + (2**70).to_bytes(11, "big")

HOSTILE: dict[str, bytes] = {
    # headers
    "bad-checksum": header(b"python/x", checksum="bad") + END,
    "checksum-not-octal": bytes(
        bytearray(header(b"python/x"))[:148] + b"09999\0 \0" + header(b"python/x")[156:]
    )
    + END,
    "truncated-header": tiny_tree() + header(b"python/bin/y")[:300],
    "truncated-data": tiny_tree() + header(b"python/bin/y", size=5000) + bytes(1024),
    "no-end-marker": tiny_tree(),
    "lone-zero-block": tiny_tree() + bytes(512),
    "lone-zero-block-then-member": tiny_tree() + bytes(512) + F + END,
    "trailing-garbage": tiny_tree() + END + b"garbage" + bytes(505),
    "trailing-member": tiny_tree() + END + F,
    # type NUL with a name ending in "/": a directory to tarfile whatever the pax path says
    # (found by the fuzzer: tarfile made a directory where the pax path made this a file)
    "old-style-file-named-as-dir": header(b"python/", typeflag=b"\0") + END,
    "old-style-file-named-as-dir-pax-path": pax(record(b"path", b"python/bin/x"))
    + header(b"python/", typeflag=b"\0")
    + END,
    "old-style-file-named-as-dir-long-name": gnu_long(b"python/bin/x")
    + header(b"python/", typeflag=b"\0", magic=GNU_MAGIC)
    + END,
    "too-much-zero-padding": tiny_tree() + END + bytes(2 * 1024 * 1024),
    "empty-stream": b"",
    "only-zeros-but-one-block": bytes(512),
    "v7-header-no-magic": header(b"python/x", magic=bytes(8)) + END,
    "unknown-magic": header(b"python/x", magic=b"ustar\x0001") + END,
    "gnu-header-with-atime": header(b"python/x", magic=GNU_MAGIC, prefix=b"01234567") + END,
    # numeric fields
    "size-not-octal": header(b"python/x", size_field=b"0000000001x\0") + END,
    "size-with-8": header(b"python/x", size_field=b"00000000018\0") + END,
    "size-base256-negative": header(b"python/x", size_field=b"\xff" * 12) + END,
    "size-base256-huge": header(b"python/x", size_field=HUGE) + END,
    "size-base256-over-budget": header(
        b"python/x", size_field=b"\x80" + (10**12).to_bytes(11, "big")
    )
    + END,
    "size-base256-bad-lead": header(b"python/x", size_field=b"\x81" + bytes(11)) + END,
    "mtime-base256-huge": header(b"python/x", mtime_field=HUGE) + END,
    "mode-not-octal": header(b"python/x", mode=b"0000abc\0") + END,
    # types
    "gnu-sparse": header(b"python/x", typeflag=b"S", magic=GNU_MAGIC) + END,
    "unknown-typeflag": header(b"python/x", typeflag=b"Z") + END,
    "gnu-dumpdir": header(b"python/x", typeflag=b"D", magic=GNU_MAGIC) + END,
    "gnu-volume-label": header(b"python/x", typeflag=b"V", magic=GNU_MAGIC) + END,
    "gnu-multivolume": header(b"python/x", typeflag=b"M", magic=GNU_MAGIC) + END,
    "solaris-extended": header(b"python/x", typeflag=b"X") + END,
    "fifo": directory(b"python/") + header(b"python/fifo", typeflag=b"6") + END,
    "chardev": directory(b"python/") + header(b"python/null", typeflag=b"3") + END,
    "directory-with-data": header(b"python/d/", typeflag=b"5", size=512) + bytes(512) + END,
    "symlink-with-data": header(b"python/s", typeflag=b"2", linkname=b"x", size=1)
    + pad(b"x")
    + END,
    "file-name-ends-with-slash": regular(b"python/x/", b"data") + END,
    "non-utf8-ustar-name": regular(b"python/\xff\xfe") + END,
    # pax records
    "pax-length-not-digits": pax(b"1a path=python/y\n") + F + END,
    "pax-length-zero": pax(b"0 path=python/y\n") + F + END,
    "pax-length-leading-zero": pax(b"020 path=python/yy\n") + F + END,
    "pax-length-beyond-header": pax(b"99 path=python/y\n") + F + END,
    "pax-length-too-short": pax(b"5 path=python/y\n") + F + END,
    "pax-missing-equals": pax(b"16 pathpython/y\n") + F + END,
    "pax-empty-key": pax(b"13 =python/y\n") + F + END,
    "pax-no-newline": pax(b"17 path=python/yy") + F + END,
    "pax-trailing-nuls": pax(record(b"path", b"python/y") + bytes(10)) + F + END,
    "pax-non-utf8-path": pax([record(b"path", b"python/\xff")]) + F + END,
    "pax-non-utf8-linkpath": pax([record(b"linkpath", b"\xc3(")])
    + header(b"python/l", typeflag=b"2", linkname=b"x")
    + END,
    "pax-hdrcharset-binary": pax([record(b"hdrcharset", b"BINARY")]) + F + END,
    "pax-huge-size": pax([record(b"size", b"9" * 30)]) + F + END,
    "pax-size-not-digits": pax([record(b"size", b"12k")]) + F + END,
    "pax-size-negative": pax([record(b"size", b"-1")]) + F + END,
    "pax-size-over-budget": pax([record(b"size", b"%d" % 10**11)]) + F + END,
    "pax-size-beyond-data": pax([record(b"size", b"4096")]) + F + END,
    "pax-mtime-beyond-time-t": pax([record(b"mtime", b"99999999999999999999")]) + F + END,
    "pax-mtime-beyond-2-33": pax([record(b"mtime", b"%d" % 2**33)]) + F + END,
    "pax-mtime-negative": pax([record(b"mtime", b"-1")]) + F + END,
    "pax-mtime-nan": pax([record(b"mtime", b"nan")]) + F + END,
    "pax-mtime-inf": pax([record(b"mtime", b"inf")]) + F + END,
    "pax-mtime-exponent": pax([record(b"mtime", b"1e9")]) + F + END,
    "pax-mtime-empty-fraction": pax([record(b"mtime", b"1700000000.")]) + F + END,
    "pax-mtime-two-dots": pax([record(b"mtime", b"1.2.3")]) + F + END,
    "pax-key-twice": pax([record(b"path", b"python/a"), record(b"path", b"python/b")]) + F + END,
    "pax-unknown-key": pax([record(b"VENDOR.thing", b"1")]) + F + END,
    "pax-gnu-sparse-keys": pax([record(b"GNU.sparse.major", b"1")]) + F + END,
    "pax-schily-realsize": pax([record(b"SCHILY.realsize", b"10")]) + F + END,
    "pax-header-too-large": header(b"././@PaxHeader", typeflag=b"x", size=2 * 1024 * 1024)
    + bytes(2 * 1024 * 1024)
    + F
    + END,
    "pax-header-truncated": header(b"././@PaxHeader", typeflag=b"x", size=4096) + bytes(512),
    "pax-header-then-end": tiny_tree() + pax([record(b"path", b"python/y")]) + END,
    "two-pax-headers": pax([record(b"mtime", b"1")]) + pax([record(b"mtime", b"2")]) + F + END,
    "global-pax-sets-path": pax([record(b"path", b"python/y")], b"g") + F + END,
    "global-pax-between-headers": pax([record(b"mtime", b"1")])
    + pax([record(b"comment", b"hi")], b"g")
    + F
    + END,
    "pax-path-escapes": pax([record(b"path", b"python/../../escape")]) + F + END,
    "pax-linkpath-escapes": directory(b"python/")
    + pax([record(b"linkpath", b"../../victim")])
    + header(b"python/l", typeflag=b"2", linkname=b"ok")
    + END,
    "pax-hardlink-outside": directory(b"python/")
    + pax([record(b"linkpath", b"python/../victim")])
    + header(b"python/h", typeflag=b"1", linkname=b"python/ok")
    + END,
    # GNU long names
    "long-name-twice": gnu_long(b"python/a") + gnu_long(b"python/b") + F + END,
    "long-link-twice": gnu_long(b"a", b"K") + gnu_long(b"b", b"K") + F + END,
    "long-name-then-end": tiny_tree() + gnu_long(b"python/a") + END,
    "long-name-and-pax-path": gnu_long(b"python/a") + pax([record(b"path", b"python/b")]) + F + END,
    "long-link-and-pax-linkpath": gnu_long(b"x", b"K")
    + pax([record(b"linkpath", b"y")])
    + header(b"python/l", typeflag=b"2", linkname=b"z")
    + END,
    "long-name-escapes": gnu_long(b"python/../../escape") + F + END,
    "long-name-absolute": gnu_long(b"/tmp/escape") + F + END,
    "long-link-symlink-outside": directory(b"python/")
    + gnu_long(b"../" * 40 + b"etc", b"K")
    + header(b"python/l", typeflag=b"2", linkname=b"ok", magic=GNU_MAGIC)
    + END,
    "long-name-huge": header(b"././@LongLink", typeflag=b"L", size=2 * 1024 * 1024, magic=GNU_MAGIC)
    + bytes(2 * 1024 * 1024)
    + END,
    # allowlist, through the new reader
    "hardlink-to-outside": directory(b"python/")
    + header(b"python/h", typeflag=b"1", linkname=b"../victim")
    + END,
    "symlink-to-outside": directory(b"python/")
    + header(b"python/s", typeflag=b"2", linkname=b"../../victim")
    + END,
    "write-through-symlink": directory(b"python/")
    + header(b"python/s", typeflag=b"2", linkname=b".")
    + regular(b"python/s/x")
    + END,
}


def _outside(tmp_path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(tmp_path).as_posix(): p.read_bytes() if p.is_file() else b""
        for p in tmp_path.rglob("*")
        if "dest" not in p.relative_to(tmp_path).parts
    }


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("archive_format", ["tar.gz", "tar.zst"])
def test_hostile_streams_are_refused(tmp_path: Path, case: str, archive_format: str) -> None:
    (tmp_path / "victim").write_text("untouched")
    archive = tmp_path / f"hostile-{case}.{archive_format}"
    archive.write_bytes(compress(HOSTILE[case], archive_format))
    before = _outside(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream, pytest.raises(UnsafeArchiveError) as info:
        extract_archive(
            stream,
            archive_format,
            "python",
            dest,
            source=str(archive),
            max_bytes=10**9,
            max_entries=100,
        )
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{archive}: ")
    assert info.value.exit_code == 6
    assert _outside(tmp_path) == before
    assert not (tmp_path / "escape").exists() and not Path("/tmp/escape").exists()
    written = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert written < 10_000


def test_messages_name_the_archive_and_the_member(tmp_path: Path) -> None:
    raw = tiny_tree() + pax([record(b"mtime", b"99999999999999999999")]) + F + END
    with pytest.raises(UnsafeArchiveError) as info:
        list(TarStream(_chunks(raw, 4096), "bundle.pybundle: archives/x.tar.gz"))
    message = str(info.value)
    assert message.startswith("bundle.pybundle: archives/x.tar.gz: ")
    assert "member 'python/bin/ok'" in message and "mtime" in message


@pytest.mark.parametrize("case", ["bad-checksum", "pax-unknown-key", "no-end-marker"])
def test_scan_archive_refuses_what_the_reader_refuses(tmp_path: Path, case: str) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(compress(HOSTILE[case]))
    with open(archive, "rb") as stream, pytest.raises(UnsafeArchiveError, match=str(archive)):
        scan_archive(stream, "tar.gz", str(archive))


# ---- accepted edge cases ------------------------------------------------------------------------


def _extract_raw(tmp_path: Path, raw: bytes) -> Path:
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(compress(raw))
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream:
        extract_archive(stream, "tar.gz", "python", dest, source=str(archive), **BUDGET)
    return dest


def test_signed_checksums_and_base256_sizes_are_read(tmp_path: Path) -> None:
    """Old Sun tar summed signed bytes; GNU tar writes sizes >= 8 GiB in base-256."""
    high_name = "python/bin/é".encode()
    raw = (
        tiny_tree()
        + header(high_name, size=3, checksum="signed")
        + pad(b"abc")
        + header(b"python/bin/b256", size_field=b"\x80" + (5).to_bytes(11, "big"))
        + pad(b"12345")
        + END
        + bytes(8192)
    )
    dest = _extract_raw(tmp_path, raw)
    assert (dest / "bin/é").read_bytes() == b"abc"
    assert (dest / "bin/b256").read_bytes() == b"12345"


def test_pax_wins_over_the_ustar_fields(tmp_path: Path) -> None:
    """Like tarfile and GNU tar, pax ``path``/``size``/``mtime`` override the ustar fields;
    the overridden ustar name is not used, so it is not checked either."""
    raw = (
        tiny_tree()
        + pax(
            [
                record(b"path", b"python/bin/real"),
                record(b"size", b"5"),
                record(b"mtime", b"1600000000.5"),
                record(b"atime", b"1.5"),
                record(b"uname", b"\xff-not-utf8"),
                record(b"SCHILY.xattr.user.x", b"\x00\x01binary"),
                record(b"LIBARCHIVE.xattr.user.y", b"eQ=="),
                record(b"hdrcharset", b"ISO-IR 10646 2000 UTF-8"),
            ]
        )
        + header(b"../ignored-ustar-name", size=0)
        + pad(b"hello")
        + pax([record(b"comment", b"git archive")], b"g")
        + END
    )
    dest = _extract_raw(tmp_path, raw)
    real = dest / "bin/real"
    assert real.read_bytes() == b"hello"
    assert real.stat().st_mtime_ns == 1_600_000_000_500_000_000
    assert not (tmp_path / "ignored-ustar-name").exists()


def test_a_type_0_file_whose_header_name_ends_with_a_slash_is_a_file_like_tarfile() -> None:
    """GNU tar cuts a long name at 100 bytes, maybe just after a "/", and puts the whole name
    in a long-name (or pax) header: with type "0" (not the old NUL), tarfile reads a file, and
    so do we. Only type NUL with such a name is refused (see the hostile corpus)."""
    for long_name, magic in (
        (pax(record(b"path", b"python/x")), POSIX_MAGIC),
        (gnu_long(b"python/x"), GNU_MAGIC),
    ):
        raw = tiny_tree() + long_name + regular(b"python/", b"ok", magic=magic) + END
        assert assert_reads_like_tarfile(raw) == 5
        name, kind, _mode, size, *_ = _ours(raw)[-1]
        assert (name, kind, size) == ("python/x", FILE, 2)


def test_fractional_mtimes_are_kept_to_the_nanosecond(tmp_path: Path) -> None:
    raw = tiny_tree() + pax([record(b"mtime", b"1700000000.123456789987")]) + F + END
    dest = _extract_raw(tmp_path, raw)
    assert (dest / "bin/ok").stat().st_mtime_ns == 1_700_000_000_123_456_789


def test_pax_mtime_beyond_time_t_is_exit_6_through_the_cli(
    tiny_bundle: Any, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 8: such a member ended in OverflowError (exit 1) in utime."""
    info, data = tar_file("python/lib/future", b"x")
    info.pax_headers = {"mtime": "99999999999999999999"}
    bundle = tiny_bundle(members=[*tiny_interpreter_members(), (info, data)])
    install_dir = tmp_path / "installs"
    proc = run_cli(
        "install",
        "--from",
        str(bundle),
        "--trusted-key",
        str(key_files[1]),
        "--install-dir",
        str(install_dir),
    )
    assert proc.returncode == 6, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "python/lib/future" in proc.stderr and str(bundle) in proc.stderr


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    """Files are created with their final mode; fchmod is needed only when the umask
    would take bits away, and then the modes still come out exact."""
    raw = tar_bytes(_synthetic_members())
    old = os.umask(0o077)
    try:
        work = tmp_path / "umask"
        work.mkdir()
        stats = assert_extracts_like_tarfile(raw, work)
    finally:
        os.umask(old)
    assert {r.mode for r in stats.records if r.kind == "dir"} == {0o755}
    assert {r.mode for r in stats.records if r.kind == "file"} == {0o644, 0o755}
    assert stat.S_IMODE((work / "dest/bin/python3.12").stat().st_mode) == 0o755


def test_memory_stays_flat_for_a_large_member(tmp_path: Path) -> None:
    """A 96 MiB member is streamed: Python's peak allocation stays at a few MiB (the
    decompression queue and one piece), with file records (hashing) on."""
    import gzip
    import tracemalloc

    size = 96 * 1024 * 1024
    archive = tmp_path / "large.tar.gz"
    piece = os.urandom(1024 * 1024)
    with gzip.open(archive, "wb", compresslevel=1) as out:
        out.write(tiny_tree() + header(b"python/lib/large", size=size))
        for _ in range(size // len(piece)):
            out.write(piece)
        out.write(END)
    dest = tmp_path / "dest"
    dest.mkdir()
    tracemalloc.start()
    try:
        with open(archive, "rb") as stream:
            stats = extract_archive(
                stream,
                "tar.gz",
                "python",
                dest,
                source=str(archive),
                max_bytes=size * 2,
                max_entries=10,
                record_files=True,
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (dest / "lib/large").stat().st_size == size
    record = next(r for r in stats.records if r.path == "lib/large")
    assert record.sha256 == hashlib.sha256(piece * (size // len(piece))).hexdigest()
    assert peak < 24 * 1024 * 1024, peak  # about 4 MiB queued to inflate, 5 to hash
