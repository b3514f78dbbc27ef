"""Measurement primitives for the benchmark suite: one fresh child process per measurement,
alternated comparisons, medians, and a throttled HTTP server on 127.0.0.1.

Nothing here imports pybundle: it measures commands, whatever they are.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class CommandFailed(RuntimeError):
    """A measured command exited non-zero; the message carries its output tail."""


@dataclass(frozen=True)
class Sample:
    """One measured child process: wall time and its own resource usage (``os.wait4``).

    ``maxrss_mb`` is the peak resident set of the child or of any descendant it waited for
    (Linux merges reaped children's peaks into the parent's); CPU seconds include them too. It
    is never below the launcher's own size (about 11 MB, see _LAUNCHER).
    """

    seconds: float
    maxrss_mb: float
    user: float
    system: float


_LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    req = json.loads(line)
    with open(req["log"], "wb") as out:
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(req["argv"], env=req["env"], cwd=req["cwd"],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            print(json.dumps({"error": str(exc)}), flush=True)
            continue
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "code": os.waitstatus_to_exitcode(status),
                      "maxrss_kb": usage.ru_maxrss, "user": usage.ru_utime,
                      "system": usage.ru_stime}), flush=True)
"""
"""The process that starts every measured child (``python -S``, a few MB). Linux counts the
memory of the process that forks into the child's ``ru_maxrss`` (vfork and posix_spawn
included: the child's peak is taken when its ``exec`` drops the forked image), so children
forked by the suite itself, which grows to hundreds of MB, would all report the suite's size
as their peak RSS. Measured before this launcher existed: every ``rss-*`` row read 203 MB."""

_launcher: subprocess.Popen[str] | None = None
_launcher_lock = threading.Lock()


def _launch(request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the launcher (started at first use) and return its answer."""
    global _launcher
    import json
    import sys

    with _launcher_lock:
        if _launcher is None or _launcher.poll() is not None:
            _launcher = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert _launcher.stdin is not None and _launcher.stdout is not None
        _launcher.stdin.write(json.dumps(request) + "\n")
        _launcher.stdin.flush()
        answer = _launcher.stdout.readline()
    if not answer:
        raise CommandFailed(f"the launcher stopped while running {' '.join(request['argv'])}")
    result: dict[str, Any] = json.loads(answer)
    return result


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> Sample:
    """Run ``argv`` to completion in a fresh child (started by the launcher, see _LAUNCHER:
    its peak RSS is its own); raise CommandFailed on a non-zero exit."""
    out_path = log or Path(os.devnull)
    answer = _launch(
        {
            "argv": list(argv),
            "env": dict(env) if env is not None else dict(os.environ),
            "cwd": str(cwd) if cwd is not None else None,
            "log": str(out_path),
        }
    )
    if "error" in answer:
        raise CommandFailed(f"{' '.join(argv)} could not start: {answer['error']}")
    if answer["code"] != 0:
        tail = ""
        if log is not None and log.exists():
            tail = log.read_text(errors="replace")[-2000:]
        raise CommandFailed(f"{' '.join(argv)} exited {answer['code']}\n{tail}")
    return Sample(answer["seconds"], answer["maxrss_kb"] / 1024.0, answer["user"], answer["system"])


Step = Callable[[int], Sample]
"""One measured step; it receives the run index (to pick fresh directories) and returns a Sample."""


@dataclass
class Series:
    """All samples of one command in one comparison."""

    name: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return max(s.maxrss_mb for s in self.samples)

    @property
    def median_cpu(self) -> float:
        return statistics.median(s.user + s.system for s in self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median_seconds": round(self.median, 4),
            "median_cpu_seconds": round(self.median_cpu, 4),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "samples": [{k: round(v, 4) for k, v in asdict(s).items()} for s in self.samples],
        }


def alternate(
    steps: Mapping[str, Step],
    runs: int,
    *,
    warmup: int = 1,
    cleanup: Callable[[], None] | None = None,
) -> dict[str, Series]:
    """Run every step ``warmup`` times (discarded, warms the page cache), then ``runs`` rounds
    in which the steps run one after another, their order rotated each round so that no
    command always follows the same one. ``cleanup`` runs after every step, untimed."""
    names = list(steps)
    for i in range(warmup):
        for name in names:
            steps[name](-1 - i)
            if cleanup is not None:
                cleanup()
    series = {name: Series(name) for name in names}
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            series[name].samples.append(steps[name](r))
            if cleanup is not None:
                cleanup()
    return series


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read every file once so that measurements start from a warm page cache."""
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(8 * 1024 * 1024):
                pass


def empty_dir(path: Path) -> Path:
    """``path`` as a new empty directory (anything there before is removed)."""
    if path.exists() or path.is_symlink():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def clear_dir(path: Path) -> None:
    """Remove everything inside ``path`` (it stays, empty)."""
    if not path.exists():
        path.mkdir(parents=True)
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


# ---- a static file server on 127.0.0.1 that can throttle each connection


class _Handler(SimpleHTTPRequestHandler):
    """Serves files; when ``rate`` (bytes/s) is set, each response body is paced to it."""

    rate: float | None = None
    chunk = 64 * 1024
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        if self.rate is None:
            shutil.copyfileobj(source, outputfile, 1024 * 1024)
            return
        started = time.monotonic()
        sent = 0
        while data := source.read(self.chunk):
            outputfile.write(data)
            sent += len(data)
            ahead = sent / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


@dataclass
class Server:
    """A running server: its root directory and base URL (``http://127.0.0.1:PORT``)."""

    root: Path
    url: str


@contextmanager
def http_server(root: Path, rate: float | None = None) -> Iterator[Server]:
    """Serve ``root`` on 127.0.0.1 (random port) from threads of this process.

    ``rate``: each connection's response body is sent at no more than this many bytes/s.
    """
    handler_cls = type("ThrottledHandler", (_Handler,), {"rate": rate})
    handler = functools.partial(handler_cls, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
