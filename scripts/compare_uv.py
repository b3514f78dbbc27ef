#!/usr/bin/env python3
"""Run hostile interpreter archives through ``pybundle install`` and ``uv python install`` and
print a Markdown table of what each tool did with each one (the table in docs/security.md).

    sudo .venv/bin/python scripts/compare_uv.py [--uv PATH] [--case NAME ...] [--keep DIR]

Every archive is an otherwise valid, tiny PBS ``install_only`` tree (``python/bin/python3.12``,
a sysconfigdata uv can patch) plus the hostile members: the refusal corpus of
tests/installer/test_extract.py (``REFUSED``) and a few more cases defined here. pybundle gets
it inside a signed bundle (test key); uv gets a downloads-JSON catalog whose entry has a
``file://`` URL and the archive's sha256, and runs ``--offline``.

Each run happens as root in a throwaway root directory (``unshare -m`` + ``chroot``: a tmpfs
with /usr, the checkout and the Python installation bind-mounted read-only, a decoy
``/etc/passwd`` and ``/victim``), so whatever an archive writes lands in the sandbox, where it
is seen, and never on this machine. Outcomes:

- ``refused``: non-zero exit, no install left;
- ``installed safely``: the interpreter tree is in place and holds nothing hazardous;
- ``installed, kept ...``: in place, but with a hazard the archive asked for (setuid bit,
  world-writable file, device node, FIFO, a symlink leading out of the tree);
- ``ESCAPED``: something outside the install root was created or changed, or the tree holds a
  hard link to a file outside it;
- ``failed, left ...``: non-zero exit, but an install (or debris) was left behind.

The script exits 1 if pybundle does not refuse everything uv refuses (the issue's bar).
Needs: root, unshare(1), chroot(8), pytest importable (the builders live in tests/).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, cast

REPO = Path(__file__).resolve().parents[1]
TEST_BUILD = "20990101"

Member = tuple[tarfile.TarInfo, Optional[bytes]]


def _tests() -> Any:
    """tests/conftest.py, whose archive builders this script shares (imported on first use,
    so that the in-sandbox ``--snapshot`` mode starts fast)."""
    for sub in ("tests/installer", "tests", "src"):
        if str(REPO / sub) not in sys.path:
            sys.path.insert(0, str(REPO / sub))
    import conftest

    return conftest


VERSION = "3.12.1"
INSTALL_NAME = f"cpython-{VERSION}-linux-x86_64-gnu"
TRIPLE = "x86_64-unknown-linux-gnu"
SYSCONFIG = (
    "# system configuration generated and used by the sysconfig module\n"
    "build_time_vars = {'prefix': '/install', 'LIBDIR': '/install/lib'}\n"
)


def base_members() -> list[Member]:
    """A tiny interpreter tree in PBS install_only layout, built for prefix ``/install``."""
    t = _tests()
    tar_dir, tar_file, tar_link = t.tar_dir, t.tar_file, t.tar_link
    return [
        tar_dir("python"),
        tar_dir("python/bin"),
        tar_file("python/bin/python3.12", b"#!/bin/sh\necho fake python\n", 0o755),
        tar_link("python/bin/python3", "python3.12"),
        tar_dir("python/lib"),
        tar_dir("python/lib/python3.12"),
        tar_file(
            "python/lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py", SYSCONFIG.encode()
        ),
    ]


def with_base(hostile: list[Member]) -> list[Member]:
    return base_members() + [m for m in hostile if m[0].name != "python"]


# ---- the corpus -------------------------------------------------------------------------------

DESCRIPTIONS = {
    "benign": "no hostile member (baseline)",
    "dotdot": "member `python/../escape`",
    "absolute": "member `/abs/path`",
    "symlink-to-etc": "symlink `python/etc -> /etc`",
    "symlink-dotdot": "symlink `python/a -> ../..`",
    "write-through-symlink": "symlink `python/a -> real`, then file `python/a/x`",
    "symlink-chain-escape": "`python/s -> .`, then `python/t -> s/..`",
    "symlink-later-escape": "`python/t -> s/..` first, then `python/s -> .`",
    "hardlink-outside": "hard link `python/h -> ../victim`",
    "hardlink-absolute": "hard link `python/h -> /etc/passwd`",
    "hardlink-to-later": "hard link to a member that comes later",
    "fifo": "FIFO `python/fifo`",
    "chardev": "character device `python/null` (1,3)",
    "blockdev": "block device `python/sda` (1,3)",
    "duplicate": "the same file twice, different contents",
    "newline-name": "file name with a newline",
    "long-component": "a 300-byte path component",
    "long-path": "a 5,000-byte path",
    "file-then-dir-type-change": "`python/x` as a file, then as a directory",
    "setuid": "file `python/bin/tool` with mode 4755 (setuid)",
    "world-writable": "file mode 0666 and directory mode 0777",
    "gzip-bomb": "256 MiB of zeros in ~250 kB of gzip, no size in the manifest",
    "zstd-2gib-window": "zstd frame declaring a 2 GiB window",
    "truncated": "gzip stream cut in half (sha256 pinned on the cut bytes)",
    "gzip-bomb-signed-size": "the same, but the signed manifest records the 256 MiB",
    "sha256-mismatch": "a valid archive, one header byte changed after its sha256 was pinned",
}


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _gzip_bomb(path: Path) -> None:
    size = 256 * 1024**2
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for info, data in base_members():
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        info = tarfile.TarInfo("python/lib/zeros")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size)))


def _zstd_wide_window(path: Path) -> None:
    import zstandard

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in base_members():
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
    cctx = zstandard.ZstdCompressor(compression_params=params)
    with open(path, "wb") as out, cctx.stream_writer(out, closefd=False) as writer:
        writer.write(buf.getvalue())


def _truncated(path: Path) -> None:
    t = _tests()
    t.make_tar(path, with_base([t.tar_file("python/lib/blob", os.urandom(200_000))]))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@dataclass
class Case:
    name: str
    members: list[Member] = field(default_factory=list)
    fmt: str = "tar.gz"
    build: Optional[Callable[[Path], None]] = None
    flip_after_pinning: bool = False
    """Change the gzip header's MTIME after the sha256 was pinned: still a valid archive."""
    record_size: bool = False
    """Record unpacked_size and file_count in pybundle's manifest (as its bundler does)."""

    @property
    def what(self) -> str:
        return DESCRIPTIONS.get(self.name, self.name)

    def write_archive(self, directory: Path) -> Path:
        path = directory / f"cpython-{VERSION}+{TEST_BUILD}-{TRIPLE}-install_only.{self.fmt}"
        if self.build is not None:
            self.build(path)
        else:
            _tests().make_tar(path, with_base(self.members), self.fmt)
        return path


