"""The manifest's ``self_install`` section (schema version 2): written only for self-installing
bundles, checked when read, and every member it lists is held to the signed manifest like an
archive (and nothing else may sit in the zip)."""

from __future__ import annotations

import copy
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_tar, tiny_artifact, tiny_interpreter_members
from pybundle.bundler.pack import write_bundle
from pybundle.errors import HashMismatchError, ManifestError
from pybundle.hashing import sha256_file
from pybundle.installer.verify import verify_bundle
from pybundle.manifest import Artifact, Manifest
from pybundle.selfinstall.section import Bootstrap, CarriedFile, SelfInstall
from pybundle.signing import SecretKey
from pybundle.targets import Target

X86 = Target("linux", "x86_64", "gnu")


def carried_wheel(directory: Path, name: str) -> tuple[CarriedFile, Path]:
    path = directory / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", name)
    sha, size = sha256_file(path)
    return CarriedFile(f"wheels/{name}", "wheel", size, sha), path


def section_for(artifact: Artifact, wheels: list[CarriedFile]) -> SelfInstall:
    return SelfInstall(
        files=tuple(wheels),
        bootstraps=(
            Bootstrap(
                X86, artifact.member, "3.12", "bin/python3.12", tuple(w.member for w in wheels)
            ),
        ),
    )


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Artifact, Path, list[tuple[CarriedFile, Path]]]:
    archive = make_tar(
        tmp_path / "cpython-3.12.1+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz",
        tiny_interpreter_members(),
    )
    wheels = [
        carried_wheel(tmp_path, "pybundle-0.1.0-py3-none-any.whl"),
        carried_wheel(tmp_path, "demo-1.0-py3-none-any.whl"),
    ]
    return tiny_artifact(archive), archive, wheels


def test_the_section_round_trips_in_schema_version_2(parts) -> None:  # type: ignore[no-untyped-def]
    artifact, _, wheels = parts
    section = section_for(artifact, [w for w, _ in wheels])
    manifest = Manifest.new([artifact], self_install=section)
    assert manifest.schema_version == 2
    again = Manifest.from_bytes(manifest.to_bytes(), "test")
    assert again.self_install == section
    assert [m.member for m in again.members()] == [artifact.member] + [w.member for w, _ in wheels]
    assert section.bootstrap_for(Target("linux", "x86_64", "gnu", "v3")) == section.bootstraps[0]
    assert section.bootstrap_for(Target("linux", "x86_64", "musl")) is None
    plain = Manifest.new([artifact])
    assert plain.schema_version == 1
    assert "self_install" not in plain.to_json()


Mutation = Callable[[dict[str, Any]], None]


def _boot(doc: dict[str, Any]) -> dict[str, Any]:
    boot: dict[str, Any] = doc["self_install"]["bootstraps"][0]
    return boot


MUTATIONS: list[tuple[str, Mutation, str]] = [
    ("unlisted artifact", lambda d: _boot(d).update(artifact="archives/other.tar.gz"),
     "which the manifest does not list"),
    ("python version", lambda d: _boot(d).update(python="3.11", executable="bin/python3.11"),
     "is not a CPython 3.11 tar.gz archive"),
    ("executable", lambda d: _boot(d).update(executable="bin/python3.11"),
     "which is not bin/python3.12"),
    ("uncarried wheel", lambda d: _boot(d)["wheels"].append("wheels/x-1-py3-none-any.whl"),
     "which the manifest does not carry"),
    ("wheel twice", lambda d: _boot(d)["wheels"].append(_boot(d)["wheels"][0]),
     "must name each of its wheels once"),
    ("two bootstraps", lambda d: d["self_install"]["bootstraps"].append(copy.deepcopy(_boot(d))),
     "two bootstraps for linux-x86_64-gnu"),
    ("file twice", lambda d: d["self_install"]["files"].append(d["self_install"]["files"][0]),
     "lists wheels/pybundle-0.1.0-py3-none-any.whl twice"),
    ("main as wheel", lambda d: d["self_install"]["files"][0].update(member="__main__.py"),
     "is not a valid wheel"),
    ("platform of artifact", lambda d: _boot(d).update(arch="aarch64"),
     "is not a CPython 3.12 tar.gz archive for that platform"),
    ("path in member", lambda d: d["self_install"]["files"][0].update(member="wheels/../x.whl"),
     "fails the schema"),
    ("empty file", lambda d: d["self_install"]["files"][0].update(size=0), "fails the schema"),
    ("macos", lambda d: _boot(d).update(os="darwin"), "fails the schema"),
    ("extra key", lambda d: d["self_install"].update(stub="x"), "fails the schema"),
    ("upper-case hash", lambda d: d["self_install"]["files"][0].update(sha256="A" * 64),
     "fails the schema"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "why"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS]
)
def test_an_inconsistent_section_is_refused(parts, mutate: Mutation, why: str) -> None:  # type: ignore[no-untyped-def]
    artifact, _, wheels = parts
    doc = Manifest.new([artifact], self_install=section_for(artifact, [w for w, _ in wheels]))
    data = doc.to_json()
    mutate(data)
    with pytest.raises(ManifestError, match=re.escape(why)):
        Manifest.from_bytes(json.dumps(data).encode(), "test")


