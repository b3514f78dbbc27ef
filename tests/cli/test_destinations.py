"""What an install may replace: only a pybundle install of the same kind, proven by its receipt.

Through the real CLI: a directory of the user's own files, a symlink, a file, a copy of an
install, an install with a damaged receipt or of another kind is never replaced, with or
without --force, and stays byte for byte as it was (issue: "--force deletes directories
pybundle never installed")."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from test_refusals import assert_refused, install, snapshot

from conftest import TEST_BUILD, make_tar, run_cli, tiny_artifact, tiny_interpreter_members
from pybundle.bundler.pack import write_bundle
from pybundle.errors import ManifestError
from pybundle.installer.receipts import RECEIPT_NAME, read_receipt
from pybundle.signing import SecretKey, sign

DEST = "cpython-3.12.1-linux-x86_64-gnu"


def install_prefix(bundle: Path, pub: Path, prefix: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(
        "install", "--from", str(bundle), "--trusted-key", str(pub), "--prefix", str(prefix), *extra
    )


def users_dir(path: Path) -> Path:
    """A directory of someone's own files (with a subdirectory and a link)."""
    (path / "notes").mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work\n")
    (path / "notes" / "a.txt").write_text("a\n")
    (path / "latest").symlink_to("thesis.tex")
    return path


def test_force_never_replaces_a_users_directory(tiny_bundle, key_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    home = users_dir(tmp_path / "home")
    before = snapshot(tmp_path)
    for extra in ((), ("--force",)):
        proc = install_prefix(bundle, key_files[1], home, *extra)
        assert_refused(proc, 8, tmp_path, before, str(home), "did not create")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pybundle-staging")]


def test_prefix_on_an_empty_directory_is_taken(tiny_bundle, key_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    prefix = tmp_path / "opt" / "python"
    prefix.mkdir(parents=True)
    proc = install_prefix(bundle, key_files[1], prefix)
    assert proc.returncode == 0, proc.stderr
    receipt = read_receipt(prefix)
    assert receipt is not None and receipt.prefix == str(prefix)
    assert (prefix / "bin" / "python3.12").is_file()


def test_symlink_and_file_destinations_are_refused(tiny_bundle, key_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    target = users_dir(tmp_path / "elsewhere")
    installs = tmp_path / "installs"
    installs.mkdir()
    (installs / DEST).symlink_to(target)
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me\n")
    before = snapshot(tmp_path)
    for extra in ((), ("--force",)):
        proc = install(bundle, key_files[1], installs, *extra)
        assert_refused(proc, 8, tmp_path, before, str(installs / DEST), "symbolic link")
        proc = install_prefix(bundle, key_files[1], a_file, *extra)
        assert_refused(proc, 8, tmp_path, before, str(a_file), "not a directory")


def test_force_replaces_its_own_install_and_nothing_else(
    tiny_bundle, key_files, tmp_path: Path, signing_key: SecretKey
) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    installs = tmp_path / "installs"
    assert install(bundle, key_files[1], installs).returncode == 0
    dest = installs / DEST
    receipt = read_receipt(dest)
    assert receipt is not None
    assert receipt.bundle.signer_key_id == signing_key.public_key.key_id_hex
    assert receipt.bundle.file == str(bundle) and receipt.prefix == str(dest)
    files = {f.path for f in receipt.files}
    assert "bin/python3.12" in files and "bin/python3" in files and RECEIPT_NAME not in files
    assert receipt.artifact.version == "3.12.1" and receipt.layout == "pybundle"

    # a copy of the install elsewhere is not the install its receipt names
    copy = tmp_path / "copy"
    shutil.copytree(dest, copy, symlinks=True)
    before = snapshot(tmp_path)
    proc = install_prefix(bundle, key_files[1], copy, "--force")
    assert_refused(proc, 8, tmp_path, before, str(copy), "installed at")

    # a damaged receipt proves nothing
    good = (dest / RECEIPT_NAME).read_bytes()
    (dest / RECEIPT_NAME).write_bytes(good[: len(good) // 2])
    before = snapshot(tmp_path)
    proc = install(bundle, key_files[1], installs, "--force")
    assert_refused(proc, 8, tmp_path, before, str(dest), "damaged")

    # an install of another kind (here: another architecture) is not replaced
    doc = json.loads(good)
    doc["artifact"]["arch"] = "aarch64"
    doc["artifact"]["target_triple"] = "aarch64-unknown-linux-gnu"
    (dest / RECEIPT_NAME).write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    proc = install(bundle, key_files[1], installs, "--force")
    assert_refused(proc, 8, tmp_path, before, str(dest), "cannot replace")

    # the real thing is replaced
    (dest / RECEIPT_NAME).write_bytes(good)
    (dest / "marker").write_text("old")
    proc = install(bundle, key_files[1], installs, "--force")
    assert proc.returncode == 0, proc.stderr
    assert "replaced" in proc.stdout and not (dest / "marker").exists()


def test_a_staging_entry_that_is_a_link_is_removed_as_a_link(
    tiny_bundle, key_files, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    installs = tmp_path / "installs"
    installs.mkdir()
    victim = users_dir(tmp_path / "victim")
    (installs / ".pybundle-staging-evil").symlink_to(victim)
    (installs / ".pybundle-staging-file").write_text("left by a killed run")
    before = snapshot(victim)
    assert install(bundle, key_files[1], installs).returncode == 0
    assert snapshot(victim) == before
    assert sorted(p.name for p in installs.iterdir()) == [".pybundle.lock", DEST]


def test_two_artifacts_for_one_install_dir_are_refused_whole(
    tmp_path: Path, key_files, signing_key: SecretKey
) -> None:  # type: ignore[no-untyped-def]
    """install_only and install_only_stripped of one build would both go to one directory:
    refused when the bundle is written, and (for a hand-made manifest) before anything is
    extracted at install time."""
    names = [
        f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz",
        f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz",
    ]
    items = []
    for name in names:
        archive = make_tar(tmp_path / name, tiny_interpreter_members())
        items.append((tiny_artifact(archive), archive))
    try:
        write_bundle(tmp_path / "b.pybundle", items, secret_key=signing_key)
    except ManifestError as exc:
        assert "would both install to" in str(exc)
    else:
        raise AssertionError("a manifest with two artifacts for one directory was written")

    # the same bundle made by hand (one artifact, then a second entry spliced in, re-signed)
    single = write_bundle(tmp_path / "one.pybundle", items[:1], secret_key=signing_key)
    doc = single.to_json()
    second = dict(doc["artifacts"][0])
    second.update(
        file_name=names[1], member=f"archives/{names[1]}", flavour="install_only_stripped"
    )
    doc["artifacts"].append(second)
    manifest = (json.dumps(doc, indent=2) + "\n").encode()
    tc = f"pybundle bundle_id={doc['bundle_id']} serial={doc['serial']} created={doc['created']}"
    hand = tmp_path / "hand.pybundle"
    with zipfile.ZipFile(hand, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("pybundle.json", manifest)
        zf.writestr("pybundle.json.minisig", sign(manifest, signing_key, tc))
        for (_artifact, path), name in zip(items, names):
            zf.write(path, f"archives/{name}")
    installs = tmp_path / "installs"
    installs.mkdir()
    before = snapshot(installs)
    proc = install(hand, key_files[1], installs)
    assert_refused(proc, 5, installs, before, "would both install to")
