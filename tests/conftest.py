"""Shared builders: real archives packed from pyenv interpreters, catalogs, keys, bundles, and an
HTTP server on 127.0.0.1 that serves them.

Real input: the CPython builds under ``$(pyenv root)/versions`` (never modified; we only read
them), packed in PBS install_only layout by pybundle's own packer, as ``--from-prefix`` does.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pybundle.bundler.catalog import PBS_RELEASE_PREFIX
from pybundle.bundler.pack import write_bundle
from pybundle.bundler.prefix import PrefixInfo, pack_prefix, probe_prefix
from pybundle.manifest import Artifact
from pybundle.signing import SecretKey, generate_secret_key
from pybundle.targets import Target

TEST_BUILD = "20990101"
REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

REQUIRE_TOOLS = os.environ.get("PYBUNDLE_REQUIRE_TOOLS") == "1"
"""Set by .ci/run: a test that would be skipped (a missing tool such as minisign, a missing
pyenv build, no root) fails instead, so CI proves what the skips would hide."""


_TESTS_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # Session-wide: fixtures set up outside a test's own environment (module and session
    # scope), and tests that undo their monkeypatch, must not make links in the user's
    # ~/.local/bin, write pybundle's state, or write into uv's or pyenv's real directories;
    # each test then gets its own (isolated_dirs).
    if not os.environ.get("PYBUNDLE_TESTS_HOME"):
        import tempfile

        home = tempfile.mkdtemp(prefix="pybundle-tests-home-")
        os.environ["PYBUNDLE_TESTS_HOME"] = home
        os.environ["PYBUNDLE_BIN_DIR"] = os.path.join(home, "bin")
        os.environ["UV_PYTHON_BIN_DIR"] = os.path.join(home, "uv-bin")
        os.environ["UV_PYTHON_INSTALL_DIR"] = os.path.join(home, "uv-python")
        os.environ["PYENV_ROOT"] = os.path.join(home, "pyenv")
        os.environ["PYBUNDLE_STATE_DIR"] = os.path.join(home, "state")
        os.environ["PYBUNDLE_INSTALL_DIR"] = os.path.join(home, "installs")
        config.stash[_TESTS_HOME] = home
    config.addinivalue_line(
        "markers",
        "tool(name, ...): needs these executables on PATH; skipped with the reason when one is "
        "missing (failed when PYBUNDLE_REQUIRE_TOOLS=1)",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_TESTS_HOME, None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("tool"):
        missing = [name for name in mark.args if shutil.which(name) is None]
        if missing:
            pytest.skip(
                f"needs {', '.join(missing)} on PATH (Debian: apt-get install {' '.join(missing)})"
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_TOOLS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but PYBUNDLE_REQUIRE_TOOLS=1 forbids skips: {reason}"


UV_CATALOG_GZ = Path(__file__).resolve().parent / "data" / "python-downloads.json.gz"
"""uv's real downloads catalog, committed (see tests/data/README.md for where and when from)."""


@functools.cache
def uv_catalog_bytes() -> bytes:
    """The bytes of uv's real downloads catalog (``tests/data/python-downloads.json.gz``)."""
    return gzip.decompress(UV_CATALOG_GZ.read_bytes())