def corpus() -> list[Case]:
    t = _tests()
    tar_dir, tar_file = t.tar_dir, t.tar_file
    from test_extract import REFUSED

    cases = [Case("benign")]
    cases += [Case(name, cast(list[Member], members)) for name, members in REFUSED.items()]
    cases += [
        Case("setuid", [tar_file("python/bin/tool", b"#!/bin/sh\n", 0o4755)]),
        Case(
            "world-writable",
            [tar_file("python/lib/data", b"x", 0o666), tar_dir("python/share", 0o777)],
        ),
        Case("gzip-bomb", build=_gzip_bomb),
        Case("gzip-bomb-signed-size", build=_gzip_bomb, record_size=True),
        Case("zstd-2gib-window", fmt="tar.zst", build=_zstd_wide_window),
        Case("truncated", build=_truncated),
        Case("sha256-mismatch", flip_after_pinning=True),
    ]
    return cases


# ---- preparing each tool's input --------------------------------------------------------------


GZIP_MTIME_OFFSET = 4
"""A byte of the gzip header's MTIME field (RFC 1952): changing it keeps the stream valid."""


def flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x01]))


def prepare_pybundle(case: Case, archive: Path, out: Path) -> list[str]:
    """A signed bundle of ``archive`` and its public key in ``out``; returns the command."""
    import struct
    import zipfile

    from pybundle.archives import scan_archive
    from pybundle.bundler.pack import write_bundle
    from pybundle.hashing import sha256_file
    from pybundle.manifest import Artifact
    from pybundle.signing import generate_secret_key
    from pybundle.targets import Target

    key = generate_secret_key()
    (out / "test.pub").write_text(key.public_key.to_file_text())
    digest, size = sha256_file(archive)
    artifact = Artifact(
        file_name=archive.name,
        size=size,
        sha256=digest,
        implementation="cpython",
        version=VERSION,
        build=TEST_BUILD,
        target=Target("linux", "x86_64", "gnu"),
        variant="default",
        flavour="install_only",
        archive_format=case.fmt,
        strip_prefix="python",
        build_prefix="/install",
        source_url=f"https://example.invalid/{archive.name}",
    )
    if case.record_size:
        with open(archive, "rb") as f:
            shape = scan_archive(f, case.fmt, str(archive))
        artifact = dataclasses.replace(
            artifact, unpacked_size=shape.unpacked_size, file_count=shape.file_count
        )
    bundle = out / "hostile.pybundle"
    write_bundle(bundle, [(artifact, archive)], secret_key=key)
    if case.flip_after_pinning:
        with zipfile.ZipFile(bundle) as zf:
            offset = zf.getinfo(artifact.member).header_offset
        with open(bundle, "rb") as f:
            f.seek(offset + 26)
            name_len, extra_len = struct.unpack("<HH", f.read(4))
        flip_byte(bundle, offset + 30 + name_len + extra_len + GZIP_MTIME_OFFSET)
    return [
        *PYBUNDLE_CMD,
        "install",
        "--from",
        "/in/hostile.pybundle",
        "--trusted-key",
        "/in/test.pub",
        "--install-dir",
        "/target/installs",
    ]


