"""The shared cache: layout, verify-on-hit, cleaning by age, locks, and uv reading it offline."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import RealArchive, catalog_entry
from pybundle.bundler.cache import Cache
from pybundle.bundler.download import DownloadItem, fetch
from pybundle.errors import StorageError

UV = Path(sys.executable).parent / "uv"


def put(cache: Cache, tmp_path: Path, data: bytes, name: str) -> str:
    """Store ``data`` through the real download path (a file:// URL); returns its sha256."""
    src = tmp_path / "src" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    fetch(DownloadItem(src.as_uri(), sha, name, len(data)), cache)
    return sha


def test_layout_list_and_tag(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    a = put(cache, tmp_path, b"a" * 10, "cpython-3.12.1+20240107-x.tar.gz")
    b = put(cache, tmp_path, b"b" * 20, "cpython-3.11.1+20240107-x.tar.gz")
    tag = (tmp_path / "c" / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55\n")
    assert sorted(p.name for p in (tmp_path / "c" / "archives").iterdir()) == sorted(
        [f"{a}-cpython-3.12.1+20240107-x.tar.gz", f"{b}-cpython-3.11.1+20240107-x.tar.gz"]
    )
    listed = [(e.sha256, e.file_name, e.size) for e in cache.entries()]
    assert listed == [
        (b, "cpython-3.11.1+20240107-x.tar.gz", 20),
        (a, "cpython-3.12.1+20240107-x.tar.gz", 10),
    ]
    assert cache.partial_files() == []


def test_clean_by_age_keeps_recent_and_locked_entries(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    old = put(cache, tmp_path, b"old" * 100, "old.tar.gz")
    busy = put(cache, tmp_path, b"busy" * 100, "busy.tar.gz")
    put(cache, tmp_path, b"new" * 100, "new.tar.gz")
    month_ago = time.time() - 31 * 86400
    for sha, name in ((old, "old.tar.gz"), (busy, "busy.tar.gz")):
        os.utime(cache.path_for(sha, name), (month_ago, month_ago))
    stale = cache.partial_for("f" * 64, "gone.tar.gz")
    stale.write_bytes(b"x" * 7)
    os.utime(stale, (month_ago, month_ago))
    with cache.locked(busy):  # a bundle is using it
        report = subprocess_clean(cache, "30d")
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == "removed 2 files, 0.0 MB; 1 in use, kept"
    assert sorted(e.file_name for e in cache.entries()) == ["busy.tar.gz", "new.tar.gz"]
    assert cache.partial_files() == []
    # a hit refreshes the last use: a cleaned-by-age cache keeps what bundles still use
    fetch(DownloadItem("file:///nonexistent", busy, "busy.tar.gz"), cache)
    assert subprocess_clean(cache, "30d").stdout.strip() == "removed 0 files, 0.0 MB"
    assert subprocess_clean(cache, None).stdout.strip() == "removed 2 files, 0.0 MB"
    assert cache.entries() == []


def subprocess_clean(cache: Cache, older_than: str | None) -> subprocess.CompletedProcess[str]:
    """``pybundle cache clean`` in another process (so the file lock is really contended)."""
    args = [sys.executable, "-m", "pybundle", "cache", "clean", "--cache-dir", str(cache.root)]
    if older_than:
        args += ["--older-than", older_than]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_corrupt_entry_is_evicted_on_hit_never_served(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    sha = put(cache, tmp_path, b"payload" * 1000, "a.tar.gz")
    path = cache.path_for(sha, "a.tar.gz")
    path.write_bytes(b"rotten")
    assert cache.lookup(sha, "a.tar.gz") is None
    assert not path.exists()
    assert cache.export_uv(tmp_path / "uv") == []


def test_export_uv_names(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    name = "cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    sha = put(cache, tmp_path, b"z" * 100, name)
    (exported,) = cache.export_uv(tmp_path / "uv")
    assert (
        exported.name
        == f"{sha[:9]}-cpython-3.12.1-20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    )
    assert exported.read_bytes() == b"z" * 100
    assert os.path.samefile(exported, cache.path_for(sha, name))  # a hard link, no copy


@pytest.mark.slow
def test_uv_installs_offline_from_the_exported_cache(
    tmp_path: Path, real_archives: list[RealArchive]
) -> None:
    if not UV.exists():
        pytest.fail(f"{UV} is missing: `pip install uv==0.13.8` (the dev extra installs it)")
    archive = real_archives[0]
    assert archive.artifact.archive_format == "tar.gz"
    cache = Cache(tmp_path / "c")
    a = archive.artifact
    fetch(DownloadItem(archive.path.as_uri(), a.sha256, a.file_name, a.size), cache)
    uv_cache = tmp_path / "uv-python-cache"
    run = subprocess.run(
        [sys.executable, "-m", "pybundle", "cache", "export-uv", str(uv_cache), "--cache-dir",
         str(cache.root)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    key, entry = catalog_entry(archive)  # upstream URL, %2B in the name, the real sha256
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({key: entry}))
    v = archive.info.version

    def uv_install(where: Path) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "UV_PYTHON_DOWNLOADS_JSON_URL": str(catalog),
            "UV_PYTHON_CACHE_DIR": str(uv_cache),
            "UV_PYTHON_INSTALL_DIR": str(where),
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "UV_NO_CONFIG": "1",
        }
        return subprocess.run(
            [str(UV), "python", "install", f"{v.major}.{v.minor}", "--offline", "--no-progress"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    done = uv_install(tmp_path / "installs")
    assert done.returncode == 0, done.stderr
    exe = (
        tmp_path
        / "installs"
        / f"cpython-{v}-linux-x86_64-gnu"
        / "bin"
        / f"python{v.major}.{v.minor}"
    )
    out = subprocess.run([str(exe), "-c", "import sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == str(v)

    # uv checks the bytes too: other bytes under the same name are refused by their hash. The
    # impostor is the same tar recompressed at another level: a valid gzip stream of a valid tar
    # that unpacks fine, so only the hash check can catch it (a flipped byte would fail in the
    # gzip or tar reader first, at a place that depends on member order).
    (exported,) = uv_cache.iterdir()
    original = exported.read_bytes()
    impostor = gzip.compress(gzip.decompress(original), compresslevel=9, mtime=0)
    assert impostor != original
    exported.unlink()  # a hard link into our cache: do not damage the original
    exported.write_bytes(impostor)
    refused = uv_install(tmp_path / "installs-2")
    assert refused.returncode != 0
    assert "hash mismatch" in refused.stderr.lower(), refused.stderr
    assert a.sha256 in refused.stderr and hashlib.sha256(impostor).hexdigest() in refused.stderr
    assert not (tmp_path / "installs-2" / f"cpython-{v}-linux-x86_64-gnu").exists()


def test_a_cached_archive_that_cannot_be_read_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    """As for wheels: a read that fails with EIO (a link to /proc/self/mem) is a storage error."""
    cache = Cache(tmp_path / "cache")
    digest = "cd" * 32
    entry = cache.path_for(digest, "cpython-3.12.1-install_only.tar.gz")
    entry.symlink_to("/proc/self/mem")
    with pytest.raises(StorageError) as caught:
        cache.lookup(digest, "cpython-3.12.1-install_only.tar.gz")
    assert str(caught.value).startswith(f"{entry}: cannot read: ")
