"""The portability audit of --from-prefix, and what --prefix-site-packages pip drops.

Real input: pyenv builds, which link the host's libssl, libffi and libsqlite3; a synthetic
self-contained tree made of real ELF files (a pyenv python3.X and its libpython) has none.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import RealArchive, discover_prefix, run_cli
from pybundle.bundler.build import build_bundle
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.portability import (
    PortabilityError,
    allowed_libraries,
    audit_tree,
    describe,
)
from pybundle.bundler.prefix import PrefixInfo, dropped_files, pack_prefix, prefix_filter
from pybundle.bundler.selection import Selection
from pybundle.manifest import Manifest, Portability
from pybundle.signing import SecretKey
from pybundle.targets import Target
from pybundle.versions import PythonVersion

PYENV = discover_prefix("12") or discover_prefix("11")
needs_pyenv = pytest.mark.skipif(PYENV is None, reason="needs a pyenv CPython 3.11/3.12 build")


def minor_of(prefix: Path) -> str:
    return ".".join(prefix.name.split(".")[:2])


def test_allowlist_is_the_pypa_policy() -> None:
    gnu = allowed_libraries("manylinux")
    assert {"libc.so.6", "libm.so.6", "libpthread.so.0", "libz.so.1", "libgcc_s.so.1"} <= gnu
    assert "ld-linux-x86-64.so.2" in gnu  # the loader itself
    assert not {"libssl.so.3", "libffi.so.8", "libsqlite3.so.0", "libcrypt.so.1"} & gnu
    assert allowed_libraries("musllinux") >= {"libc.so", "libz.so.1"}


@needs_pyenv
def test_pyenv_build_needs_host_libraries() -> None:
    assert PYENV is not None
    report = audit_tree(PYENV)
    assert report is not None and report.policy == "manylinux"
    by_file = dict(report.external)
    dynload = f"lib/python{minor_of(PYENV)}/lib-dynload"
    tag = f"cpython-{minor_of(PYENV).replace('.', '')}-x86_64-linux-gnu.so"
    assert by_file[f"{dynload}/_ssl.{tag}"] == ("libssl.so.3", "libcrypto.so.3")
    assert by_file[f"{dynload}/_ctypes.{tag}"] == ("libffi.so.8",)
    assert by_file[f"{dynload}/_sqlite3.{tag}"] == ("libsqlite3.so.0",)
    assert "libpython" not in " ".join(report.libraries)  # inside the prefix
    assert "libc.so.6" not in report.libraries  # on the allowlist
    line = describe(report, str(PYENV))
    assert line.startswith(f"{PYENV}: needs ") and "libffi.so.8 (_ctypes." in line


@needs_pyenv
def test_self_contained_tree_needs_nothing(tmp_path: Path) -> None:
    assert PYENV is not None
    minor = minor_of(PYENV)
    root = tmp_path / "prefix"
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    shutil.copy2(PYENV / f"bin/python{minor}", root / f"bin/python{minor}")
    shutil.copy2(PYENV / f"lib/libpython{minor}.so.1.0", root / f"lib/libpython{minor}.so.1.0")
    (root / "bin/python3").symlink_to(f"python{minor}")
    (root / "README").write_text("not ELF\n")
    assert audit_tree(root) is None
    (root / f"lib/libpython{minor}.so.1.0").unlink()
    report = audit_tree(root)
    assert report is not None
    assert report.external == ((f"bin/python{minor}", (f"libpython{minor}.so.1.0",)),)
    # files that will not be shipped are not audited
    assert audit_tree(root, include=lambda rel: not rel.startswith("bin/")) is None


def test_manifest_is_v2_only_when_portability_is_recorded(tmp_path: Path) -> None:
    from conftest import make_tar, tiny_artifact, tiny_interpreter_members

    archive = make_tar(tmp_path / "cpython-3.12.1+x-x86_64-unknown-linux-gnu-install_only.tar.gz",
                       tiny_interpreter_members())  # fmt: skip
    plain = tiny_artifact(archive)
    assert Manifest.new([plain]).to_json()["schema_version"] == 1
    needs = Portability("manylinux", (("lib/x.so", ("libssl.so.3",)),))
    from dataclasses import replace

    audited = replace(plain, portability=needs)
    manifest = Manifest.new([audited])
    data = manifest.to_bytes()
    doc = json.loads(data)
    assert doc["schema_version"] == 2
    assert doc["artifacts"][0]["portability"] == {
        "policy": "manylinux",
        "external_libraries": [{"file": "lib/x.so", "needs": ["libssl.so.3"]}],
    }
    again = Manifest.from_bytes(data, "test")
    assert again.artifacts[0].portability == needs
    # a v1 manifest cannot carry the field
    doc["schema_version"] = 1
    from pybundle.errors import ManifestError

    with pytest.raises(ManifestError, match="portability"):
        Manifest.from_bytes(json.dumps(doc).encode(), "v1")


def fake_prefix(root: Path) -> PrefixInfo:
    """A prefix whose site-packages holds pip, a wheel-installed package with console scripts
    and bytecode in bin/__pycache__, and a setuptools egg-info package; plus a user's file."""
    site = root / "lib/python3.12/site-packages"
    (root / "bin/__pycache__").mkdir(parents=True)
    site.mkdir(parents=True)
    files = {
        "bin/python3.12": "#!/bin/sh\n",
        "bin/pip3": "#!python\n",
        "bin/foo": "#!python\n",
        "bin/foo-admin": "#!python\n",
        "bin/__pycache__/foo-admin.cpython-312.pyc": "bytecode",
        "bin/bar": "#!python\n",
        "bin/mine": "a user's own script\n",
        "share/man/man1/foo.1": "man page\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (site / "pip").mkdir()
    (site / "pip/__init__.py").write_text("")
    (site / "pip-24.0.dist-info").mkdir()
    (site / "pip-24.0.dist-info/RECORD").write_text(
        "../../../bin/pip3,sha256=x,1\npip/__init__.py,,\n"
    )
    (site / "foo").mkdir()
    (site / "foo-1.0.dist-info").mkdir()
    (site / "foo-1.0.dist-info/RECORD").write_text(
        "../../../bin/foo,sha256=x,1\n"
        '"../../../bin/foo-admin",sha256=x,1\n'
        "../../../bin/__pycache__/foo-admin.cpython-312.pyc,,\n"
        "../../../share/man/man1/foo.1,,\n"
        "../../../../../etc/outside,,\n"
        "foo/__init__.py,,\n"
    )
    (site / "bar.egg-info").mkdir()
    (site / "bar.egg-info/installed-files.txt").write_text("../../../../bin/bar\n")
    return PrefixInfo(
        prefix=root,
        implementation="cpython",
        version=PythonVersion(3, 12, 1),
        target=Target("linux", "x86_64", "gnu"),
        variant="default",
        build_prefix=str(root),
        stdlib_rel="lib/python3.12",
    )


def test_pip_only_drops_the_scripts_of_dropped_packages(tmp_path: Path) -> None:
    info = fake_prefix(tmp_path / "prefix")
    assert dropped_files(info) == {
        "bin/foo",
        "bin/foo-admin",
        "bin/__pycache__/foo-admin.cpython-312.pyc",
        "bin/__pycache__",
        "bin/bar",
        "share/man/man1/foo.1",
    }
    shipped = prefix_filter(info, "pip")
    assert prefix_filter(info, "all")("bin/foo")
    _artifact, archive = pack_prefix(info, tmp_path, archive_format="tar.gz", site_packages="pip")
    with tarfile.open(archive) as tar:
        names = {m.name for m in tar.getmembers()}
    bins = sorted(n for n in names if n.startswith("python/bin/"))
    assert bins == ["python/bin/mine", "python/bin/pip3", "python/bin/python3.12"]
    assert "python/lib/python3.12/site-packages/pip/__init__.py" in names
    assert not [n for n in names if "foo" in n or "bar" in n]
    assert shipped("bin/mine") and not shipped("bin/__pycache__/anything")


def test_real_pip_only_archive_has_no_orphan_scripts(real_archives: list[RealArchive]) -> None:
    """The conftest archives are packed with site_packages="pip" from real pyenv builds
    (3.11's has ~70 console scripts of other packages on this machine)."""
    expected_prefixes = ("2to3", "idle", "pip", "pydoc", "python")
    import zstandard

    for archive in real_archives:
        zst = archive.path.name.endswith(".tar.zst")
        with (
            open(archive.path, "rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw) if zst else raw as stream,
            tarfile.open(fileobj=stream, mode="r|" if zst else "r|gz") as tar,
        ):
            bins = [m.name[len("python/bin/") :] for m in tar if m.name.startswith("python/bin/")]
        assert bins and all(b.startswith(expected_prefixes) for b in bins), bins
        assert "__pycache__" not in bins


@needs_pyenv
@pytest.mark.slow
def test_bundle_records_warns_and_strict_refuses(
    tmp_path: Path, signing_key: SecretKey, key_files: tuple[Path, Path]
) -> None:
    assert PYENV is not None
    out = tmp_path / "strict.pybundle"
    with pytest.raises(PortabilityError, match=r"libffi\.so\.8"):
        build_bundle(
            out,
            Selection(),
            cache_dir=tmp_path / "cache",
            secret_key=signing_key,
            from_prefixes=[PYENV],
            prefix_site_packages="pip",
            strict_portability=True,
        )
    assert not out.exists() and not list(tmp_path.glob(".strict*"))
    proc = run_cli(
        "bundle", "--from-prefix", str(PYENV), "--prefix-site-packages", "pip",
        "--prefix-format", "tar.gz", "--sign-key", str(key_files[0]), "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pybundle: warning:" in proc.stderr and "libssl.so.3" in proc.stderr
    shown = run_cli("inspect", str(out), check=True).stdout
    assert "needs from the host:" in shown and "libsqlite3.so.0" in shown
    doc = json.loads(run_cli("inspect", str(out), "--json", check=True).stdout)
    assert doc["schema_version"] == 3  # v2 portability, v3 file index
    libs = {n for e in doc["artifacts"][0]["portability"]["external_libraries"] for n in e["needs"]}
    assert {"libssl.so.3", "libffi.so.8", "libsqlite3.so.0"} <= libs
    strict = run_cli(
        "bundle", "--from-prefix", str(PYENV), "--strict-portability",
        "--sign-key", str(key_files[0]), "-o", str(tmp_path / "refused.pybundle"),
    )  # fmt: skip
    assert strict.returncode == 7 and "--strict-portability refuses it" in strict.stderr
    assert not (tmp_path / "refused.pybundle").exists()
    # a v2 bundle installs, and its receipt keeps the record
    installs = tmp_path / "installs"
    run_cli("install", "--from", str(out), "--trusted-key", str(key_files[1]),
            "--install-dir", str(installs), "--no-bin", check=True)  # fmt: skip
    from pybundle.installer.receipts import read_receipt

    dest = next(p for p in installs.iterdir() if not p.name.startswith("."))
    receipt = read_receipt(dest)
    assert receipt is not None and receipt.artifact.portability is not None


def test_write_bundle_keeps_v1_for_plain_archives(tmp_path: Path, signing_key: SecretKey) -> None:
    from conftest import make_tar, tiny_artifact, tiny_interpreter_members

    archive = make_tar(tmp_path / "cpython-3.12.1+x-x86_64-unknown-linux-gnu-install_only.tar.gz",
                       tiny_interpreter_members())  # fmt: skip
    manifest = write_bundle(tmp_path / "b.pybundle", [(tiny_artifact(archive), archive)],
                            secret_key=signing_key)  # fmt: skip
    assert manifest.schema_version == 1
