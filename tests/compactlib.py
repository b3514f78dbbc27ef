"""Builders for the transport tests: a directory catalog of small PBS-named archives that
share most of their bytes (as CPython versions do), so that a compact bundle has something to
find, and helpers to build bundles from it through the real CLI."""

from __future__ import annotations

import hashlib
import os
import random
import tarfile
from pathlib import Path

from conftest import TEST_BUILD, make_tar, run_cli, tar_dir, tar_file, tiny_interpreter_members

VERSIONS = ("3.11.7", "3.12.1")
TRIPLE = "x86_64-unknown-linux-gnu"


def shared_blob(size: int = 256 * 1024) -> bytes:
    """Incompressible bytes (seeded: the same in every run) that every version carries."""
    return random.Random(1234).randbytes(size)


def archive_members(version: str, blob: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A tiny interpreter tree of ``version`` with the shared blob and a file of its own."""
    return [
        *tiny_interpreter_members(),
        tar_dir("python/lib/python3.12/shared"),
        tar_file("python/lib/python3.12/shared/blob.bin", blob),
        tar_file("python/lib/python3.12/version.txt", version.encode() * 100),
    ]


def archive_name(version: str, fmt: str = "tar.gz") -> str:
    return f"cpython-{version}+{TEST_BUILD}-{TRIPLE}-install_only.{fmt}"


def make_catalog(directory: Path, versions: tuple[str, ...] = VERSIONS) -> Path:
    """A directory catalog (PBS-named archives plus ``SHA256SUMS``) of ``versions``."""
    directory.mkdir(parents=True, exist_ok=True)
    blob = shared_blob()
    sums = []
    for version in versions:
        path = make_tar(directory / archive_name(version), archive_members(version, blob))
        os.utime(path, (1_700_000_000, 1_700_000_000))
        sums.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    (directory / "SHA256SUMS").write_text("".join(sums))
    return directory


def bundle_args(catalog: Path, cache: Path, key: Path, output: Path, *extra: str) -> list[str]:
    """``pybundle bundle`` arguments for every version of ``catalog``, signed with ``key``."""
    return [
        "bundle", "--catalog", str(catalog), "--cache-dir", str(cache),
        "--versions", ",".join(v.rsplit(".", 1)[0] for v in VERSIONS),
        "--platform", "linux-x86_64", "--sign-key", str(key), "-o", str(output), *extra,
    ]  # fmt: skip


def build(catalog: Path, cache: Path, key: Path, output: Path, *extra: str,
          env: dict[str, str] | None = None) -> Path:  # fmt: skip
    """Run ``pybundle bundle`` (checked) and return ``output``."""
    run_cli(*bundle_args(catalog, cache, key, output, *extra), env=env, check=True)
    return output


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (receipts aside) with its sha256, links with their target."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if "receipt" in name or ".pybundle" in rel:
                continue
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
