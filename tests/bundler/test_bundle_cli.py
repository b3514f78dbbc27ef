"""``pybundle bundle`` and ``pybundle cache`` through the real CLI, in subprocesses."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from conftest import Mirror, run_cli, uv_catalog

CATALOG = uv_catalog()


def test_dry_run_prints_the_plan_and_downloads_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["bundle", "--catalog", str(CATALOG), "--cache-dir", str(cache)]
    args += ["--versions", ">=3.11,<3.13", "--versions", "pypy-3.10"]
    args += ["--platform", "linux-x86_64,macos-aarch64"]
    text = run_cli(*args, "--dry-run", check=True).stdout
    assert text.startswith("plan: 6 archives, 0 already cached")
    assert "cpython-3.12.14-darwin-aarch64-none" in text and "[pypy-3.10 on macos-aarch64]" in text
    doc = json.loads(run_cli(*args, "--json", check=True).stdout)
    got = [(a["key"], a["request"], a["platform"], a["cached"]) for a in doc["artifacts"]]
    assert got == [
        ("cpython-3.11.16-linux-x86_64-gnu", ">=3.11,<3.13", "linux-x86_64", False),
        ("cpython-3.12.14-linux-x86_64-gnu", ">=3.11,<3.13", "linux-x86_64", False),
        ("cpython-3.11.16-darwin-aarch64-none", ">=3.11,<3.13", "macos-aarch64", False),
        ("cpython-3.12.14-darwin-aarch64-none", ">=3.11,<3.13", "macos-aarch64", False),
        ("pypy-3.10.16-linux-x86_64-gnu", "pypy-3.10", "linux-x86_64", False),
        ("pypy-3.10.16-darwin-aarch64-none", "pypy-3.10", "macos-aarch64", False),
    ]
    first = doc["artifacts"][0]
    assert first["url"] == first["source_url"] and first["size"] is None and first["sha256"]
    assert doc["total"] == {"artifacts": 6, "cached": 0, "known_bytes": 0, "unknown_sizes": 6}
    assert not cache.exists()  # nothing written, nothing fetched


def test_usage_and_resolution_errors_are_one_line(tmp_path: Path) -> None:
    base = ["bundle", "--catalog", str(CATALOG), "--dry-run"]
    cases = [
        (["--versions", "3.15"], 3, "--prerelease allow"),
        (["--versions", "3.12", "--prerelease", "sometimes"], 2, "unknown prerelease policy"),
        (["--versions", "3.12", "--variant", "jit"], 2, "unknown build variant"),
        (["--versions", "3.12", "--pbs-release", "20260814"], 2, "not both"),
        (["--versions", "3.x"], 2, "invalid Python version request '3.x'"),
        (["--versions", "3.12", "--platform", "all-bsd"], 3, "unknown platform 'all-bsd'"),
        (["--versions", "3.12", "--flavour", "full"], 3, "--pbs-release 20260814"),
    ]
    for extra, code, words in cases:
        proc = run_cli(*base, *extra)
        assert proc.returncode == code, (extra, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pybundle: error: "), proc.stderr
        assert words in lines[0], (extra, lines[0])
    proc = run_cli("bundle", "--versions", "3.12", "--catalog", str(CATALOG))
    assert proc.returncode == 2 and "--output" in proc.stderr


def _run_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, what it drew)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pybundle", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=os.environ.copy(),
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    code = proc.wait(timeout=600)
    reader.join(10)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_bundle_from_the_mirror_summary_cache_hits_and_cache_commands(
    mirror: Mirror, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    minors = ",".join(f"{a.info.version.major}.{a.info.version.minor}" for a in mirror.archives)
    args = ["bundle", "--versions", minors, "--platform", "linux-x86_64", "--catalog"]
    args += [mirror.catalog_url, "--mirror", mirror.mirror_url, "--cache-dir", str(cache)]
    n = len(mirror.archives)

    # on a terminal: bars on stderr; with -q: none
    code, drawn = _run_on_a_terminal([*args, "-o", str(tmp_path / "a.pybundle")])
    assert code == 0, drawn
    assert f"{n}/{n} files" in drawn and "B/s" in drawn
    code, drawn = _run_on_a_terminal([*args, "-q", "-o", str(tmp_path / "b.pybundle")])
    assert code == 0 and "B/s" not in drawn and "files" not in drawn

    # not a terminal: no bars; the summary says everything came from the cache
    proc = run_cli(*args, "-o", str(tmp_path / "c.pybundle"), check=True)
    assert "%|" not in proc.stderr and "B/s" not in proc.stderr
    assert f"downloads: {n} files, {n} cache hits, 0.0 MB in " in proc.stdout
    assert f"{n} downloads, {n} from cache" in proc.stdout

    assert run_cli("cache", "dir", "--cache-dir", str(cache), check=True).stdout.strip() == str(
        cache
    )
    listed = json.loads(run_cli("cache", "list", "--json", "--cache-dir", str(cache)).stdout)
    assert sorted(e["sha256"] for e in listed) == sorted(a.artifact.sha256 for a in mirror.archives)
    assert all(e["size"] > 0 and e["last_used"].endswith("Z") for e in listed)
    text = run_cli("cache", "list", "--cache-dir", str(cache), check=True).stdout
    assert text.splitlines()[-1].startswith(f"{n} archives, ")

    plan = json.loads(run_cli(*args, "--json", check=True).stdout)
    assert plan["total"]["cached"] == n
    assert all(a["size"] and a["url"].startswith(mirror.mirror_url) for a in plan["artifacts"])

    exported = run_cli("cache", "export-uv", str(tmp_path / "uv"), "--cache-dir", str(cache))
    assert exported.returncode == 0 and f"exported {n} archives" in exported.stdout
    names = sorted(p.name for p in (tmp_path / "uv").iterdir())
    assert names == sorted(
        f"{a.artifact.sha256[:9]}-{a.artifact.file_name.replace('+', '-')}" for a in mirror.archives
    )
    cleaned = run_cli("cache", "clean", "--older-than", "30d", "--cache-dir", str(cache))
    assert cleaned.stdout.strip() == "removed 0 files, 0.0 MB"
    assert (
        run_cli("cache", "clean", "--older-than", "soon", "--cache-dir", str(cache)).returncode == 2
    )
    cleaned = run_cli("cache", "clean", "--cache-dir", str(cache), check=True)
    assert cleaned.stdout.startswith(f"removed {n} files, ")
    assert (cache / "CACHEDIR.TAG").exists() and not list((cache / "archives").iterdir())


def test_download_bars_count_files_and_bytes_like_the_summary(
    mirror: Mirror, tmp_path: Path
) -> None:
    """With --jobs 1 the archives start one after another: the label still counts against the
    run's file total from the start, and the bytes are decimal units, as the summary prints."""
    from tqdm import tqdm

    minors = ",".join(f"{a.info.version.major}.{a.info.version.minor}" for a in mirror.archives)
    n = len(mirror.archives)
    args = ["bundle", "--versions", minors, "--platform", "linux-x86_64", "--jobs", "1"]
    args += ["--catalog", mirror.catalog_url, "--mirror", mirror.mirror_url]
    args += ["--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "a.pybundle")]
    code, drawn = _run_on_a_terminal(args)
    assert code == 0, drawn
    labels = set(re.findall(r"(\d+)/(\d+) files", drawn))
    assert labels and {total for _done, total in labels} == {str(n)}, labels
    assert (str(n), str(n)) in labels
    total = sum(a.artifact.size for a in mirror.archives)
    decimal = tqdm.format_sizeof(total, divisor=1000)
    assert f"{decimal}/{decimal}" in drawn or f"{decimal}B/{decimal}B" in drawn, drawn[-2000:]
