"""Volume sets: ``bundle --volume-size`` writes NAME.001, NAME.002, ...; verify, inspect and
install read them as one file, and refuse a missing, short or misordered part (exit 5) with a
message naming it; ``cat NAME.0* > NAME`` gives the single-file bundle."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from compactlib import build, make_catalog, sha256
from conftest import run_cli
from pybundle.errors import UsageError
from pybundle.volumes import FAT32_MAX_FILE, BundleFile, VolumeError, parse_volume_size

VOLUME = 64 * 1024
EPOCH = {"SOURCE_DATE_EPOCH": "1790000000"}


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("fat32", 4 * 1024**3 - 1),
        ("FAT32", FAT32_MAX_FILE),
        ("4G", 4 * 1024**3),
        ("700M", 700 * 1024**2),
        ("700MiB", 700 * 1024**2),
        ("4GB", 4_000_000_000),
        ("64K", 65536),
        ("123456", 123456),
    ],
)
def test_volume_sizes(text: str, size: int) -> None:
    assert parse_volume_size(text) == size


@pytest.mark.parametrize("text", ["", "4X", "-1G", "1.5G", "G", "100", "fat16"])
def test_bad_volume_sizes_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--volume-size"):
        parse_volume_size(text)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return make_catalog(tmp_path / "catalog")


def _parts(output: Path) -> list[Path]:
    return sorted(output.parent.glob(output.name + ".[0-9][0-9][0-9]"))


@pytest.mark.parametrize("compact", [False, True], ids=["plain", "compact"])
def test_volumes_read_as_one_file_and_join_with_cat(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path], compact: bool
) -> None:
    secret, public = key_files
    extra = ["--compact"] if compact else []
    single = build(catalog, tmp_path / "cache", secret, tmp_path / "one" / "b.pybundle",
                   *extra, env=EPOCH)  # fmt: skip
    split = tmp_path / "split" / "b.pybundle"
    build(catalog, tmp_path / "cache", secret, split, *extra, "--volume-size", "64K", env=EPOCH)
    assert not split.exists()
    parts = _parts(split)
    sizes = [p.stat().st_size for p in parts]
    assert len(parts) == -(-single.stat().st_size // VOLUME) >= 2
    assert all(s == VOLUME for s in sizes[:-1]) and 0 < sizes[-1] <= VOLUME
    first = parts[0]
    run_cli("verify", str(first), "--trusted-key", str(public), check=True)
    doc = json.loads(run_cli("inspect", "--json", str(first), check=True).stdout)
    assert [Path(v["file"]).name for v in doc["container"]["volumes"]] == [p.name for p in parts]
    assert doc["container"]["file_bytes"] == single.stat().st_size
    text = run_cli("inspect", "--from", str(first), check=True).stdout
    assert f"volumes: {len(parts)} (b.pybundle.001" in text
    dest = tmp_path / "installs"
    run_cli("install", "--from", str(first), "--trusted-key", str(public),
            "--install-dir", str(dest), "--no-bin", check=True)  # fmt: skip
    assert len([p for p in dest.iterdir() if p.is_dir()]) == 2
    # what the README says: cat NAME.0* > NAME gives the single-file bundle, byte for byte
    subprocess.run(f"cat {split.name}.0* > {split.name}", shell=True, cwd=split.parent, check=True)
    assert sha256(split) == sha256(single)
    run_cli("verify", str(split), "--trusted-key", str(public), check=True)


def _one_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pybundle: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_missing_short_and_misordered_parts_are_refused(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path]
) -> None:
    secret, public = key_files
    split = tmp_path / "split" / "b.pybundle"
    build(catalog, tmp_path / "cache", secret, split, "--volume-size", "64K")
    parts = _parts(split)
    assert len(parts) >= 4
    first = str(parts[0])
    key = ["--trusted-key", str(public)]
    saved = {p: p.read_bytes() for p in parts}

    def restore() -> None:
        for p, data in saved.items():
            p.write_bytes(data)

    # a part in the middle missing
    parts[1].unlink()
    for cmd in (["verify", first, *key], ["inspect", first], ["install", "--from", first, *key]):
        _one_error(run_cli(*cmd), 5, "b.pybundle.002", "missing")
    restore()
    # the last part missing: the parts found end without the bundle's end
    parts[-1].unlink()
    _one_error(run_cli("verify", first, *key), 5, parts[-1].name, "missing", parts[-2].name)
    restore()
    # a part cut short
    with open(parts[2], "r+b") as f:
        f.truncate(1000)
    _one_error(run_cli("verify", first, *key), 5, "b.pybundle.003", "truncated")
    restore()
    # the last part cut short
    with open(parts[-1], "r+b") as f:
        f.truncate(parts[-1].stat().st_size - 10)
    _one_error(run_cli("verify", first, *key), 5, "missing, or", "truncated")
    restore()
    # two parts swapped
    parts[0].write_bytes(saved[parts[1]])
    parts[1].write_bytes(saved[parts[0]])
    _one_error(run_cli("verify", first, *key), 5, "out of order")
    restore()
    parts[1].write_bytes(saved[parts[2]])
    parts[2].write_bytes(saved[parts[1]])
    _one_error(run_cli("verify", first, *key), 5)
    restore()
    # a later part named instead of the first
    _one_error(run_cli("verify", str(parts[1]), *key), 5, "give the first part", parts[0].name)
    dest = tmp_path / "installs"
    parts[-1].unlink()
    _one_error(run_cli("install", "--from", first, *key, "--install-dir", str(dest)), 5)
    assert not dest.exists() or not [p for p in dest.iterdir() if not p.name.startswith(".")]


def test_existing_volumes_are_kept_unless_forced(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path]
) -> None:
    secret, public = key_files
    split = tmp_path / "b.pybundle"
    build(catalog, tmp_path / "cache", secret, split, "--volume-size", "16K")
    many = _parts(split)
    again = run_cli(*_args(catalog, tmp_path, secret, split, "--volume-size", "16K"))
    _one_error(again, 8, "b.pybundle.001", "already exists")
    # --force with larger volumes: the earlier set's later parts go, the set stays whole
    build(catalog, tmp_path / "cache", secret, split, "--volume-size", "64K", "--force")
    fewer = _parts(split)
    assert len(fewer) < len(many)
    run_cli("verify", str(fewer[0]), "--trusted-key", str(public), check=True)
    assert not [p for p in split.parent.iterdir() if p.name.endswith(".tmp")]


def _args(catalog: Path, tmp_path: Path, secret: Path, output: Path, *extra: str) -> list[str]:
    from compactlib import bundle_args

    return bundle_args(catalog, tmp_path / "cache", secret, output, *extra)


def test_bundle_file_reads_across_parts(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    for i, at in enumerate(range(0, len(data), 4096), start=1):
        (tmp_path / f"x.{i:03d}").write_bytes(data[at : at + 4096])
    with BundleFile(tmp_path / "x.001") as f:
        assert f.size == len(data) and f.is_volume_set and len(f.parts) == 3
        buffer = bytearray(5000)
        assert f.pread_into(buffer, 3000) == 5000 and bytes(buffer) == data[3000:8000]
        f.seek(9000)
        assert f.read(5000) == data[9000:]
        assert f.part_at(8191).name == "x.002" and f.part_at(8192).name == "x.003"
    (tmp_path / "x.003").write_bytes(data[:5000])  # larger than part 1
    with pytest.raises(VolumeError, match=r"x\.003: the last part"):
        BundleFile(tmp_path / "x.001")
    (tmp_path / "x.003").write_bytes(b"")
    with pytest.raises(VolumeError, match="empty"):
        BundleFile(tmp_path / "x.001")
