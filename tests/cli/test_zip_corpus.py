"""Damaged and hostile zip structures, through the real CLI: every one is refused with exit 5
(never 1, "unexpected"), one line naming the bundle, and the install dir unchanged."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from test_refusals import assert_refused, install, snapshot

from conftest import run_cli

CDH = b"PK\x01\x02"
LFH = b"PK\x03\x04"
EOCD = b"PK\x05\x06"


def _cd_offset(data: bytes, member: str) -> int:
    """Offset of the central-directory header of ``member``."""
    at = data.index(CDH + b"", data.rindex(EOCD) - 100_000 if len(data) > 100_000 else 0)
    while True:
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[at + 28 : at + 34])
        if data[at + 46 : at + 46 + name_len] == member.encode():
            return at
        at += 46 + name_len + extra_len + comment_len


def _lfh_offset(data: bytes, member: str) -> int:
    cd = _cd_offset(data, member)
    return int(struct.unpack("<I", data[cd + 42 : cd + 46])[0])


def _poke(data: bytearray, at: int, fmt: str, value: int) -> None:
    data[at : at + struct.calcsize(fmt)] = struct.pack(fmt, value)


MUTATIONS: dict[str, Callable[[bytearray], None]] = {
    # one bit flipped in the central directory's general-purpose flags: "is encrypted"
    "cd-encrypted-flag": lambda d: _poke(d, _cd_offset(d, "pybundle.json") + 8, "<H", 1),
    "cd-encrypted-archive": lambda d: _poke(d, _cd_offset(d, _archive(d)) + 8, "<H", 1),
    "cd-method-deflate": lambda d: _poke(d, _cd_offset(d, "pybundle.json") + 10, "<H", 8),
    "cd-method-unknown": lambda d: _poke(d, _cd_offset(d, _archive(d)) + 10, "<H", 99),
    "lfh-method-bzip2": lambda d: _poke(d, _lfh_offset(d, _archive(d)) + 8, "<H", 12),
    "lfh-encrypted": lambda d: _poke(d, _lfh_offset(d, _archive(d)) + 6, "<H", 1),
    "lfh-bad-magic": lambda d: _poke(d, _lfh_offset(d, _archive(d)), "<I", 0x12345678),
    "lfh-offset-past-end": lambda d: _poke(d, _cd_offset(d, _archive(d)) + 42, "<I", 0xFFFFFFF0),
    "manifest-lfh-offset-past-end": lambda d: _poke(
        d, _cd_offset(d, "pybundle.json") + 42, "<I", 0x7FFFFFF0
    ),
    "cd-size-huge": lambda d: _poke(d, d.rindex(EOCD) + 12, "<I", 0xFFFFFFF0),
    "cd-offset-huge": lambda d: _poke(d, d.rindex(EOCD) + 16, "<I", 0xFFFFFFF0),
    "cd-count-zero": lambda d: _poke(d, d.rindex(EOCD) + 10, "<H", 0),
    "cd-name-length-huge": lambda d: _poke(d, _cd_offset(d, "pybundle.json") + 28, "<H", 0xFFFF),
    "cd-name-not-utf8": lambda d: _set_name_byte(d),
    "manifest-crc-wrong": lambda d: _poke(d, _cd_offset(d, "pybundle.json") + 16, "<I", 0),
    "eocd-multi-disk": lambda d: _poke(d, d.rindex(EOCD) + 4, "<H", 3),
    "truncated-half": lambda d: d.__delitem__(slice(len(d) // 2, None)),
    "truncated-tail": lambda d: d.__delitem__(slice(len(d) - 10, None)),
}


def _archive(data: bytes) -> str:
    start = data.index(b"archives/", data.rindex(EOCD) - 2000 if len(data) > 2000 else 0)
    end = data.index(b".tar.gz", start) + len(".tar.gz")
    return data[start:end].decode()


def _set_name_byte(data: bytearray) -> None:
    at = _cd_offset(data, "pybundle.json")
    _poke(data, at + 8, "<H", 0x800)  # names are UTF-8
    data[at + 46] = 0xFF


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_damaged_zip_structures(tiny_bundle, key_files, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    good = tiny_bundle()
    data = bytearray(good.read_bytes())
    MUTATIONS[case](data)
    bundle = tmp_path / f"{case}.pybundle"
    bundle.write_bytes(bytes(data))
    installs = tmp_path / "installs"
    installs.mkdir()
    before = snapshot(installs)
    assert_refused(install(bundle, key_files[1], installs), 5, installs, before, str(bundle))
    for command in (("verify", str(bundle), "--trusted-key", str(key_files[1])),):
        proc = run_cli(*command)
        assert proc.returncode == 5, (case, proc.stderr)
        assert "unexpected" not in proc.stderr
    proc = run_cli("inspect", str(bundle))
    assert proc.returncode in (0, 5) and "unexpected" not in proc.stderr, proc.stderr


def test_the_mutations_hit_what_they_name(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    """The offsets above are computed right: zipfile itself reads the fields we poke."""
    data = bytearray(tiny_bundle().read_bytes())
    MUTATIONS["cd-method-deflate"](data)
    with zipfile.ZipFile(__import__("io").BytesIO(bytes(data))) as zf:
        assert zf.getinfo("pybundle.json").compress_type == zipfile.ZIP_DEFLATED


def test_zip64_end_records_are_read(tmp_path: Path) -> None:
    """With 70,000 members zipfile writes ZIP64 end records; the end-record check reads the
    counts from there and still catches a wrong one."""
    from pybundle.errors import IntegrityError
    from pybundle.installer.source import BundleSource

    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(70_000):
            zf.writestr(f"m{i}", b"")
    BundleSource(path).close()  # every member STORED, counts agree
    data = bytearray(path.read_bytes())
    record = data.rindex(b"PK\x06\x06")
    _poke(data, record + 32, "<Q", 69_999)  # entries in total
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="end record counts 69999"):
        BundleSource(path)
