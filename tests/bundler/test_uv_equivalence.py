"""What uv 0.13.8 picks for a request from a catalog is what pybundle picks from the same one.

uv is asked with ``UV_PYTHON_DOWNLOADS_JSON_URL`` pointing at the catalog file and an empty
``UV_PYTHON_CACHE_DIR`` with ``--offline``: it then names the key and URL it chose, and stops
(nothing is downloaded). uv rewrites GitHub URLs to its own mirror, so file names are compared.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from conftest import uv_catalog
from pybundle.bundler.catalog import CatalogEntry, load_catalog
from pybundle.bundler.resolve import resolve
from pybundle.targets import host_target, parse_platform
from pybundle.versions import parse_request_list

CATALOG = uv_catalog()
UV = Path(sys.executable).parent / "uv"
_CHOICE_RE = re.compile(r"`(?P<key>[^`]+)` \(from `(?P<url>[^`]+)`\) is missing")


@pytest.fixture(scope="module")
def entries() -> list[CatalogEntry]:
    return load_catalog(str(CATALOG))


def uv_choice(request: str, catalog: Path, tmp: Path) -> tuple[str, str]:
    """``(key, file name)`` that ``uv python install REQUEST`` wants from ``catalog``."""
    if not UV.exists():
        pytest.fail(f"{UV} is missing: `pip install uv==0.13.8` (the dev extra installs it)")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "UV_PYTHON_DOWNLOADS_JSON_URL": str(catalog),
        "UV_PYTHON_INSTALL_DIR": str(tmp / "installs"),
        "UV_PYTHON_CACHE_DIR": str(tmp / "empty-cache"),
        "UV_CACHE_DIR": str(tmp / "uv-cache"),
        "UV_NO_CONFIG": "1",
    }
    proc = subprocess.run(
        [str(UV), "python", "install", request, "--offline", "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    m = _CHOICE_RE.search(proc.stderr)
    assert m, f"uv said: {proc.stderr}"
    name = urllib.parse.unquote(m.group("url").rsplit("/", 1)[1])
    return m.group("key"), name


HOST = host_target().friendly

CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    # (uv request, pybundle request, pybundle platform, resolve options)
    ("3.12", "3.12", HOST, {}),
    ("3.12.1", "3.12.1", HOST, {}),
    ("cpython-3.12", "cpython-3.12", HOST, {}),
    ("cpython@3.11", "cpython@3.11", HOST, {}),
    (">=3.10,<3.13", ">=3.10,<3.13", HOST, {}),  # uv: one pick, the newest; ours: its last
    ("~=3.11.4", "~=3.11.4", HOST, {}),
    ("3.15", "3.15", HOST, {"prerelease": "if-necessary"}),
    ("3.15.0rc1", "3.15.0rc1", HOST, {}),
    ("3.8.2", "3.8.2", HOST, {}),  # a 2020 release, older file naming
    ("pypy-3.10", "pypy-3.10", HOST, {}),
    ("pypy@3.11", "pypy@3.11", HOST, {}),
    ("graalpy-3.12", "graalpy-3.12", HOST, {}),
    ("3.13t", "3.13t", HOST, {}),
    ("3.13+freethreaded", "3.13", HOST, {"variant": "freethreaded"}),
    ("3.12+debug", "3.12", HOST, {"variant": "debug"}),
    ("3.13td", "3.13td", HOST, {}),
    ("cpython-3.12-linux-x86_64_v3-gnu", "3.12", "linux-x86_64_v3", {}),
    ("cpython-3.13-linux-x86_64_v4-gnu", "3.13", "linux-x86_64_v4", {}),
    ("cpython-3.12-macos-aarch64-none", "3.12", "macos-aarch64", {}),
    ("cpython-3.10-macos-x86_64-none", "3.10", "macos-x86_64", {}),
    ("cpython-3.11-linux-aarch64-musl", "3.11", "linux-aarch64-musl", {}),
    ("cpython-3.12.1-windows-x86_64-none", "3.12.1", "windows-x86_64", {}),
    ("cpython-3.9-linux-armv7-gnueabihf", "3.9", "linux-armv7-gnueabihf", {}),
    ("pypy-3.10-macos-aarch64-none", "pypy-3.10", "macos-aarch64", {}),
]


@pytest.mark.parametrize(("uv_request", "ours", "platform", "options"), CASES)
def test_same_pick_as_uv(
    entries: list[CatalogEntry],
    tmp_path: Path,
    uv_request: str,
    ours: str,
    platform: str,
    options: dict[str, Any],
) -> None:
    key, file_name = uv_choice(uv_request, CATALOG, tmp_path)
    picked = resolve(entries, parse_request_list(ours), [parse_platform(platform)], **options)
    newest = picked[-1]
    # uv names the install (``macos``) where its catalog key says ``darwin``
    assert (newest.key.replace("-darwin-", "-macos-"), newest.file_name) == (key, file_name)


def test_same_prerelease_choice_as_uv_when_a_final_exists(tmp_path: Path) -> None:
    """With 3.14.4 and 3.14.5rc1 only, uv takes the final; so does ``--prerelease
    if-necessary`` (``allow`` would take the newer prerelease)."""
    raw = json.loads(CATALOG.read_bytes())
    keys = ("cpython-3.14.4-linux-x86_64-gnu", "cpython-3.14.5rc1-linux-x86_64-gnu")
    small = tmp_path / "small.json"
    small.write_text(json.dumps({k: raw[k] for k in keys}))
    key, _ = uv_choice("3.14", small, tmp_path)
    entries = load_catalog(str(small))
    linux = [parse_platform("linux-x86_64")]
    assert [e.key for e in resolve(entries, parse_request_list("3.14"), linux)] == [key]
    assert [
        e.key
        for e in resolve(entries, parse_request_list("3.14"), linux, prerelease="if-necessary")
    ] == [key]
    assert [
        e.key for e in resolve(entries, parse_request_list("3.14"), linux, prerelease="allow")
    ] == [keys[1]]
