"""Stopping ``pybundle bundle``: Ctrl-C and SIGTERM through real processes against a throttled
server on 127.0.0.1, the stop reaching download threads in process (stalled reads, retry
back-offs), and the leftovers of killed runs removed by the next run to the same output, never
those of a run that is still alive."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import filelock
import pytest
from loopback import LoopServer, no_proxy_fixture, server_fixture  # noqa: F401 - fixtures

from conftest import TEST_BUILD, make_tar, real_prefixes, tar_file, tiny_interpreter_members
from pybundle.bundler.cache import Cache
from pybundle.bundler.download import Downloader, DownloadItem, make_session
from pybundle.bundler.stopping import Stopped
from pybundle.bundler.workfiles import claim_output, lock_path
from pybundle.errors import AlreadyExistsError

VERSIONS = ("3.10.1", "3.11.1", "3.12.1")
TRIPLE = "x86_64-unknown-linux-gnu"


def _archive(directory: Path, version: str, pad: int) -> Path:
    """A small PBS-layout tar.gz padded with ``pad`` random (incompressible) bytes."""
    members = tiny_interpreter_members()
    members.append(tar_file("python/share/pad.bin", os.urandom(pad)))
    return make_tar(
        directory / f"cpython-{version}+{TEST_BUILD}-{TRIPLE}-install_only.tar.gz", members
    )


def _publish(
    server: LoopServer, tmp_path: Path, pad: int = 2_000_000, rate: float | None = 250_000.0
) -> tuple[Path, dict[str, bytes]]:
    """Archives of VERSIONS served by ``server`` at ``rate`` bytes/s, and a uv-format catalog
    file naming them; returns (catalog, {path on the server: body})."""
    src = tmp_path / "src"
    src.mkdir()
    catalog: dict[str, object] = {}
    bodies = {}
    for version in VERSIONS:
        path = _archive(src, version, pad)
        body = path.read_bytes()
        route = f"/{TEST_BUILD}/{path.name.replace('+', '%2B')}"
        url = server.add(route, body=body, rate=rate)
        bodies[route] = body
        major, minor, patch = (int(x) for x in version.split("."))
        catalog[f"cpython-{version}-linux-x86_64-gnu"] = {
            "name": "cpython",
            "arch": {"family": "x86_64", "variant": None},
            "os": "linux",
            "libc": "gnu",
            "major": major,
            "minor": minor,
            "patch": patch,
            "prerelease": "",
            "url": url,
            "sha256": hashlib.sha256(body).hexdigest(),
            "variant": None,
            "build": TEST_BUILD,
        }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path, bodies


def _bundle_args(catalog: Path, cache: Path, output: Path, key: Path, *extra: str) -> list[str]:
    return [
        "bundle", "--versions", "3.10,3.11,3.12", "--platform", "linux-x86_64",
        "--catalog", str(catalog), "--cache-dir", str(cache), "-o", str(output),
        "--sign-key", str(key), "-q", *extra,
    ]  # fmt: skip


def _start(args: list[str]) -> subprocess.Popen[str]:
    """``python -m pybundle ARGS`` with Ctrl-C's default action, as on a terminal (a runner
    that ignores SIGINT would otherwise pass that on)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pybundle", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"pybundle exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def _partials(cache: Path) -> list[Path]:
    where = cache / "partial"
    return sorted(where.iterdir()) if where.is_dir() else []


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the live process ``pid`` has used (proc(5): stat fields 14-15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(proc: subprocess.Popen[str], signum: int) -> tuple[float, float, str]:
    """Send ``signum`` once; returns (seconds until the process had exited, CPU seconds it
    used after the signal, its stderr). The CPU figure does not depend on the machine's load:
    a loaded machine's writeback or scheduler can hold a process that stops at once for
    seconds, but one that went on working (packing, compressing) burns CPU."""
    assert proc.stdout is not None and proc.stderr is not None
    texts: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda n=n, f=f: texts.__setitem__(n, f.read()))
        for n, f in (("out", proc.stdout), ("err", proc.stderr))
    ]  # the pipes are drained while it exits, as communicate() would
    for reader in readers:
        reader.start()
    before = _cpu_seconds(proc.pid)
    sent = time.monotonic()
    proc.send_signal(signum)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - sent
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(60)
    return seconds, usage.ru_utime + usage.ru_stime - before, texts.get("err", "")


def _beside(output: Path) -> list[str]:
    """Names in the output's directory other than the output (work files, lock file)."""
    return sorted(p.name for p in output.parent.iterdir() if p.name != output.name)