@functools.cache
def uv_catalog() -> Path:
    """uv's real downloads catalog as a plain ``python-downloads.json`` file (for code and tools
    that take a path or URL), written once per test process to a temporary directory that is
    removed when the process exits."""
    directory = Path(tempfile.mkdtemp(prefix="pybundle-test-catalog-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "python-downloads.json"
    path.write_bytes(uv_catalog_bytes())
    path.chmod(0o444)
    return path


@functools.lru_cache(maxsize=1)
def pyenv_root() -> Path:
    """The machine's real ``pyenv root`` (or ``$PYENV_ROOT``, or ``~/.pyenv``), as it was when
    first asked (before any test points ``PYENV_ROOT`` at a temp dir: read-only input)."""
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    except OSError:
        pass
    return Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


pyenv_root()  # remember the real root at import, before any test changes PYENV_ROOT


def discover_prefix(minor: str) -> Path | None:
    """The newest pyenv CPython build of ``3.<minor>`` (no free-threaded/debug builds)."""
    versions = pyenv_root() / "versions"
    found = []
    for entry in versions.glob(f"3.{minor}.*") if versions.is_dir() else []:
        parts = entry.name.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and (entry / "bin/python3").exists():
            found.append((tuple(int(p) for p in parts), entry))
    return max(found)[1] if found else None


def real_prefixes() -> list[Path]:
    """Two real interpreters for end-to-end tests: pyenv 3.11 and 3.12 when present,
    otherwise the running interpreter's base prefix."""
    found = [p for p in (discover_prefix("11"), discover_prefix("12")) if p is not None]
    return found or [Path(sys.base_prefix)]


@dataclass(frozen=True)
class RealArchive:
    """A PBS-style archive packed from a real interpreter, as a catalog entry would name it."""

    info: PrefixInfo
    artifact: Artifact
    path: Path

    @property
    def upstream_url(self) -> str:
        quoted = self.artifact.file_name.replace("+", "%2B")
        return f"{PBS_RELEASE_PREFIX}/{TEST_BUILD}/{quoted}"


def catalog_entry(archive: RealArchive, url: str | None = None) -> tuple[str, dict[str, Any]]:
    """A uv downloads-JSON entry for a packed archive (format of python-downloads.json)."""
    v = archive.info.version
    t = archive.artifact.target
    key = f"cpython-{v}-{t.key}"
    return key, {
        "name": "cpython",
        "arch": {"family": t.arch, "variant": t.arch_variant},
        "os": t.os,
        "libc": t.libc,
        "major": v.major,
        "minor": v.minor,
        "patch": v.patch,
        "prerelease": v.prerelease,
        "url": url or archive.upstream_url,
        "sha256": archive.artifact.sha256,
        "variant": None,
        "build": TEST_BUILD,
    }


@pytest.fixture(scope="session")
def real_archives(tmp_path_factory: pytest.TempPathFactory) -> list[RealArchive]:
    """Real interpreters packed as ``cpython-<v>+20990101-<triple>-install_only.tar.{gz,zst}``
    (site-packages reduced to pip, as PBS ships them). The first is gzip, the second zstd."""
    out = tmp_path_factory.mktemp("archives")
    archives = []
    for i, prefix in enumerate(real_prefixes()):
        info = probe_prefix(prefix)
        fmt = "tar.gz" if i == 0 else "tar.zst"
        name = f"cpython-{info.version}+{TEST_BUILD}-{info.target.triple}-install_only.{fmt}"
        artifact, path = pack_prefix(
            info,
            out,
            archive_format=fmt,
            site_packages="pip",
            compresslevel=1,
            file_name=name,
            build=TEST_BUILD,
        )
        archives.append(RealArchive(info, artifact, path))
    return archives


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Server:
    """A static file server on 127.0.0.1 rooted at ``root``."""

    root: Path
    url: str


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A threaded http.server on 127.0.0.1 (random port) serving a temp directory."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mirror:
    """The real archives published on the loopback server like a PBS release, plus a catalog
    whose URLs use the upstream release prefix (so ``--mirror`` must be honoured)."""

    catalog_url: str
    mirror_url: str
    archives: list[RealArchive]


@pytest.fixture(scope="session")
def mirror(http_server: Server, real_archives: list[RealArchive]) -> Mirror:
    release = http_server.root / "releases" / "download" / TEST_BUILD
    release.mkdir(parents=True)
    for archive in real_archives:
        os.link(archive.path, release / archive.artifact.file_name)
    catalog = dict(catalog_entry(a) for a in real_archives)
    (http_server.root / "catalog.json").write_text(json.dumps(catalog, indent=1))
    return Mirror(
        catalog_url=f"{http_server.url}/catalog.json",
        mirror_url=f"{http_server.url}/releases/download",
        archives=real_archives,
    )


@pytest.fixture(scope="session")
def signing_key() -> SecretKey:
    """A test signing key (the pair is written to disk by ``key_files``)."""
    return generate_secret_key()


@pytest.fixture
def key_files(tmp_path: Path, signing_key: SecretKey) -> tuple[Path, Path]:
    """``(secret key path, public key path)`` in minisign formats for ``signing_key``."""
    secret = tmp_path / "keys" / "test.key"
    public = tmp_path / "keys" / "test.pub"
    secret.parent.mkdir()
    secret.write_text(signing_key.to_file_text())
    os.chmod(secret, 0o600)
    public.write_text(signing_key.public_key.to_file_text())
    return secret, public


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's real config, cache and install dirs."""
    home = tmp_path / "home"
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    for var in (
        "PYBUNDLE_CATALOG",
        "PYBUNDLE_CACHE_DIR",
        "PYBUNDLE_INSTALL_DIR",
        "PYBUNDLE_STATE_DIR",
        "UV_PYTHON_INSTALL_DIR",
        "UV_PYTHON_DOWNLOADS_JSON_URL",
        "UV_PYTHON_CACHE_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    # links, uv's and pyenv's directories: never the user's (the real pyenv root is read-only
    # test input; pyenv_root() remembered it before this)
    monkeypatch.setenv("PYBUNDLE_BIN_DIR", str(home / "bin"))
    monkeypatch.setenv("PATH", f"{home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("UV_PYTHON_BIN_DIR", str(home / "uv-bin"))
    monkeypatch.setenv("PYENV_ROOT", str(home / "pyenv"))


# ---- small synthetic archives and bundles, for refusal tests that never run an interpreter


def make_tar(
    path: Path,
    members: list[tuple[tarfile.TarInfo, bytes | None]],
    archive_format: str = "tar.gz",
) -> Path:
    """Write a tar.gz / tar.zst holding exactly ``members`` (TarInfo + data for regular files)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw = buf.getvalue()
    if archive_format == "tar.gz":
        import gzip

        path.write_bytes(gzip.compress(raw, compresslevel=1))
    else:
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    return path


def tar_file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 1_700_000_000
    return info, data


def tar_dir(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info, None


def tar_link(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def make_pure_wheel(
    directory: Path, name: str, version: str, requires: tuple[str, ...] = ()
) -> Path:
    """A minimal pure wheel ``NAME-VERSION-py3-none-any.whl`` in ``directory`` (PEP 427:
    a ``.dist-info`` with METADATA, whose ``Requires-Dist`` lines are ``requires``, WHEEL and
    RECORD), enough for pip to resolve and install it."""
    import zipfile

    info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}.py", "")
        zf.writestr(f"{info}/METADATA", metadata)
        zf.writestr(f"{info}/WHEEL", wheel)
        zf.writestr(f"{info}/RECORD", f"{name}.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n")
    return path


def tiny_interpreter_members(
    prefix: str = "/opt/fake",
) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A minimal PBS-layout tree: a shell 'python3.12', sysconfigdata naming ``prefix``."""
    sysconfig = f"build_time_vars = {{'prefix': '{prefix}', 'LIBDIR': '{prefix}/lib'}}\n"
    return [
        tar_dir("python"),
        tar_dir("python/bin"),
        tar_file("python/bin/python3.12", b"#!/bin/sh\necho fake python\n", 0o755),
        tar_link("python/bin/python3", "python3.12"),
        tar_dir("python/lib"),
        tar_dir("python/lib/python3.12"),
        tar_file(
            "python/lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py", sysconfig.encode()
        ),
    ]


def tiny_artifact(
    path: Path,
    version: str = "3.12.1",
    target: Target | None = None,
    archive_format: str = "tar.gz",
) -> Artifact:
    """The manifest record of an archive file written by :func:`make_tar`."""
    from pybundle.hashing import sha256_file

    digest, size = sha256_file(path)
    return Artifact(
        file_name=path.name,
        size=size,
        sha256=digest,
        implementation="cpython",
        version=version,
        build=TEST_BUILD,
        target=target or Target("linux", "x86_64", "gnu"),
        variant="default",
        flavour="install_only",
        archive_format=archive_format,
        strip_prefix="python",
        build_prefix="/opt/fake",
        source_url=f"{PBS_RELEASE_PREFIX}/{TEST_BUILD}/{path.name}",
    )


@pytest.fixture
def tiny_bundle(tmp_path: Path, signing_key: SecretKey):  # type: ignore[no-untyped-def]
    """Factory: ``tiny_bundle(name, members=None, target=None, key=signing_key)`` -> bundle path."""

    def build(
        name: str = "tiny.pybundle",
        members: list[tuple[tarfile.TarInfo, bytes | None]] | None = None,
        target: Target | None = None,
        key: SecretKey | str | None = "default",
        version: str = "3.12.1",
    ) -> Path:
        work = tmp_path / f"work-{name}"
        work.mkdir()
        triple = (target or Target("linux", "x86_64", "gnu")).triple
        archive = make_tar(
            work / f"cpython-{version}+{TEST_BUILD}-{triple}-install_only.tar.gz",
            members if members is not None else tiny_interpreter_members(),
        )
        artifact = tiny_artifact(archive, version=version, target=target)
        out = tmp_path / name
        write_bundle(
            out,
            [(artifact, archive)],
            secret_key=signing_key if key == "default" else key,  # type: ignore[arg-type]
        )
        shutil.rmtree(work)
        return out

    return build


def run_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pybundle ARGS`` in a subprocess with this test's environment."""
    proc = subprocess.run(
        [sys.executable, "-m", "pybundle", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pybundle {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
