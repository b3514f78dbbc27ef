"""``pybundle bundle --self-installing`` from the command line: the format it picks, what it
refuses before any work, the whole-file signature, and a catalog bundle whose second interpreter
is a ``tar.zst`` (so the carried installer needs zstandard) installed by the stub."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from selfkit import Host, check_interpreter, error_line, run_stub, trimmed_copy

from conftest import Mirror, discover_prefix, run_cli


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = discover_prefix("12")
    if prefix is None:
        pytest.skip("needs a pyenv CPython 3.12 build")
    return trimmed_copy(prefix, tmp_path_factory.mktemp("trimmed") / "cpython-3.12")


def keygen(directory: Path) -> tuple[Path, Path]:
    secret, public = directory / "ops.key", directory / "ops.pub"
    run_cli(
        "keygen", "--secret-key", str(secret), "--public-key", str(public), "--unencrypted",
        check=True,
    )  # fmt: skip
    return secret, public


@pytest.mark.slow
def test_bundle_self_installing_from_a_prefix_packs_tar_gz_and_signs_the_whole_file(
    trimmed: Path, tmp_path: Path
) -> None:
    secret, public = keygen(tmp_path / "keys")
    out = tmp_path / "py.pybundle"
    proc = run_cli(
        "bundle", "--from-prefix", str(trimmed), "--prefix-site-packages", "pip",
        "--self-installing", "--sign-key", str(secret), "--cache-dir", str(tmp_path / "cache"),
        "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "self-installing (sh py.pybundle install): stub" in proc.stdout
    assert f"wrote {out}.minisig (minisign signature of the whole file)" in proc.stdout
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("pybundle.json"))
    assert manifest["schema_version"] == 3  # v3: file indexes
    assert [a["archive_format"] for a in manifest["artifacts"]] == ["tar.gz"]
    projects = {m["member"].split("/")[1].split("-")[0] for m in manifest["self_install"]["files"]
                if m["kind"] == "wheel"}  # fmt: skip
    assert "zstandard" not in projects  # no tar.zst archive, no zstandard
    assert {"pybundle", "cryptography", "typer_slim"} <= projects
    if subprocess.run(["which", "minisign"], capture_output=True).returncode == 0:
        ok = subprocess.run(
            ["minisign", "-Vm", str(out), "-p", str(public)], capture_output=True, text=True
        )
        assert ok.returncode == 0, ok.stderr
    host = Host(tmp_path / "host")
    installed = run_stub(out, "install", "--trusted-key", str(public), env=host.env())
    assert installed.returncode == 0, installed.stderr
    check_interpreter(host.installs / "cpython-3.12.1-linux-x86_64-gnu")
    assert host.leftovers() == []


def test_a_platform_that_cannot_bootstrap_is_refused_before_any_work(
    trimmed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "py.pybundle"
    proc = run_cli(
        "bundle", "--from-prefix", str(trimmed), "--prefix-format", "tar.zst",
        "--self-installing", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 2
    line = error_line(proc.stderr)
    assert "cannot make a self-installing file: no interpreter for linux-x86_64-gnu" in line
    assert "tar.gz" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_catalog_bundle_with_a_zstd_interpreter_carries_zstandard_and_installs_both(
    mirror: Mirror, tmp_path: Path
) -> None:
    if len(mirror.archives) < 2:
        pytest.skip("needs two pyenv interpreters (3.11 and 3.12)")
    secret, public = keygen(tmp_path / "keys")
    out = tmp_path / "py.pybundle"
    minors = ",".join(f"{a.info.version.major}.{a.info.version.minor}" for a in mirror.archives)
    proc = run_cli(
        "bundle", "--versions", minors, "--platform", "linux-x86_64", "--catalog",
        mirror.catalog_url, "--mirror", mirror.mirror_url, "--cache-dir", str(tmp_path / "cache"),
        "--sign-key", str(secret), "--self-installing", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("pybundle.json"))
    gz = next(a for a in manifest["artifacts"] if a["archive_format"] == "tar.gz")
    boot = manifest["self_install"]["bootstraps"]
    assert [b["artifact"] for b in boot] == [gz["member"]]
    assert any("zstandard" in w for w in boot[0]["wheels"])
    host = Host(tmp_path / "host")
    installed = run_stub(out, "install", "--trusted-key", str(public), env=host.env())
    assert installed.returncode == 0, installed.stderr
    for archive in mirror.archives:
        v = archive.info.version
        install = host.installs / f"cpython-{v}-linux-x86_64-gnu"
        python = install / "bin" / f"python{v.major}.{v.minor}"
        run = subprocess.run(
            [str(python), "-c", "import sys, ssl; print(sys.prefix)"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == str(install)
    assert host.leftovers() == []
