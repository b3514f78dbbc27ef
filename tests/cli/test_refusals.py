"""Refusals through the real CLI: each bad bundle gets its documented exit code, a one-line
message, and leaves the install dir exactly as it was."""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path

import pytest

from conftest import run_cli, tar_dir, tar_link, tiny_interpreter_members
from pybundle.signing import generate_secret_key
from pybundle.targets import Target


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with a digest of its content (or link target).

    The install lock file (``.pybundle.lock``, documented) is not content and is left out."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel == ".pybundle.lock":
                continue
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def install_dir(tmp_path: Path) -> Path:
    """An install dir that already holds an earlier install, which must survive every refusal."""
    root = tmp_path / "installs"
    earlier = root / "cpython-3.11.9-linux-x86_64-gnu" / "bin"
    earlier.mkdir(parents=True)
    (earlier / "python3.11").write_text("#!/bin/sh\necho earlier\n")
    return root


def rewrite_zip(
    src: Path,
    dst: Path,
    replace: dict[str, bytes] | None = None,
    add: dict[str, bytes] | None = None,
) -> Path:
    """Copy a bundle, replacing or adding members (STORED), keeping member order."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info.filename)))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def flip_archive_byte(bundle: Path) -> None:
    """Flip one byte in the middle of the first archive member's data, in place."""
    with zipfile.ZipFile(bundle) as zf:
        info = next(i for i in zf.infolist() if i.filename.startswith("archives/"))
    with open(bundle, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        pos = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(pos)
        byte = f.read(1)
        f.seek(pos)
        f.write(bytes([byte[0] ^ 0x01]))


def assert_refused(
    proc, code: int, install_dir: Path, before: dict[str, str], *needles: str
) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("pybundle: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert snapshot(install_dir) == before


def install(bundle: Path, pub: Path, install_dir: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(
        "install",
        "--from",
        str(bundle),
        "--trusted-key",
        str(pub),
        "--install-dir",
        str(install_dir),
        *extra,
    )


def test_tampered_archive_byte(tiny_bundle, key_files, install_dir: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    flip_archive_byte(bundle)
    before = snapshot(install_dir)
    proc = install(bundle, key_files[1], install_dir)
    assert_refused(proc, 5, install_dir, before, str(bundle), "sha256")
    verify = run_cli("verify", str(bundle), "--trusted-key", str(key_files[1]))
    assert verify.returncode == 5


def test_tampered_manifest(tiny_bundle, key_files, install_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    with zipfile.ZipFile(bundle) as zf:
        manifest = zf.read("pybundle.json")
    evil = rewrite_zip(
        bundle,
        tmp_path / "evil.pybundle",
        {"pybundle.json": manifest.replace(b"3.12.1", b"3.12.2")},
    )
    before = snapshot(install_dir)
    assert_refused(
        install(evil, key_files[1], install_dir), 5, install_dir, before, "evil.pybundle"
    )


def test_unknown_key_names_the_signer(tiny_bundle, key_files, install_dir: Path) -> None:  # type: ignore[no-untyped-def]
    other = generate_secret_key()
    bundle = tiny_bundle(key=other)
    before = snapshot(install_dir)
    proc = install(bundle, key_files[1], install_dir)
    assert_refused(proc, 5, install_dir, before, other.public_key.key_id_hex, "not trusted")


def test_unsigned_bundle(tiny_bundle, key_files, install_dir: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle(key=None)
    before = snapshot(install_dir)
    assert_refused(install(bundle, key_files[1], install_dir), 5, install_dir, before, "unsigned")


def test_foreign_platform(tiny_bundle, key_files, install_dir: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle(target=Target("linux", "aarch64", "gnu"))
    before = snapshot(install_dir)
    proc = install(bundle, key_files[1], install_dir)
    assert_refused(proc, 7, install_dir, before, "linux-aarch64-gnu")


def test_member_not_in_manifest(tiny_bundle, key_files, install_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    extra = rewrite_zip(bundle, tmp_path / "extra.pybundle", add={"archives/evil.tar.gz": b"x"})
    before = snapshot(install_dir)
    proc = install(extra, key_files[1], install_dir)
    assert_refused(proc, 5, install_dir, before, "not listed in the manifest")


def test_unsafe_archive_signed_by_trusted_key(tiny_bundle, key_files, install_dir: Path) -> None:  # type: ignore[no-untyped-def]
    members = [*tiny_interpreter_members(), tar_link("python/lib/etc", "/etc")]
    bundle = tiny_bundle(members=members)
    before = snapshot(install_dir)
    proc = install(bundle, key_files[1], install_dir)
    assert_refused(proc, 6, install_dir, before, "points outside the tree")


def test_trusted_keys_dir_and_no_key(
    tiny_bundle, key_files, install_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    before = snapshot(install_dir)
    proc = run_cli("install", "--from", str(bundle), "--install-dir", str(install_dir))
    assert_refused(proc, 5, install_dir, before, "no trusted key")
    keys_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "pybundle" / "trusted-keys"
    keys_dir.mkdir(parents=True)
    (keys_dir / "ops.pub").write_bytes(key_files[1].read_bytes())
    proc = run_cli("install", "--from", str(bundle), "--install-dir", str(install_dir))
    assert proc.returncode == 0, proc.stderr


def test_install_force_prefix_and_version_selection(
    tiny_bundle, key_files, install_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    pub = key_files[1]
    first = install(bundle, pub, install_dir)
    assert first.returncode == 0, first.stderr
    dest = install_dir / "cpython-3.12.1-linux-x86_64-gnu"
    sysconfig = dest / "lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py"
    assert f"'prefix': '{dest}'" in sysconfig.read_text()
    assert str(dest) in first.stdout
    (dest / "marker").write_text("old install")
    before = snapshot(install_dir)
    again = install(bundle, pub, install_dir)
    assert_refused(again, 8, install_dir, before, "--force")
    forced = install(bundle, pub, install_dir, "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (dest / "marker").exists()
    assert "replaced" in forced.stdout
    assert not [p for p in install_dir.iterdir() if p.name.startswith(".pybundle-staging")]

    exact = tmp_path / "exact" / "py312"
    proc = install(bundle, pub, install_dir, "--prefix", str(exact))
    assert proc.returncode == 2  # --install-dir and --prefix together
    proc = run_cli(
        "install", "--from", str(bundle), "--trusted-key", str(pub), "--prefix", str(exact)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"'prefix': '{exact}'" in (exact / sysconfig.relative_to(dest)).read_text()

    missing = run_cli(
        "install", "--from", str(bundle), "--trusted-key", str(pub), "--version", "3.13"
    )
    assert missing.returncode == 2 and "3.12.1" in missing.stderr


def test_dir_member_type_change_is_unsafe(tiny_bundle, key_files, install_dir: Path) -> None:  # type: ignore[no-untyped-def]
    members = [*tiny_interpreter_members(), tar_dir("python/bin/python3.12")]
    bundle = tiny_bundle(members=members)
    before = snapshot(install_dir)
    assert_refused(install(bundle, key_files[1], install_dir), 6, install_dir, before)


def test_one_unsafe_archive_of_several_installs_nothing(
    tmp_path: Path, signing_key, key_files, install_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    """Archives are staged in parallel worker processes; one refusal removes every staged tree."""
    from conftest import make_tar, tiny_artifact
    from pybundle.bundler.pack import write_bundle

    items = []
    for version, extra in (("3.12.1", []), ("3.13.0", [tar_link("python/lib/etc", "/etc")])):
        archive = make_tar(
            tmp_path / f"cpython-{version}+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz",
            [*tiny_interpreter_members(), *extra],
        )
        items.append((tiny_artifact(archive, version=version), archive))
    bundle = tmp_path / "two.pybundle"
    write_bundle(bundle, items, secret_key=signing_key)
    before = snapshot(install_dir)
    proc = install(bundle, key_files[1], install_dir)
    assert_refused(proc, 6, install_dir, before, "points outside the tree")
    assert not [p for p in install_dir.iterdir() if p.name.startswith(".pybundle-staging")]
    ok = run_cli(
        "install",
        "--from",
        str(bundle),
        "--trusted-key",
        str(key_files[1]),
        "--install-dir",
        str(install_dir),
        "--version",
        "3.12",
    )
    assert ok.returncode == 0, ok.stderr
