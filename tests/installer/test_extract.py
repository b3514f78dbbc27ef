"""The safe extractor on real tar streams: what it writes, and what it refuses."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from conftest import make_tar, tar_dir, tar_file, tar_link, tiny_interpreter_members
from pybundle.errors import UnsafeArchiveError
from pybundle.installer.extract import extract_archive

BUDGET = {"max_bytes": 100 * 1024 * 1024, "max_entries": 10_000}


def _extract(tmp_path: Path, members, fmt: str = "tar.gz", strip: str = "python") -> Path:  # type: ignore[no-untyped-def]
    archive = make_tar(tmp_path / f"a.{fmt}", members, fmt)
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream:
        extract_archive(stream, fmt, strip, dest, source=str(archive), **BUDGET)
    return dest


@pytest.mark.parametrize("fmt", ["tar.gz", "tar.zst"])
def test_extracts_tree_strips_prefix_and_normalises_modes(tmp_path: Path, fmt: str) -> None:
    members = [
        *tiny_interpreter_members(),
        tar_file("python/lib/setuid-tool", b"#!/bin/sh\n", 0o4777),
        tar_file("python/lib/world-writable", b"data", 0o666),
        tar_dir("python/share", 0o1777),
        tar_file("python/lib/python3.12/hard-src", b"same"),
        tar_link("python/lib/python3.12/hard-dst", "python/lib/python3.12/hard-src", hard=True),
    ]
    dest = _extract(tmp_path, members, fmt)
    assert (dest / "bin/python3.12").read_bytes().startswith(b"#!/bin/sh")
    assert os.readlink(dest / "bin/python3") == "python3.12"
    assert stat.S_IMODE((dest / "bin/python3.12").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "lib/setuid-tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "lib/world-writable").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "share").stat().st_mode) == 0o755
    assert (dest / "lib/python3.12/hard-dst").stat().st_ino == (
        dest / "lib/python3.12/hard-src"
    ).stat().st_ino
    assert (dest / "bin/python3.12").stat().st_mtime == 1_700_000_000
    assert not (dest / "python").exists()


def _fifo(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info, None


def _device(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, None


REFUSED = {
    "dotdot": [tar_dir("python"), tar_file("python/../escape")],
    "absolute": [tar_file("/abs/path")],
    "symlink-to-etc": [tar_dir("python"), tar_link("python/etc", "/etc")],
    "symlink-dotdot": [tar_dir("python"), tar_link("python/a", "../..")],
    "write-through-symlink": [
        tar_dir("python"),
        tar_dir("python/real"),
        tar_link("python/a", "real"),
        tar_file("python/a/x"),
    ],
    "symlink-chain-escape": [
        tar_dir("python"),
        tar_link("python/s", "."),
        tar_link("python/t", "s/.."),
    ],
    "symlink-later-escape": [
        tar_dir("python"),
        tar_link("python/t", "s/.."),
        tar_link("python/s", "."),
    ],
    "hardlink-outside": [tar_dir("python"), tar_link("python/h", "../victim", hard=True)],
    "hardlink-absolute": [tar_dir("python"), tar_link("python/h", "/etc/passwd", hard=True)],
    "hardlink-to-later": [tar_dir("python"), tar_link("python/h", "python/later", hard=True)],
    "fifo": [tar_dir("python"), _fifo("python/fifo")],
    "chardev": [tar_dir("python"), _device("python/null", tarfile.CHRTYPE)],
    "blockdev": [tar_dir("python"), _device("python/sda", tarfile.BLKTYPE)],
    "duplicate": [tar_dir("python"), tar_file("python/x", b"1"), tar_file("python/x", b"2")],
    "newline-name": [tar_dir("python"), tar_file("python/a\nb")],
    "long-component": [tar_dir("python"), tar_file("python/" + "a" * 300)],
    "long-path": [tar_dir("python"), tar_file("python/" + "/".join(["d" * 100] * 50))],
    "file-then-dir-type-change": [tar_dir("python"), tar_file("python/x"), tar_dir("python/x")],
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refuses_unsafe_members(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "victim"
    outside.write_text("untouched")
    with pytest.raises(UnsafeArchiveError) as info:
        _extract(tmp_path, REFUSED[case])
    assert "\n" not in str(info.value).replace("a\\nb", "")
    assert outside.read_text() == "untouched"
    assert not (tmp_path / "escape").exists()


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [*tiny_interpreter_members(), tar_file("python/big", os.urandom(200_000))],
    )
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream, pytest.raises(UnsafeArchiveError, match="cannot be read"):
        extract_archive(stream, "tar.gz", "python", dest, source=str(archive), **BUDGET)


def test_members_outside_strip_prefix_are_not_written(tmp_path: Path) -> None:
    members = [
        tar_dir("python"),
        tar_file("python/PYTHON.json", b"{}"),
        tar_dir("python/install"),
        tar_file("python/install/README", b"hi"),
    ]
    dest = _extract(tmp_path, members, strip="python/install")
    assert sorted(p.name for p in dest.iterdir()) == ["README"]


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def test_gzip_bomb_stops_at_the_budget(tmp_path: Path) -> None:
    """1 GiB of zeros in ~1 MB of gzip: refused at the header, nothing big is written."""
    import gzip

    size = 1024**3
    chunk = gzip.compress(bytes(16 * 1024 * 1024), compresslevel=9)
    bomb = tmp_path / "bomb.tar.gz"
    with open(bomb, "wb") as out:
        out.write(gzip.compress(_tar_header("python/zeros", size)))
        for _ in range(size // (16 * 1024 * 1024)):
            out.write(chunk)
        out.write(gzip.compress(bytes(1024)))
    assert bomb.stat().st_size < 2_000_000
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(bomb, "rb") as stream, pytest.raises(UnsafeArchiveError, match="more than"):
        extract_archive(
            stream, "tar.gz", "python", dest, source="bomb", max_bytes=10_000_000, max_entries=10
        )
    assert sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) == 0


def test_too_many_members_stops_at_the_budget(tmp_path: Path) -> None:
    members = [tar_dir("python")] + [tar_file(f"python/f{i}") for i in range(50)]
    archive = make_tar(tmp_path / "many.tar.gz", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream, pytest.raises(UnsafeArchiveError, match="members"):
        extract_archive(
            stream, "tar.gz", "python", dest, source="many", max_bytes=10**6, max_entries=20
        )
    assert len(list(dest.iterdir())) < 20


def test_zstd_frame_with_a_2_gib_window_is_refused(tmp_path: Path) -> None:
    import io

    import zstandard

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info, data = tar_file("python/x", b"hello")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
    cctx = zstandard.ZstdCompressor(compression_params=params)
    archive = tmp_path / "wide.tar.zst"
    with open(archive, "wb") as out, cctx.stream_writer(out, closefd=False) as writer:
        writer.write(tar_bytes.getvalue())
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as stream, pytest.raises(UnsafeArchiveError, match="cannot be read"):
        extract_archive(stream, "tar.zst", "python", dest, source="wide", **BUDGET)
    assert list(dest.iterdir()) == []
