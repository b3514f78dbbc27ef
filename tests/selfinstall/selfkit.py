"""Shared pieces of the self-installing tests: a real self-installing bundle built once per
session, and how to run its stub the way a user on a bare host would.

The bundle's interpreter is the machine's real pyenv CPython 3.12 (read only), copied without
what an install never needs to be fast to unpack (the test suite, the static library, IDLE,
tkinter) and packed with pybundle's own packer as a ``tar.gz``; the installer's wheels come from
the package index through pip (:mod:`pybundle.bundler.wheels`), like a user's bundle run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import discover_prefix
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.prefix import pack_prefix, probe_prefix
from pybundle.bundler.selfinstall import SelfInstallParts, prepare_self_install, sign_whole_file
from pybundle.manifest import Artifact, Manifest
from pybundle.signing import SecretKey, generate_secret_key

SKIPPED_DIRS = {"test", "idlelib", "tkinter", "turtledemo"}
BASE_PATH = "/usr/bin:/bin"


def trimmed_copy(prefix: Path, dest: Path) -> Path:
    """A copy of the interpreter under ``prefix`` without the test suite, the static library
    (``config-3.X-*``), IDLE and tkinter; the original is only read."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skipped = set()
        for name in names:
            if here.name.startswith("python3.") and (
                name in SKIPPED_DIRS or name.startswith("config-3.")
            ):
                skipped.add(name)
        return skipped

    shutil.copytree(prefix, dest, symlinks=True, ignore=ignore)
    return dest


@dataclass(frozen=True)
class SelfKit:
    """A signed self-installing bundle and what made it."""

    bundle: Path
    public_key: Path
    secret_key_path: Path
    secret_key: SecretKey
    artifact: Artifact
    archive: Path
    manifest: Manifest
    parts: SelfInstallParts
    prefix: Path
    cache: Path


def build_self_kit(root: Path) -> SelfKit:
    """A self-installing bundle of the trimmed pyenv 3.12 in ``root``, signed, with
    ``.minisig`` (skips without a pyenv 3.12)."""
    prefix = discover_prefix("12")
    if prefix is None:
        pytest.skip("needs a pyenv CPython 3.12 build")
    copy = trimmed_copy(prefix, root / "cpython-3.12")
    info = probe_prefix(copy)
    artifact, archive = pack_prefix(
        info, root, archive_format="tar.gz", site_packages="pip", compresslevel=1
    )
    key = generate_secret_key()
    secret, public = write_keys(root / "keys", key)
    work = root / "work"
    work.mkdir()
    cache = root / "cache"
    parts = prepare_self_install([(artifact, archive)], cache, work)
    bundle = root / "py.pybundle"
    manifest = write_bundle(
        bundle,
        [(artifact, archive)],
        secret_key=key,
        self_install=parts.section,
        carried=parts.files,
        preamble=parts.stub,
    )
    sign_whole_file(bundle, key, manifest)
    return SelfKit(bundle, public, secret, key, artifact, archive, manifest, parts, copy, cache)


def write_keys(directory: Path, key: SecretKey, name: str = "ops") -> tuple[Path, Path]:
    """``(secret, public)`` key files in minisign's formats."""
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    secret.write_text(key.to_file_text())
    os.chmod(secret, 0o600)
    public.write_text(key.public_key.to_file_text())
    return secret, public


@dataclass
class Host:
    """A user's environment on a host: a home, XDG dirs, a bin dir, a private TMPDIR."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def bin(self) -> Path:
        return self.home / ".local" / "bin"

    @property
    def installs(self) -> Path:
        return self.home / ".local" / "share" / "pybundle" / "python"

    def env(self, **extra: str) -> dict[str, str]:
        """A near-empty environment (what ``env -i`` plus a login would give)."""
        for d in (self.home, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        env = {"PATH": BASE_PATH, "HOME": str(self.home), "TMPDIR": str(self.tmp)}
        env.update(extra)
        return env

    def leftovers(self) -> list[str]:
        """What is left in TMPDIR (must be nothing after any run)."""
        return sorted(os.listdir(self.tmp)) if self.tmp.exists() else []


def error_line(stderr: str) -> str:
    """The one ``pybundle: error: ...`` line of ``stderr`` (notes may precede it; no
    traceback)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("pybundle: error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def run_stub(
    bundle: Path,
    *args: str,
    env: dict[str, str],
    shell: str = "dash",
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``<shell> BUNDLE ARGS...`` with exactly ``env``."""
    return subprocess.run(
        [shell, str(bundle), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def python_of(install: Path) -> Path:
    """The interpreter of an install of 3.12."""
    return install / "bin" / "python3.12"


def check_interpreter(install: Path) -> None:
    """The installed interpreter imports ssl, sqlite3, ctypes and says its prefix is
    ``install``."""
    out = subprocess.run(
        [
            str(python_of(install)),
            "-c",
            "import ssl, sqlite3, ctypes, sys; print(sys.prefix)",
        ],
        capture_output=True,
        text=True,
        env={"PATH": BASE_PATH},
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(install)


def flip_byte(path: Path, offset: int) -> None:
    """XOR one byte of ``path`` at ``offset`` with 0x55."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x55]))


def member_offset(bundle: Path, member: str) -> int:
    """Absolute offset of a STORED member's first data byte."""
    from pybundle.bundler.selfinstall import read_layout

    with open(bundle, "rb") as f:
        return read_layout(f).offsets[member]


def pybundle_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The pybundle under test, installed (``python -m pybundle``)."""
    return subprocess.run(
        [sys.executable, "-m", "pybundle", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
        check=False,
    )
