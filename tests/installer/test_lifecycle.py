"""Life after install on small synthetic interpreters: links, list, uninstall, check and
relocate, called as library functions; above all, that nothing without a receipt is ever
removed or overwritten (a user's directory, a foreign link in the bin dir)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from pybundle.errors import AlreadyExistsError, UsageError
from pybundle.installer.check import check_install, is_bytecode
from pybundle.installer.install import LinkRequest, install_bundle
from pybundle.installer.lifecycle import (
    find_installs,
    relocate_install,
    resolve_installs,
    uninstall,
)
from pybundle.installer.receipts import RECEIPT_NAME, read_receipt
from pybundle.signing import SecretKey

DEST = "cpython-3.12.1-linux-x86_64-gnu"


def do_install(bundle: Path, key: SecretKey, installs: Path, **kw):  # type: ignore[no-untyped-def]
    return install_bundle(bundle, [key.public_key], install_dir=installs, **kw)


def tree(root: Path) -> dict[str, str]:
    """Every entry under root: file contents or link targets."""
    out: dict[str, str] = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in dirnames + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_text(errors="replace")
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return Path(os.environ["PYBUNDLE_BIN_DIR"])


def test_links_are_made_recorded_listed_and_removed(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path, bin_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    installs = tmp_path / "installs"
    [result] = do_install(tiny_bundle(), signing_key, installs, links=LinkRequest(default=True))
    dest = installs / DEST
    assert result.links == tuple(str(bin_dir / n) for n in ("python3.12", "python3", "python"))
    for name in ("python3.12", "python3", "python"):
        assert os.readlink(bin_dir / name) == str(dest / "bin" / "python3.12")
    receipt = read_receipt(dest)
    assert receipt is not None and receipt.links == result.links
    [found] = find_installs()
    assert found.path == dest and found.problem is None

    removed = uninstall("3.12")
    assert removed.path == dest and sorted(removed.removed_links) == sorted(result.links)
    assert not dest.exists() and list(bin_dir.iterdir()) == []
    assert not [p for p in installs.iterdir() if p.name.startswith(".pybundle-")]
    assert find_installs() == []


def test_a_foreign_link_or_file_in_the_bin_dir_is_never_replaced(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path, bin_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    bin_dir.mkdir(parents=True)
    users_python = tmp_path / "my-python"
    users_python.write_text("#!/bin/sh\n")
    (bin_dir / "python3.12").symlink_to(users_python)
    (bin_dir / "python3").write_text("a user's script\n")
    before = tree(tmp_path)
    for force in (False, True):
        with pytest.raises(AlreadyExistsError, match="did not create"):
            do_install(bundle, signing_key, tmp_path / "installs", links=LinkRequest(), force=force)
        with pytest.raises(AlreadyExistsError, match="did not create"):
            do_install(
                bundle,
                signing_key,
                tmp_path / "installs",
                links=LinkRequest(default=True),
                force=force,
            )
    assert tree(tmp_path) == before  # refused before anything was extracted
    # --no-bin (links=None) installs without touching them
    do_install(bundle, signing_key, tmp_path / "installs")
    assert os.readlink(bin_dir / "python3.12") == str(users_python)
    assert (bin_dir / "python3").read_text() == "a user's script\n"


def test_force_replaces_only_links_a_receipt_records(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path, bin_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    first = tmp_path / "first"
    do_install(bundle, signing_key, first, links=LinkRequest())
    link = bin_dir / "python3.12"
    assert os.readlink(link) == str(first / DEST / "bin/python3.12")
    second = tmp_path / "second"
    # without --force the second install goes in, and the link stays with the first
    [result] = do_install(bundle, signing_key, second, links=LinkRequest())
    assert result.links == () and "use --force" in result.warnings[0]
    assert os.readlink(link) == str(first / DEST / "bin/python3.12")
    receipt = read_receipt(second / DEST)
    assert receipt is not None and receipt.links == ()
    [result] = do_install(bundle, signing_key, second, links=LinkRequest(), force=True)
    assert os.readlink(link) == str(second / DEST / "bin/python3.12")
    assert result.links == (str(link),)
    # the first install's receipt still names the link, but it no longer points there:
    # uninstalling the first leaves it alone
    removed = uninstall(str(first / DEST))
    assert removed.removed_links == () and removed.kept_links == (str(link),)
    assert os.readlink(link) == str(second / DEST / "bin/python3.12")
    # a link a user re-pointed at their own file is no longer pybundle's, even with a receipt
    link.unlink()
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AlreadyExistsError, match="did not create"):
        do_install(bundle, signing_key, tmp_path / "third", links=LinkRequest(), force=True)
    removed = uninstall(str(second / DEST))
    assert removed.kept_links == (str(link),) and link.is_symlink()


def test_uninstall_refuses_what_has_no_receipt(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    users = tmp_path / "installs" / "cpython-3.11.9-linux-x86_64-gnu"
    (users / "bin").mkdir(parents=True)
    (users / "bin" / "python3.11").write_text("mine\n")
    before = tree(tmp_path)
    with pytest.raises(AlreadyExistsError, match="no install receipt"):
        uninstall(str(users))
    with pytest.raises(UsageError, match="no pybundle install matches"):
        uninstall("3.11")  # found by name in the install dir, but it has no receipt
    with pytest.raises(UsageError):
        uninstall("cpython-3.11.9-linux-x86_64-gnu")
    assert tree(tmp_path) == before
    # a copy of a real install carries a receipt naming another prefix: refused too
    do_install(tiny_bundle(), signing_key, tmp_path / "installs")
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "installs" / DEST, copy, symlinks=True)
    with pytest.raises(AlreadyExistsError, match="copy or moved"):
        uninstall(str(copy))
    assert (copy / RECEIPT_NAME).exists()
    # and a damaged receipt is not proof
    (tmp_path / "installs" / DEST / RECEIPT_NAME).write_text("{")
    with pytest.raises(AlreadyExistsError, match="damaged"):
        uninstall(str(tmp_path / "installs" / DEST))
    assert (tmp_path / "installs" / DEST / "bin" / "python3.12").exists()


def test_uninstall_through_the_cli(tiny_bundle, key_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    installs = tmp_path / "installs"
    proc = run_cli(
        "install", "--from", str(bundle), "--trusted-key", str(key_files[1]),
        "--install-dir", str(installs), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["installs"][0]["path"] == str(installs / DEST)
    assert doc["installs"][0]["links"] == [os.path.join(doc["bin_dir"], "python3.12")]
    assert doc["bin_dir_on_path"] is True  # the tests put it on PATH
    assert "is not on PATH" not in proc.stderr  # --json: the hint is in the document
    listed = json.loads(run_cli("list", "--json", check=True).stdout)
    assert [i["path"] for i in listed] == [str(installs / DEST)]
    assert listed[0]["links"] == doc["installs"][0]["links"]
    proc = run_cli("uninstall", "/nonexistent/python")
    assert proc.returncode == 8 and "no install receipt" in proc.stderr
    proc = run_cli("uninstall", "3.12", check=True)
    assert f"removed cpython 3.12.1 from {installs / DEST}" in proc.stdout
    assert run_cli("list", check=True).stdout.strip() == "no interpreters installed by pybundle"


def test_install_tells_when_the_bin_dir_is_not_on_path(
    tiny_bundle, key_files, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_bundle()
    bin_dir = os.environ["PYBUNDLE_BIN_DIR"]
    args = ("install", "--from", str(bundle), "--trusted-key", str(key_files[1]), "--force")
    without = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir)
    proc = run_cli(*args, env={"PATH": without}, check=True)
    assert f'export PATH="{bin_dir}:$PATH"' in proc.stderr
    proc = run_cli(*args, env={"PATH": f"{bin_dir}:{without}"}, check=True)
    assert "not on PATH" not in proc.stderr
    proc = run_cli(*args, "--no-bin", check=True)
    assert "linked" not in proc.stdout and "not on PATH" not in proc.stderr


def test_check_reports_modified_removed_added_and_bytecode_apart(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    do_install(tiny_bundle(), signing_key, tmp_path / "installs")
    dest = tmp_path / "installs" / DEST
    report = check_install(dest)
    assert report.clean and report.files == 3 and report.changes == ()
    cache = dest / "lib/python3.12/__pycache__"
    cache.mkdir()
    (cache / "os.cpython-312.pyc").write_bytes(b"bytecode")
    assert check_install(dest).clean  # Python's own caches are not tampering
    exe = dest / "bin/python3.12"
    exe.write_text("#!/bin/sh\necho evil\n")
    (dest / "bin/python3").unlink()
    (dest / "bin/python3").symlink_to("/bin/sh")
    sysconfig = next((dest / "lib/python3.12").glob("_sysconfigdata_*.py"))
    sysconfig.chmod(0o600)
    (dest / "lib/backdoor.py").write_text("")
    report = check_install(dest)
    assert not report.clean
    changes = {(c.path, c.status, c.what) for c in report.changes}
    assert changes == {
        ("bin/python3.12", "modified", ("size", "sha256")),
        ("bin/python3", "modified", ("target",)),
        (sysconfig.relative_to(dest).as_posix(), "modified", ("mode",)),
        ("lib/backdoor.py", "added", ()),
    }
    assert [c.path for c in report.bytecode] == ["lib/python3.12/__pycache__/os.cpython-312.pyc"]
    sysconfig.unlink()
    assert check_install(dest).count("removed") == 1
    proc = run_cli("check", str(dest), "--json")
    assert proc.returncode == 10, proc.stderr
    [doc] = json.loads(proc.stdout)
    assert doc["clean"] is False and doc["modified"] == 2 and doc["removed"] == 1
    assert proc.stderr.strip() == "pybundle: error: 1 of 1 install differs from its receipt"


def test_is_bytecode() -> None:
    assert is_bytecode("lib/python3.12/__pycache__/os.cpython-312.pyc")
    assert is_bytecode("__pycache__/x.pyc")
    assert not is_bytecode("lib/python3.12/os.pyc")
    assert not is_bytecode("lib/__pycache__/evil.py")


def test_relocate_moves_rewrites_and_repoints_links(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path, bin_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    do_install(tiny_bundle(), signing_key, tmp_path / "installs", links=LinkRequest())
    old = tmp_path / "installs" / DEST
    new = tmp_path / "opt" / "py312"
    result = relocate_install(old, new)
    assert not old.exists() and result.path == new
    sysconfig = next((new / "lib/python3.12").glob("_sysconfigdata_*.py")).read_text()
    assert f"'prefix': '{new}'" in sysconfig and str(old) not in sysconfig
    assert os.readlink(bin_dir / "python3.12") == str(new / "bin/python3.12")
    receipt = read_receipt(new)
    assert receipt is not None and receipt.prefix == str(new) and receipt.layout == "pybundle"
    assert check_install(new).clean  # rewritten files got their new hashes
    assert [i.path for i in find_installs()] == [new]
    # a destination that exists is refused, the install stays where it is
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        relocate_install(new, tmp_path / "taken")
    with pytest.raises(UsageError, match="into itself"):
        relocate_install(new, new / "sub")
    assert check_install(new).clean


def test_relocate_after_a_plain_mv(tiny_bundle, signing_key: SecretKey, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    do_install(tiny_bundle(), signing_key, tmp_path / "installs", links=LinkRequest())
    old = tmp_path / "installs" / DEST
    moved = tmp_path / "moved"
    os.rename(old, moved)
    [inst] = resolve_installs(str(moved))
    assert inst.problem is not None and "moved" in inst.problem
    with pytest.raises(AlreadyExistsError):
        uninstall(str(moved))  # a moved install is not removed before it is relocated
    proc = run_cli("relocate", str(old), str(moved), check=True)
    assert f"relocated {old} -> {moved}" in proc.stdout
    receipt = read_receipt(moved)
    assert receipt is not None and receipt.prefix == str(moved)
    assert check_install(moved).clean
    assert os.readlink(Path(os.environ["PYBUNDLE_BIN_DIR"]) / "python3.12") == str(
        moved / "bin/python3.12"
    )


def test_relocate_does_not_launder_a_modified_file(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    do_install(tiny_bundle(), signing_key, tmp_path / "installs")
    old = tmp_path / "installs" / DEST
    sysconfig = next((old / "lib/python3.12").glob("_sysconfigdata_*.py"))
    sysconfig.write_text(sysconfig.read_text() + "EVIL = 1\n")
    new = tmp_path / "new"
    relocate_install(old, new)
    report = check_install(new)
    assert [(c.path, c.status) for c in report.changes] == [
        (sysconfig.relative_to(old).as_posix(), "modified")
    ]


def test_list_reports_an_install_that_vanished_once(
    tiny_bundle, signing_key: SecretKey, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    prefix = tmp_path / "opt" / "py"
    install_bundle(tiny_bundle(), [signing_key.public_key], prefix=prefix)
    listed = json.loads(run_cli("list", "--json", check=True).stdout)
    assert [i["path"] for i in listed] == [str(prefix)]  # found through the index
    os.rename(prefix, tmp_path / "opt" / "moved")
    proc = run_cli("list", check=True)
    assert f"{prefix}: recorded as installed but gone" in proc.stderr
    assert "no interpreters installed by pybundle" in proc.stdout
    assert "gone" not in run_cli("list", check=True).stderr
    run_cli("relocate", str(prefix), str(tmp_path / "opt" / "moved"), check=True)
    listed = json.loads(run_cli("list", "--json", check=True).stdout)
    assert [i["path"] for i in listed] == [str(tmp_path / "opt" / "moved")]
