"""A warm-cache bundle reads each cached archive once: the bundle writer's hash is its check
(no re-hash up front). A cache entry damaged after it was cached (same size, one byte flipped)
is caught while the bundle is written: the zip is dropped, the entry evicted and fetched again,
and the bundle written from the good bytes; when the fresh copy is bad too, nothing is left:
no output, no temporary file, nothing unverified under a final cache name."""

from __future__ import annotations

import _thread
import hashlib
import os
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest

from compactlib import VERSIONS, archive_name, build, bundle_args, make_catalog, sha256
from conftest import run_cli, tiny_artifact
from pybundle.bundler.build import _download_all, make_plan
from pybundle.bundler.cache import Cache
from pybundle.bundler.catalog import load_catalog
from pybundle.bundler.download import Downloader, DownloadItem
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.selection import Selection
from pybundle.errors import HashMismatchError

EPOCH = {"SOURCE_DATE_EPOCH": "1790000000"}


def flip_middle_byte(path: Path) -> None:
    """XOR one byte in the middle of ``path``: same size, other bytes."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def cached(cache: Path, version: str) -> Path:
    (path,) = (cache / "archives").glob(f"*-{archive_name(version)}")
    return path


def assert_only_verified(cache: Path) -> None:
    for path in (cache / "archives").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name.split("-", 1)[0], path


def assert_zip_sound(bundle: Path) -> None:
    with zipfile.ZipFile(bundle) as zf:
        assert zf.testzip() is None
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-tq", str(bundle)], check=True, capture_output=True)


@pytest.mark.parametrize("extra", [(), ("--compact",)], ids=["plain", "compact"])
def test_a_warm_bundle_is_byte_identical_to_a_cold_one(
    tmp_path: Path, key_files: tuple[Path, Path], extra: tuple[str, ...]
) -> None:
    secret, _ = key_files
    catalog = make_catalog(tmp_path / "catalog")
    cache = tmp_path / "cache"
    cold = build(catalog, cache, secret, tmp_path / "cold" / "py.pybundle", *extra, env=EPOCH)
    warm = build(catalog, cache, secret, tmp_path / "warm" / "py.pybundle", *extra, env=EPOCH)
    assert sha256(cold) == sha256(warm)
    assert_zip_sound(warm)
    assert sorted(p.name for p in warm.parent.iterdir()) == ["py.pybundle"]


@pytest.mark.parametrize("extra", [(), ("--compact",)], ids=["plain", "compact"])
def test_an_entry_damaged_in_the_cache_is_fetched_again_and_the_bundle_is_the_good_one(
    tmp_path: Path, key_files: tuple[Path, Path], extra: tuple[str, ...]
) -> None:
    secret, public = key_files
    catalog = make_catalog(tmp_path / "catalog")
    cache = tmp_path / "cache"
    cold = build(catalog, cache, secret, tmp_path / "cold" / "py.pybundle", *extra, env=EPOCH)
    damaged = cached(cache, VERSIONS[1])
    size = damaged.stat().st_size
    flip_middle_byte(damaged)
    assert damaged.stat().st_size == size
    warm = build(catalog, cache, secret, tmp_path / "warm" / "py.pybundle", *extra, env=EPOCH)
    assert sha256(warm) == sha256(cold)
    assert_zip_sound(warm)
    assert sorted(p.name for p in warm.parent.iterdir()) == ["py.pybundle"]
    assert_only_verified(cache)  # the entry is whole again, under the same name
    assert cached(cache, VERSIONS[1]) == damaged
    run_cli("verify", str(warm), "--trusted-key", str(public), check=True)


def test_a_hit_whose_file_index_is_not_remembered_is_verified_before_it_is_indexed(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    """A cache from before file indexes (shape record, no index): the hit is not trusted, so a
    damaged entry is fetched again before its index is measured, and the index remembered
    and carried is the good archive's."""
    secret, public = key_files
    catalog = make_catalog(tmp_path / "catalog")
    cache = tmp_path / "cache"
    cold = build(catalog, cache, secret, tmp_path / "cold" / "py.pybundle", env=EPOCH)
    damaged = cached(cache, VERSIONS[1])
    key = damaged.name.split("-", 1)[0]
    good_index = (cache / "shapes" / f"{key}.files").read_bytes()
    (cache / "shapes" / f"{key}.files").unlink()
    flip_middle_byte(damaged)
    assert not Cache(cache).has_shape(key)
    warm = build(catalog, cache, secret, tmp_path / "warm" / "py.pybundle", env=EPOCH)
    assert sha256(warm) == sha256(cold)
    assert (cache / "shapes" / f"{key}.files").read_bytes() == good_index
    assert_only_verified(cache)
    run_cli("verify", str(warm), "--trusted-key", str(public), check=True)


