"""The manifest's ``wheelhouses`` section: a valid one reads back, hostile ones are refused by
the schema or the checks it cannot express, and the install side's copy checks every wheel
against the signed manifest."""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))

from fuzzlib import Base, make_base, wheelhouse_bundle, wheelhouse_doc

from pybundle.errors import HashMismatchError, ManifestError
from pybundle.installer.source import BundleSource
from pybundle.installer.verify import verify_bundle, verify_manifest
from pybundle.installer.wheelhouse import copy_wheelhouse
from pybundle.manifest import Manifest
from pybundle.signing import PublicKey


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return make_base(tmp_path_factory.mktemp("wheelhouse-base"), "tar.gz")


def _key(base: Base) -> PublicKey:
    return base.key.public_key


def _read(doc: dict[str, Any]) -> Manifest:
    return Manifest.from_bytes(json.dumps(doc).encode(), "test.pybundle")


def test_a_valid_section_reads_back_and_its_bundle_verifies(base: Base, tmp_path: Path) -> None:
    doc, members = wheelhouse_doc(base)
    manifest = _read(doc)
    assert manifest.wheelhouses is not None
    assert manifest.to_json()["wheelhouses"] == doc["wheelhouses"]
    assert [m.member for m in manifest.members()][-2:] == [name for name, _ in members]
    bundle = wheelhouse_bundle(base, tmp_path / "ok.pybundle", doc, members)
    verify_bundle(bundle, [_key(base)])


