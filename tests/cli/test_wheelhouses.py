"""Wheelhouses end to end (issue 11): ``bundle -r/--with`` for pyenv 3.11 and 3.12 x linux-x86_64
and linux-aarch64, real wheels from ``tests/data/wheels`` (pip with ``--no-index
--find-links``: no index is needed, see that directory's README), ``install --venv`` with no
network at all (``unshare -n``), ``wheels export`` for plain pip, and the refusals.

The x86_64 interpreters are the real pyenv builds (``--from-prefix``); the aarch64 ones are
tiny archives in a directory catalog (they are never run: only their wheelhouses matter), as
are those of the macOS (arm64) and Windows (x64) bundle, whose wheelhouses are checked against
the tag sets computed for those targets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (
    DATA,
    TEST_BUILD,
    discover_prefix,
    make_tar,
    tiny_interpreter_members,
)
from pybundle.bundler.wheels import WheelTarget
from pybundle.manifest import Manifest
from pybundle.signing import SecretKey, generate_secret_key
from pybundle.targets import Target

WHEELS = DATA / "wheels"
PREFIXES = {minor: discover_prefix(minor.split(".")[1]) for minor in ("3.11", "3.12")}
ARM = Target("linux", "aarch64", "gnu")
X86 = Target("linux", "x86_64", "gnu")
PURE = {"requests", "urllib3", "idna", "certifi", "charset_normalizer"}

pytestmark = pytest.mark.slow


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without the machine's pip configuration (PIP_* variables,
    pip.conf, and uv's index variables, which bundle passes on: the index and find-links of
    this machine must not leak into the tests), with pybundle's state, links and cache in
    ``home``."""
    uv_index = (
        "UV_DEFAULT_INDEX",
        "UV_INDEX_URL",
        "UV_INDEX",
        "UV_EXTRA_INDEX_URL",
        "UV_FIND_LINKS",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in uv_index}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PYBUNDLE_STATE_DIR=str(home / "state"),
        PYBUNDLE_BIN_DIR=str(home / "bin"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
    )
    return env


