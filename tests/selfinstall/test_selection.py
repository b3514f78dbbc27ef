"""Which bootstrap the stub picks on which host, and the wheels a cross-built bundle carries.

The bundle here holds two stand-in interpreters, for linux-x86_64 and linux-aarch64: shell
scripts named ``python3.12`` that say which one ran (this machine can run neither a real aarch64
interpreter nor pretend to be one otherwise). ``uname`` is replaced on PATH to play other
hosts. Their wheels are the real ones pip resolves for each platform (a bundle for aarch64
made on x86_64).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from selfkit import Host, error_line, run_stub, write_keys

from conftest import make_tar, tar_dir, tar_file, tiny_artifact
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.selfinstall import prepare_self_install
from pybundle.bundler.wheels import WheelTarget
from pybundle.manifest import Artifact, Manifest
from pybundle.selfinstall.section import SelfInstall
from pybundle.signing import generate_secret_key
from pybundle.targets import Target

X86 = Target("linux", "x86_64", "gnu")
ARM = Target("linux", "aarch64", "gnu")


def stand_in(arch: str) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    script = f'#!/bin/sh\necho "stand-in python {arch} $1 $2"\n'.encode()
    return [
        tar_dir("python"),
        tar_dir("python/bin"),
        tar_file("python/bin/python3.12", script, 0o755),
        tar_dir("python/lib"),
    ]


class TwoTargets:
    def __init__(self, root: Path) -> None:
        items: list[tuple[Artifact, Path]] = []
        for target in (X86, ARM):
            archive = make_tar(
                root / f"cpython-3.12.1+20990101-{target.triple}-install_only.tar.gz",
                stand_in(target.arch),
            )
            items.append((tiny_artifact(archive, target=target), archive))
        work = root / "work"
        work.mkdir()
        self.parts = prepare_self_install(items, root / "cache", work)
        key = generate_secret_key()
        _, self.public_key = write_keys(root / "keys", key)
        self.bundle = root / "two.pybundle"
        self.manifest: Manifest = write_bundle(
            self.bundle,
            items,
            secret_key=key,
            self_install=self.parts.section,
            carried=self.parts.files,
            preamble=self.parts.stub,
        )

    @property
    def section(self) -> SelfInstall:
        assert self.manifest.self_install is not None
        return self.manifest.self_install


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> TwoTargets:
    return TwoTargets(tmp_path_factory.mktemp("two"))


def fake_uname(directory: Path, system: str, machine: str) -> str:
    """A PATH whose ``uname`` reports ``system`` and ``machine``."""
    directory.mkdir(parents=True, exist_ok=True)
    uname = directory / "uname"
    uname.write_text(f'#!/bin/sh\ncase "$1" in -s) echo {system} ;; -m) echo {machine} ;; esac\n')
    uname.chmod(0o755)
    return f"{directory}:/usr/bin:/bin"


def test_this_host_gets_its_own_bootstrap(two: TwoTargets, tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    out = run_stub(two.bundle, "install", env=host.env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stand-in python x86_64 -I -B"
    assert host.leftovers() == []


@pytest.mark.parametrize("machine", ["aarch64", "arm64"])
def test_an_aarch64_host_gets_the_aarch64_bootstrap(
    two: TwoTargets, tmp_path: Path, machine: str
) -> None:
    host = Host(tmp_path / "host")
    path = fake_uname(tmp_path / "fake", "Linux", machine)
    out = run_stub(two.bundle, "install", env=host.env(PATH=path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stand-in python aarch64 -I -B"
    assert host.leftovers() == []


def test_a_host_the_file_has_nothing_for_is_told_what_it_has(
    two: TwoTargets, tmp_path: Path
) -> None:
    host = Host(tmp_path / "host")
    out = run_stub(
        two.bundle, "install", env=host.env(PATH=fake_uname(tmp_path / "f1", "Linux", "riscv64"))
    )
    assert out.returncode == 7
    assert error_line(out.stderr).endswith(
        "holds no interpreter for this host (linux-riscv64-gnu); it has: linux-aarch64-gnu, "
        "linux-x86_64-gnu"
    )
    out = run_stub(
        two.bundle, "install", env=host.env(PATH=fake_uname(tmp_path / "f2", "Darwin", "arm64"))
    )
    assert out.returncode == 7
    assert "installs on Linux only (this host runs Darwin)" in error_line(out.stderr)
    assert host.leftovers() == []


def test_python3_file_picks_the_bootstrap_of_this_host(two: TwoTargets, tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    out = subprocess.run(
        [sys.executable, str(two.bundle), "install"],
        env=host.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stand-in python x86_64 -I -B"
    assert host.leftovers() == []


def test_a_bundle_for_aarch64_made_here_carries_aarch64_wheels(two: TwoTargets) -> None:
    arm_target = WheelTarget.for_interpreter(ARM, "3.12")
    x86_target = WheelTarget.for_interpreter(X86, "3.12")
    arm = two.section.bootstrap_for(ARM)
    x86 = two.section.bootstrap_for(X86)
    assert arm is not None and x86 is not None
    arm_wheels = two.parts.wheels[ARM]
    assert [f"wheels/{w.file_name}" for w in arm_wheels] == list(arm.wheels[1:])
    compiled = [w for w in arm_wheels if not all(t.platform == "any" for t in w.tags)]
    assert {w.project for w in compiled} >= {"cryptography", "cffi", "rpds-py", "isal"}
    for wheel in arm_wheels:
        assert arm_target.supports(wheel.tags), wheel.file_name
    for wheel in compiled:
        assert all("aarch64" in t.platform for t in wheel.tags), wheel.file_name
        assert not x86_target.supports(wheel.tags), wheel.file_name
    # pure wheels are shared by both bootstraps, compiled ones are not
    shared = set(arm.wheels) & set(x86.wheels)
    assert arm.wheels[0] in shared  # pybundle's own wheel
    assert not any(f"wheels/{w.file_name}" in shared for w in compiled)
    # no zstandard: neither platform has a tar.zst archive
    assert not any(w.project == "zstandard" for w in arm_wheels)