def prepare_uv(case: Case, archive: Path, out: Path) -> list[str]:
    """A downloads-JSON catalog pointing at ``archive`` (``file:///in/...``)."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    copy = out / archive.name
    shutil.copyfile(archive, copy)
    if case.flip_after_pinning:
        flip_byte(copy, GZIP_MTIME_OFFSET)
    major, minor, patch = (int(p) for p in VERSION.split("."))
    entry = {
        "name": "cpython",
        "arch": {"family": "x86_64", "variant": None},
        "os": "linux",
        "libc": "gnu",
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": "",
        "url": "file:///in/" + archive.name.replace("+", "%2B"),
        "sha256": digest,
        "variant": None,
        "build": TEST_BUILD,
    }
    (out / "catalog.json").write_text(json.dumps({INSTALL_NAME: entry}, indent=1))
    return ["/uv", "python", "install", VERSION, "--offline", "--no-bin"]


PYBUNDLE_CMD = [sys.executable, "-m", "pybundle"]
TOOL_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/home",
    "UV_PYTHON_DOWNLOADS_JSON_URL": "/in/catalog.json",
    "UV_PYTHON_INSTALL_DIR": "/target/installs",
    "UV_PYTHON_BIN_DIR": "/home/bin",
    "UV_CACHE_DIR": "/home/cache",
    "UV_NO_CONFIG": "1",
    "UV_NO_PROGRESS": "1",
}


# ---- the sandbox ------------------------------------------------------------------------------


def _bind_sources() -> list[Path]:
    """Read-only binds the tools need: the checkout, and the Python running this script."""
    wanted = {REPO, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    wanted |= {Path(os.path.realpath(sys.executable)).parents[1]}
    roots: list[Path] = []
    for path in sorted(wanted, key=lambda p: len(p.parts)):
        if path.is_relative_to(Path("/usr")) or any(path.is_relative_to(r) for r in roots):
            continue
        roots.append(path)
    return roots


def snapshot(root: Path) -> dict[str, list[Any]]:
    """Every path in the sandbox (bind mounts left out): kind, mode, then for files the size,
    sha256, inode and link count, for links the target, for devices the device number.
    Walks with directory file descriptors: an archive may create paths longer than PATH_MAX."""
    out: dict[str, list[Any]] = {}
    binds = {"usr", "dev", "in", "uv"} | {str(p.relative_to("/")) for p in _bind_sources()}
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [
            name for name in dirnames if os.path.normpath(os.path.join(rel_dir, name)) not in binds
        ]
        for name in [*dirnames, *filenames]:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(name, dir_fd=dirfd)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ["l", mode, os.readlink(name, dir_fd=dirfd)]
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ["d", mode]
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirfd)
                with os.fdopen(fd, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                out[rel] = ["f", mode, st.st_size, h.hexdigest(), st.st_ino, st.st_nlink]
            elif stat.S_ISFIFO(st.st_mode):
                out[rel] = ["p", mode]
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out[rel] = ["c" if stat.S_ISCHR(st.st_mode) else "b", mode, hex(st.st_rdev)]
            else:
                out[rel] = ["?", mode]
    return out


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    before: dict[str, list[Any]]
    after: dict[str, list[Any]]


def run_in_sandbox(cmd: list[str], inputs: Path, uv: Path, work: Path) -> Run:
    """Run ``cmd`` as root, chrooted into a fresh sandbox with ``inputs`` at ``/in``."""
    root = work / "root"
    report = work / "report"
    root.mkdir(parents=True)
    report.mkdir()
    binds = "\n".join(
        f'mkdir -p "$R{p}" && mount --bind "{p}" "$R{p}" && mount -o remount,bind,ro "$R{p}"'
        for p in [Path("/usr"), *_bind_sources()]
    )
    env = " ".join(f"{k}='{v}'" for k, v in TOOL_ENV.items())
    quoted = " ".join(f"'{c}'" for c in cmd)
    script = f"""
