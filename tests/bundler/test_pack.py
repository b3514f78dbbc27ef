"""The bundle file format: member order, STORED archives, manifest schema, minisign interop."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import make_tar, tiny_artifact, tiny_interpreter_members
from pybundle.bundler.pack import trusted_comment_for, write_bundle
from pybundle.errors import AlreadyExistsError, HashMismatchError, ManifestError
from pybundle.installer.verify import verify_bundle
from pybundle.manifest import Manifest
from pybundle.schema import SCHEMA_ID, manifest_schema
from pybundle.signing import SecretKey, load_public_key


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return make_tar(
        tmp_path / "cpython-3.12.1+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz",
        tiny_interpreter_members(),
    )


def test_layout_and_manifest(tmp_path: Path, archive: Path, signing_key: SecretKey) -> None:
    artifact = tiny_artifact(archive)
    out = tmp_path / "b.pybundle"
    manifest = write_bundle(out, [(artifact, archive)], secret_key=signing_key)
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [
            "pybundle.json",
            "pybundle.json.minisig",
            f"archives/{archive.name}",
        ]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert zf.read(f"archives/{archive.name}") == archive.read_bytes()
        doc = json.loads(zf.read("pybundle.json"))
    assert doc["schema_version"] == 1 and doc["bundle_id"] == manifest.bundle_id
    assert doc["created"].endswith("Z")
    art = doc["artifacts"][0]
    for field in (
        "member",
        "file_name",
        "size",
        "sha256",
        "source",
        "implementation",
        "version",
        "build",
        "os",
        "arch",
        "arch_variant",
        "libc",
        "variant",
        "flavour",
        "archive_format",
        "strip_prefix",
        "build_prefix",
    ):
        assert field in art
    assert art["target_triple"] == "x86_64-unknown-linux-gnu"
    assert manifest_schema()["$id"] == SCHEMA_ID and "v1" in SCHEMA_ID
    assert not list(tmp_path.glob(".b.pybundle*"))


def test_existing_output_kept_without_force(tmp_path: Path, archive: Path) -> None:
    out = tmp_path / "b.pybundle"
    out.write_text("precious")
    with pytest.raises(AlreadyExistsError):
        write_bundle(out, [(tiny_artifact(archive), archive)], secret_key=None)
    assert out.read_text() == "precious"
    write_bundle(out, [(tiny_artifact(archive), archive)], secret_key=None, force=True)
    assert zipfile.is_zipfile(out)


def test_archive_changed_since_verification_is_caught(tmp_path: Path, archive: Path) -> None:
    artifact = tiny_artifact(archive)
    data = archive.read_bytes()
    archive.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    out = tmp_path / "b.pybundle"
    with pytest.raises(HashMismatchError):
        write_bundle(out, [(artifact, archive)], secret_key=None)
    assert not out.exists() and not list(tmp_path.glob(".b.pybundle*"))


def test_manifest_failing_schema_is_refused() -> None:
    doc = {"schema_version": 1, "bundle_id": "nope"}
    with pytest.raises(ManifestError, match="fails the schema"):
        Manifest.from_bytes(json.dumps(doc).encode(), "x.pybundle")
    with pytest.raises(ManifestError, match="not valid UTF-8"):
        Manifest.from_bytes(b"\xff{", "x.pybundle")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_bytes(b"{", "x.pybundle")


@pytest.mark.tool("minisign")
def test_minisign_verifies_our_manifest_signature(
    tmp_path: Path, archive: Path, key_files: tuple[Path, Path], signing_key: SecretKey
) -> None:
    out = tmp_path / "b.pybundle"
    write_bundle(out, [(tiny_artifact(archive), archive)], secret_key=signing_key)
    with zipfile.ZipFile(out) as zf:
        (tmp_path / "pybundle.json").write_bytes(zf.read("pybundle.json"))
        (tmp_path / "pybundle.json.minisig").write_bytes(zf.read("pybundle.json.minisig"))
    proc = subprocess.run(
        ["minisign", "-V", "-H", "-p", str(key_files[1]), "-m", str(tmp_path / "pybundle.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bundle_id=" in proc.stdout


@pytest.mark.tool("minisign")
def test_manifest_signed_by_minisign_verifies_in_pybundle(
    tmp_path: Path, archive: Path, key_files: tuple[Path, Path], signing_key: SecretKey
) -> None:
    unsigned = tmp_path / "unsigned.pybundle"
    manifest = write_bundle(unsigned, [(tiny_artifact(archive), archive)], secret_key=None)
    with zipfile.ZipFile(unsigned) as zf:
        manifest_bytes = zf.read("pybundle.json")
    (tmp_path / "m.json").write_bytes(manifest_bytes)
    subprocess.run(
        [
            "minisign",
            "-S",
            "-s",
            str(key_files[0]),
            "-m",
            str(tmp_path / "m.json"),
            "-t",
            trusted_comment_for(manifest),
        ],
        check=True,
        capture_output=True,
        input=b"",
    )
    signed = tmp_path / "signed.pybundle"
    with zipfile.ZipFile(unsigned) as zin, zipfile.ZipFile(signed, "w") as zout:
        zout.writestr(zin.getinfo("pybundle.json"), manifest_bytes)
        zout.writestr("pybundle.json.minisig", (tmp_path / "m.json.minisig").read_bytes())
        for info in zin.infolist()[1:]:
            zout.writestr(info, zin.read(info))
    verified = verify_bundle(signed, [load_public_key(key_files[1])])
    assert verified.key.key_id == signing_key.key_id
    assert verified.manifest.bundle_id == manifest.bundle_id


def test_manifest_schema_versions() -> None:
    """Versions 1 to 3 are read; a newer major is refused with a message saying to upgrade."""
    from pybundle.schema import MANIFEST_SCHEMAS, load_schema

    assert sorted(MANIFEST_SCHEMAS) == [1, 2, 3]
    for version, name in MANIFEST_SCHEMAS.items():
        schema = load_schema(name)
        assert schema["$id"] == f"urn:pybundle:schema:manifest:v{version}"
        assert schema["properties"]["schema_version"] == {"const": version}
    doc = {"schema_version": 4, "bundle_id": "x"}
    with pytest.raises(ManifestError, match=r"schema version 4.*install a newer pybundle"):
        Manifest.from_bytes(json.dumps(doc).encode(), "future.pybundle")
