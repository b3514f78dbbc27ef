"""The main job end to end, through the CLI in subprocesses, on real interpreters:
keygen -> bundle (catalog + mirror on loopback) -> verify -> inspect --json -> install, then
each installed interpreter runs with its original pyenv prefix hidden under a tmpfs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import Mirror, run_cli
from pybundle.installer.receipts import RECEIPT_NAME, read_receipt, scan_tree

pytestmark = pytest.mark.slow

CHECK_SCRIPT = r"""
import json, sqlite3, ssl, sys, sysconfig
maps = open("/proc/self/maps").read().splitlines()
libpython = sorted({l.split()[-1] for l in maps if "libpython" in l and "/" in l})
print(json.dumps({
    "prefix": sys.prefix,
    "LIBDIR": sysconfig.get_config_var("LIBDIR"),
    "INCLUDEPY": sysconfig.get_config_var("INCLUDEPY"),
    "config_prefix": sysconfig.get_config_var("prefix"),
    "libpython": libpython,
    "ssl": ssl.OPENSSL_VERSION,
}))
"""


def build_wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel with a console script (PEP 427 layout)."""
    name = "pybundle_probe-1.0-py3-none-any.whl"
    files = {
        "pybundle_probe/__init__.py": b"def main():\n    print('probe ok')\n",
        "pybundle_probe-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: pybundle-probe\nVersion: 1.0\n"
        ),
        "pybundle_probe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: pybundle-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
        "pybundle_probe-1.0.dist-info/entry_points.txt": (
            b"[console_scripts]\npybundle-probe = pybundle_probe:main\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("pybundle_probe-1.0.dist-info/RECORD,,")
    wheel = directory / name
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr("pybundle_probe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def text_files_containing(root: Path, needle: bytes) -> list[str]:
    """Files under root (no .pyc, no binary files, not pybundle's receipt, which records where
    the interpreter came from) whose bytes contain ``needle``."""
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink() or name.endswith(".pyc") or name == RECEIPT_NAME:
                continue
            data = path.read_bytes()
            if b"\0" in data:
                continue
            if needle in data:
                hits.append(str(path.relative_to(root)))
    return hits


def run_hidden(old_prefix: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace where ``old_prefix`` is an empty tmpfs."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-ec", f"mount -t tmpfs tmpfs '{old_prefix}'\n{script}"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_bundle_verify_inspect_install_relocated(mirror: Mirror, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test needs root and unshare(1) to hide the original prefix")
    keys = tmp_path / "keys"
    # keygen encrypts the secret key (minisign's scrypt); bundle reads the password from the
    # environment as automation would
    password = {"PYBUNDLE_KEY_PASSWORD": "ops password"}
    run_cli(
        "keygen",
        "--secret-key",
        str(keys / "ops.key"),
        "--public-key",
        str(keys / "ops.pub"),
        env=password,
        check=True,
    )
    assert (keys / "ops.key").stat().st_mode & 0o777 == 0o600
    assert (keys / "ops.key").read_text().startswith("untrusted comment: minisign encrypted")
    minors = ",".join(f"{a.info.version.major}.{a.info.version.minor}" for a in mirror.archives)
    bundle = tmp_path / "py.pybundle"
    proc = run_cli(
        "bundle",
        "--versions",
        minors,
        "--platform",
        "linux-x86_64",
        "--catalog",
        mirror.catalog_url,
        "--mirror",
        mirror.mirror_url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--sign-key",
        str(keys / "ops.key"),
        "--expires-in",
        "30d",
        "-o",
        str(bundle),
        env=password,
        check=True,
    )
    assert f"{len(mirror.archives)} downloads, 0 from cache" in proc.stdout
    cached = sorted(p.name for p in (tmp_path / "cache" / "archives").iterdir())
    assert all(not n.startswith(".") for n in cached)
    assert [n.split("-", 1)[0] for n in cached] == sorted(
        a.artifact.sha256 for a in mirror.archives
    )

    # A second bundle comes from the cache alone; an existing output is kept without --force.
    again = run_cli(
        "bundle",
        "--versions",
        minors,
        "--catalog",
        mirror.catalog_url,
        "--mirror",
        mirror.mirror_url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "-o",
        str(bundle),
    )
    assert again.returncode == 8

    pub = str(keys / "ops.pub")
    run_cli("verify", str(bundle), "--trusted-key", pub, check=True)
    inspected = json.loads(run_cli("inspect", str(bundle), "--json", check=True).stdout)
    assert sorted(a["version"] for a in inspected["artifacts"]) == sorted(
        str(a.info.version) for a in mirror.archives
    )
    assert inspected["expires"] > inspected["created"]
    by_sha = {a.artifact.sha256: a.artifact for a in mirror.archives}
    for art in inspected["artifacts"]:
        assert art["source"]["url"].startswith(
            "https://github.com/astral-sh/python-build-standalone/releases/download/"
        )
        # the decompression budget is measured at bundle time
        assert art["unpacked_size"] == by_sha[art["sha256"]].unpacked_size
        assert art["file_count"] == by_sha[art["sha256"]].file_count

    installs = tmp_path / "installs"
    proc = run_cli(
        "install",
        "--from",
        str(bundle),
        "--trusted-key",
        pub,
        "--install-dir",
        str(installs),
        check=True,
    )
    wheel = build_wheel(tmp_path)
    for archive in mirror.archives:
        version = archive.info.version
        dest = installs / f"cpython-{version}-linux-x86_64-gnu"
        assert str(dest) in proc.stdout
        old = str(archive.info.prefix)
        # the receipt lists the relocated tree exactly (records from extraction, re-hashed
        # where relocation rewrote a file)
        receipt = read_receipt(dest)
        assert receipt is not None and receipt.prefix == str(dest)
        assert list(receipt.files) == scan_tree(dest)
        exe = dest / "bin" / f"python{version.major}.{version.minor}"
        script = f"""
'{exe}' -I -c '{CHECK_SCRIPT}'
'{exe}'-config --prefix
'{exe}' -m pip install --no-index --disable-pip-version-check --no-cache-dir -q '{wheel}'
'{dest}/bin/pybundle-probe'
"""
        result = run_hidden(old, script)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        info = json.loads(lines[0])
        for key in ("prefix", "LIBDIR", "INCLUDEPY", "config_prefix"):
            assert info[key].startswith(str(dest)), (key, info[key])
        assert info["libpython"] and all(p.startswith(str(dest)) for p in info["libpython"])
        assert lines[1] == str(dest)
        assert lines[-1] == "probe ok"
        assert text_files_containing(dest, old.encode()) == []
