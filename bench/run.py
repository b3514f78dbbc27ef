"""pybundle's benchmark suite (`make bench`): pybundle against GNU tar, uv, cp, hashlib and the
network, on PBS-layout archives packed from the real CPython builds under `$(pyenv root)`.

Every pybundle figure is the CLI run as a fresh child process (`pybundle ...` from the project
venv) with its cache, install and XDG directories in a temporary work directory. Each comparison
alternates its commands in the same run (order rotated every round, one warm-up round discarded,
`sync` between steps) and reports medians; peak RSS comes from `os.wait4` of each child.
Timings are benchmarks, never test assertions: a MISS is reported, not raised.

Usage: python bench/run.py [--runs N] [--quick] [--profile] [--uv PATH] [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import (
    CommandFailed,
    Sample,
    Series,
    Step,
    alternate,
    clear_dir,
    empty_dir,
    http_server,
    run_child,
    warm_page_cache,
)

from pybundle import __version__ as PYBUNDLE_VERSION
from pybundle.bundler.catalog import PBS_RELEASE_PREFIX
from pybundle.bundler.prefix import probe_prefix

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
CACHE = BENCH / ".cache"
BUILD = "20990101"
MINORS = ("11", "12", "13")
MB = 1e6
MIB = 1024 * 1024
RSS_LIMIT_MB = 100.0
PROFILE_SCRIPT = (
    "import cProfile, sys\n"
    "out = sys.argv.pop(1)\n"
    "sys.argv[0] = 'pybundle'\n"
    "prof = cProfile.Profile()\n"
    "prof.enable()\n"
    "code = 0\n"
    "try:\n"
    "    from pybundle.cli import main\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    code = exc.code if isinstance(exc.code, int) else 1\n"
    "finally:\n"
    "    prof.disable()\n"
    "    prof.dump_stats(out)\n"
    "sys.exit(code)\n"
)
"""Runs the CLI under cProfile, imports included, and keeps its exit code (``-m cProfile``
swallows it)."""
HASH_SCRIPT = (
    "import hashlib, sys\n"
    "h = hashlib.sha256()\n"
    "buf = bytearray(1 << 20)\n"
    "view = memoryview(buf)\n"
    "with open(sys.argv[1], 'rb', buffering=0) as f:\n"
    "    while n := f.readinto(buf):\n"
    "        h.update(view[:n])\n"
    "print(h.hexdigest())\n"
)


# ---- input: real interpreters packed as PBS install_only .tar.gz (default level, like PBS)


@dataclass(frozen=True)
class Archive:
    """A packed archive and what a catalog entry needs to describe it."""

    path: Path
    file_name: str
    sha256: str
    size: int
    version: str
    major: int
    minor: int
    patch: int
    os: str
    arch: str
    arch_variant: str | None
    libc: str
    platform_key: str
    prefix: str

    def renamed(self, version: tuple[int, int, int]) -> Archive:
        """The same bytes published as another version (to pad a large bundle)."""
        v = ".".join(map(str, version))
        name = self.file_name.replace(f"cpython-{self.version}+", f"cpython-{v}+", 1)
        return Archive(
            self.path, name, self.sha256, self.size, v, *version, self.os, self.arch,
            self.arch_variant, self.libc, self.platform_key, self.prefix,
        )  # fmt: skip


def pyenv_root() -> Path:
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    except OSError:
        pass
    return Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def discover_prefix(minor: str) -> Path | None:
    """The newest pyenv CPython build of 3.<minor> (plain x.y.z names only)."""
    versions = pyenv_root() / "versions"
    found = []
    for entry in versions.glob(f"3.{minor}.*") if versions.is_dir() else []:
        parts = entry.name.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and (entry / "bin/python3").exists():
            found.append((tuple(int(p) for p in parts), entry))
    return max(found)[1] if found else None


def packed_archive(
    prefix: Path, log: Callable[[str], None], archive_format: str = "tar.gz"
) -> Archive:
    """Pack ``prefix`` once (tar.gz at level 6, or tar.zst at pybundle's default level;
    site-packages reduced to pip); reuse the packed file from ``bench/.cache`` while the prefix
    and pybundle's version are unchanged."""
    archives = CACHE / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    stamp = {
        "prefix": str(prefix.resolve()),
        "python_mtime": (prefix / "bin/python3").resolve().stat().st_mtime_ns,
        "pybundle": PYBUNDLE_VERSION,
        "format": f"{archive_format}-default-pip",
    }
    meta_path = archives / f"{prefix.name}-{archive_format}.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        path = archives / meta["file_name"]
        if meta.get("stamp") == stamp and path.exists() and path.stat().st_size == meta["size"]:
            return _archive_from_meta(path, meta)
    log(f"packing {prefix} ({archive_format}, default level; once, cached in {archives})")
    info = probe_prefix(prefix)
    name = f"cpython-{info.version}+{BUILD}-{info.target.triple}-install_only.{archive_format}"
    # in a child process: the suite's own peak RSS would otherwise show up in the peak RSS of
    # every command it forks afterwards (ru_maxrss counts the forked copy before exec)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pybundle.bundler.prefix import pack_prefix, probe_prefix\n"
        "artifact, path = pack_prefix(probe_prefix(Path(sys.argv[1])), Path(sys.argv[2]),\n"
        "    archive_format=sys.argv[3], site_packages='pip', file_name=sys.argv[4],\n"
        "    build=sys.argv[5])\n"
        "print(artifact.sha256, artifact.size, artifact.unpacked_size, artifact.file_count)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(prefix), str(archives), archive_format, name, BUILD],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    path = archives / name
    artifact = argparse.Namespace(
        sha256=out[0], size=int(out[1]), unpacked_size=int(out[2]), file_count=int(out[3])
    )
    v = info.version
    meta = {
        "stamp": stamp,
        "file_name": name,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "version": str(v),
        "major": v.major,
        "minor": v.minor,
        "patch": v.patch,
        "os": info.target.os,
        "arch": info.target.arch,
        "arch_variant": info.target.arch_variant,
        "libc": info.target.libc,
        "platform_key": info.target.key,
        "prefix": str(info.prefix),
        "unpacked_size": artifact.unpacked_size,
        "file_count": artifact.file_count,
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return _archive_from_meta(path, meta)


def _archive_from_meta(path: Path, meta: dict[str, Any]) -> Archive:
    return Archive(
        path, meta["file_name"], meta["sha256"], meta["size"], meta["version"], meta["major"],
        meta["minor"], meta["patch"], meta["os"], meta["arch"], meta["arch_variant"],
        meta["libc"], meta["platform_key"], meta["prefix"],
    )  # fmt: skip


def catalog_entry(a: Archive, url: str) -> tuple[str, dict[str, Any]]:
    """A uv downloads-JSON entry (the format of uv's download-metadata.json)."""
    return f"cpython-{a.version}-{a.platform_key}", {
        "name": "cpython",
        "arch": {"family": a.arch, "variant": a.arch_variant},
        "os": a.os,
        "libc": a.libc,
        "major": a.major,
        "minor": a.minor,
        "patch": a.patch,
        "prerelease": "",
        "url": url,
        "sha256": a.sha256,
        "variant": None,
        "build": BUILD,
    }


def upstream_url(a: Archive) -> str:
    return f"{PBS_RELEASE_PREFIX}/{BUILD}/{a.file_name.replace('+', '%2B')}"


def write_catalog(path: Path, archives: Sequence[Archive], file_urls: bool = False) -> Path:
    """A catalog naming ``archives`` by their upstream URLs (pybundle, with --mirror) or by
    absolute ``file://`` URLs of the archive files (uv offline)."""
    entries = dict(
        catalog_entry(a, path_url(a.path) if file_urls else upstream_url(a)) for a in archives
    )
    path.write_text(json.dumps(entries, indent=1))
    return path


def path_url(path: Path) -> str:
    return "file://" + str(path.resolve()).replace("+", "%2B")


def publish(www: Path, archives: Sequence[Archive]) -> None:
    """Lay the archives out under ``www`` like a PBS release (releases/download/<build>/)."""
    release = www / "releases" / "download" / BUILD
    release.mkdir(parents=True, exist_ok=True)
    for a in archives:
        dest = release / a.file_name
        if dest.exists() or dest.is_symlink():
            continue
        try:
            os.link(a.path, dest)
        except OSError:
            os.symlink(a.path.resolve(), dest)


# ---- results


@dataclass
class Row:
    """One line of the results table."""

    id: str
    what: str
    pybundle: str
    baseline: str
    ratio: float | None
    ratio_text: str
    target: str
    ok: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    profile_argv: list[str] | None = None

    @property
    def result(self) -> str:
        return "info" if self.ok is None else ("PASS" if self.ok else "MISS")


def _cpu(series: dict[str, Series]) -> dict[str, Any]:
    """A row's ``details`` entry with the median CPU seconds (user + system) of each command."""
    return {"cpu_seconds": {n: round(s.median_cpu, 3) for n, s in series.items()}}


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def fmt_mb(n: float) -> str:
    return f"{n / MB:,.0f} MB" if n >= 10 * MB else f"{n / MB:.1f} MB"


# ---- the suite


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.runs: int = args.runs
        self.python = Path(sys.executable)
        self.pybundle = self.python.parent / "pybundle"
        self.uv = Path(args.uv)
        self.work = Path(args.work) if args.work else default_work_dir()
        self.work.mkdir(parents=True, exist_ok=True)
        (CACHE / "work").mkdir(parents=True, exist_ok=True)
        self.disk = Path(tempfile.mkdtemp(prefix="disk-", dir=CACHE / "work"))
        self.rows: list[Row] = []
        self.profiles: list[Path] = []
        self.profile_dir = Path(args.out) / "profiles"
        self.series: dict[str, dict[str, Any]] = {}
        self.env = self._env()
        self.source = self._source()
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYBUNDLE_", "UV_"))}
        # a user's pybundle has its bytecode (pip compiles it at install): measure that, not
        # compiling ~70 modules from source at every start (see _source, which compiles them)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        home = self.work / "home"  # nothing a child writes by default lands in the real home
        env["HOME"] = str(home)
        for var, sub in (
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_STATE_HOME", ".local/state"),
        ):
            env[var] = str(home / sub)
        return env

    def _source(self) -> dict[str, Any]:
        """Which pybundle is measured: the working tree (the project venv's editable install),
        or with ``--rev`` a clean snapshot of ``src/`` at that revision put first on the
        children's PYTHONPATH, so edits in flight in the working tree do not leak in."""
        if not self.args.rev:
            self._compile(REPO / "src")
            return {
                "what": "working tree",
                "commit": _git("rev-parse", "--short", "HEAD"),
                "uncommitted": _git("status", "--porcelain", "--", "src").splitlines(),
                "src_digest_start": src_digest(REPO / "src"),
            }
        commit = _git("rev-parse", "--short", self.args.rev)
        if not commit:
            raise SystemExit(f"bench: unknown git revision {self.args.rev!r}")
        snapshot = self.work / f"src-{commit}"
        snapshot.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive, check=True)
        self.env["PYTHONPATH"] = str(snapshot / "src")
        self._compile(snapshot / "src")
        probe = subprocess.run(
            [str(self.python), "-c", "import pybundle; print(pybundle.__file__)"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not probe.startswith(str(snapshot)):
            raise SystemExit(f"bench: the snapshot of {commit} is not the pybundle imported")
        return {"what": f"snapshot of src/ at {commit}", "commit": commit, "uncommitted": []}

    def _compile(self, src: Path) -> None:
        """Write the bytecode of the measured ``src`` ahead of the runs, as installing pybundle
        does, so that no measured start compiles it."""
        subprocess.run(
            [str(self.python), "-m", "compileall", "-q", str(src)],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def child(self, argv: Sequence[str], env: dict[str, str] | None = None) -> Sample:
        self._n += 1
        return run_child(argv, env=env or self.env, log=self.logs / f"{self._n:04d}.log")

    def cli(self, *args: str) -> list[str]:
        return [str(self.pybundle), *args]

    def sync_cleanup(self, *dirs: Path) -> Callable[[], None]:
        def cleanup() -> None:
            for d in dirs:
                clear_dir(d)
            os.sync()

        return cleanup

    def record(self, row_id: str, series: dict[str, Series]) -> None:
        self.series[row_id] = {name: s.to_json() for name, s in series.items()}

    # -- fixtures

    def prepare(self) -> None:
        self.log(f"work directories: {self.work} (trees), {self.disk} (bundles, caches)")
        self.archives: list[Archive] = []
        for minor in MINORS:
            prefix = discover_prefix(minor)
            if prefix is None:
                raise SystemExit(f"bench: no pyenv CPython 3.{minor} under {pyenv_root()}")
            self.archives.append(packed_archive(prefix, self.log))
        self.one = next(a for a in self.archives if a.minor == 12)
        prefix12 = discover_prefix("12")
        assert prefix12 is not None
        self.one_zst = packed_archive(prefix12, self.log, "tar.zst")
        self.small = min(self.archives, key=lambda a: a.size)
        total3 = sum(a.size for a in self.archives)
        copies = math.ceil(self.args.large_bytes / total3)
        self.padded = [
            a if k == 0 else a.renamed((a.major, a.minor, 100 * k + a.patch))
            for k in range(copies)
            for a in self.archives
        ]
        keys = self.work / "keys"
        self.key, self.pub = keys / "bench.key", keys / "bench.pub"
        self.child(
            self.cli(
                "keygen", "--unencrypted", "--secret-key", str(self.key), "--public-key", str(self.pub)
            )
        )
        self.www = self.work / "www"
        publish(self.www, [*self.padded, self.one_zst])
        self.catalog = write_catalog(self.work / "catalog.json", self.padded)
        self.zst_catalog = write_catalog(self.work / "catalog-zst.json", [self.one_zst])
        self.uv_catalog = write_catalog(self.work / "uv-catalog.json", self.archives, True)
        self.uv_zst_catalog = write_catalog(self.work / "uv-catalog-zst.json", [self.one_zst], True)
        warm_page_cache([a.path for a in (*self.archives, self.one_zst)])

    def bundle_argv(
        self,
        versions: Sequence[Archive],
        out: Path,
        cache: Path,
        mirror: str,
        catalog: Path | None = None,
    ) -> list[str]:
        return self.cli(
            "bundle", "--versions", ",".join(a.version for a in versions),
            "--catalog", str(catalog or self.catalog), "--mirror", f"{mirror}/releases/download",
            "--cache-dir", str(cache), "--sign-key", str(self.key), "-o", str(out), "--force",
            "--serial", "1",
        )  # fmt: skip

    def make_bundles(self, mirror: str) -> None:
        self.warm_cache = self.disk / "warm-cache"
        self.b1 = self.work / "one.pybundle"
        self.b3 = self.work / "three.pybundle"
        self.bsmall = self.work / "small.pybundle"
        self.child(self.bundle_argv([self.one], self.b1, self.warm_cache, mirror))
        self.b1z = self.work / "one-zst.pybundle"
        self.child(
            self.bundle_argv([self.one_zst], self.b1z, self.warm_cache, mirror, self.zst_catalog)
        )
        self.child(self.bundle_argv(self.archives, self.b3, self.warm_cache, mirror))
        self.child(self.bundle_argv([self.small], self.bsmall, self.warm_cache, mirror))

    # -- 0. fixed cost of starting the CLI

    def bench_startup(self) -> None:
        self.log("CLI start-up")
        series = alternate(
            {
                "pybundle --version": lambda r: self.child(self.cli("--version")),
                "pybundle install --help": lambda r: self.child(self.cli("install", "--help")),
                "python -c pass": lambda r: self.child([str(self.python), "-c", "pass"]),
            },
            self.runs,
        )
        self.record("startup", series)
        base = series["python -c pass"]
        for name, what in (
            ("pybundle --version", "`pybundle --version`"),
            ("pybundle install --help", "`pybundle install --help`"),
        ):
            extra = series[name].median - base.median
            self.rows.append(
                Row(
                    "startup" if name.endswith("version") else "startup-help",
                    f"CLI start-up ({what})", fmt_s(series[name].median),
                    f"`python -c pass` {fmt_s(base.median)}", extra, f"+{fmt_s(extra)}",
                    "≤ +0.04 s", extra <= 0.04, _cpu(series), self.cli(*name.split()[1:]),
                )
            )  # fmt: skip

    # -- 1. install one archive: pybundle vs tar -xzf vs uv

    def bench_install_one(
        self,
        row_id: str = "install-1",
        archive: Archive | None = None,
        bundle: Path | None = None,
        where: Path | None = None,
        runs: int | None = None,
    ) -> None:
        """pybundle install vs ``tar -x`` vs ``uv python install`` of one archive, into ``where``
        (default: the tmpfs work dir; the disk rows pass a directory on the disk)."""
        a = archive or self.one
        b = bundle or self.b1
        base = where or self.work
        zst = a.file_name.endswith(".tar.zst")
        self.log(f"{row_id}: install one archive ({a.file_name}, {fmt_mb(a.size)}) in {base}")
        inst, tar, uvd = base / "inst", base / "tar", base / "uv"
        uv_env = dict(self.env)
        uv_env.pop("PYTHONPATH", None)
        uv_env.update(
            UV_PYTHON_DOWNLOADS_JSON_URL=str(self.uv_zst_catalog if zst else self.uv_catalog),
            UV_CACHE_DIR=str(self.work / "uv-cache"),
            UV_NO_CONFIG="1",
            UV_PYTHON_BIN_DIR=str(self.work / "uv-bin"),
        )

        def install_argv(dest: Path) -> list[str]:
            return self.cli("install", "--from", str(b), "--trusted-key", str(self.pub),
                            "--install-dir", str(dest), "--no-bin")  # fmt: skip

        def pybundle_install(r: int) -> Sample:
            return self.child(install_argv(inst / f"r{r}"))

        def tar_x(r: int) -> Sample:
            d = empty_dir(tar / f"r{r}")
            return self.child(["tar", "--zstd" if zst else "-z", "-xf", str(a.path), "-C", str(d)])

        def uv_install(r: int) -> Sample:
            argv = [str(self.uv), "python", "install", a.version, "--offline", "--no-bin",
                    "--install-dir", str(uvd / f"r{r}")]  # fmt: skip
            return self.child(argv, env=uv_env)

        tar_name = "tar --zstd -xf" if zst else "tar -xzf"
        series = alternate(
            {
                "pybundle install": pybundle_install,
                tar_name: tar_x,
                "uv python install": uv_install,
            },
            runs or self.runs,
            cleanup=self.sync_cleanup(inst, tar, uvd),
        )
        self.record(row_id, series)
        p, t, u = series["pybundle install"], series[tar_name], series["uv python install"]
        fmt = "tar.zst" if zst else "tar.gz"
        place = "" if where is None else ", on disk"
        what = f"install one archive ({a.version}, {fmt_mb(a.size)} .{fmt}{place})"
        prof = install_argv(inst / "profile")
        cpu = _cpu(series)
        ratio = p.median / t.median
        tar_target = 1.0 if zst else 0.5
        self.rows.append(
            Row(row_id, what, fmt_s(p.median), f"`{tar_name}` {fmt_s(t.median)}", ratio,
                f"{ratio:.2f}x", f"≤ {tar_target:.2f}x", ratio <= tar_target, cpu, prof)
        )  # fmt: skip
        ratio_uv = p.median / u.median
        uv_target = 1.0 if zst else 0.75
        self.rows.append(
            Row(f"{row_id}-uv", what, fmt_s(p.median), f"`uv python install` {fmt_s(u.median)}",
                ratio_uv, f"{ratio_uv:.2f}x", f"≤ {uv_target:.2f}x uv", ratio_uv <= uv_target,
                cpu, prof)
        )  # fmt: skip

    # -- 1b. the first import in an installed tree: shipped bytecode still valid?

    def bench_first_import(self) -> None:
        """``python -c "import json, asyncio"`` in a tree installed by pybundle and in one
        installed by uv (bytecode writing off, so every run pays what the first run pays):
        uv does not keep mtimes, so the shipped .pyc files no longer match their sources."""
        a = self.one
        self.log("first import after install: pybundle's tree vs uv's")
        trees = self.work / "first-import"
        clear_dir(trees)
        self.child(
            self.cli("install", "--from", str(self.b1), "--trusted-key", str(self.pub),
                     "--install-dir", str(trees / "pybundle"), "--no-bin")
        )  # fmt: skip
        uv_env = dict(self.env)
        uv_env.pop("PYTHONPATH", None)
        uv_env.update(
            UV_PYTHON_DOWNLOADS_JSON_URL=str(self.uv_catalog),
            UV_CACHE_DIR=str(self.work / "uv-cache"),
            UV_NO_CONFIG="1",
            UV_PYTHON_BIN_DIR=str(self.work / "uv-bin"),
        )
        self.child([str(self.uv), "python", "install", a.version, "--offline", "--no-bin",
                    "--install-dir", str(trees / "uv")], env=uv_env)  # fmt: skip
        exe = f"bin/python{a.major}.{a.minor}"
        ours = next((trees / "pybundle").glob(f"cpython-{a.version}-*/{exe}"))
        theirs = next((trees / "uv").glob(f"cpython-{a.version}-*/{exe}"))
        env = {**self.env, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTHONPATH", None)
        code = "import json, asyncio"
        series = alternate(
            {
                "pybundle's tree": lambda r: self.child([str(ours), "-c", code], env=env),
                "uv's tree": lambda r: self.child([str(theirs), "-c", code], env=env),
            },
            self.runs,
        )
        self.record("first-import", series)
        p, u = series["pybundle's tree"], series["uv's tree"]
        ratio = p.median / u.median
        self.rows.append(
            Row("first-import", f'first `python -c "{code}"` in the installed {a.version} tree',
                fmt_s(p.median), f"uv's tree {fmt_s(u.median)}", ratio, f"{ratio:.2f}x",
                "(info: shipped bytecode kept valid)", None, _cpu(series))
        )  # fmt: skip
        shutil.rmtree(trees, ignore_errors=True)

    # -- 2. install three archives vs three sequential tar -xzf

    def bench_install_three(self) -> None:
        self.log("2. install a three-interpreter bundle")
        inst, tar = self.work / "inst", self.work / "tar"
        paths = [a.path for a in self.archives]

        def pybundle_install(r: int) -> Sample:
            return self.child(
                self.cli("install", "--from", str(self.b3), "--trusted-key", str(self.pub),
                         "--install-dir", str(inst / f"r{r}"), "--no-bin")
            )  # fmt: skip

        def tar_x3(r: int) -> Sample:
            dirs = [empty_dir(tar / f"r{r}-{i}") for i in range(len(paths))]
            script = " && ".join(f"tar -xzf '{p}' -C '{d}'" for p, d in zip(paths, dirs))
            return self.child(["sh", "-c", script])

        series = alternate(
            {"pybundle install": pybundle_install, "3 x tar -xzf": tar_x3},
            self.runs,
            cleanup=self.sync_cleanup(inst, tar),
        )
        self.record("install-3", series)
        p, t = series["pybundle install"], series["3 x tar -xzf"]
        total = sum(a.size for a in self.archives)
        ratio = p.median / t.median
        prof = self.cli("install", "--from", str(self.b3), "--trusted-key", str(self.pub),
                        "--install-dir", str(inst / "profile"), "--no-bin")  # fmt: skip
        self.rows.append(
            Row("install-3", f"install a 3-interpreter bundle ({fmt_mb(total)})", fmt_s(p.median),
                f"3 sequential `tar -xzf` {fmt_s(t.median)}", ratio, f"{ratio:.2f}x", "≤ 0.45x",
                ratio <= 0.45, _cpu(series), prof)
        )  # fmt: skip

    # -- 3. verify throughput vs hashlib

    def bench_verify(self, row_id: str, bundle: Path, runs: int) -> None:
        size = bundle.stat().st_size
        self.log(f"3. verify {bundle.name} ({fmt_mb(size)})")
        warm_page_cache([bundle])
        verify = self.cli("verify", str(bundle), "--trusted-key", str(self.pub))
        series = alternate(
            {
                "pybundle verify": lambda r: self.child(verify),
                "hashlib.sha256": lambda r: self.child(
                    [str(self.python), "-c", HASH_SCRIPT, str(bundle)]
                ),
            },
            runs,
        )
        self.record(row_id, series)
        p, h = series["pybundle verify"], series["hashlib.sha256"]
        ratio = h.median / p.median  # throughput ratio
        self.rows.append(
            Row(row_id, f"`verify` throughput, {bundle.name} ({fmt_mb(size)})",
                f"{size / p.median / MB:,.0f} MB/s ({fmt_s(p.median)})",
                f"hashlib.sha256 {size / h.median / MB:,.0f} MB/s ({fmt_s(h.median)})",
                ratio, f"{ratio:.2f}x", "≥ 0.90x", ratio >= 0.90,
                {"bytes": size, **_cpu(series)}, verify)
        )  # fmt: skip

    # -- 4. bundle from a warm cache vs cp

    def bench_bundle_warm(self, mirror: str) -> None:
        self.log("4. bundle three archives from a warm cache")
        out = empty_dir(self.disk / "out")
        argv = self.bundle_argv(self.archives, out / "b.pybundle", self.warm_cache, mirror)
        cp = ["cp", *(str(a.path) for a in self.archives), str(out)]
        series = alternate(
            {
                "pybundle bundle": lambda r: self.child(argv),
                "cp": lambda r: self.child(cp),
                "cp + fsync": lambda r: self.child(
                    ["sh", "-c", f"{' '.join(cp)} && sync {out}/*.tar.gz"]
                ),
            },
            self.runs,
            cleanup=self.sync_cleanup(out),
        )
        self.record("bundle-warm", series)
        p, c, cs = series["pybundle bundle"], series["cp"], series["cp + fsync"]
        total = sum(a.size for a in self.archives)
        ratio = p.median / c.median
        self.rows.append(
            Row("bundle-warm", f"`bundle` 3 archives from a warm cache ({fmt_mb(total)})",
                fmt_s(p.median), f"`cp` {fmt_s(c.median)} (cp + fsync {fmt_s(cs.median)})",
                ratio, f"{ratio:.2f}x", "≤ 1.5x", ratio <= 1.5,
                {"cp_fsync_ratio": round(p.median / cs.median, 3), **_cpu(series)}, argv)
        )  # fmt: skip

    # -- 5. cold bundle over a throttled loopback server vs the ideal

    def bench_bundle_cold(self) -> None:
        rate = self.args.rate_mib * MIB
        jobs = 4  # pybundle bundle's default --jobs
        self.log(
            f"5. cold bundle from a server throttled to {self.args.rate_mib} MiB/s per connection"
        )
        out, cache = empty_dir(self.disk / "out"), self.disk / "cold-cache"
        total = sum(a.size for a in self.archives)
        ideal = total / (rate * min(jobs, len(self.archives)))
        longest = max(a.size for a in self.archives) / rate
        with http_server(self.www, rate=rate) as server:
            argv = self.bundle_argv(self.archives, out / "b.pybundle", cache, server.url)
            series = alternate(
                {"pybundle bundle (cold)": lambda r: self.child(argv)},
                self.args.cold_runs,
                warmup=0,
                cleanup=self.sync_cleanup(out, cache),
            )
            if self.args.profile and ideal / series["pybundle bundle (cold)"].median < 0.80:
                self.profiles += profile_command(
                    self, "bundle-cold", argv[1:], self.profile_dir, self.args.top,
                    self.sync_cleanup(out, cache),
                )  # fmt: skip
        self.record("bundle-cold", series)
        p = series["pybundle bundle (cold)"]
        eff = ideal / p.median
        self.rows.append(
            Row("bundle-cold",
                f"cold `bundle` of 3 archives, {self.args.rate_mib:g} MiB/s per connection, "
                f"--jobs {jobs}", fmt_s(p.median),
                f"ideal {fmt_s(ideal)} (largest file alone {fmt_s(longest)})", eff,
                f"{eff:.2f} of ideal", "≥ 0.80", eff >= 0.80,
                {"ideal_seconds": round(ideal, 3), "rate_bytes_per_s": rate,
                 "largest_file_seconds": round(longest, 3), **_cpu(series)}, None)
        )  # fmt: skip

    # -- 6. peak RSS, small vs 1 GB+ bundle

    def bench_rss(self, mirror: str) -> None:
        self.log("6. peak RSS: bundle, verify, install; small vs large bundle")
        big = self.work / "large.pybundle"
        small_set, large_set = [self.small], self.padded
        results: dict[str, dict[str, Sample]] = {"bundle": {}, "verify": {}, "install": {}}
        sizes: dict[str, int] = {}
        for label, versions, out in (("small", small_set, self.bsmall), ("large", large_set, big)):
            cache = empty_dir(self.work / f"rss-cache-{label}")
            # cold (downloads through the loopback server, unthrottled), fresh cache
            results["bundle"][label] = self.child(self.bundle_argv(versions, out, cache, mirror))
            sizes[label] = out.stat().st_size
            os.sync()
            warm_page_cache([out])
            results["verify"][label] = self.child(
                self.cli("verify", str(out), "--trusted-key", str(self.pub))
            )
            inst = empty_dir(self.work / "inst-rss")
            results["install"][label] = self.child(
                self.cli("install", "--from", str(out), "--trusted-key", str(self.pub),
                         "--install-dir", str(inst), "--no-bin")
            )  # fmt: skip
            shutil.rmtree(inst)
            os.sync()
        self.large_bundle = big
        self.series["rss"] = {
            cmd: {label: s.__dict__ for label, s in by.items()} for cmd, by in results.items()
        }
        for cmd, by in results.items():
            s, g = by["small"].maxrss_mb, by["large"].maxrss_mb
            growth = g - s
            ok = max(s, g) < RSS_LIMIT_MB and growth < max(10.0, 0.10 * s)
            self.rows.append(
                Row(f"rss-{cmd}",
                    f"peak RSS of `{cmd}`: {fmt_mb(sizes['small'])} vs {fmt_mb(sizes['large'])}"
                    f" bundle ({len(large_set)} interpreters)",
                    f"{s:.0f} MB → {g:.0f} MB", f"time {fmt_s(by['small'].seconds)} → "
                    f"{fmt_s(by['large'].seconds)}", growth, f"{growth:+.1f} MB",
                    f"< {RSS_LIMIT_MB:.0f} MB, flat (growth < max(10 MB, 10 %))", ok,
                    {"sizes": sizes})
            )  # fmt: skip

    # -- 7. compact bundles (--compact): size, bundle cost, install time, peak RSS

    def bench_compact(self, mirror: str) -> None:
        self.log("7. compact bundle of three interpreters (solid LZMA2 stream)")
        out = self.disk / "compact.pybundle"
        argv = self.bundle_argv(self.archives, out, self.warm_cache, mirror) + ["--compact"]
        made = self.child(argv)  # once: it takes minutes, and the result is deterministic
        plain_made = self.child(
            self.bundle_argv(self.archives, self.disk / "plain.pybundle", self.warm_cache, mirror)
        )
        self.compact = out
        plain_size, compact_size = self.b3.stat().st_size, out.stat().st_size
        size_ratio = compact_size / plain_size
        self.rows.append(
            Row("compact-size", "`bundle --compact` of 3 interpreters: size",
                fmt_mb(compact_size), f"plain bundle {fmt_mb(plain_size)}", size_ratio,
                f"{size_ratio:.2f}x", "≤ 0.55x", size_ratio <= 0.55,
                {"bundle_seconds": round(made.seconds, 1),
                 "bundle_maxrss_mb": round(made.maxrss_mb),
                 "plain_bundle_seconds": round(plain_made.seconds, 1)}, argv)
        )  # fmt: skip
        self.rows.append(
            Row("compact-bundle", "`bundle --compact` of 3 interpreters: time (warm cache)",
                fmt_s(made.seconds), f"plain `bundle` {fmt_s(plain_made.seconds)}",
                made.seconds / plain_made.seconds,
                f"{made.seconds / plain_made.seconds:.0f}x, peak RSS {made.maxrss_mb:.0f} MB",
                "(info)", None)
        )  # fmt: skip
        inst = self.work / "inst"

        def install(bundle: Path) -> Step:
            def step(r: int) -> Sample:
                return self.child(
                    self.cli("install", "--from", str(bundle), "--trusted-key", str(self.pub),
                             "--install-dir", str(inst / f"r{r}"), "--no-bin")
                )  # fmt: skip

            return step

        warm_page_cache([out, self.b3])
        series = alternate(
            {"install compact": install(out), "install plain": install(self.b3)},
            self.runs,
            cleanup=self.sync_cleanup(inst),
        )
        self.record("compact-install", series)
        c, p = series["install compact"], series["install plain"]
        ratio = c.median / p.median
        prof = self.cli("install", "--from", str(out), "--trusted-key", str(self.pub),
                        "--install-dir", str(inst / "profile"), "--no-bin")  # fmt: skip
        self.rows.append(
            Row("compact-install", "install a compact 3-interpreter bundle", fmt_s(c.median),
                f"plain bundle {fmt_s(p.median)}", ratio, f"{ratio:.2f}x", "≤ 3.0x",
                ratio <= 3.0,
                {"cpu_seconds": {n: round(s.median_cpu, 3) for n, s in series.items()}}, prof)
        )  # fmt: skip
        verify = self.child(self.cli("verify", str(out), "--trusted-key", str(self.pub)))
        rss = max(s.maxrss_mb for s in c.samples)
        self.rows.append(
            Row("compact-rss", "peak RSS of `install` / `verify` from the compact bundle",
                f"{rss:.0f} MB / {verify.maxrss_mb:.0f} MB",
                f"plain install {max(s.maxrss_mb for s in p.samples):.0f} MB",
                rss, f"{rss:.0f} MB", "(info: the LZMA2 dictionary is most of it)", None,
                {"verify_seconds": round(verify.seconds, 2)})
        )  # fmt: skip

    # -- 8. volumes (--volume-size): bundle and install through NAME.001

    def bench_volumes(self, mirror: str) -> None:
        self.log("8. volume sets (--volume-size 64M)")
        out = empty_dir(self.disk / "volumes") / "three.pybundle"
        argv = self.bundle_argv(self.archives, out, self.warm_cache, mirror)
        made = self.child(argv + ["--volume-size", "64M"])
        parts = sorted(out.parent.glob("three.pybundle.[0-9][0-9][0-9]"))
        plain = self.child(argv)
        self.rows.append(
            Row("volumes-bundle", f"`bundle --volume-size 64M`: {len(parts)} volumes",
                fmt_s(made.seconds), f"single file {fmt_s(plain.seconds)}",
                made.seconds / plain.seconds, f"{made.seconds / plain.seconds:.2f}x",
                "(info)", None, {"parts": [p.stat().st_size for p in parts]})
        )  # fmt: skip
        inst = self.work / "inst"

        def install(bundle: Path) -> Step:
            def step(r: int) -> Sample:
                return self.child(
                    self.cli("install", "--from", str(bundle), "--trusted-key", str(self.pub),
                             "--install-dir", str(inst / f"r{r}"), "--no-bin")
                )  # fmt: skip

            return step

        warm_page_cache([*parts, out])
        series = alternate(
            {"install NAME.001": install(parts[0]), "install NAME": install(out)},
            self.runs,
            cleanup=self.sync_cleanup(inst),
        )
        self.record("volumes-install", series)
        v, s = series["install NAME.001"], series["install NAME"]
        ratio = v.median / s.median
        self.rows.append(
            Row("volumes-install", f"install from {len(parts)} volumes", fmt_s(v.median),
                f"single file {fmt_s(s.median)}", ratio, f"{ratio:.2f}x", "≤ 1.10x",
                ratio <= 1.10)
        )  # fmt: skip

    # -- the whole run

    def run(self) -> None:
        started = time.monotonic()
        load_before = os.getloadavg()
        self.prepare()
        only = set(self.args.only.split(",")) if self.args.only else None
        if only is not None:
            with http_server(self.www) as server:
                self.make_bundles(server.url)
                if "compact" in only:
                    self.bench_compact(server.url)
                if "volumes" in only:
                    self.bench_volumes(server.url)
                if "rss" in only:
                    self.bench_rss(server.url)
            self._finish(started, load_before)
            return
        with http_server(self.www) as server:
            self.make_bundles(server.url)
            self.bench_startup()
            self.bench_install_one()
            self.bench_install_one("install-1-zst", self.one_zst, self.b1z)
            self.bench_first_import()
            self.bench_install_three()
            self.bench_verify("verify-3", self.b3, self.runs)
            self.bench_bundle_warm(server.url)
            self.bench_rss(server.url)
            self.bench_compact(server.url)
            self.bench_volumes(server.url)
        self.bench_verify("verify-large", self.large_bundle, max(3, self.runs // 2))
        self.bench_bundle_cold()
        disk = empty_dir(self.disk / "trees")
        self.bench_install_one("install-1-disk", where=disk, runs=max(3, self.runs // 2))
        self._finish(started, load_before)

    def _finish(self, started: float, load_before: tuple[float, float, float]) -> None:
        self.meta = machine_info(self.uv)
        if "src_digest_start" in self.source:
            self.source["changed_during_run"] = (
                src_digest(REPO / "src") != self.source["src_digest_start"]
            )
        self.meta.update(
            measured=self.source,
            profiled=bool(self.args.profile),
            runs=self.runs,
            seconds=round(time.monotonic() - started, 1),
            loadavg_before=load_before,
            loadavg_after=os.getloadavg(),
            archives=[
                {"file": a.file_name, "bytes": a.size, "sha256": a.sha256, "prefix": a.prefix}
                for a in self.archives
            ],
        )

    def cleanup(self) -> None:
        big = getattr(self, "large_bundle", None)
        if big is not None:
            big.unlink(missing_ok=True)  # 1 GB+ on tmpfs: never keep it
        if not self.args.keep:
            shutil.rmtree(self.disk, ignore_errors=True)
            if self.args.work is None:
                shutil.rmtree(self.work, ignore_errors=True)


def default_work_dir() -> Path:
    """A new directory on tmpfs (/dev/shm) when it has room, else in the default temp dir.

    Extracted trees go there: on this VM's ext4 root file system every file creation costs
    ~0.5 ms of kernel time (ext4_create -> recently_deleted scanning the inode table), which
    makes `tar -xzf` of a 9,000-file archive take 5-10 s, noisy, for every tool alike.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 8e9:
        return Path(tempfile.mkdtemp(prefix="pybundle-bench-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="pybundle-bench-"))


# ---- environment description and output


def _cmd_out(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return ""


def _git(*args: str) -> str:
    return _cmd_out(["git", "-C", str(REPO), *args])


def src_digest(root: Path) -> str:
    """sha256 over the names and bytes of every file under ``root`` (no bytecode)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def describe_source(src: dict[str, Any]) -> str:
    if src["what"] != "working tree":
        return str(src["what"])
    text = f"working tree at {src['commit']}"
    if src["uncommitted"]:
        text += " with uncommitted changes under src/"
    if src.get("changed_during_run"):
        text += " (**src/ changed during the run**)"
    return text


def machine_info(uv: Path) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pybundle": PYBUNDLE_VERSION,
        "tar": _cmd_out(["tar", "--version"]).splitlines()[0:1],
        "uv": _cmd_out([str(uv), "--version"]),
    }


def markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    lines = [
        "# pybundle benchmarks",
        "",
        f"{meta['date']} · {meta['cpu']} · {meta['cores']} cores · Linux {meta['kernel']} · "
        f"Python {meta['python']} · pybundle {meta['pybundle']} "
        f"({describe_source(meta['measured'])}) · {' '.join(meta['tar'])} · {meta['uv']}",
        "",
        f"Medians of {meta['runs']} alternated runs (warm page cache); every ratio is measured "
        f"in the same run. Load average before/after: "
        f"{meta['loadavg_before'][0]:.2f} / {meta['loadavg_after'][0]:.2f}. "
        f"Suite run time {meta['seconds']:.0f} s.",
        "",
        "| id | benchmark | pybundle | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.id} | {r.what} | {r.pybundle} | {r.baseline} | {r.ratio_text} | {r.target} "
            f"| {r.result} |"
        )
    cpu = [r for r in rows if "cpu_seconds" in r.details]
    if cpu:
        lines += ["", "CPU seconds (user + system, medians) beside the wall times above:", ""]
        for r in cpu:
            if r.id.endswith("-uv") or r.id == "startup-help":
                continue
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in r.details["cpu_seconds"].items())
            lines.append(f"- {r.id}: {parts}")
    if meta.get("profiled"):
        lines += ["", "Profiles of the rows that MISS: [profiles/](profiles/) (cProfile, py-spy)."]
    lines += ["", "Input archives (packed from pyenv builds, PBS install_only layout):", ""]
    for a in meta["archives"]:
        lines.append(f"- `{a['file']}` {fmt_mb(a['bytes'])} from `{a['prefix']}`")
    lines.append("")
    return "\n".join(lines)


def write_results(suite: Suite, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": suite.meta,
        "rows": [
            {
                "id": r.id,
                "what": r.what,
                "pybundle": r.pybundle,
                "baseline": r.baseline,
                "ratio": None if r.ratio is None else round(r.ratio, 4),
                "target": r.target,
                "result": r.result,
                "details": r.details,
            }
            for r in suite.rows
        ],
        "series": suite.series,
    }
    js = out_dir / "latest.json"
    js.write_text(json.dumps(doc, indent=1) + "\n")
    md = out_dir / "latest.md"
    md.write_text(markdown(suite.rows, suite.meta))
    return md, js


# ---- profiles of the rows that missed


def profile_misses(suite: Suite, out_dir: Path, top: int) -> list[Path]:
    """Profile each MISS row that has a pybundle command (rows profiled during the run, such
    as bundle-cold, which needs its server, are skipped here)."""
    done: set[str] = {p.name.split(".")[0] for p in suite.profiles}
    written = list(suite.profiles)
    for row in suite.rows:
        if row.ok is not False or row.profile_argv is None or row.id in done:
            continue
        key = " ".join(row.profile_argv)
        if key in done:
            continue
        done.update((key, row.id))

        def prepare() -> None:
            for d in (suite.work / "inst", suite.disk / "out"):
                clear_dir(d)

        written += profile_command(suite, row.id, row.profile_argv[1:], out_dir, top, prepare)
    return written


def profile_command(
    suite: Suite,
    row_id: str,
    cli_args: Sequence[str],
    out_dir: Path,
    top: int,
    prepare: Callable[[], None],
) -> list[Path]:
    """One cProfile run (imports included) and, when py-spy is next to uv, one py-spy run
    (sampling, native frames) of ``pybundle CLI_ARGS``; text summaries in ``out_dir``.
    ``prepare`` runs before each (e.g. empties the install dir)."""
    import pstats

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    shown = " ".join(_redact(cli_args, suite))
    pstats_file = suite.work / f"{row_id}.pstats"
    suite.log(f"profiling {row_id}: cProfile")
    prepare()
    suite.child([str(suite.python), "-c", PROFILE_SCRIPT, str(pstats_file), *cli_args])
    text = out_dir / f"{row_id}.cprofile.txt"
    buf = io.StringIO()
    stats = pstats.Stats(str(pstats_file), stream=buf)
    buf.write("## pybundle's own functions by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(r"/pybundle/(?!cli/)", top)
    buf.write("## all functions by own time\n")
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    body = buf.getvalue().replace(str(REPO / "src") + "/", "")
    if "PYTHONPATH" in suite.env:
        body = body.replace(suite.env["PYTHONPATH"] + "/", "")
    text.write_text(f"# cProfile of: pybundle {shown}\n\n" + _redact([body], suite)[0])
    written.append(text)
    py_spy = suite.uv.parent / "py-spy"
    if py_spy.exists():
        suite.log(f"profiling {row_id}: py-spy")
        prepare()
        raw = suite.work / f"{row_id}.pyspy.txt"
        try:
            suite.child(
                [str(py_spy), "record", "--native", "--rate", "250", "--format", "raw",
                 "--output", str(raw), "--", str(suite.pybundle), *cli_args]
            )  # fmt: skip
        except CommandFailed as exc:
            suite.log(f"py-spy failed: {str(exc).splitlines()[0]}")
            return written
        summary = out_dir / f"{row_id}.pyspy.txt"
        summary.write_text(
            f"# py-spy (--native, 250 Hz, all threads) of: pybundle {shown}\n\n"
            + summarize_collapsed(raw, top)
        )
        written.append(summary)
    prepare()
    return written


def _redact(texts: Sequence[str], suite: Suite) -> list[str]:
    return [t.replace(str(suite.work), "$WORK").replace(str(suite.disk), "$DISK") for t in texts]


def summarize_collapsed(path: Path, top: int) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short_frame(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + count
        for frame in {_short_frame(f) for f in stack.split(";") if _is_ours(f)}:
            ours[frame] = ours.get(frame, 0) + count
    out = [f"{total} samples", "", "self %  function (file:line)"]
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * n / total:6.1f}  {name}")
    out += ["", "incl %  pybundle's own functions"]
    for name, n in sorted(ours.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * n / total:6.1f}  {name}")
    out += ["", "incl %  function (file:line)"]
    for name, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * n / total:6.1f}  {name}")
    return "\n".join(out) + "\n"


def _is_ours(frame: str) -> bool:
    """A frame of pybundle's own code (py-spy names files relative to sys.path entries)."""
    where = frame.partition(" (")[2]
    return where.startswith("pybundle/") or "/pybundle/" in where


def _short_frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)`` (lines merged per function)."""
    name, _, where = frame.partition(" (")
    file = os.path.basename(where.rstrip(")").rsplit(":", 1)[0])
    if name.startswith("0x"):  # an unsymbolised native frame: name its library only
        return f"[{file or 'native'}]"
    return f"{name} ({file})" if file else name


# ---- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="alternated runs per comparison")
    parser.add_argument("--cold-runs", type=int, default=3, help="runs of the throttled bundle")
    parser.add_argument("--rate-mib", type=float, default=10.0, help="throttle, MiB/s per conn.")
    parser.add_argument("--large-bytes", type=float, default=1.05e9, help="size of the RSS bundle")
    parser.add_argument("--quick", action="store_true", help="3 runs, 2 cold runs (a smoke run)")
    parser.add_argument("--profile", action="store_true", help="profile the commands that MISS")
    parser.add_argument("--top", type=int, default=35, help="functions listed per profile")
    parser.add_argument("--uv", default=str(Path(sys.executable).parent / "uv"), help="uv binary")
    parser.add_argument("--work", help="work directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument("--rev", help="measure a clean snapshot of src/ at this git revision")
    parser.add_argument("--out", default=str(RESULTS), help="where latest.md/latest.json go")
    parser.add_argument(
        "--only",
        help="run only these groups (comma list): compact, volumes, rss (checks a row runs)",
    )
    args = parser.parse_args(argv)
    if args.only and args.out == str(RESULTS):  # a partial run never replaces the results
        args.out = tempfile.mkdtemp(prefix="pybundle-bench-only-")
    if args.quick:
        args.runs, args.cold_runs = 3, 2
    if shutil.which("tar") is None or not Path(args.uv).exists():
        parser.error(f"needs GNU tar and uv (looked for {args.uv}); run `make bench`")
    suite = Suite(args)
    if args.profile and suite.profile_dir.is_dir():
        for old in suite.profile_dir.glob("*.txt"):
            old.unlink()  # the profiles committed beside latest.md belong to its run
    try:
        suite.run()
        md, js = write_results(suite, Path(args.out))
        print(md.read_text())
        print(f"results: {md} and {js}")
        if args.profile:
            for path in profile_misses(suite, suite.profile_dir, args.top):
                print(f"profile: {path}")
    finally:
        suite.cleanup()
    misses = [r.id for r in suite.rows if r.ok is False]
    print(f"{len(suite.rows) - len(misses)} rows PASS or info, {len(misses)} MISS", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