set -e
R='{root}'
mount -t tmpfs -o size=1g,mode=755 tmpfs "$R"
for d in bin lib lib64 sbin; do [ -L "/$d" ] && ln -s "$(readlink "/$d")" "$R/$d"; done
{binds}
mkdir -p "$R/dev" "$R/in" "$R/etc" "$R/home" "$R/target" "$R/tmp"
for n in null zero urandom; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
mount --bind '{inputs}' "$R/in" && mount -o remount,bind,ro "$R/in"
touch "$R/uv" && mount --bind '{uv}' "$R/uv"
printf 'root:x:0:0:decoy:/root:/bin/sh\\n' > "$R/etc/passwd"
printf 'decoy victim\\n' > "$R/victim"
chmod 1777 "$R/tmp"
'{sys.executable}' '{__file__}' --snapshot "$R" > '{report}/before.json'
set +e
chroot "$R" /usr/bin/env -i {env} {quoted} > '{report}/stdout' 2> '{report}/stderr'
echo $? > '{report}/rc'
set -e
'{sys.executable}' '{__file__}' --snapshot "$R" > '{report}/after.json'
"""
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"sandbox setup failed ({proc.returncode}):\n{proc.stderr}")
    return Run(
        int((report / "rc").read_text()),
        (report / "stdout").read_text(),
        (report / "stderr").read_text(),
        json.loads((report / "before.json").read_text()),
        json.loads((report / "after.json").read_text()),
    )


# ---- judging a run ----------------------------------------------------------------------------

TREE = f"target/installs/{INSTALL_NAME}"
SCRATCH = ("home/",)
"""Where the tools keep their own state (uv's cache, pybundle's serials record)."""


@dataclass
class Verdict:
    kind: str  # refused | safe | hazard | escaped | failed
    text: str


def _leaves_tree(rel: str, target: str) -> bool:
    if target.startswith("/"):
        return True
    joined = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    return joined == ".." or joined.startswith("../")


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("cause:")]
    text = causes[-1] if causes else (lines[-1] if lines else "")
    for prefix in ("pybundle: error: ", "cause: ", "error: "):
        text = text.removeprefix(prefix)
    for fmt in ("tar.gz", "tar.zst"):
        name = f"archives/cpython-{VERSION}+{TEST_BUILD}-{TRIPLE}-install_only.{fmt}: "
        text = text.replace(f"/in/hostile.pybundle: {name}", "").replace(name, "")
    return text if len(text) <= 110 else text[:107] + "..."


def judge(run: Run) -> Verdict:
    before, after = run.before, run.after
    outside = sorted(
        rel
        for rel in set(before) | set(after)
        if not rel.startswith("target/installs")
        and not rel.startswith(SCRATCH)
        and before.get(rel) != after.get(rel)
    )
    tree = {rel[len(TREE) + 1 :]: v for rel, v in after.items() if rel.startswith(TREE + "/")}
    installed = TREE in after
    escapes = [f"changed `/{rel}`" for rel in outside]
    if installed:
        inodes_outside = {
            v[4]: rel for rel, v in after.items() if not rel.startswith(TREE) and v[0] == "f"
        }
        for rel, v in tree.items():
            if v[0] == "f" and v[5] > 1 and v[4] in inodes_outside:
                escapes.append(f"`{rel}` is a hard link to `/{inodes_outside[v[4]]}`")
    if escapes:
        return Verdict("escaped", "**ESCAPED**: " + "; ".join(escapes[:3]))
    debris = sorted(
        rel
        for rel in after
        if rel.startswith("target/installs/")
        and not rel.startswith(TREE)
        and rel not in before
        and os.path.basename(rel) not in (".lock", ".gitignore", ".pybundle.lock", ".temp")
    )
    hazards = []
    special = {"p": "FIFO", "c": "char device", "b": "block device"}
    for rel, record in sorted(tree.items()):
        kind, mode = record[0], record[1]
        if kind in special:
            hazards.append(f"{special[kind]} `{rel}`")
        if kind in "fd" and mode & 0o6000:
            hazards.append(f"mode {mode:o} on `{rel}`")
        elif kind in "fd" and mode & 0o002:
            hazards.append(f"world-writable `{rel}` ({mode:o})")
        if kind == "l" and _leaves_tree(rel, record[2]):
            hazards.append(f"symlink `{rel} -> {record[2]}`")
    if run.returncode != 0:
        if installed or debris:
            left = f"the install (exit {run.returncode})" if installed else ", ".join(debris[:2])
            return Verdict("failed", f"failed, left {left}: {_first_error(run.stderr)}")
        return Verdict("refused", f"refused (exit {run.returncode}): {_first_error(run.stderr)}")
    if not installed:
        return Verdict("failed", "exit 0 but nothing installed")
    big = max((v[2] for v in tree.values() if v[0] == "f"), default=0)
    note = f" ({big // 2**20} MiB file written)" if big >= 2**20 else ""
    if hazards:
        return Verdict("hazard", "installed, kept " + "; ".join(hazards[:2]) + note)
    return Verdict("safe", "installed safely" + note)


# ---- main -------------------------------------------------------------------------------------


def self_check(uv: Path) -> None:
    """Prove that the sandbox sees escapes: a command that overwrites ``/victim`` and puts a
    hard link to ``/etc/passwd`` into the install must be judged ESCAPED, and one that only
    creates the tree must not."""
    tree = f"/{TREE}"
    for cmd, expected in (
        (f"mkdir -p {tree} && echo pwned > /victim && ln /etc/passwd {tree}/h", "escaped"),
        (f"mkdir -p {tree}/bin && echo ok > {tree}/bin/python3.12", "safe"),
    ):
        with tempfile.TemporaryDirectory(prefix="compare-uv-check-") as work:
            (Path(work) / "in").mkdir()
            run = run_in_sandbox(["/usr/bin/sh", "-c", cmd], Path(work) / "in", uv, Path(work))
            verdict = judge(run)
        if verdict.kind != expected:
            raise SystemExit(f"sandbox self-check failed: {cmd!r} judged {verdict.text!r}")


def tool_version(uv: Path) -> str:
    out = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def compare(
    cases: list[Case], uv: Path, keep: Path | None
) -> Iterator[tuple[Case, Verdict, Verdict]]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="compare-uv-", dir=keep))
    try:
        for case in cases:
            work = base / case.name
            (work / "archive").mkdir(parents=True)
            archive = case.write_archive(work / "archive")
            verdicts = []
            for tool, prepare in (("pybundle", prepare_pybundle), ("uv", prepare_uv)):
                inputs = work / f"{tool}-in"
                inputs.mkdir()
                cmd = prepare(case, archive, inputs)
                run = run_in_sandbox(cmd, inputs, uv, work / f"{tool}-run")
                verdicts.append(judge(run))
                (work / f"{tool}-run" / "verdict.txt").write_text(verdicts[-1].text + "\n")
            yield case, verdicts[0], verdicts[1]
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uv", type=Path, default=Path(sys.executable).parent / "uv")
    parser.add_argument("--case", action="append", default=[], help="only these cases")
    parser.add_argument("--keep", type=Path, help="keep the work dirs under this directory")
    parser.add_argument("--snapshot", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.snapshot is not None:
        json.dump(snapshot(args.snapshot), sys.stdout)
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (unshare -m, mount, chroot)")
    uv = args.uv.resolve()
    cases = [c for c in corpus() if not args.case or c.name in args.case]
    self_check(uv)
    print(f"| case | the archive holds | pybundle {_pybundle_version()} | uv {tool_version(uv)} |")
    print("|---|---|---|---|")
    weaker = []
    for case, ours, theirs in compare(cases, uv, args.keep):
        print(f"| {case.name} | {case.what} | {ours.text} | {theirs.text} |", flush=True)
        if theirs.kind != "safe" and ours.kind != "refused":
            weaker.append(case.name)
        if theirs.kind == "safe" and ours.kind not in ("refused", "safe"):
            weaker.append(case.name)
    print()
    if weaker:
        print(f"pybundle does NOT refuse everything uv refuses or mishandles: {', '.join(weaker)}")
        return 1
    print("pybundle refuses every case that uv refuses, fails on, or installs with a hazard.")
    return 0


def _pybundle_version() -> str:
    from pybundle import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