def cli(env: dict[str, str], *args: str, net: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pybundle", *args]
    if not net:
        argv = ["unshare", "-n", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.args, proc.stdout, proc.stderr)
    return proc


def arm_catalog(directory: Path, versions: tuple[str, ...] = ("3.11.7", "3.12.1"),
                triple: str = "aarch64-unknown-linux-gnu") -> Path:  # fmt: skip
    """A directory catalog of tiny PBS-named archives for ``triple``."""
    directory.mkdir(parents=True, exist_ok=True)
    sums = []
    for version in versions:
        name = f"cpython-{version}+{TEST_BUILD}-{triple}-install_only.tar.gz"
        path = make_tar(directory / name, tiny_interpreter_members())
        sums.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
    (directory / "SHA256SUMS").write_text("".join(sums))
    return directory


@dataclass
class World:
    root: Path
    env: dict[str, str]
    secret: Path
    public: Path
    catalog: Path
    requirements: Path
    bundle: Path
    manifest: Manifest
    bundle_stdout: str
    key: SecretKey


def need_prefixes() -> None:
    if not all(PREFIXES.values()):
        pytest.fail("needs the pyenv builds of 3.11 and 3.12 ($(pyenv root)/versions)")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need_prefixes()
    root = tmp_path_factory.mktemp("wheelhouses")
    env = clean_env(root / "home")
    key = generate_secret_key()
    secret, public = root / "ops.key", root / "ops.pub"
    secret.write_text(key.to_file_text())
    secret.chmod(0o600)
    public.write_text(key.public_key.to_file_text())
    catalog = arm_catalog(root / "catalog")
    requirements = root / "requirements.txt"
    requirements.write_text("# the test set\nrequests==2.32.5\nmarkupsafe==3.0.3  # compiled\n")
    bundle = root / "app.pybundle"
    proc = ok(
        cli(
            env,
            "bundle",
            "--catalog",
            str(catalog),
            "--versions",
            "3.11,3.12",
            "--platform",
            "linux-aarch64",
            "--from-prefix",
            str(PREFIXES["3.11"]),
            "--from-prefix",
            str(PREFIXES["3.12"]),
            "--prefix-site-packages",
            "pip",
            "-r",
            str(requirements),
            "--with",
            "bcrypt==5.0.0",
            "--no-index",
            "--find-links",
            str(WHEELS),
            "--cache-dir",
            str(root / "cache"),
            "--sign-key",
            str(secret),
            "-o",
            str(bundle),
        )
    )
    with zipfile.ZipFile(bundle) as zf:
        manifest = Manifest.from_bytes(zf.read("pybundle.json"), str(bundle))
    yield World(
        root, env, secret, public, catalog, requirements, bundle, manifest, proc.stdout, key
    )


def _wheel_names(world: World, key: str) -> list[str]:
    section = world.manifest.wheelhouses
    assert section is not None
    house = next(t for t in section.targets if t.key == key)
    return [section.wheel(m).file_name for m in house.wheels]


def test_each_interpreter_and_platform_gets_its_wheelhouse(world: World) -> None:
    section = world.manifest.wheelhouses
    assert section is not None and world.manifest.schema_version == 3  # v3: file indexes
    assert [t.key for t in section.targets] == [
        "cpython-3.11-linux-aarch64-gnu",
        "cpython-3.11-linux-x86_64-gnu",
        "cpython-3.12-linux-aarch64-gnu",
        "cpython-3.12-linux-x86_64-gnu",
    ]
    for house in section.targets:
        names = _wheel_names(world, house.key)
        projects = {n.split("-")[0].lower() for n in names}
        assert projects == PURE | {"markupsafe", "bcrypt"}, house.key
        arch = house.target.arch
        for name in names:
            assert name.endswith("-none-any.whl") or name.endswith(f"_{arch}.whl"), (house, name)
        # each archive of that Python version and platform is served by its wheelhouse
        for member in house.artifacts:
            artifact = next(a for a in world.manifest.artifacts if a.member == member)
            assert artifact.version.startswith(house.python + ".")
            assert artifact.target.arch == arch


def test_every_wheel_runs_on_its_target(world: World) -> None:
    """x86_64: the tags the real interpreter supports (packaging.tags as pip vendors it, run by
    that interpreter); aarch64: the tag set computed for the cross target."""
    from packaging.utils import parse_wheel_filename

    section = world.manifest.wheelhouses
    assert section is not None
    for house in section.targets:
        if house.target.arch == "x86_64":
            prefix = PREFIXES[house.python]
            assert prefix is not None
            out = subprocess.run(
                [str(prefix / "bin" / "python3"), "-c",
                 "from pip._vendor.packaging.tags import sys_tags\n"
                 "print('\\n'.join(str(t) for t in sys_tags()))"],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            supported = set(out)
        else:
            target = WheelTarget.for_interpreter(ARM, house.python)
            supported = {str(t) for t in target.tags()}
        for member in house.wheels:
            record = section.wheel(member)
            tags = {str(t) for t in parse_wheel_filename(record.file_name)[3]}
            assert tags & supported, (house.key, record.file_name)
            assert set(record.tags) == tags


def test_shared_wheels_are_stored_once(world: World) -> None:
    section = world.manifest.wheelhouses
    assert section is not None
    with zipfile.ZipFile(world.bundle) as zf:
        names = zf.namelist()
        digests = [hashlib.sha256(zf.read(n)).hexdigest() for n in names if n.startswith("wheels/")]
    assert len(names) == len(set(names))
    assert len(digests) == len(set(digests)) == len(section.wheels)
    # 5 pure wheels (all 4 targets), bcrypt abi3 x 2 arches (2 targets each), markupsafe x 4
    assert len(section.wheels) == 5 + 2 + 4
    assert sum(len(t.wheels) for t in section.targets) == 4 * 7
    assert section.unshared_bytes > section.stored_bytes
    locks = [n for n in names if n.startswith("locks/")]
    assert len(locks) == 4
    assert "sharing saved" in world.bundle_stdout


def test_inspect_shows_each_wheelhouse_with_its_pins_and_the_savings(world: World) -> None:
    out = ok(cli(world.env, "inspect", str(world.bundle))).stdout
    assert "wheelhouses: 4 targets, 11 wheel files stored" in out
    assert "sharing saved" in out
    assert "cpython-3.12-linux-aarch64-gnu" in out and "requests==2.32.5" in out
    doc = json.loads(ok(cli(world.env, "inspect", "--json", str(world.bundle))).stdout)
    sizes = doc["wheelhouse_sizes"]
    assert sizes["saved_bytes"] == sizes["unshared_bytes"] - sizes["stored_bytes"] > 0
    assert {t["wheels"] for t in sizes["targets"]} == {7}
    verified = ok(cli(world.env, "verify", str(world.bundle), "--trusted-key", str(world.public)))
    assert "4 archives and 15 wheelhouse files verified" in verified.stdout  # 11 wheels, 4 locks


@pytest.mark.tool("unshare")
def test_install_venv_offline_imports_and_runs_every_package(world: World) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root for unshare -n")
    venv = world.root / "venvs" / "app"
    venv.parent.mkdir()
    installs = world.root / "installs"
    proc = ok(
        cli(
            world.env,
            "install",
            "--from",
            str(world.bundle),
            "--trusted-key",
            str(world.public),
            "--install-dir",
            str(installs),
            "--versions",
            "3.12",
            "--venv",
            str(venv),
            net=False,
        )
    )
    assert "venv" in proc.stdout and "7 wheels" in proc.stdout
    python = venv / "bin" / "python"
    code = (
        "import requests, urllib3, idna, certifi, charset_normalizer, markupsafe, bcrypt\n"
        "assert requests.__version__ == '2.32.5'\n"
        "assert str(markupsafe.escape('<a>')) == '&lt;a&gt;'\n"
        "h = bcrypt.hashpw(b'pw', bcrypt.gensalt(4)); assert bcrypt.checkpw(b'pw', h)\n"
        "assert idna.encode('bücher.de') == b'xn--bcher-kva.de'\n"
        "assert certifi.where().endswith('.pem')\n"
        "assert charset_normalizer.from_bytes('héllo wörld'.encode()).best().encoding\n"
        "assert urllib3.util.parse_url('http://a/b').host == 'a'\n"
        "import markupsafe._speedups\n"  # the compiled one, really
        "print(requests.__file__)\n"
    )
    run = subprocess.run(
        ["unshare", "-n", str(python), "-c", code], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(venv))
    check = subprocess.run(
        ["unshare", "-n", str(python), "-m", "pip", "check"], capture_output=True, text=True
    )
    assert check.returncode == 0 and "No broken requirements" in check.stdout, check.stdout
    # no trace of the staging directory, and the scripts point at the venv itself
    assert sorted(p.name for p in venv.parent.iterdir()) == ["app"]
    assert (venv / "bin" / "pip").read_text().startswith(f"#!{venv}/bin/python")
    assert f'VIRTUAL_ENV="{venv}"' in (venv / "bin" / "activate").read_text()
    # a second venv: the interpreter is already installed by pybundle, so it is used as is
    again = ok(
        cli(
            world.env,
            "install",
            "--from",
            str(world.bundle),
            "--trusted-key",
            str(world.public),
            "--install-dir",
            str(installs),
            "--versions",
            "3.12",
            "--venv",
            str(world.root / "venvs" / "two"),
            "--json",
            net=False,
        )
    )
    assert "already installed" in again.stderr
    doc = json.loads(again.stdout)  # one JSON document, the venv in it
    assert doc["installs"] == [] and doc["venv"]["wheels"] == 7
    assert doc["venv"]["path"] == str(world.root / "venvs" / "two")
    assert doc["venv"]["wheelhouse"] == "cpython-3.12-linux-x86_64-gnu"
    # an existing non-empty destination is refused and left alone
    refused = cli(
        world.env,
        "install",
        "--from",
        str(world.bundle),
        "--trusted-key",
        str(world.public),
        "--install-dir",
        str(installs),
        "--versions",
        "3.12",
        "--venv",
        str(venv),
    )
    assert refused.returncode == 8, refused.stderr
    assert "not empty" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_venv_with_several_interpreters_says_how_to_choose(world: World) -> None:
    proc = cli(
        world.env,
        "install",
        "--from",
        str(world.bundle),
        "--trusted-key",
        str(world.public),
        "--install-dir",
        str(world.root / "none"),
        "--venv",
        str(world.root / "v"),
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()
        == [
            "pybundle: error: --venv makes one environment, and 2 interpreters of the bundle run "
            "here (cpython 3.12.1, cpython 3.11.7): choose one with --versions"
        ]
        or "choose one with --versions" in proc.stderr
    )
    assert not (world.root / "none").exists() and not (world.root / "v").exists()


def test_wheels_export_works_with_plain_pip(world: World) -> None:
    out = world.root / "wheelhouse"
    proc = ok(
        cli(
            world.env,
            "wheels",
            "export",
            str(world.bundle),
            str(out),
            "--target",
            "cpython-3.11-linux-x86_64",
            "--trusted-key",
            str(world.public),
        )
    )
    assert "exported cpython-3.11-linux-x86_64-gnu: 7 wheels" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*_wheel_names(world, "cpython-3.11-linux-x86_64-gnu"), "lock.txt"]
    )
    prefix = PREFIXES["3.11"]
    assert prefix is not None
    venv = world.root / "plain-venv"
    subprocess.run([str(prefix / "bin" / "python3"), "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(out),
            "-r",
            str(out / "lock.txt"),
        ],
        capture_output=True,
        text=True,
        env=world.env,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import requests, markupsafe, bcrypt"],
        capture_output=True,
    )
    assert check.returncode == 0
    # several wheelhouses and no --target: the one for this host is ambiguous (two versions)
    again = cli(
        world.env,
        "wheels",
        "export",
        str(world.bundle),
        str(world.root / "w2"),
        "--trusted-key",
        str(world.public),
    )
    assert again.returncode == 2 and "--target" in again.stderr
    assert not (world.root / "w2").exists()


