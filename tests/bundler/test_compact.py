"""``bundle --compact``: the archives travel as one solid LZMA2 stream in a 7z member; verify,
inspect and install work on it as on a plain bundle. Real CLI in subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from compactlib import VERSIONS, archive_name, build, make_catalog, tree
from conftest import RealArchive, run_cli
from pybundle.signing import SecretKey


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return make_catalog(tmp_path / "catalog")


def test_compact_bundle_is_smaller_and_installs_the_same_trees(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path]
) -> None:
    secret, public = key_files
    plain = build(catalog, tmp_path / "cache", secret, tmp_path / "plain.pybundle")
    compact = build(catalog, tmp_path / "cache", secret, tmp_path / "compact.pybundle", "--compact")
    # two archives sharing an incompressible 256 KiB file: the solid stream stores it once
    assert compact.stat().st_size < 0.6 * plain.stat().st_size
    with zipfile.ZipFile(compact) as zf:
        names = zf.namelist()
        doc = json.loads(zf.read("pybundle.json"))
    indexes = [f"indexes/{archive_name(v)}.files" for v in VERSIONS]  # plain members
    assert names == ["pybundle.json", "pybundle.json.minisig", "archives/interpreters.7z", *indexes]
    assert doc["schema_version"] == 3 and doc["solid"]["compression"] == "lzma2"
    for artifact, version in zip(doc["artifacts"], VERSIONS):
        # the upstream record is kept; the tar the installer reads is recorded beside it
        assert artifact["file_name"] == archive_name(version)
        assert artifact["solid"]["name"] == archive_name(version, "tar")
    with zipfile.ZipFile(plain) as zf:
        assert json.loads(zf.read("pybundle.json"))["schema_version"] == 3  # file indexes

    ok = run_cli("verify", str(compact), "--trusted-key", str(public), check=True)
    assert "2 archives verified" in ok.stdout
    trees = {}
    dest = tmp_path / "installs"  # one place for both: relocation writes the path in
    for bundle in (plain, compact):
        run_cli("install", "--from", str(bundle), "--trusted-key", str(public),
                "--install-dir", str(dest), "--no-bin", "--force", check=True)  # fmt: skip
        trees[bundle.stem] = {p.name: tree(p) for p in sorted(dest.iterdir()) if p.is_dir()}
    assert trees["compact"] == trees["plain"] and len(trees["plain"]) == 2


def test_inspect_shows_container_compression_and_ratio(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path]
) -> None:
    secret, _ = key_files
    compact = build(catalog, tmp_path / "cache", secret, tmp_path / "c.pybundle", "--compact")
    text = run_cli("inspect", str(compact), check=True).stdout
    assert "container: zip with a solid 7z stream, lzma2" in text
    assert "2 archives" in text and "ratio 0." in text and "[solid]" in text
    doc = json.loads(run_cli("inspect", "--json", str(compact), check=True).stdout)
    container = doc["container"]
    assert container["kind"] == "zip+7z" and container["compression"] == "lzma2"
    assert container["solid_archives"] == 2 and container["volumes"] == []
    assert 0 < container["ratio"] < 0.6
    assert container["file_bytes"] == compact.stat().st_size
    plain = build(catalog, tmp_path / "cache", secret, tmp_path / "p.pybundle")
    doc = json.loads(run_cli("inspect", "--json", str(plain), check=True).stdout)
    assert doc["container"]["kind"] == "zip" and doc["container"]["ratio"] == 1.0
    assert "container: zip, archives stored as published" in run_cli("inspect", str(plain)).stdout


@pytest.mark.tool("7z")
def test_7zip_lists_and_tests_what_we_write(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path]
) -> None:
    secret, _ = key_files
    compact = build(catalog, tmp_path / "cache", secret, tmp_path / "c.pybundle", "--compact")
    with zipfile.ZipFile(compact) as zf:
        zf.extract("archives/interpreters.7z", tmp_path)
    container = tmp_path / "archives" / "interpreters.7z"
    listing = subprocess.run(
        ["7z", "l", "-slt", str(container)], capture_output=True, text=True, check=True
    ).stdout
    for version in VERSIONS:
        assert f"Path = {archive_name(version, 'tar')}" in listing
    assert "Method = LZMA2:" in listing and "Solid = +" in listing and "Blocks = 1" in listing
    tested = subprocess.run(["7z", "t", str(container)], capture_output=True, text=True)
    assert tested.returncode == 0 and "Everything is Ok" in tested.stdout
    if shutil.which("7zz"):
        tested = subprocess.run(["7zz", "t", str(container)], capture_output=True, text=True)
        assert tested.returncode == 0 and "Everything is Ok" in tested.stdout


def test_py7zr_lists_what_we_write(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path]
) -> None:
    import sys

    secret, _ = key_files
    compact = build(catalog, tmp_path / "cache", secret, tmp_path / "c.pybundle", "--compact")
    with zipfile.ZipFile(compact) as zf:
        zf.extract("archives/interpreters.7z", tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "py7zr", "l", str(tmp_path / "archives" / "interpreters.7z")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert all(archive_name(v, "tar") in out for v in VERSIONS)


def test_a_changed_solid_stream_is_refused_before_it_is_parsed(
    tmp_path: Path, catalog: Path, key_files: tuple[Path, Path]
) -> None:
    secret, public = key_files
    compact = build(catalog, tmp_path / "cache", secret, tmp_path / "c.pybundle", "--compact")
    with zipfile.ZipFile(compact) as zf:
        info = zf.getinfo("archives/interpreters.7z")
    data = bytearray(compact.read_bytes())
    start = info.header_offset + 30 + len(info.filename)  # no extra field in our local headers
    data[start + 40] ^= 0xFF
    bad = tmp_path / "bad.pybundle"
    bad.write_bytes(bytes(data))
    dest = tmp_path / "installs"
    for args in (
        ["verify", str(bad), "--trusted-key", str(public)],
        ["install", "--from", str(bad), "--trusted-key", str(public), "--install-dir", str(dest)],
    ):
        proc = run_cli(*args)
        assert proc.returncode == 5, proc.stderr
        assert "archives/interpreters.7z: sha256 is" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2  # install's "verified" note + error
    assert not dest.exists() or not any(dest.iterdir())


def test_keep_plain_leaves_an_archive_outside_the_solid_stream(
    tmp_path: Path, catalog: Path, signing_key: SecretKey
) -> None:
    """What --self-installing needs: its bootstrap interpreter stays a plain .tar.gz member."""
    from pybundle.bundler.build import build_bundle
    from pybundle.bundler.selection import Selection
    from pybundle.bundler.solid import CompactOptions
    from pybundle.installer.install import install_bundle
    from pybundle.installer.verify import verify_bundle

    selection = Selection.parse(["3.11,3.12"], ["linux-x86_64"], catalog=str(catalog))
    bootstrap = archive_name("3.12.1")
    out = tmp_path / "mixed.pybundle"
    report = build_bundle(
        out, selection, cache_dir=tmp_path / "cache", secret_key=signing_key,
        compact=CompactOptions(), keep_plain={bootstrap},
    )  # fmt: skip
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [
            "pybundle.json", "pybundle.json.minisig", "archives/interpreters.7z",
            f"archives/{bootstrap}", f"indexes/{archive_name('3.11.7')}.files",
            f"indexes/{bootstrap}.files",
        ]  # fmt: skip
    solid = {a.file_name: a.solid is not None for a in report.manifest.artifacts}
    assert solid == {archive_name("3.11.7"): True, bootstrap: False}
    verify_bundle(out, [signing_key.public_key])
    results = install_bundle(out, [signing_key.public_key], install_dir=tmp_path / "i")
    assert sorted(r.path.name for r in results) == [
        "cpython-3.11.7-linux-x86_64-gnu", "cpython-3.12.1-linux-x86_64-gnu",
    ]  # fmt: skip


@pytest.mark.slow
def test_real_interpreters_from_a_compact_bundle_run(
    tmp_path: Path, real_archives: list[RealArchive], signing_key: SecretKey
) -> None:
    """Real pyenv interpreters (packed PBS-style) through the solid stream: they install,
    relocated, and run."""
    from pybundle.bundler.pack import write_bundle
    from pybundle.bundler.reproducible import now
    from pybundle.bundler.solid import CompactOptions, pack_solid
    from pybundle.installer.install import install_bundle

    items = [(a.artifact, a.path) for a in real_archives]
    work = tmp_path / "work"
    work.mkdir()
    # preset 0: the test checks the path, not the ratio (make bench measures that)
    container, artifacts, path = pack_solid(
        items, work, when=now(), options=CompactOptions(preset=0)
    )
    out = tmp_path / "real.pybundle"
    write_bundle(
        out, [(a, p) for a, (_, p) in zip(artifacts, items)], secret_key=signing_key,
        solid=(container, path),
    )  # fmt: skip
    assert all(a.solid is not None for a in artifacts)
    results = install_bundle(out, [signing_key.public_key], install_dir=tmp_path / "i")
    for result in results:
        minor = ".".join(result.artifact.version.split(".")[:2])
        exe = result.path / "bin" / f"python{minor}"
        proc = subprocess.run(
            [str(exe), "-c", "import sys, json, sqlite3; print(sys.prefix)"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(result.path)
