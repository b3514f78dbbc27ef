"""Faults during an install: SIGKILL at every stage, a full disk, a read-only destination,
concurrent installs. Real processes (``python -m pybundle install``), real files, real mounts.

The invariant checked after every fault: the destination is either absent (fresh install) or
a *complete* tree (the earlier install, recognised by a marker file, or the new one): its paths
and file sizes match the archive and its interpreter runs. Never a partial tree. A clean re-run
afterwards succeeds and leaves no ``.pybundle-staging-*`` directory behind.

The real interpreter is the newest pyenv 3.12 (else 3.11, else this interpreter's base prefix),
packed without its test suite, IDLE, tkinter, bytecode and static library so that one install
takes about a second (``real_bundle``); everything kept is what the interpreter needs to run.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import zstandard

from conftest import (
    TEST_BUILD,
    discover_prefix,
    make_tar,
    run_cli,
    tar_file,
    tiny_artifact,
    tiny_interpreter_members,
)
from pybundle.archives import open_decompressed, scan_archive
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.prefix import PrefixInfo, probe_prefix
from pybundle.errors import StorageError
from pybundle.hashing import sha256_file
from pybundle.installer.install import install_bundle, needed_bytes
from pybundle.installer.policy import SerialStore
from pybundle.installer.receipts import RECEIPT_NAME
from pybundle.manifest import Artifact
from pybundle.signing import SecretKey, generate_secret_key

STAGING = ".pybundle-staging-"
MARKER = "OLD-INSTALL-MARKER"
DROPPED_STDLIB = {"test", "idlelib", "lib2to3", "turtledemo", "tkinter", "ensurepip"}
RUN_CHECK = "import json, sqlite3, ssl, sys; print(sys.prefix)"

Entry = tuple[str, Any]  # ("d", None) | ("l", target) | ("f", size or None when relocated)


# ---- the real interpreter bundle ------------------------------------------------------------


def _prefix_for_faults() -> Path:
    return discover_prefix("12") or discover_prefix("11") or Path(sys.base_prefix)


def _trimmed_archive(info: PrefixInfo, out: Path) -> Path:
    """``info.prefix`` as a PBS install_only ``.tar.zst``, minus what running does not need."""
    stdlib = f"python/{info.stdlib_rel}/"

    def keep(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = member.name.split("/")
        if "__pycache__" in parts or member.name.endswith(".a"):
            return None
        if member.name.startswith(stdlib):
            top = member.name[len(stdlib) :].split("/", 1)[0]
            if top in DROPPED_STDLIB or (top == "site-packages" and member.name != stdlib + top):
                return None
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        return member

    name = f"cpython-{info.version}+{TEST_BUILD}-{info.target.triple}-install_only.tar.zst"
    path = out / name
    cctx = zstandard.ZstdCompressor(level=1)
    with (
        open(path, "wb") as raw,
        cctx.stream_writer(raw, closefd=False) as zout,
        tarfile.open(fileobj=zout, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(str(info.prefix), arcname="python", recursive=True, filter=keep)
    return path


def _expected_tree(archive: Path, build_prefix: str) -> dict[str, Entry]:
    """What a complete install holds: every member below ``python/``, with the size of each
    regular file that relocation leaves alone (those not mentioning the build prefix)."""
    needle = build_prefix.encode()
    tree: dict[str, Entry] = {}
    with (
        open(archive, "rb") as f,
        open_decompressed(f, "tar.zst") as raw,
        tarfile.open(fileobj=raw, mode="r|") as tar,
    ):
        for m in tar:
            rel = m.name.partition("/")[2]
            if not rel:
                continue
            if m.isdir():
                tree[rel] = ("d", None)
            elif m.issym():
                tree[rel] = ("l", m.linkname)
            else:
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                tree[rel] = ("f", None if needle in data else m.size)
    return tree


@dataclass(frozen=True)
class RealBundle:
    bundle: Path
    pub: Path
    artifact: Artifact
    tree: dict[str, Entry]

    @property
    def exe(self) -> str:
        major, minor = self.artifact.version.split(".")[:2]
        return f"bin/python{major}.{minor}"

    def dest(self, install_dir: Path) -> Path:
        return install_dir / self.artifact.install_name


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory: pytest.TempPathFactory) -> RealBundle:
    """A signed bundle of one real (trimmed) interpreter, and its public key."""
    out = tmp_path_factory.mktemp("fault-bundle")
    info = probe_prefix(_prefix_for_faults())
    archive = _trimmed_archive(info, out)
    with open(archive, "rb") as f:
        shape = scan_archive(f, "tar.zst", str(archive))
    digest, size = sha256_file(archive)
    artifact = Artifact(
        file_name=archive.name,
        size=size,
        sha256=digest,
        implementation=info.implementation,
        version=str(info.version),
        build=TEST_BUILD,
        target=info.target,
        variant=info.variant,
        flavour="install_only",
        archive_format="tar.zst",
        strip_prefix="python",
        build_prefix=info.build_prefix,
        local_prefix=str(info.prefix),
        unpacked_size=shape.unpacked_size,
        file_count=shape.file_count,
    )
    key = generate_secret_key()
    pub = out / "faults.pub"
    pub.write_text(key.public_key.to_file_text())
    bundle = out / "real.pybundle"
    write_bundle(bundle, [(artifact, archive)], secret_key=key)
    return RealBundle(bundle, pub, artifact, _expected_tree(archive, info.build_prefix))


# ---- observing an install dir ---------------------------------------------------------------


def listing(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` (relative) with its kind, link target or file size."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("l", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("d", None)
            else:
                out[rel] = ("f", path.stat().st_size)
    return out


def assert_complete(real: RealBundle, root: Path) -> bool:
    """Assert ``root`` holds the whole interpreter tree and nothing else (but the marker);
    returns whether the marker is there (True: the earlier install, False: the new one).
    A complete install has its receipt."""
    have = listing(root)
    marked = have.pop(MARKER, None) is not None
    assert have.pop(RECEIPT_NAME, None) is not None, f"{root}: no install receipt"
    assert sorted(have) == sorted(real.tree), (
        f"{root}: partial tree: missing {sorted(set(real.tree) - set(have))[:5]}, "
        f"extra {sorted(set(have) - set(real.tree))[:5]}"
    )
    for rel, (kind, value) in real.tree.items():
        assert have[rel][0] == kind, rel
        if value is not None:
            assert have[rel][1] == value, (rel, have[rel], value)
    return marked


def state_of(real: RealBundle, dest: Path) -> str:
    """``absent``, ``old`` (complete, with the marker) or ``new`` (complete, no marker); the
    interpreter of a present tree must run and report ``dest`` as its prefix."""
    if not os.path.lexists(dest):
        return "absent"
    marked = assert_complete(real, dest)
    proc = subprocess.run(
        [str(dest / real.exe), "-B", "-I", "-c", RUN_CHECK],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(dest)
    return "old" if marked else "new"


def staging_dirs(install_dir: Path) -> set[Path]:
    return {p for p in install_dir.iterdir() if p.name.startswith(STAGING)}


def mark_old(dest: Path) -> None:
    (dest / MARKER).write_text("the earlier install\n")


# ---- running the installer ------------------------------------------------------------------


def install_args(real: RealBundle, install_dir: Path, *extra: str) -> list[str]:
    return [
        "install",
        "--from",
        str(real.bundle),
        "--trusted-key",
        str(real.pub),
        "--install-dir",
        str(install_dir),
        *extra,
    ]


def start(args: list[str], *, hook: tuple[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m pybundle ARGS``; with ``hook=(when, function)`` the process stops
    itself (SIGSTOP) just ``before`` or ``after`` the named function of
    pybundle.installer.install runs, so a test can kill it at exactly that point."""
    if hook is None:
        cmd = [sys.executable, "-m", "pybundle", *args]
    else:
        cmd = [sys.executable, "-c", HOOKED_MAIN, *hook, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


HOOKED_MAIN = r"""
import os, signal, sys
import pybundle.installer.install as install
when, name = sys.argv[1:3]
real = getattr(install, name)
def hooked(*args, **kwargs):
    if when == "before":
        os.kill(os.getpid(), signal.SIGSTOP)
    result = real(*args, **kwargs)
    if when == "after":
        os.kill(os.getpid(), signal.SIGSTOP)
    return result
setattr(install, name, hooked)
from pybundle.cli import main
main(sys.argv[3:])
"""


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` every millisecond until it holds; fail if ``proc`` exits first."""
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the installer exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def is_stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def clean_rerun(real: RealBundle, install_dir: Path, *extra: str) -> None:
    """A re-run succeeds, installs the complete new tree and leaves no staging dir."""
    proc = run_cli(*install_args(real, install_dir, *extra))
    assert proc.returncode == 0, proc.stderr
    assert state_of(real, real.dest(install_dir)) == "new"
    assert staging_dirs(install_dir) == set()


def files_below(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


# ---- kill -9 ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_during_extraction_then_clean_rerun(real_bundle: RealBundle, tmp_path: Path) -> None:
    install_dir = tmp_path / "installs"
    dest = real_bundle.dest(install_dir)
    proc = start(install_args(real_bundle, install_dir))

    def extracting() -> bool:
        return install_dir.is_dir() and any(files_below(s) >= 20 for s in staging_dirs(install_dir))

    wait_until(extracting, proc, "extraction started")
    kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert state_of(real_bundle, dest) == "absent"
    (left,) = staging_dirs(install_dir)  # the killed run's half-written tree, beside dest
    assert files_below(left) >= 20 and len(listing(left)) < len(real_bundle.tree)
    clean_rerun(real_bundle, install_dir)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("when", "function", "force"),
    [
        ("before", "move_into_place", False),
        ("after", "move_into_place", False),
        ("before", "swap_into_place", True),
        ("after", "swap_into_place", True),
    ],
)
def test_kill_at_the_final_rename(
    real_bundle: RealBundle, tmp_path: Path, when: str, function: str, force: bool
) -> None:
    """SIGKILL exactly before / after the final rename (fresh install) or exchange (--force)."""
    install_dir = tmp_path / "installs"
    dest = real_bundle.dest(install_dir)
    extra = ("--force",) if force else ()
    if force:
        run_cli(*install_args(real_bundle, install_dir), check=True)
        mark_old(dest)
    before = "old" if force else "absent"
    proc = start(install_args(real_bundle, install_dir, *extra), hook=(when, function))
    wait_until(lambda: is_stopped(proc.pid), proc, f"the pause {when} {function}")
    kill(proc)
    leftovers = staging_dirs(install_dir)
    assert len(leftovers) <= 1, leftovers
    staged = next(iter(leftovers), None)
    if when == "before":
        # Nothing moved yet: the destination is as it was; the staged tree is complete.
        assert state_of(real_bundle, dest) == before
        assert staged is not None and not assert_complete(real_bundle, staged)
    elif force:
        # Exchanged: the new tree is in place, the old one waits in the staging dir.
        assert state_of(real_bundle, dest) == "new"
        assert staged is not None and assert_complete(real_bundle, staged)
    else:
        assert state_of(real_bundle, dest) == "new"
        assert staged is None
    if when == "after" and not force:
        again = run_cli(*install_args(real_bundle, install_dir))
        assert again.returncode == 8, again.stderr  # it is installed; --force to replace
        assert state_of(real_bundle, dest) == "new"
    else:
        clean_rerun(real_bundle, install_dir, *extra)


@pytest.mark.slow
def test_force_reinstall_killed_at_any_moment_keeps_a_working_install(
    real_bundle: RealBundle, tmp_path: Path
) -> None:
    """Kill ``install --force`` at delays spread over a whole measured install; after each
    kill the destination is the complete old tree or the complete new one."""
    install_dir = tmp_path / "installs"
    dest = real_bundle.dest(install_dir)
    force_args = install_args(real_bundle, install_dir, "--force")
    run_cli(*install_args(real_bundle, install_dir), check=True)
    started = time.monotonic()
    run_cli(*force_args, check=True)
    duration = time.monotonic() - started
    assert state_of(real_bundle, dest) == "new"
    mark_old(dest)
    seen: Counter[tuple[str, bool, bool]] = Counter()
    for fraction in (0.1, 0.25, 0.4, 0.55, 0.7, 0.8, 0.9, 1.0, 1.15):
        leftovers = staging_dirs(install_dir)
        proc = start(force_args)
        time.sleep(fraction * duration)  # when to kill, not an assertion
        kill(proc)
        finished = proc.returncode == 0
        state = state_of(real_bundle, dest)
        assert state in ("old", "new"), state
        fresh = staging_dirs(install_dir) - leftovers
        if finished:
            assert state == "new" and not staging_dirs(install_dir)
        seen[(state, bool(fresh), finished)] += 1
        if state == "new":
            mark_old(dest)
    # At least one kill landed while the new tree was being staged, or the sweep proved little.
    assert seen[("old", True, False)] >= 1, seen
    clean_rerun(real_bundle, install_dir, "--force")


# ---- concurrent installs ----------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_installs_of_one_bundle_serialise(
    real_bundle: RealBundle, tmp_path: Path
) -> None:
    install_dir = tmp_path / "installs"
    dest = real_bundle.dest(install_dir)
    procs = [start(install_args(real_bundle, install_dir)) for _ in range(3)]
    outcomes = sorted((p.wait(timeout=300), *p.communicate()) for p in procs)
    codes = [code for code, _, _ in outcomes]
    assert codes == [0, 8, 8], outcomes
    for _, _, err in outcomes[1:]:
        errors = [line for line in err.splitlines() if line.startswith("pybundle: error:")]
        assert len(errors) == 1 and str(dest) in errors[0] and "--force" in errors[0], err
    assert state_of(real_bundle, dest) == "new"
    assert staging_dirs(install_dir) == set()

    mark_old(dest)
    procs = [start(install_args(real_bundle, install_dir, "--force")) for _ in range(2)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    assert state_of(real_bundle, dest) == "new"
    assert staging_dirs(install_dir) == set()
    assert sorted(p.name for p in install_dir.iterdir()) == sorted([dest.name, ".pybundle.lock"])


# ---- a full disk ------------------------------------------------------------------------------


@dataclass
class MountedRun:
    returncode: int
    stderr: str
    after: dict[str, Entry]


EARLIER = "cpython-3.11.9-linux-x86_64-gnu"
EARLIER_TREE = {
    EARLIER: ("d", None),
    f"{EARLIER}/bin": ("d", None),
    f"{EARLIER}/bin/python3.11": ("f", len("#!/bin/sh\necho earlier\n")),
}


def run_on_mount(tmp_path: Path, mount: str, args: list[str], then: str = "") -> MountedRun:
    """In a private mount namespace: run ``mount`` (shell, ``$DIR`` is the install dir), put an
    earlier install there, run ``then``, run ``pybundle ARGS --install-dir $DIR``, and report
    the exit code, stderr and what the install dir holds afterwards (lock file left out)."""
    install_dir = tmp_path / "installs"
    install_dir.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    script = f"""
DIR='{install_dir}'
{mount}
mkdir -p "$DIR/{EARLIER}/bin"
printf '#!/bin/sh\\necho earlier\\n' > "$DIR/{EARLIER}/bin/python3.11"
{then}
set +e
'{sys.executable}' -m pybundle {" ".join(f"'{a}'" for a in args)} --install-dir "$DIR" \
    2> '{report}/stderr' > '{report}/stdout'
echo $? > '{report}/rc'
cp -a "$DIR/." '{report}/after/'
"""
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-ec", script], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    after = listing(report / "after")
    after.pop(".pybundle.lock", None)
    return MountedRun(int((report / "rc").read_text()), (report / "stderr").read_text(), after)


def the_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("pybundle: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def needed_vs_free(message: str) -> tuple[int, int]:
    found = re.search(r"needs (\d+) bytes.*?, (\d+) bytes.*? are free", message)
    assert found, message
    return int(found.group(1)), int(found.group(2))


@pytest.mark.slow
def test_space_check_refuses_before_extracting_on_a_small_tmpfs(
    real_bundle: RealBundle, tmp_path: Path
) -> None:
    args = ["install", "--from", str(real_bundle.bundle), "--trusted-key", str(real_bundle.pub)]
    run = run_on_mount(tmp_path, 'mount -t tmpfs -o size=20m tmpfs "$DIR"', args)
    assert run.returncode == 9, run.stderr
    error = the_error(run.stderr)
    assert "not enough space" in error
    need, free = needed_vs_free(error)
    assert need == needed_bytes(real_bundle.artifact)
    assert 19 * 2**20 < free <= 20 * 2**20
    assert run.after == EARLIER_TREE


@pytest.mark.slow
def test_too_few_inodes_is_refused_before_extraction(
    real_bundle: RealBundle, tmp_path: Path
) -> None:
    """Enough bytes but too few inodes: the up-front check counts the manifest's members
    against statvfs's free inodes; the earlier install stays, the message says why."""
    count = real_bundle.artifact.file_count
    assert count and count > 400
    args = ["install", "--from", str(real_bundle.bundle), "--trusted-key", str(real_bundle.pub)]
    run = run_on_mount(tmp_path, 'mount -t tmpfs -o size=400m,nr_inodes=400 tmpfs "$DIR"', args)
    assert run.returncode == 9, run.stderr
    error = the_error(run.stderr)
    inodes = re.search(rf"not enough inodes: the install needs {count} files, (\d+) inodes", error)
    assert inodes and int(inodes.group(1)) < count, error
    assert run.after == EARLIER_TREE


def test_enospc_mid_write_without_a_recorded_size(
    tiny_bundle: Any, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A manifest without ``unpacked_size`` (optional) skips the space check; the write that
    fills the disk fails cleanly instead."""
    members = [*tiny_interpreter_members(), tar_file("python/lib/blob", os.urandom(12 * 2**20))]
    bundle = tiny_bundle(members=members)
    args = ["install", "--from", str(bundle), "--trusted-key", str(key_files[1])]
    run = run_on_mount(tmp_path, 'mount -t tmpfs -o size=8m tmpfs "$DIR"', args)
    assert run.returncode == 9, run.stderr
    error = the_error(run.stderr)
    assert "no space left" in error and "bytes are free" in error
    assert run.after == EARLIER_TREE


# ---- a read-only destination ------------------------------------------------------------------


def test_read_only_destination_fails_before_extraction(
    tiny_bundle: Any, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle = tiny_bundle()
    args = ["install", "--from", str(bundle), "--trusted-key", str(key_files[1])]
    install_dir = tmp_path / "installs"
    run = run_on_mount(
        tmp_path, 'mount --bind "$DIR" "$DIR"', args, then='mount -o remount,bind,ro "$DIR"'
    )
    assert run.returncode == 9, run.stderr
    error = the_error(run.stderr)
    assert str(install_dir) in error and "Read-only file system" in error
    assert "cannot write to the install directory" in error  # the up-front check, not a write
    assert run.after == EARLIER_TREE
    assert sorted(p.name for p in install_dir.iterdir()) == [EARLIER]


# ---- an injected ENOSPC -----------------------------------------------------------------------


class _FillingDisk:
    """``os.write`` that fails with ENOSPC once ``budget`` bytes went to files below ``root``
    (other writes pass through)."""

    def __init__(self, root: Path, budget: int) -> None:
        self.root = str(root) + os.sep
        self.budget = budget
        self.written = 0
        self.real = os.write

    def __call__(self, fd: int, data: Any) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(self.root):
            if self.written + len(data) > self.budget:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
        return self.real(fd, data)


@pytest.fixture
def sized_bundle(tmp_path: Path, signing_key: SecretKey) -> Iterator[tuple[Path, Artifact]]:
    """A tiny signed bundle whose manifest records unpacked_size and file_count."""
    members = [
        *tiny_interpreter_members(),
        *(tar_file(f"python/lib/blob{i}", os.urandom(400_000)) for i in range(5)),
    ]
    archive = make_tar(
        tmp_path / f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz",
        members,
    )
    with open(archive, "rb") as f:
        shape = scan_archive(f, "tar.gz", str(archive))
    artifact = dataclasses.replace(
        tiny_artifact(archive), unpacked_size=shape.unpacked_size, file_count=shape.file_count
    )
    bundle = tmp_path / "sized.pybundle"
    write_bundle(bundle, [(artifact, archive)], secret_key=signing_key)
    yield bundle, artifact


def test_injected_enospc_rolls_back_and_says_needed_vs_free(
    sized_bundle: tuple[Path, Artifact],
    signing_key: SecretKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle, artifact = sized_bundle
    install_dir = tmp_path / "installs"
    earlier = install_dir / EARLIER / "bin" / "python3.11"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("#!/bin/sh\necho earlier\n")
    before = listing(install_dir)
    disk = _FillingDisk(install_dir, budget=1_000_000)
    monkeypatch.setattr(os, "write", disk)
    with pytest.raises(StorageError) as info:
        install_bundle(
            bundle,
            [signing_key.public_key],
            install_dir=install_dir,
            serials=SerialStore(tmp_path / "state"),
        )
    monkeypatch.undo()
    assert disk.written > 0  # the failure came mid-extraction, not before it
    assert info.value.exit_code == 9
    message = str(info.value)
    assert "\n" not in message and str(bundle) in message and "no space left" in message
    need, free = needed_vs_free(message)
    assert need == needed_bytes(artifact)
    assert free > 0
    after = listing(install_dir)
    after.pop(".pybundle.lock", None)
    assert after == before  # no staging dir, no partial install, the earlier one untouched
    # The same bundle installs once the disk has room again.
    (result,) = install_bundle(
        bundle,
        [signing_key.public_key],
        install_dir=install_dir,
        serials=SerialStore(tmp_path / "state"),
    )
    assert result.path == install_dir / artifact.install_name
    assert (result.path / "lib/blob4").stat().st_size == 400_000
