"""File indexes end to end: what the bundler computes, what the installer takes from them, and
every disagreement between a signed index and its archive refused."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard

from conftest import (
    TEST_BUILD,
    RealArchive,
    make_tar,
    run_cli,
    tar_file,
    tiny_artifact,
    tiny_interpreter_members,
)
from pybundle.archives import scan_archive_indexed
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.prefix import index_archive, index_path_for
from pybundle.fileindex import index_member, parse_index
from pybundle.manifest import Artifact, FileIndexRef
from pybundle.signing import SecretKey


def independent_index(archive: Path) -> list[tuple[str, int, str]]:
    """(sha256, size, name) of every regular member, read with tarfile, not pybundle."""
    raw = archive.read_bytes()
    if archive.name.endswith(".tar.zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    found = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tf:
        for member in tf:
            if member.isreg():
                data = tf.extractfile(member).read()  # type: ignore[union-attr]
                found.append((hashlib.sha256(data).hexdigest(), member.size, member.name))
    return found


def bundle_with_index(
    out: Path, artifact: Artifact, archive: Path, key: SecretKey, index: bytes | None = None
) -> Path:
    """A signed bundle of ``archive`` with its file index (computed, or ``index`` as given)."""
    if index is None:
        ref = index_archive(archive, artifact.archive_format)
        assert ref is not None
        path = index_path_for(archive)
    else:
        path = archive.with_name(archive.name + ".given")
        path.write_bytes(index)
        ref = FileIndexRef(
            index_member(artifact.file_name), hashlib.sha256(index).hexdigest(), len(index)
        )
    write_bundle(
        out,
        [(replace(artifact, file_index=ref), archive)],
        secret_key=key,
        indexes=[(ref, path)],
        force=True,
    )
    return out


def test_the_bundlers_index_is_every_members_sha256(real_archives: list[RealArchive]) -> None:
    for real in real_archives:
        with open(real.path, "rb") as stream:
            shape, data = scan_archive_indexed(stream, real.artifact.archive_format, "a")
        assert data is not None
        entries = parse_index(data, "a")
        assert [tuple(e) for e in entries] == independent_index(real.path)
        assert len(entries) > 1000 and shape.unpacked_size == sum(e.size for e in entries)


@pytest.mark.slow
def test_an_indexed_install_has_the_same_receipt_and_passes_check(
    tmp_path: Path,
    real_archives: list[RealArchive],
    signing_key: SecretKey,
    key_files: tuple[Path, Path],
) -> None:
    _, public = key_files
    real = real_archives[0]
    archive = tmp_path / real.path.name
    shutil.copyfile(real.path, archive)
    indexed = bundle_with_index(tmp_path / "indexed.pybundle", real.artifact, archive, signing_key)
    plain = tmp_path / "plain.pybundle"  # no index: the receipt hashes what it writes
    write_bundle(plain, [(real.artifact, archive)], secret_key=signing_key)
    assert (
        json.loads(run_cli("inspect", "--json", str(indexed), check=True).stdout)["schema_version"]
        == 3
    )
    run_cli("verify", str(indexed), "--trusted-key", str(public), check=True)
    prefix = tmp_path / "py"  # one place for both: relocation writes the path in
    receipts = {}
    for bundle in (indexed, plain):
        run_cli("install", str(bundle), "--trusted-key", str(public), "--prefix", str(prefix),
                "--no-bin", "--force", "--allow-downgrade", check=True)  # fmt: skip
        if bundle is indexed:
            run_cli("check", str(prefix), check=True)
        doc = json.loads((prefix / ".pybundle-receipt.json").read_text())
        assert "file_index" not in doc["artifact"]
        receipts[bundle.stem] = doc["files"]
    assert receipts["indexed"] == receipts["plain"]
    assert sum(1 for f in receipts["plain"] if f["type"] == "file") > 1000


def tiny(tmp_path: Path) -> tuple[Path, Artifact]:
    members = [
        *tiny_interpreter_members(),
        tar_file("python/lib/python3.12/os.py", b"import sys\n" * 50),
        tar_file("python/lib/python3.12/empty.py", b""),
        tar_file("outside/README", b"outside the strip prefix, listed all the same\n"),
    ]
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    name = f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    archive = make_tar(work / name, members)
    return archive, tiny_artifact(archive)


def test_a_tiny_indexed_install_records_the_index_digests(
    tmp_path: Path, signing_key: SecretKey, key_files: tuple[Path, Path]
) -> None:
    archive, artifact = tiny(tmp_path)
    bundle = bundle_with_index(tmp_path / "t.pybundle", artifact, archive, signing_key)
    index = parse_index(index_path_for(archive).read_bytes(), "i")
    assert [e.name for e in index][-1] == "outside/README"
    dest = tmp_path / "py"
    run_cli("install", str(bundle), "--trusted-key", str(key_files[1]), "--prefix", str(dest),
            "--no-bin", check=True)  # fmt: skip
    files = json.loads((dest / ".pybundle-receipt.json").read_text())["files"]
    digests = {f["path"]: f["sha256"] for f in files if f["type"] == "file"}
    by_name = {e.name.removeprefix("python/"): e.sha256 for e in index}
    assert digests["lib/python3.12/os.py"] == by_name["lib/python3.12/os.py"]
    assert digests["lib/python3.12/empty.py"] == hashlib.sha256(b"").hexdigest()
    run_cli("check", str(dest), check=True)


def snapshot(root: Path) -> dict[str, str]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            if name == ".pybundle.lock":
                continue
            found[str(path.relative_to(root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "d"
            )
    return found


def _edit(index: bytes, how: str) -> bytes:
    header, *lines = index.splitlines(keepends=True)
    if how == "name":
        digest, size, name = lines[1].split(b" ", 2)
        lines[1] = b" ".join([digest, size, name[:-1] + b"x\n"])
    elif how == "size":
        digest, size, name = lines[1].split(b" ", 2)
        lines[1] = b" ".join([digest, str(int(size) + 1).encode(), name])
    elif how == "missing":
        del lines[1]
    elif how == "missing-last":
        del lines[-1]
    elif how == "extra":
        lines.append(lines[0].split(b" ")[0] + b" 1 python/ghost\n")
    elif how == "order":
        lines[0], lines[1] = lines[1], lines[0]
    elif how == "cr":
        lines[0] = lines[0][:-1] + b"\r\n"
    elif how == "no-newline":
        lines[-1] = lines[-1][:-1]
    elif how == "not-utf8":
        lines[0] = lines[0][:-1] + b"\xff\n"
    elif how == "header":
        header = b"pybundle-file-index 9\n"
    elif how == "malformed":
        lines[0] = b"x" + lines[0][1:]
    return header + b"".join(lines)


@pytest.mark.parametrize(
    "how",
    ["name", "size", "missing", "missing-last", "extra", "order", "cr", "no-newline",
     "not-utf8", "header", "malformed"],
)  # fmt: skip
def test_an_index_that_disagrees_is_refused_and_nothing_changes(
    tmp_path: Path, signing_key: SecretKey, key_files: tuple[Path, Path], how: str
) -> None:
    archive, artifact = tiny(tmp_path)
    public = str(key_files[1])
    good = bundle_with_index(tmp_path / "good.pybundle", artifact, archive, signing_key)
    installs = tmp_path / "installs"
    run_cli("install", str(good), "--trusted-key", public, "--install-dir", str(installs),
            "--no-bin", check=True)  # fmt: skip
    earlier = snapshot(installs)
    index = _edit(index_path_for(archive).read_bytes(), how)
    bad = bundle_with_index(tmp_path / "bad.pybundle", artifact, archive, signing_key, index)
    # the signature and every hash hold: the refusal comes from the index check
    run_cli("verify", str(bad), "--trusted-key", public, check=True)
    for args in (["--install-dir", str(installs), "--force"], ["--prefix", str(tmp_path / "new")]):
        proc = run_cli("install", str(bad), "--trusted-key", public, "--no-bin",
                       "--allow-downgrade", *args)  # fmt: skip
        assert proc.returncode == 6, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("pybundle: error:")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"indexes/{artifact.file_name}.files" in errors[0]
        assert snapshot(installs) == earlier
        assert not (tmp_path / "new").exists()


def test_a_manifest_naming_a_missing_index_member_is_refused(
    tmp_path: Path, signing_key: SecretKey, key_files: tuple[Path, Path]
) -> None:
    import zipfile

    archive, artifact = tiny(tmp_path)
    good = bundle_with_index(tmp_path / "good.pybundle", artifact, archive, signing_key)
    bad = tmp_path / "bad.pybundle"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            if not info.filename.startswith("indexes/"):
                zout.writestr(info, zin.read(info))
    public = str(key_files[1])
    for command in (["verify", str(bad)], ["install", str(bad), "--prefix", str(tmp_path / "p")]):
        proc = run_cli(*command, "--trusted-key", public)
        assert proc.returncode == 5, proc.stderr
        assert "indexes/" in proc.stderr and "not in the bundle" in proc.stderr
    assert not (tmp_path / "p").exists()
    damaged = tmp_path / "damaged.pybundle"  # the index's bytes differ from the signed sha256
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(damaged, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith("indexes/"):
                data = data[:-2] + b"X\n"
            zout.writestr(info, data)
    for command in (
        ["verify", str(damaged)],
        ["install", str(damaged), "--prefix", str(tmp_path / "p")],
    ):
        proc = run_cli(*command, "--trusted-key", public)
        assert proc.returncode == 5, proc.stderr
        assert "indexes/" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_the_cache_remembers_the_index_and_remakes_a_damaged_one(tmp_path: Path) -> None:
    from pybundle.bundler.cache import Cache

    archive, artifact = tiny(tmp_path)
    cache = Cache(tmp_path / "cache")
    shape, index = cache.shape_and_index(artifact.sha256, archive, "tar.gz")
    assert index is not None and index.path == cache.shapes / f"{artifact.sha256}.files"
    good = index.path.read_bytes()
    assert [tuple(e) for e in parse_index(good, "i")] == independent_index(archive)
    record = json.loads((cache.shapes / f"{artifact.sha256}.json").read_text())
    assert record["index"] == {"sha256": hashlib.sha256(good).hexdigest(), "size": len(good)}
    for damage in (good[:-2] + b"X\n", b"", None):
        if damage is None:
            index.path.unlink()
        else:
            index.path.write_bytes(damage)
        again = cache.shape_and_index(artifact.sha256, archive, "tar.gz")
        assert again == (shape, index) and index.path.read_bytes() == good
    old = {k: v for k, v in record.items() if k != "index"}  # a record from before indexes
    (cache.shapes / f"{artifact.sha256}.json").write_text(json.dumps(old))
    assert cache.shape_and_index(artifact.sha256, archive, "tar.gz") == (shape, index)