def test_ctrl_c_stops_at_once_keeps_the_partial_and_the_next_run_resumes_it(
    server: LoopServer, tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    # three 2 MB archives at 250 kB/s, one at a time: about 24 s if nothing stopped them
    catalog, bodies = _publish(server, tmp_path)
    cache, output = tmp_path / "cache", tmp_path / "out" / "x.pybundle"
    args = _bundle_args(catalog, cache, output, key_files[0], "--jobs", "1")
    proc = _start(args)
    _wait_until(
        lambda: any(p.stat().st_size > 100_000 for p in _partials(cache)),
        proc,
        "a download under way",
    )
    seconds, _, err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["pybundle: interrupted"]
    assert seconds < 10.0, f"{seconds:.2f} s from SIGINT to exit (the downloads needed ~24 s)"
    print(f"SIGINT to exit: {seconds:.3f} s")
    (partial,) = _partials(cache)  # kept for the next run; the queued ones never started
    kept = partial.stat().st_size
    assert 100_000 < kept < 2_000_000
    assert not list((cache / "archives").iterdir())  # nothing under a final name
    assert not output.exists() and _beside(output) == []
    assert len(server.finished()) == 1

    for route in server.routes.values():
        route.rate = None
    server.hits.clear()
    done = subprocess.run(
        [sys.executable, "-m", "pybundle", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert output.is_file() and _beside(output) == [] and _partials(cache) == []
    resumed = [h for h in server.finished() if h.range is not None]
    assert [(h.range, h.status) for h in resumed] == [(f"bytes={kept}-", 206)]
    assert sorted(h.path for h in server.hits) == sorted(bodies)


def test_sigterm_cleans_up_like_ctrl_c_and_exits_143(
    server: LoopServer, tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    catalog, _ = _publish(server, tmp_path)
    cache, output = tmp_path / "cache", tmp_path / "out" / "x.pybundle"
    proc = _start(_bundle_args(catalog, cache, output, key_files[0], "--jobs", "3"))
    _wait_until(
        lambda: len([p for p in _partials(cache) if p.stat().st_size > 50_000]) == 3,
        proc,
        "three downloads under way",
    )
    seconds, _, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert err.splitlines() == ["pybundle: terminated"]
    assert seconds < 10.0, f"{seconds:.2f} s from SIGTERM to exit (the downloads needed ~24 s)"
    print(f"SIGTERM to exit: {seconds:.3f} s")
    assert len(_partials(cache)) == 3 and not list((cache / "archives").iterdir())
    assert not output.exists() and _beside(output) == []


@pytest.mark.slow
def test_leftovers_of_a_killed_run_go_and_a_live_runs_stay(
    server: LoopServer, tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    prefix = real_prefixes()[0]
    out_dir = tmp_path / "out"
    output = out_dir / "x.pybundle"
    packing = ["bundle", "--from-prefix", str(prefix), "-o", str(output), "-q"]
    packing += ["--sign-key", str(key_files[0])]

    def work_dirs() -> list[Path]:
        """Work directories of runs to ``output`` (tempfile's names; not the decoys)."""
        found = out_dir.glob(".x.pybundle.*.work") if out_dir.is_dir() else []
        pattern = re.compile(r"\.x\.pybundle\.[a-z0-9_]{8}\.work")
        return sorted(p for p in found if pattern.fullmatch(p.name) and not p.is_symlink())

    def packing_under_way() -> bool:
        return any(f.stat().st_size > 0 for d in work_dirs() for f in d.iterdir())

    # a run killed outright while packing leaves its work directory behind
    killed = _start(packing)
    _wait_until(packing_under_way, killed, "packing under way")
    killed.kill()
    killed.wait(60)
    (stale,) = work_dirs()
    stale_tmp = out_dir / ".x.pybundle.k1ll3d_0.tmp"  # as a run killed while writing leaves it
    stale_tmp.write_bytes(b"PK\x03\x04")
    # names that are not a leftover of this output: never touched
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("mine")
    decoys = {
        ".x.pybundle.short.work": "dir",  # not tempfile's 8 characters
        ".z.pybundle.abcdefgh.work": "dir",  # another output's
        "x.pybundle.abcdefgh.work": "dir",  # no leading dot
        ".x.pybundle.abcdefgh.keep": "file",
        ".x.pybundle.linkdir0.work": "link",  # a symlink, not a directory it made
        ".x.pybundle.abcdefgh.work.txt": "file",
    }
    for name, kind in decoys.items():
        if kind == "dir":
            (out_dir / name).mkdir()
            (out_dir / name / "data").write_text("keep")
        elif kind == "file":
            (out_dir / name).write_text("keep")
        else:
            (out_dir / name).symlink_to(elsewhere)

    # the next run to the same output removes them, then packs in its own work directory
    alive = _start(packing)
    _wait_until(lambda: not stale.exists() and packing_under_way(), alive, "the next run packing")
    assert not stale_tmp.exists()
    (own,) = work_dirs()
    alive.send_signal(signal.SIGSTOP)  # frozen mid-run: it still holds the output's lock
    try:
        other = subprocess.run(
            [sys.executable, "-m", "pybundle", *packing],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert other.returncode == 8, other.stderr
        assert other.stderr.splitlines() == [
            f"pybundle: error: {output}: another pybundle bundle is writing it now "
            f"(it holds {out_dir / '.x.pybundle.lock'})"
        ]
        catalog, _ = _publish(server, tmp_path, pad=1000, rate=None)
        neighbour = out_dir / "y.pybundle"
        quick = _bundle_args(catalog, tmp_path / "cache", neighbour, key_files[0])
        done = subprocess.run(
            [sys.executable, "-m", "pybundle", *quick], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert own.is_dir() and work_dirs() == [own] and packing_under_way()
    finally:
        alive.send_signal(signal.SIGCONT)

    # stopped by SIGTERM while packing: exit 143 at once, its work directory removed
    seconds, cpu, err = _stop(alive, signal.SIGTERM)
    assert alive.returncode == 143, err
    assert err.splitlines() == ["pybundle: terminated"]
    assert cpu < 1.0, f"{cpu:.2f} CPU seconds after SIGTERM while packing: it went on"
    assert seconds < 60.0, f"{seconds:.2f} s from SIGTERM to exit while packing"
    print(f"SIGTERM to exit while packing: {seconds:.3f} s, {cpu:.3f} CPU seconds")
    assert work_dirs() == [] and not output.exists()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*decoys, "y.pybundle"])
    assert (elsewhere / "keep").read_text() == "mine"


# ---- in process: the stop reaches threads that wait on the network


def _fetch_in_thread(downloader: Downloader, item: DownloadItem) -> tuple[threading.Thread, list]:  # type: ignore[type-arg]
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(downloader.fetch_all([item]))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_stop_wakes_a_read_from_a_stalled_server(server: LoopServer, tmp_path: Path) -> None:
    body = os.urandom(200_000)
    # 32 KiB pieces at 1 kB/s: after the first piece the server is silent for half a minute
    url = server.add("/stalled/a.tar.gz", body=body, rate=1000.0)
    cache = Cache(tmp_path / "cache")
    downloader = Downloader(cache)
    item = DownloadItem(url, hashlib.sha256(body).hexdigest(), "a.tar.gz", len(body))
    thread, outcome = _fetch_in_thread(downloader, item)
    partial = cache.partial_for(item.key, item.file_name)
    deadline = time.monotonic() + 30
    while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # now blocked in a read
    asked = time.monotonic()
    downloader.request_stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - asked < 1.0
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)
    assert 0 < partial.stat().st_size < len(body)  # kept, resumable
    assert not list(cache.archives.iterdir())


def test_a_stop_cuts_a_retry_after_wait_short(server: LoopServer, tmp_path: Path) -> None:
    url = server.add("/busy/a.tar.gz", mode="status", status=503, retry_after="30")
    cache = Cache(tmp_path / "cache")
    downloader = Downloader(cache, retries=3)
    item = DownloadItem(url, "0" * 64, "a.tar.gz", 10)
    thread, outcome = _fetch_in_thread(downloader, item)
    deadline = time.monotonic() + 30
    while not server.hits and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # now in urllib3's sleep for Retry-After: 30
    asked = time.monotonic()
    downloader.request_stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - asked < 1.0
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)
    assert len(server.hits) == 1


def test_a_stop_ends_our_own_back_off_between_resumes(server: LoopServer, tmp_path: Path) -> None:
    body = os.urandom(300_000)
    url = server.add("/drop/a.tar.gz", body=body, mode="drop", drops=100)
    cache = Cache(tmp_path / "cache")
    # a back-off of 20 s after the first cut body
    downloader = Downloader(
        cache, retries=3, backoff=20.0, session_factory=lambda: make_session(0, 0.0)
    )
    item = DownloadItem(url, hashlib.sha256(body).hexdigest(), "a.tar.gz", len(body))
    thread, outcome = _fetch_in_thread(downloader, item)
    deadline = time.monotonic() + 30
    while not server.finished() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    asked = time.monotonic()
    downloader.request_stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - asked < 1.0
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)
    assert cache.partial_for(item.key, item.file_name).stat().st_size == len(body) // 2


def test_a_stop_ends_the_wait_for_an_entry_another_process_is_fetching(
    server: LoopServer, tmp_path: Path
) -> None:
    body = os.urandom(1000)
    url = server.add("/ok/a.tar.gz", body=body)
    cache = Cache(tmp_path / "cache")
    item = DownloadItem(url, hashlib.sha256(body).hexdigest(), "a.tar.gz", len(body))
    with filelock.FileLock(str(cache.locks / f"{item.key}.lock")):  # as another bundle would
        downloader = Downloader(cache)
        thread, outcome = _fetch_in_thread(downloader, item)
        time.sleep(0.3)
        assert thread.is_alive() and not server.hits  # waiting for the lock
        asked = time.monotonic()
        downloader.request_stop()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - asked < 1.0
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)


def test_the_output_lock_is_exclusive_and_leaves_no_file(tmp_path: Path) -> None:
    output = tmp_path / "out" / "x.pybundle"
    with claim_output(output):
        assert lock_path(output).is_file()
        busy = pytest.raises(AlreadyExistsError, match="another pybundle bundle is writing it")
        with busy, claim_output(output):
            pass
    assert list(output.parent.iterdir()) == []
    lock_path(output).write_text("")  # left by a run killed outright: reused, then removed
    with claim_output(output):
        pass
    assert list(output.parent.iterdir()) == []
