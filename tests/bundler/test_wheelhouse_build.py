"""The bundle side of wheelhouses without pip: a wheel shared with the self-installing section
is written once, and the requirement-file handling of --allow-missing-wheels."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from conftest import make_tar, tiny_artifact, tiny_interpreter_members
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.wheelhouse import _filtered_copy, _requirement_name
from pybundle.manifest import Manifest
from pybundle.selfinstall.section import Bootstrap, CarriedFile, SelfInstall
from pybundle.signing import SecretKey
from pybundle.targets import Target
from pybundle.wheelhouse import LockFile, WheelFile, Wheelhouse, Wheelhouses, lock_text


def _file(path: Path, data: bytes) -> tuple[Path, str, int]:
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), len(data)


def test_a_wheel_also_carried_for_the_installer_is_one_member(
    tmp_path: Path, signing_key: SecretKey
) -> None:
    archive = make_tar(
        tmp_path / "cpython-3.12.1+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz",
        tiny_interpreter_members(),
    )
    artifact = tiny_artifact(archive)
    wheel, wsha, wsize = _file(tmp_path / "demo-1.0-py3-none-any.whl", b"wheel bytes")
    main, msha, msize = _file(tmp_path / "__main__.py", b"print()\n")
    member = "wheels/demo-1.0-py3-none-any.whl"
    carried = [
        (CarriedFile(member, "wheel", wsize, wsha), wheel),
        (CarriedFile("__main__.py", "python-main", msize, msha), main),
    ]
    section = SelfInstall(
        files=tuple(f for f, _ in carried),
        bootstraps=(
            Bootstrap(Target("linux", "x86_64", "gnu"), artifact.member, "3.12",
                      "bin/python3.12", (member,)),
        ),
    )  # fmt: skip
    key = "cpython-3.12-linux-x86_64-gnu"
    lock, lsha, lsize = _file(
        tmp_path / "lock.txt", lock_text(key, [("demo", "1.0", wsha)]).encode()
    )
    house = Wheelhouse(
        key, "3.12", "cp312", Target("linux", "x86_64", "gnu"), (artifact.member,), (member,),
        LockFile(f"locks/{key}.txt", lsize, lsha),
    )  # fmt: skip
    wheels = Wheelhouses((WheelFile(member, wsize, wsha, ("py3-none-any",)),), (house,))
    out = tmp_path / "b.pybundle"
    manifest = write_bundle(
        out,
        [(artifact, archive)],
        secret_key=signing_key,
        self_install=section,
        carried=carried,
        wheelhouses=wheels,
        wheel_files=[(wheels.wheels[0], wheel), (house.lock, lock)],
    )
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert Manifest.from_bytes(zf.read("pybundle.json"), str(out)) == manifest
    assert names.count(member) == 1
    assert f"locks/{key}.txt" in names
    assert [m.member for m in manifest.members()].count(member) == 1


def test_requirement_names_of_file_lines() -> None:
    assert _requirement_name("Requests[socks]>=2.31 ; python_version > '3.8'  # x") == "requests"
    assert _requirement_name("bcrypt==5.0.0 --hash=sha256:abcd") == "bcrypt"
    assert _requirement_name("Charset_Normalizer") == "charset-normalizer"
    for line in ("", "# comment", "-r other.txt", "--index-url http://x", "-e ."):
        assert _requirement_name(line) is None


def test_a_filtered_copy_drops_the_named_lines_and_keeps_nested_files_reachable(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src" / "requirements.txt"
    source.parent.mkdir()
    source.write_text(
        "bcrypt==5.0.0 \\\n    --hash=sha256:aa\nidna\n-r more.txt\n-c constraints.txt\n"
    )
    copy, removed = _filtered_copy(source, {"bcrypt"}, tmp_path / "copy.txt")
    assert removed
    lines = copy.read_text().splitlines()
    assert lines == ["idna", f"-r {source.parent / 'more.txt'}",
                     f"-c {source.parent / 'constraints.txt'}"]  # fmt: skip
    assert source.read_text().startswith("bcrypt")