def test_a_zstd_archive_cannot_bootstrap(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "cpython-3.12.1+20990101-x86_64-unknown-linux-gnu-install_only.tar.zst",
        tiny_interpreter_members(),
        "tar.zst",
    )
    artifact = tiny_artifact(archive, archive_format="tar.zst")
    wheel, _ = carried_wheel(tmp_path, "pybundle-0.1.0-py3-none-any.whl")
    with pytest.raises(ManifestError, match=re.escape("is not a CPython 3.12 tar.gz archive")):
        Manifest.new([artifact], self_install=section_for(artifact, [wheel])).to_bytes()


def write(path: Path, parts, key: SecretKey, carried=None) -> Manifest:  # type: ignore[no-untyped-def]
    artifact, archive, wheels = parts
    section = section_for(artifact, [w for w, _ in wheels])
    return write_bundle(
        path,
        [(artifact, archive)],
        secret_key=key,
        self_install=section,
        carried=wheels if carried is None else carried,
    )


def test_verify_checks_every_carried_member_and_refuses_others(
    tmp_path: Path,
    parts,  # type: ignore[no-untyped-def]
    signing_key: SecretKey,
) -> None:
    trusted = [signing_key.public_key]
    good = tmp_path / "good.pybundle"
    write(good, parts, signing_key)
    verified = verify_bundle(good, trusted)
    assert verified.manifest.self_install is not None
    # a carried member whose bytes changed
    damaged = tmp_path / "damaged.pybundle"
    data = bytearray(good.read_bytes())
    at = data.rindex(b"demo/__init__.py")  # inside the second wheel's stored bytes
    data[at] ^= 0x20
    damaged.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError, match=re.escape("wheels/demo-1.0-py3-none-any.whl")):
        verify_bundle(damaged, trusted)
    # a member nobody listed
    extra = tmp_path / "extra.pybundle"
    extra.write_bytes(good.read_bytes())
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr(zipfile.ZipInfo("wheels/evil-1-py3-none-any.whl"), b"x")
    with pytest.raises(ManifestError, match="is not listed in the manifest"):
        verify_bundle(extra, trusted)
    # a listed member that is missing
    missing = tmp_path / "missing.pybundle"
    write(missing, parts, signing_key, carried=parts[2][:1])
    with pytest.raises(
        ManifestError, match=re.escape("lists wheels/demo-1.0-py3-none-any.whl, which is not")
    ):
        verify_bundle(missing, trusted)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**41) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*prefix, i))
    return found


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_mangled_section_is_a_manifest_error_or_valid(parts, data) -> None:  # type: ignore[no-untyped-def]
    artifact, _, wheels = parts
    doc = Manifest.new(
        [artifact], self_install=section_for(artifact, [w for w, _ in wheels])
    ).to_json()
    paths = _paths(doc["self_install"], ("self_install",))
    path = data.draw(st.sampled_from(paths))
    value = data.draw(json_values)
    if path == ("self_install",):
        doc["self_install"] = value
    else:
        node = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    try:
        manifest = Manifest.from_bytes(json.dumps(doc).encode(), "fuzz")
    except ManifestError:
        return
    assert manifest.self_install is not None
    manifest.to_bytes()  # what was accepted also writes back
