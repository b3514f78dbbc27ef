"""Self-installing bundles combined with compact bundles and volumes (issues 9 and 13).

- ``--self-installing --compact``: the bootstrap interpreter stays a plain ``tar.gz`` member
  outside the solid stream (the sh stub unpacks it with tar and gzip), must be a CPython >= 3.10
  (py7zr, which reads the stream, needs it), and the carried wheels include py7zr and its
  dependencies only then; the real stub installs such a file under dash.
- ``--self-installing --volume-size``: the whole-file signature covers the joined file
  (``cat NAME.0* > NAME``), and the stub, which reads one file, says to join the volumes.

The small bundles come from the transport tests' catalog of tiny interpreters
(:mod:`compactlib`); the end-to-end one uses the machine's real pyenv 3.12 as the bootstrap.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from selfkit import BASE_PATH, Host, check_interpreter, error_line, run_stub, trimmed_copy

from compactlib import archive_name, bundle_args, make_catalog
from conftest import discover_prefix, make_tar, run_cli, tiny_artifact, tiny_interpreter_members
from pybundle.bundler.selfinstall import BootCandidate, check_bootstrappable
from pybundle.errors import ManifestError, UsageError
from pybundle.manifest import Manifest, SolidContainer, SolidEntry
from pybundle.selfinstall.section import Bootstrap, CarriedFile, SelfInstall
from pybundle.signing import load_public_key, prehash_file, verify_prehashed
from pybundle.targets import Target

X86 = Target("linux", "x86_64", "gnu")
PY7ZR_PROJECTS = {"py7zr", "pybcj", "pyppmd", "inflate64", "multivolumefile", "texttable"}


def candidate(version: str, flavour: str = "install_only", size: int = 80_000_000) -> BootCandidate:
    return BootCandidate(
        X86, version, "cpython", "default", flavour, "tar.gz", f"cp-{version}", size
    )


def manifest_of(bundle: Path) -> dict:  # type: ignore[type-arg]
    with zipfile.ZipFile(bundle) as zf:
        return json.loads(zf.read("pybundle.json"))  # type: ignore[no-any-return]


def carried_projects(doc: dict) -> set[str]:  # type: ignore[type-arg]
    return {
        f["member"].split("/")[1].split("-")[0].lower()
        for f in doc["self_install"]["files"]
        if f["kind"] == "wheel"
    }


def keygen(directory: Path) -> tuple[Path, Path]:
    secret, public = directory / "ops.key", directory / "ops.pub"
    run_cli(
        "keygen", "--secret-key", str(secret), "--public-key", str(public), "--unencrypted",
        check=True,
    )  # fmt: skip
    return secret, public


# ---- which interpreter bootstraps a compact bundle ---------------------------------------


def test_a_compact_bundle_bootstraps_with_a_python_that_runs_py7zr() -> None:
    chosen = check_bootstrappable(
        [candidate("3.9.18", "install_only_stripped"), candidate("3.10.13")], compact=True
    )
    assert chosen[X86].version == "3.10.13"
    # without --compact, the smaller flavour wins, whatever its version (>= 3.9)
    plain = check_bootstrappable(
        [candidate("3.9.18", "install_only_stripped"), candidate("3.10.13")]
    )
    assert plain[X86].version == "3.9.18"


def test_a_compact_bundle_with_only_python_3_9_cannot_install_itself() -> None:
    with pytest.raises(UsageError) as caught:
        check_bootstrappable([candidate("3.9.18")], compact=True)
    message = caught.value.message
    assert "cannot make a compact self-installing file" in message
    assert "CPython >= 3.10" in message and "py7zr" in message and "drop --compact" in message
    assert check_bootstrappable([candidate("3.9.18")])[X86].version == "3.9.18"


def test_a_compact_bundle_keeps_the_smallest_archive_plain() -> None:
    """Kept out of the stream, the bootstrap travels whole: the smallest costs least (three
    pyenv builds: 3.13 kept plain made the bundle 152.3 MB, 3.11 144.4 MB)."""
    three = [
        candidate("3.11.7", size=81_040_256),
        candidate("3.12.1", size=87_503_369),
        candidate("3.13.0", size=92_542_300),
    ]
    assert check_bootstrappable(three, compact=True)[X86].version == "3.11.7"
    assert check_bootstrappable(three)[X86].version == "3.13.0"  # plain: the newest


def test_a_manifest_whose_bootstrap_is_in_the_solid_stream_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / archive_name("3.12.1"), tiny_interpreter_members())
    artifact = tiny_artifact(archive)
    tar = SolidEntry(artifact.file_name.removesuffix(".gz"), 10240, "a" * 64)
    container = SolidContainer("archives/interpreters.7z", 4096, "b" * 64, "lzma2", 1 << 20, 10240)
    wheel = CarriedFile("wheels/pybundle-0.1.0-py3-none-any.whl", "wheel", 100, "c" * 64)
    boot = Bootstrap(X86, artifact.member, "3.12", "bin/python3.12", (wheel.member,))
    section = SelfInstall((wheel,), (boot,))
    solid = Manifest.new(
        [replace(artifact, solid=tar)],
        solid=container,
        self_install=section,
    )
    with pytest.raises(ManifestError, match="bootstrap for linux-x86_64-gnu is in the solid"):
        solid.to_bytes()
    assert Manifest.new([artifact], self_install=section).to_bytes()  # plain: fine


# ---- bundles made by the CLI -------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keygen(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_catalog(tmp_path_factory.mktemp("catalog"))


def test_compact_keeps_the_bootstrap_plain_and_carries_py7zr(
    catalog: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    secret, public = keys
    out = tmp_path / "compact.pybundle"
    proc = run_cli(*bundle_args(catalog, tmp_path / "cache", secret, out, "--self-installing",
                                "--compact"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "compact:" in proc.stdout and "self-installing (sh compact.pybundle install)" in proc.stdout
    )
    doc = manifest_of(out)
    boot = doc["self_install"]["bootstraps"]
    by_member = {a["member"]: a for a in doc["artifacts"]}
    [bootstrap] = [by_member[b["artifact"]] for b in boot]
    assert bootstrap["size"] == min(a["size"] for a in doc["artifacts"])  # the smallest
    assert "solid" not in bootstrap  # the bootstrap is a plain member
    assert [a for a in doc["artifacts"] if "solid" in a] == [
        a for a in doc["artifacts"] if a is not bootstrap
    ]
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
    assert boot[0]["artifact"] in names and doc["solid"]["member"] in names
    assert carried_projects(doc) >= PY7ZR_PROJECTS
    assert all(
        any(w.split("/")[1].lower().startswith(p) for w in boot[0]["wheels"])
        for p in PY7ZR_PROJECTS
    )
    verified = run_cli("verify", str(out), "--trusted-key", str(public))
    assert verified.returncode == 0, verified.stderr
    assert "carried files verified" in verified.stdout
    shown = run_cli("inspect", str(out), check=True).stdout
    assert "container: zip with a solid 7z stream" in shown
    assert "self-installing (sh compact.pybundle install)" in shown

    # the same bundle without --compact carries no py7zr
    plain = tmp_path / "plain.pybundle"
    run_cli(*bundle_args(catalog, tmp_path / "cache", secret, plain, "--self-installing"),
            check=True)  # fmt: skip
    assert carried_projects(manifest_of(plain)).isdisjoint(PY7ZR_PROJECTS)
    assert "solid" not in manifest_of(plain)


def test_volumes_of_a_self_installing_bundle_are_signed_as_the_joined_file(
    catalog: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    secret, public = keys
    out = tmp_path / "out" / "py.pybundle"
    proc = run_cli(*bundle_args(catalog, tmp_path / "cache", secret, out, "--self-installing",
                                "--compact", "--volume-size", "2M"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sh reads one file: join the volumes first (cat py.pybundle.0* > py.pybundle)" in (
        proc.stdout
    )
    parts = sorted(out.parent.glob("py.pybundle.0*"))
    assert len(parts) > 2 and not out.exists()
    signature = out.with_name("py.pybundle.minisig")
    assert signature.is_file()
    assert f"wrote {signature} (minisign signature of the whole file)" in proc.stdout
    joined = tmp_path / "py.pybundle"
    with open(joined, "wb") as dst:
        for part in parts:
            dst.write(part.read_bytes())
    key = load_public_key(public)
    verify_prehashed(prehash_file(joined), signature.read_bytes(), [key], str(joined))
    if shutil.which("minisign"):
        checked = subprocess.run(
            ["minisign", "-Vm", str(joined), "-x", str(signature), "-p", str(public)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
    for bundle in (parts[0], joined):
        verified = run_cli("verify", str(bundle), "--trusted-key", str(public))
        assert verified.returncode == 0, verified.stderr
    shown = run_cli("inspect", str(parts[0]), check=True).stdout
    assert "self-installing (sh py.pybundle install)" in shown
    assert "join the volumes first (cat py.pybundle.0* > py.pybundle)" in shown

    host = Host(tmp_path / "host")
    refused = run_stub(parts[0], "install", "--trusted-key", str(public), env=host.env())
    assert refused.returncode == 5
    line = error_line(refused.stderr)
    assert "is one volume of a set" in line
    assert f"cat {out}.0* > {out} && sh {out} install" in line
    helped = run_stub(joined, "--help", env=host.env())
    assert helped.returncode == 0, helped.stderr
    assert "cat py.pybundle.0* > py.pybundle" in helped.stdout.replace(str(joined), "py.pybundle")
    assert host.leftovers() == []


@pytest.mark.slow
@pytest.mark.tool("dash")
def test_sh_installs_a_compact_self_installing_file(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The real pyenv 3.12 bootstraps (plain tar.gz member; a tiny 3.9.18, too old to run py7zr,
    cannot); the tiny 3.9.18 travels in the solid stream; the stub's pybundle reads it with the
    carried py7zr, verifies and installs both."""
    prefix = discover_prefix("12")
    if prefix is None:
        pytest.skip("needs a pyenv CPython 3.12 build")
    trimmed = trimmed_copy(prefix, tmp_path / "cpython-3.12")
    catalog = make_catalog(tmp_path / "catalog", ("3.9.18",))
    secret, public = keys
    out = tmp_path / "py.pybundle"
    proc = run_cli(
        "bundle", "--catalog", str(catalog), "--versions", "3.9", "--platform", "linux-x86_64",
        "--from-prefix", str(trimmed), "--prefix-site-packages", "pip", "--self-installing",
        "--compact", "--sign-key", str(secret), "--cache-dir", str(tmp_path / "cache"),
        "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = manifest_of(out)
    solid = {a["version"] for a in doc["artifacts"] if "solid" in a}
    assert solid == {"3.9.18"}
    host = Host(tmp_path / "host")
    checked = run_stub(out, "verify", "--trusted-key", str(public), env=host.env())
    assert checked.returncode == 0, checked.stderr
    env = host.env()
    installed = run_stub(out, "install", "--trusted-key", str(public), "--keep-installer", env=env)
    assert installed.returncode == 0, installed.stderr
    check_interpreter(host.installs / "cpython-3.12.1-linux-x86_64-gnu")
    tiny = host.installs / "cpython-3.9.18-linux-x86_64-gnu"
    assert (tiny / "lib" / "python3.12" / "version.txt").read_bytes() == b"3.9.18" * 100
    assert host.leftovers() == []
    # the kept pybundle carries py7zr too: it reads (decodes and checks) the solid stream
    kept = {**env, "PATH": f"{host.bin}:{BASE_PATH}"}
    verified = subprocess.run(
        ["pybundle", "verify", str(out), "--trusted-key", str(public)],
        env=kept,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert "carried files verified" in verified.stdout