def _edit(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    parent: Any = doc["wheelhouses"]
    parts = path.split(".")
    for part in parts[:-1]:
        parent = parent[int(part)] if part.isdigit() else parent[part]
    last = parts[-1]
    if value is KeyError:
        del parent[last]
    elif isinstance(parent, list):
        parent[int(last)] = value
    else:
        parent[last] = value
    return doc


HOSTILE = {
    "wheel-member-escapes": ("wheels.0.member", "wheels/../pybundle.json"),
    "wheel-member-not-a-wheel": ("wheels.0.member", "wheels/demo.txt"),
    "wheel-member-too-long": ("wheels.0.member", "wheels/" + "a" * 300 + ".whl"),
    "wheel-name-not-a-wheel-name": ("wheels.0.member", "wheels/nodashes.whl"),
    "wheel-size-zero": ("wheels.0.size", 0),
    "wheel-sha-upper": ("wheels.0.sha256", "A" * 64),
    "tag-control-char": ("wheels.0.tags", ["py3-none-\nany"]),
    "no-tags": ("wheels.0.tags", []),
    "extra-field": ("wheels.0.extra", 1),
    "key-mismatch": ("targets.0.key", "cpython-3.11-linux-x86_64-gnu"),
    "key-traversal": ("targets.0.key", "cpython-3.12-linux-../x"),
    "lock-elsewhere": ("targets.0.lock.member", "locks/cpython-3.11-linux-x86_64-gnu.txt"),
    "lock-escapes": ("targets.0.lock.member", "locks/../pybundle.json"),
    "lock-too-big": ("targets.0.lock.size", 2**40),
    "unknown-artifact": ("targets.0.artifacts", ["archives/other.tar.gz"]),
    "wrong-python": ("targets.0.python", "3.11"),
    "wrong-arch": ("targets.0.arch", "aarch64"),
    "not-linux": ("targets.0.os", "darwin"),
    "unknown-os": ("targets.0.os", "freebsd"),
    "linux-without-libc": ("targets.0.libc", "none"),
    "unknown-libc": ("targets.0.libc", "msvc"),
    "uncarried-wheel": ("targets.0.wheels", ["wheels/other-1.0-py3-none-any.whl"]),
    "wheel-twice": (
        "targets.0.wheels",
        ["wheels/demo-1.0-py3-none-any.whl", "wheels/demo-1.0-py3-none-any.whl"],
    ),
    "missing-requirement-newline": (
        "targets.0.missing",
        [{"requirement": "a\nb", "reason": "x"}],
    ),
    "no-targets": ("targets", []),
    "no-missing-field": ("targets.0.missing", KeyError),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_sections_are_refused(base: Base, case: str) -> None:
    doc, _ = wheelhouse_doc(base)
    path, value = HOSTILE[case]
    with pytest.raises(ManifestError):
        _read(_edit(doc, path, value))


def test_two_wheels_of_one_project_in_a_target_are_refused(base: Base) -> None:
    doc, _ = wheelhouse_doc(base)
    other = dict(doc["wheelhouses"]["wheels"][0], member="wheels/demo-2.0-py3-none-any.whl")
    doc["wheelhouses"]["wheels"].append(other)
    doc["wheelhouses"]["targets"][0]["wheels"].append(other["member"])
    with pytest.raises(ManifestError, match="two wheels of demo"):
        _read(doc)


def test_a_wheel_shared_with_the_installer_must_be_the_same_file(base: Base) -> None:
    doc, _ = wheelhouse_doc(base)
    wheel = doc["wheelhouses"]["wheels"][0]
    doc["self_install"] = {
        "files": [dict(member=wheel["member"], kind="wheel", size=wheel["size"], sha256="0" * 64)],
        "bootstraps": [
            {
                "os": "linux",
                "arch": "x86_64",
                "libc": "gnu",
                "artifact": doc["artifacts"][0]["member"],
                "python": "3.12",
                "executable": "bin/python3.12",
                "wheels": [wheel["member"]],
            }
        ],
    }
    doc["artifacts"][0]["archive_format"] = "tar.gz"
    with pytest.raises(ManifestError, match="carried twice with different contents"):
        _read(doc)
    doc["self_install"]["files"][0]["sha256"] = wheel["sha256"]
    manifest = _read(doc)  # the same file: one member, listed once
    assert [m.member for m in manifest.members()].count(wheel["member"]) == 1


def test_a_v1_manifest_cannot_carry_wheelhouses(base: Base) -> None:
    doc, _ = wheelhouse_doc(base)
    doc["schema_version"] = 1
    with pytest.raises(ManifestError):
        _read(doc)


def test_a_tampered_wheel_is_refused_as_it_is_copied_out(base: Base, tmp_path: Path) -> None:
    """The signature covers the manifest only: a wheel changed inside the zip is caught by
    its sha256 before anything (pip) could use it, and the bad copy is removed."""
    doc, members = wheelhouse_doc(base)
    name, data = members[0]
    members[0] = (name, b"X" + data[1:])
    bundle = wheelhouse_bundle(base, tmp_path / "tampered.pybundle", doc, members)
    out = tmp_path / "out"
    out.mkdir()
    with BundleSource(bundle) as source:
        manifest = verify_manifest(source, [_key(base)]).manifest
        assert manifest.wheelhouses is not None
        with pytest.raises(HashMismatchError, match=name):
            copy_wheelhouse(source, manifest, manifest.wheelhouses.targets[0], out)
    assert list(out.iterdir()) == []
    with pytest.raises(HashMismatchError):
        verify_bundle(bundle, [_key(base)])


def test_the_lock_is_pip_hash_checking_format() -> None:
    from pybundle.wheelhouse import lock_text

    sha = hashlib.sha256(b"x").hexdigest()
    text = lock_text("cpython-3.12-linux-x86_64-gnu", [("b", "2.0", sha), ("a", "1.0", sha)])
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == [
        "a==1.0 \\",
        f"    --hash=sha256:{sha}",
        "b==2.0 \\",
        f"    --hash=sha256:{sha}",
    ]


def _macos(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """``doc`` with its archive and wheelhouse for macos-aarch64 and the wheelhouse keyed
    ``key``."""
    doc = copy.deepcopy(doc)
    doc["artifacts"][0].update(os="darwin", arch="aarch64", libc="none",
                               target_triple="aarch64-apple-darwin")  # fmt: skip
    house = doc["wheelhouses"]["targets"][0]
    house.update(os="darwin", arch="aarch64", libc="none", key=key)
    house["lock"]["member"] = f"locks/{key}.txt"
    return doc


def test_macos_and_windows_wheelhouses_are_keyed_as_uv_installs_are(base: Base) -> None:
    from pybundle.targets import Target
    from pybundle.wheelhouse import wheelhouse_key

    assert wheelhouse_key("3.12", Target("darwin", "aarch64", "none")) == (
        "cpython-3.12-macos-aarch64-none"
    )
    assert wheelhouse_key("3.13", Target("windows", "x86_64", "none"), True) == (
        "cpython-3.13t-windows-x86_64-none"
    )
    assert wheelhouse_key("3.12", Target("linux", "x86_64", "gnu", "v3")) == (
        "cpython-3.12-linux-x86_64-gnu"
    )
    doc, _ = wheelhouse_doc(base)
    manifest = _read(_macos(doc, "cpython-3.12-macos-aarch64-none"))
    assert manifest.wheelhouses is not None
    house = manifest.wheelhouses.targets[0]
    assert house.matches("cpython-3.12-macos-aarch64") and house.target.os == "darwin"
    with pytest.raises(ManifestError, match="does not fit its target"):
        _read(_macos(doc, "cpython-3.12-darwin-aarch64-none"))