def test_a_tampered_wheel_is_refused_before_anything_is_installed(
    world: World, tmp_path: Path
) -> None:
    """A wheel's bytes changed inside the signed file (the manifest's signature still
    verifies): install --venv refuses before installing the interpreter or running pip."""
    bad = tmp_path / "bad.pybundle"
    shutil.copyfile(world.bundle, bad)
    with zipfile.ZipFile(bad) as zf:
        info = next(i for i in zf.infolist() if i.filename.startswith("wheels/requests-"))
    with open(bad, "r+b") as f:
        f.seek(info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    installs = tmp_path / "installs"
    proc = cli(
        world.env,
        "install",
        "--from",
        str(bad),
        "--trusted-key",
        str(world.public),
        "--install-dir",
        str(installs),
        "--versions",
        "3.12",
        "--venv",
        str(tmp_path / "v"),
    )
    assert proc.returncode == 5, proc.stderr
    assert "wheels/requests-2.32.5-py3-none-any.whl" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not installs.exists() or not any(installs.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pybundle"]
    assert cli(world.env, "verify", str(bad), "--trusted-key", str(world.public)).returncode == 5


def test_create_venv_checks_wheels_before_pip_runs(world: World, tmp_path: Path) -> None:
    """The install-side check itself: create_venv with a stand-in interpreter that records any
    run; a tampered wheel is refused before it (or pip) is ever started."""
    from pybundle.errors import HashMismatchError
    from pybundle.installer.venv import create_venv

    bad = tmp_path / "bad.pybundle"
    shutil.copyfile(world.bundle, bad)
    with zipfile.ZipFile(bad) as zf:
        info = next(
            i
            for i in zf.infolist()
            if i.filename.startswith("wheels/bcrypt-") and "x86_64" in i.filename
        )
    with open(bad, "r+b") as f:
        f.seek(info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 10)
        f.write(b"\x00\x01\x02")
    ran = tmp_path / "ran"
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    fake.chmod(0o755)
    key = world.key.public_key
    artifact = next(a for a in world.manifest.artifacts if a.target.arch == "x86_64")
    with pytest.raises(HashMismatchError, match="wheels/bcrypt-"):
        create_venv(bad, [key], artifact, fake, tmp_path / "venv")
    assert not ran.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pybundle", "python"]


def test_a_failed_venv_leaves_nothing(world: World, tmp_path: Path) -> None:
    from pybundle.errors import StorageError
    from pybundle.installer.venv import create_venv

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Error: venv exploded' >&2\nexit 1\n")
    fake.chmod(0o755)
    key = world.key.public_key
    artifact = next(a for a in world.manifest.artifacts if a.target.arch == "x86_64")
    dest = tmp_path / "venv"
    dest.mkdir()  # an empty directory is accepted, and stays as it was on failure
    with pytest.raises(StorageError, match="venv exploded"):
        create_venv(world.bundle, [key], artifact, fake, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["python", "venv"]
    assert list(dest.iterdir()) == []
    # missing parents are made for the venv, and removed again when it fails
    with pytest.raises(StorageError, match="venv exploded"):
        create_venv(world.bundle, [key], artifact, fake, tmp_path / "a" / "b" / "venv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["python", "venv"]


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, Path, Path]]:
    """A fast setup for the refusals: tiny 3.12 archives for x86_64 and aarch64, and a
    find-links directory without the aarch64 bcrypt wheel."""
    env = clean_env(tmp_path / "home")
    catalog = arm_catalog(tmp_path / "catalog", ("3.12.1",))
    arm_catalog(tmp_path / "catalog-x86", ("3.12.1",), "x86_64-unknown-linux-gnu")
    for p in (tmp_path / "catalog-x86").iterdir():
        if p.name != "SHA256SUMS":
            shutil.copy(p, catalog / p.name)
    sums = (tmp_path / "catalog" / "SHA256SUMS").read_text() + (
        tmp_path / "catalog-x86" / "SHA256SUMS"
    ).read_text()
    (catalog / "SHA256SUMS").write_text(sums)
    links = tmp_path / "links"
    links.mkdir()
    for wheel in WHEELS.glob("*.whl"):
        if not (wheel.name.startswith("bcrypt-") and "aarch64" in wheel.name):
            shutil.copy(wheel, links / wheel.name)
    key = generate_secret_key()
    secret = tmp_path / "k.key"
    secret.write_text(key.to_file_text())
    secret.chmod(0o600)
    yield env, catalog, links, secret


def _small_bundle(small: tuple[dict[str, str], Path, Path, Path], out: Path,
                  *extra: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env, catalog, links, secret = small
    return cli(
        env,
        "bundle",
        "--catalog",
        str(catalog),
        "--versions",
        "3.12",
        "--platform",
        "linux-x86_64,linux-aarch64",
        "--no-index",
        "--find-links",
        str(links),
        "--cache-dir",
        str(out.parent / "cache"),
        "--sign-key",
        str(secret),
        "-o",
        str(out),
        *extra,
    )


def test_a_requirement_without_a_wheel_for_a_target_fails_with_exit_3(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app.pybundle"
    proc = _small_bundle(small, out, "--with", "bcrypt==5.0.0", "--with", "idna")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "pybundle: error: no wheel of bcrypt==5.0.0 for cpython-3.12-linux-aarch64-gnu "
    )
    assert "--allow-missing-wheels" in lines[0]
    assert not out.exists()


def test_allow_missing_wheels_records_what_is_missing_where(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app.pybundle"
    proc = _small_bundle(
        small, out, "--with", "bcrypt==5.0.0", "--with", "idna", "--allow-missing-wheels"
    )
    assert proc.returncode == 0, proc.stderr
    assert "no wheel of bcrypt==5.0.0 for cpython-3.12-linux-aarch64-gnu" in proc.stderr
    with zipfile.ZipFile(out) as zf:
        manifest = Manifest.from_bytes(zf.read("pybundle.json"), str(out))
        arm_lock = zf.read("locks/cpython-3.12-linux-aarch64-gnu.txt").decode()
    section = manifest.wheelhouses
    assert section is not None
    by_key = {t.key: t for t in section.targets}
    arm, x86 = by_key["cpython-3.12-linux-aarch64-gnu"], by_key["cpython-3.12-linux-x86_64-gnu"]
    assert [m.requirement for m in arm.missing] == ["bcrypt==5.0.0"]
    assert x86.missing == ()
    assert len(arm.wheels) == 1 and len(x86.wheels) == 2
    assert "idna==3.20" in arm_lock and "bcrypt" not in arm_lock
    env = small[0]
    shown = ok(cli(env, "inspect", str(out))).stdout
    assert "missing: bcrypt==5.0.0" in shown


def test_dry_run_shows_per_target_counts_bytes_and_savings(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    proc = _small_bundle(small, tmp_path / "x.pybundle", "--with", "requests", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "plan: 2 archives" in proc.stdout
    assert "wheelhouses: 2 targets, 5 wheel files stored" in proc.stdout
    assert "sharing saved" in proc.stdout
    assert not (tmp_path / "x.pybundle").exists()
    doc = json.loads(
        _small_bundle(small, tmp_path / "x.pybundle", "--with", "requests", "--json").stdout
    )
    assert [t["wheels"] for t in doc["wheelhouses"]["targets"]] == [5, 5]


def test_a_uv_users_find_links_and_index_variables_reach_pip(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    env, catalog, links, secret = small
    args = ["bundle", "--catalog", str(catalog), "--versions", "3.12", "--platform", "linux-x86_64",
            "--with", "idna", "--no-index", "--cache-dir", str(tmp_path / "cache"),
            "--sign-key", str(secret), "-o", str(tmp_path / "x.pybundle"), "--dry-run"]  # fmt: skip
    # no wheel source at all: pip finds nothing
    assert cli(env, *args).returncode == 3
    # UV_FIND_LINKS (comma-separated, as uv reads it) is where the wheels are
    found = cli({**env, "UV_FIND_LINKS": f"{tmp_path / 'nothing'},{links}"}, *args)
    assert found.returncode == 0, found.stderr
    assert "wheelhouses: 1 target, 1 wheel file stored" in found.stdout
    # pip's own variable wins over uv's: PIP_FIND_LINKS pointing nowhere is what pip gets
    hidden = cli(
        {**env, "UV_FIND_LINKS": str(links), "PIP_FIND_LINKS": str(tmp_path / "nothing")}, *args
    )
    assert hidden.returncode == 3, hidden.stderr


def test_uv_index_variables_become_pip_options_unless_pip_or_the_command_line_sets_them() -> None:
    from pybundle.bundler.wheels import uv_index_options

    uv = {
        "UV_DEFAULT_INDEX": "https://mirror.example/simple",
        "UV_INDEX": "internal=https://pkgs.example/simple https://other.example/simple?a=b",
        "UV_EXTRA_INDEX_URL": "https://extra.example/simple",
        "UV_FIND_LINKS": "/srv/wheels, /opt/more",
    }
    assert uv_index_options(uv) == [
        "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "https://pkgs.example/simple",
        "--extra-index-url", "https://other.example/simple?a=b",
        "--extra-index-url", "https://extra.example/simple",
        "--find-links", "/srv/wheels", "--find-links", "/opt/more",
    ]  # fmt: skip
    assert uv_index_options({"UV_INDEX_URL": "https://old.example/simple"}) == [
        "--index-url",
        "https://old.example/simple",
    ]
    pip_set = {**uv, "PIP_INDEX_URL": "https://pip.example/simple", "PIP_FIND_LINKS": "/w"}
    assert uv_index_options(pip_set, ["--extra-index-url", "https://cli.example/simple"]) == []
    assert uv_index_options({}) == []


def test_a_bundle_without_requirements_is_as_before(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "plain.pybundle"
    assert _small_bundle(small, out).returncode == 2  # index options need -r/--with
    env, catalog, _, secret = small
    ok(
        cli(
            env,
            "bundle",
            "--catalog",
            str(catalog),
            "--versions",
            "3.12",
            "--platform",
            "linux-x86_64",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--sign-key",
            str(secret),
            "-o",
            str(out),
        )
    )
    with zipfile.ZipFile(out) as zf:
        doc = json.loads(zf.read("pybundle.json"))
        assert not [n for n in zf.namelist() if n.startswith(("wheels/", "locks/"))]
    assert doc["schema_version"] == 3 and "wheelhouses" not in doc  # v3: file indexes


def test_a_requirements_file_that_does_not_exist_is_a_usage_error(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    proc = _small_bundle(small, tmp_path / "x.pybundle", "-r", str(tmp_path / "nope.txt"))
    assert proc.returncode == 2
    assert "nope.txt: no such requirements file" in proc.stderr


def test_a_v1_bundle_of_the_earlier_code_still_installs(tmp_path: Path) -> None:
    """tests/data/v1: written before wheelhouses existed (see tests/data/README.md)."""
    env = clean_env(tmp_path / "home")
    bundle, pub = DATA / "v1" / "v1.pybundle", DATA / "v1" / "v1.pub"
    with zipfile.ZipFile(bundle) as zf:
        assert json.loads(zf.read("pybundle.json"))["schema_version"] == 1
    refused = cli(
        env,
        "install",
        str(bundle),
        "--trusted-key",
        str(pub),
        "--install-dir",
        str(tmp_path / "i"),
        "--venv",
        str(tmp_path / "venv"),
    )
    assert refused.returncode == 2 and "carries no wheels" in refused.stderr
    assert not (tmp_path / "i").exists() and not (tmp_path / "venv").exists()
    ok(cli(env, "verify", str(bundle), "--trusted-key", str(pub)))
    ok(
        cli(
            env,
            "install",
            str(bundle),
            "--trusted-key",
            str(pub),
            "--install-dir",
            str(tmp_path / "i"),
            "--no-bin",
        )
    )
    assert (tmp_path / "i" / "cpython-3.12.1-linux-x86_64-gnu" / "bin" / "python3.12").exists()


def test_allow_missing_wheels_drops_a_line_of_a_requirements_file(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    nested = tmp_path / "reqs" / "more.txt"
    nested.parent.mkdir()
    nested.write_text("certifi\n")
    top = tmp_path / "reqs" / "requirements.txt"
    top.write_text(
        "# app\nbcrypt==5.0.0 ; python_version >= '3.8'  # compiled\nidna\n-r more.txt\n"
    )
    out = tmp_path / "app.pybundle"
    proc = _small_bundle(small, out, "-r", str(top), "--allow-missing-wheels")
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as zf:
        manifest = Manifest.from_bytes(zf.read("pybundle.json"), str(out))
    section = manifest.wheelhouses
    assert section is not None
    names = {t.key: sorted(section.wheel(m).file_name.split("-")[0] for m in t.wheels)
             for t in section.targets}  # fmt: skip
    assert names == {
        "cpython-3.12-linux-aarch64-gnu": ["certifi", "idna"],
        "cpython-3.12-linux-x86_64-gnu": ["bcrypt", "certifi", "idna"],
    }
    assert top.read_text().startswith("# app\nbcrypt")  # the user's file is never rewritten


def test_a_dependency_without_a_wheel_fails_even_when_missing_wheels_are_allowed(
    small: tuple[dict[str, str], Path, Path, Path], tmp_path: Path
) -> None:
    (small[2] / "urllib3-2.8.0-py3-none-any.whl").unlink()
    proc = _small_bundle(
        small, tmp_path / "app.pybundle", "--with", "requests", "--allow-missing-wheels"
    )
    assert proc.returncode == 3, proc.stderr
    assert "no wheel of urllib3" in proc.stderr and "it is a dependency" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


MAC_KEY, WIN_KEY, LINUX_KEY = (
    "cpython-3.12-macos-aarch64-none",
    "cpython-3.12-windows-x86_64-none",
    "cpython-3.12-linux-x86_64-gnu",
)


@pytest.fixture(scope="module")
def cross(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A bundle of tiny 3.12 archives for macos-aarch64, windows-x86_64 and linux-x86_64 (a
    directory catalog; never run) with the test set's wheelhouses, resolved from
    tests/data/wheels."""
    root = tmp_path_factory.mktemp("cross")
    env = clean_env(root / "home")
    key = generate_secret_key()
    secret, public = root / "ops.key", root / "ops.pub"
    secret.write_text(key.to_file_text())
    secret.chmod(0o600)
    public.write_text(key.public_key.to_file_text())
    catalog = root / "catalog"
    sums = ""
    for triple in ("aarch64-apple-darwin", "x86_64-pc-windows-msvc", "x86_64-unknown-linux-gnu"):
        arm_catalog(root / triple, ("3.12.1",), triple)
        for p in (root / triple).iterdir():
            if p.name == "SHA256SUMS":
                sums += p.read_text()
            else:
                catalog.mkdir(exist_ok=True)
                shutil.copy(p, catalog / p.name)
    (catalog / "SHA256SUMS").write_text(sums)
    requirements = root / "requirements.txt"
    requirements.write_text("requests==2.32.5\nmarkupsafe==3.0.3\n")
    bundle = root / "cross.pybundle"
    proc = ok(
        cli(
            env,
            "bundle",
            "--catalog",
            str(catalog),
            "--versions",
            "3.12",
            "--platform",
            "macos-aarch64,windows-x86_64,linux-x86_64",
            "-r",
            str(requirements),
            "--with",
            "bcrypt==5.0.0",
            "--no-index",
            "--find-links",
            str(WHEELS),
            "--cache-dir",
            str(root / "cache"),
            "--sign-key",
            str(secret),
            "-o",
            str(bundle),
        )
    )
    with zipfile.ZipFile(bundle) as zf:
        manifest = Manifest.from_bytes(zf.read("pybundle.json"), str(bundle))
    yield World(
        root, env, secret, public, catalog, requirements, bundle, manifest, proc.stdout, key
    )


def test_macos_and_windows_targets_get_wheels_their_tags_support(cross: World) -> None:
    """Every wheel of each wheelhouse carries a tag the target supports (the tag sets
    computed for it), and none of another platform's: the Windows one has win_amd64 and
    pure wheels only, the macOS one arm64 or universal2 and pure ones."""
    from packaging.utils import parse_wheel_filename

    section = cross.manifest.wheelhouses
    assert section is not None
    assert [t.key for t in section.targets] == [LINUX_KEY, MAC_KEY, WIN_KEY]
    for house in section.targets:
        wheel_target = WheelTarget.for_interpreter(house.target, house.python)
        names = _wheel_names(cross, house.key)
        assert {n.split("-")[0].lower() for n in names} == PURE | {"markupsafe", "bcrypt"}
        for name in names:
            assert wheel_target.supports(parse_wheel_filename(name)[3]), (house.key, name)
        platforms = {n.rsplit("-", 1)[1].removesuffix(".whl") for n in names}
        if house.key == WIN_KEY:
            assert platforms == {"any", "win_amd64"}
        elif house.key == MAC_KEY:
            assert platforms == {"any", "macosx_11_0_arm64", "macosx_10_12_universal2"}
            for name in names:  # and nothing an arm64 Mac cannot load
                assert not name.endswith(("_x86_64.whl", "win_amd64.whl"))
        else:
            assert all(p == "any" or ("linux" in p and p.endswith("_x86_64")) for p in platforms)
        artifact = next(a for a in cross.manifest.artifacts if a.member == house.artifacts[0])
        assert (artifact.target.os, artifact.target.arch) == (house.target.os, house.target.arch)


def test_pure_wheels_are_shared_by_linux_macos_and_windows(cross: World) -> None:
    section = cross.manifest.wheelhouses
    assert section is not None
    stored = [w.file_name for w in section.wheels]
    assert len(stored) == len(set(stored)) == 5 + 2 * 3  # pure once, compiled per platform
    pure = [w.member for w in section.wheels if w.file_name.endswith("-py3-none-any.whl")]
    assert len(pure) == 5
    for house in section.targets:
        assert set(pure) <= set(house.wheels)
    assert section.unshared_bytes - section.stored_bytes == 2 * sum(
        section.wheel(m).size for m in pure
    )
    with zipfile.ZipFile(cross.bundle) as zf:
        names = zf.namelist()
    assert len([n for n in names if n.startswith("wheels/")]) == 11
    assert sorted(n for n in names if n.startswith("locks/")) == [
        f"locks/{k}.txt" for k in (LINUX_KEY, MAC_KEY, WIN_KEY)
    ]


def test_inspect_shows_the_macos_and_windows_wheelhouses(cross: World) -> None:
    out = ok(cli(cross.env, "inspect", str(cross.bundle))).stdout
    assert "wheelhouses: 3 targets, 11 wheel files stored" in out
    for key in (MAC_KEY, WIN_KEY):
        line = next(x for x in out.splitlines() if x.strip().startswith(key))
        assert "7 wheels" in line
    assert "bcrypt==5.0.0" in out and "markupsafe==3.0.3" in out
    doc = json.loads(ok(cli(cross.env, "inspect", str(cross.bundle), "--json")).stdout)
    by_key = {t["key"]: t for t in doc["wheelhouse_sizes"]["targets"]}
    assert by_key[WIN_KEY]["wheels"] == by_key[MAC_KEY]["wheels"] == 7


@pytest.mark.parametrize(("target", "key"), [("cpython-3.12-macos-aarch64", MAC_KEY),
                                             (WIN_KEY, WIN_KEY)])  # fmt: skip
def test_wheels_export_writes_a_macos_or_windows_wheelhouse(
    cross: World, tmp_path: Path, target: str, key: str
) -> None:
    out = tmp_path / "wheelhouse"
    proc = ok(
        cli(cross.env, "wheels", "export", str(cross.bundle), str(out), "--target", target,
            "--trusted-key", str(cross.public))
    )  # fmt: skip
    assert f"exported {key}: 7 wheels" in proc.stdout
    names = _wheel_names(cross, key)
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "lock.txt"])
    lock = (out / "lock.txt").read_text()
    assert lock.startswith(f"# pybundle wheelhouse {key}")
    for name in names:
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert f"--hash=sha256:{digest}" in lock


def test_wheels_are_resolved_for_cpython_only() -> None:
    from pybundle.bundler.wheelhouse import plan_wheelhouses
    from pybundle.errors import UsageError

    with pytest.raises(UsageError, match=r"CPython only, and the bundle holds pypy 3\.10\.14"):
        plan_wheelhouses([(X86, "3.10.14", "pypy", "default", "archives/pypy.tar.bz2")])
    plans = plan_wheelhouses(
        [
            (Target("darwin", "aarch64", "none"), "3.12.1", "cpython", "default", "a"),
            (Target("windows", "x86_64", "none"), "3.13.1", "cpython", "freethreaded", "b"),
        ]
    )
    assert [p.key for p in plans] == [MAC_KEY, "cpython-3.13t-windows-x86_64-none"]
    assert plans[1].wheel_target.abis == ("cp313t", "none")


def test_wheels_export_works_with_uv_offline(world: World, tmp_path: Path) -> None:
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.fail(f"{uv} is missing: `pip install uv==0.13.8` (the dev extra installs it)")
    out = tmp_path / "wheelhouse"
    ok(
        cli(
            world.env,
            "wheels",
            "export",
            str(world.bundle),
            str(out),
            "--target",
            "cpython-3.12-linux-x86_64-gnu",
            "--trusted-key",
            str(world.public),
        )
    )
    prefix = PREFIXES["3.12"]
    assert prefix is not None
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "UV_NO_CONFIG": "1",
           "UV_CACHE_DIR": str(tmp_path / "uv-cache")}  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([str(prefix / "bin" / "python3"), "-m", "venv", "--without-pip", str(venv)],
                   check=True)  # fmt: skip
    proc = subprocess.run(
        [
            str(uv),
            "pip",
            "install",
            "--offline",
            "--no-index",
            "--find-links",
            str(out),
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(out / "lock.txt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import requests, markupsafe, bcrypt"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr


def test_each_wheelhouse_gets_the_dependencies_its_markers_select(tmp_path: Path) -> None:
    """``bundle --with app`` for 3.10 and 3.12 x linux x86_64/aarch64, macOS arm64 and
    Windows x64 (tiny archives, a directory catalog): ``app``'s dependencies behind
    ``python_version``, ``python_full_version``, ``sys_platform``, ``platform_system`` and
    ``platform_machine`` markers are those of each target, not of this machine (synthetic
    pure wheels, pip offline)."""
    from conftest import make_pure_wheel

    env = clean_env(tmp_path / "home")
    key = generate_secret_key()
    secret = tmp_path / "ops.key"
    secret.write_text(key.to_file_text())
    secret.chmod(0o600)
    links = tmp_path / "links"
    links.mkdir()
    make_pure_wheel(links, "app", "1.0", (
        'oldonly; python_version < "3.11"',
        'winonly; sys_platform == "win32"',
        'armonly; platform_machine == "aarch64"',
        'notwin; sys_platform != "win32"',
        'maconly; platform_system == "Darwin"',
        'newpatch; python_full_version >= "3.12.1"',
    ))  # fmt: skip
    for name in ("oldonly", "winonly", "armonly", "notwin", "maconly", "newpatch"):
        make_pure_wheel(links, name, "1.0")
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    sums = ""
    for triple in ("aarch64-apple-darwin", "x86_64-pc-windows-msvc", "x86_64-unknown-linux-gnu",
                   "aarch64-unknown-linux-gnu"):  # fmt: skip
        arm_catalog(tmp_path / triple, ("3.10.13", "3.12.1"), triple)
        for p in (tmp_path / triple).iterdir():
            if p.name == "SHA256SUMS":
                sums += p.read_text()
            else:
                shutil.copy(p, catalog / p.name)
    (catalog / "SHA256SUMS").write_text(sums)
    out = tmp_path / "markers.pybundle"
    ok(
        cli(
            env, "bundle", "--catalog", str(catalog), "--versions", "3.10,3.12",
            "--platform", "linux-x86_64,linux-aarch64,macos-aarch64,windows-x86_64",
            "--with", "app", "--no-index", "--find-links", str(links),
            "--cache-dir", str(tmp_path / "cache"), "--sign-key", str(secret), "-o", str(out),
        )
    )  # fmt: skip
    with zipfile.ZipFile(out) as zf:
        manifest = Manifest.from_bytes(zf.read("pybundle.json"), str(out))
    section = manifest.wheelhouses
    assert section is not None
    got = {
        t.key: {section.wheel(m).file_name.split("-")[0] for m in t.wheels} for t in section.targets
    }
    expected = {
        "linux-x86_64-gnu": {"notwin"},
        "linux-aarch64-gnu": {"notwin", "armonly"},
        "macos-aarch64-none": {"notwin", "maconly"},
        "windows-x86_64-none": {"winonly"},
    }
    assert got == {
        **{f"cpython-3.10-{k}": {"app", "oldonly", *v} for k, v in expected.items()},
        **{f"cpython-3.12-{k}": {"app", "newpatch", *v} for k, v in expected.items()},
    }