def test_a_damaged_entry_whose_fresh_copy_is_bad_too_leaves_nothing(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    secret, _ = key_files
    catalog = make_catalog(tmp_path / "catalog")
    cache = tmp_path / "cache"
    build(catalog, cache, secret, tmp_path / "cold" / "py.pybundle")
    damaged = cached(cache, VERSIONS[0])
    flip_middle_byte(damaged)
    flip_middle_byte(catalog / archive_name(VERSIONS[0]))  # the source went bad as well
    out = tmp_path / "warm" / "py.pybundle"
    proc = run_cli(*bundle_args(catalog, cache, secret, out))
    assert proc.returncode != 0 and proc.returncode != 1, proc.stderr
    assert f"cpython-{VERSIONS[0]}%2B" in proc.stderr and "sha256" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary bundle, no work dir, no lock
    assert not damaged.exists()  # evicted, not replaced by the bad fresh copy
    assert_only_verified(cache)
    assert list((cache / "partial").iterdir()) == []


def test_a_trusted_hit_is_not_read_up_front_and_an_untrusted_one_is(tmp_path: Path) -> None:
    """The warm path takes a hit whose shape is remembered after a size check only (the
    damage goes unseen here: the writer sees it); without trust the hit is re-hashed, evicted
    and fetched again."""
    catalog_dir = make_catalog(tmp_path / "catalog")
    entries = load_catalog(str(catalog_dir))
    plan = make_plan(entries, Selection.parse([",".join(VERSIONS)], ["linux-x86_64"]))
    cache = Cache(tmp_path / "cache")
    _download_all(plan, cache, 2, None)
    damaged = cached(cache.root, VERSIONS[1])
    flip_middle_byte(damaged)
    results, _ = _download_all(plan, cache, 2, None, trust_hits=True)
    assert [r.verified for r in results] == [False, False] and all(r.cached for r in results)
    assert damaged.exists()
    results, _ = _download_all(plan, cache, 2, None)
    assert [r.verified for r in results] == [True, True]
    assert [r.cached for r in results] == [True, False]  # evicted and copied again
    assert_only_verified(cache.root)


def test_lookup_unverified_checks_the_size_and_the_file_type_only(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    sha = "ab" * 32
    path = cache.path_for(sha, "a.tar.gz")
    assert cache.lookup_unverified(sha, "a.tar.gz", 3) is None  # absent
    path.mkdir()
    assert cache.lookup_unverified(sha, "a.tar.gz") is None  # not a regular file
    path.rmdir()
    path.write_bytes(b"abc")
    assert cache.lookup_unverified(sha, "a.tar.gz", 4) is None  # wrong size: not served
    assert path.exists()  # ... and not evicted: lookup() decides that
    assert cache.lookup_unverified(sha, "a.tar.gz", 3) == path
    assert cache.lookup_unverified(sha, "a.tar.gz") == path
    assert cache.lookup(sha, "a.tar.gz", 3) is None and not path.exists()


def test_a_downloader_without_trust_hit_verifies_every_hit(tmp_path: Path) -> None:
    source = tmp_path / "a.tar.gz"
    source.write_bytes(os.urandom(10_000))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    cache = Cache(tmp_path / "c")
    item = DownloadItem(source.as_uri(), sha, "a.tar.gz", 10_000)
    Downloader(cache).fetch(item)
    flip_middle_byte(cache.path_for(sha, "a.tar.gz"))
    trusting = Downloader(cache, trust_hit=lambda i: True)
    assert trusting.fetch(item).verified is False
    fresh = trusting.fetch(item, trust=False)
    assert fresh.verified and not fresh.cached
    assert fresh.path.read_bytes() == source.read_bytes()


def big_archive(directory: Path, mib: int) -> Path:
    """``mib`` MiB of random bytes under a PBS archive name (the writer does not unpack it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / archive_name("3.12.1")
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    return path


def hashing_threads() -> list[threading.Thread]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [t for t in threading.enumerate() if t.name == "pybundle-sha256"]
        if not alive:
            return []
        time.sleep(0.01)
    return alive


def test_damage_in_a_large_archive_is_caught_while_packing_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """The sha256 runs on its own thread beside the copy: a byte flipped mid-file (tens of
    chunks in) still fails the member, and the zip is dropped."""
    source = big_archive(tmp_path / "src", 24)
    artifact = tiny_artifact(source)
    flip_middle_byte(source)
    out = tmp_path / "out" / "b.pybundle"
    with pytest.raises(HashMismatchError, match="sha256"):
        write_bundle(out, [(artifact, source)], secret_key=None)
    assert list(out.parent.iterdir()) == []
    assert hashing_threads() == []


def test_an_interrupted_pack_leaves_no_file_and_no_thread(tmp_path: Path) -> None:
    source = big_archive(tmp_path / "src", 96)
    artifact = tiny_artifact(source)
    out = tmp_path / "out" / "b.pybundle"
    out.parent.mkdir()
    fired = threading.Event()

    def interrupt_once_packing() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tmps = list(out.parent.glob(".b.pybundle.*.tmp"))
            try:
                if tmps and tmps[0].stat().st_size > 8 << 20:
                    fired.set()
                    _thread.interrupt_main()
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.001)

    watcher = threading.Thread(target=interrupt_once_packing, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        write_bundle(out, [(artifact, source)], secret_key=None)
    watcher.join()
    assert fired.is_set()
    assert list(out.parent.iterdir()) == []  # no bundle, no temporary file
    assert hashing_threads() == []


def test_no_more_archives_are_measured_at_once_than_there_are_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measuring (inflating) an archive is CPU-bound: with --jobs 4 on one CPU the downloads
    run together but the measurements one at a time, and every archive is still measured."""
    catalog_dir = make_catalog(tmp_path / "catalog")
    entries = load_catalog(str(catalog_dir))
    plan = make_plan(entries, Selection.parse([",".join(VERSIONS)], ["linux-x86_64"]))
    cache = Cache(tmp_path / "cache")
    running: list[int] = [0]
    most: list[int] = [0]
    lock = threading.Lock()
    measure = Cache.shape

    def slow_shape(self: Cache, *args: object, **kwargs: object) -> object:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.3)  # long enough for the other download to arrive meanwhile
            return measure(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(Cache, "shape", slow_shape)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    results, _ = _download_all(plan, cache, 4, None)
    assert len(results) == len(VERSIONS) and most[0] == 1
    assert all(cache.has_shape(r.sha256) for r in results)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    most[0] = 0
    cache2 = Cache(tmp_path / "cache2")
    _download_all(plan, cache2, 4, None)
    assert most[0] == len(VERSIONS)  # with CPUs to spare they do run together
