"""Install layouts with the real neighbours, on a real pyenv-built interpreter: uv 0.13.8
(``.venv/bin/uv``) treats a ``--layout uv`` install as its own (list, find, venv, uninstall)
and waits for pybundle's hold on its lock; pyenv (``PYENV_ROOT`` in a temp dir) lists and runs
a ``--layout pyenv`` install. Then ``relocate`` and ``check`` on a real interpreter with every
old prefix hidden (``unshare -m`` + tmpfs), and what a plain ``mv`` still needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_end_to_end import build_wheel

from conftest import RealArchive, run_cli
from pybundle.bundler.pack import write_bundle
from pybundle.installer.lifecycle import locked_for
from pybundle.signing import SecretKey

pytestmark = pytest.mark.slow

UV = Path(sys.executable).parent / "uv"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
"""PATH for uv runs: without pyenv's shims, so uv sees only what it manages."""


@pytest.fixture(scope="module")
def real(
    real_archives: list[RealArchive], signing_key: SecretKey, tmp_path_factory
) -> tuple[Path, Path, RealArchive]:  # type: ignore[no-untyped-def]
    """(bundle, public key, archive): the newest real interpreter, signed."""
    archive = real_archives[-1]
    out = tmp_path_factory.mktemp("layouts")
    bundle = out / "real.pybundle"
    write_bundle(bundle, [(archive.artifact, archive.path)], secret_key=signing_key)
    pub = out / "test.pub"
    pub.write_text(signing_key.public_key.to_file_text())
    return bundle, pub, archive


def install(bundle: Path, pub: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli("install", "--from", str(bundle), "--trusted-key", str(pub), *extra, env=env)


def uv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UV), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": CLEAN_PATH, **env},
        timeout=300,
    )


def test_uv_layout_is_uvs_own(real, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, pub, archive = real
    v = archive.info.version
    minor = f"{v.major}.{v.minor}"
    uv_dir = tmp_path / "uv-python"
    env = {"UV_PYTHON_INSTALL_DIR": str(uv_dir)}
    proc = install(bundle, pub, "--layout", "uv", "--no-bin", env=env)
    assert proc.returncode == 0, proc.stderr
    name = archive.artifact.install_name
    dest = uv_dir / name
    assert f"-> {dest}" in proc.stdout
    minor_link = uv_dir / f"cpython-{minor}-linux-x86_64-gnu"
    assert os.readlink(minor_link) == str(dest)
    assert (dest / "BUILD").read_text() == archive.artifact.build
    assert "managed by uv" in (dest / f"lib/python{minor}/EXTERNALLY-MANAGED").read_text()
    assert sorted(p.name for p in uv_dir.iterdir()) == sorted(
        [".gitignore", ".lock", ".temp", minor_link.name, name]
    )

    listed = uv("python", "list", "--only-installed", "--managed-python", "--offline", env=env)
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout, listed.stdout
    found = uv("python", "find", minor, "--managed-python", "--offline", env=env)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(uv_dir)), found.stdout
    venv = tmp_path / "venv"
    made = uv("venv", "-p", minor, "--offline", "--managed-python", str(venv), env=env)
    assert made.returncode == 0, made.stderr
    out = subprocess.run(
        [str(venv / "bin/python"), "-c", "import sys, ssl; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert os.path.realpath(out.stdout.strip()) == str(dest)
    # uv used it and changed nothing pybundle recorded
    check = run_cli("check", str(dest), env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = json.loads(run_cli("list", "--json", env=env, check=True).stdout)
    assert [(i["path"], i["layout"], i["links"]) for i in listed] == [
        (str(dest), "uv", [str(minor_link)])
    ]

    # uv waits while pybundle holds its lock, then uninstalls pybundle's install
    with locked_for("uv", uv_dir):
        waiting = subprocess.Popen(
            [str(UV), "python", "uninstall", minor, "--offline"],
            env={**os.environ, "PATH": CLEAN_PATH, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)
        assert waiting.poll() is None, waiting.communicate()
        assert dest.exists()
    _out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert not dest.exists() and not os.path.lexists(minor_link)
    assert run_cli("list", env=env, check=True).stdout.strip() == (
        "no interpreters installed by pybundle"
    )

    # and pybundle's uninstall leaves uv's directory as uv expects it
    assert install(bundle, pub, "--layout", "uv", "--no-bin", env=env).returncode == 0
    removed = run_cli("uninstall", minor, env=env, check=True)
    assert str(minor_link) in removed.stdout
    assert sorted(p.name for p in uv_dir.iterdir()) == [".gitignore", ".lock", ".temp"]
    listed = uv("python", "list", "--only-installed", "--managed-python", "--offline", env=env)
    assert name not in listed.stdout


@pytest.mark.tool("pyenv")
def test_pyenv_layout_is_listed_and_run_by_pyenv(real, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, pub, archive = real
    version = str(archive.info.version)
    root = Path(os.environ["PYENV_ROOT"])
    assert str(root).startswith(str(tmp_path))  # never the machine's own pyenv root
    proc = install(bundle, pub, "--layout", "pyenv", "--no-bin")
    assert proc.returncode == 0, proc.stderr
    dest = root / "versions" / version
    assert f"-> {dest}" in proc.stdout
    proc = install(bundle, pub, "--layout", "pyenv", "--pyenv-name", "offline-py", "--no-bin")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(root / "versions")) == sorted([version, "offline-py"])

    listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {version, "offline-py"}
    minor = ".".join(version.split(".")[:2])
    script = (
        'eval "$(pyenv init -)"\n'
        f"pyenv shell {version}\n"
        f'python{minor} -c "import sys, ssl, sqlite3; print(sys.prefix)"\n'
        "pyenv shell offline-py\n"
        'python -c "import sys; print(sys.prefix)"\n'
    )
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(dest), str(root / "versions" / "offline-py")]

    assert run_cli("uninstall", str(dest), check=True).returncode == 0
    assert os.listdir(root / "versions") == ["offline-py"]
    bare = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True)
    assert version not in bare.stdout.split()


def hidden(old: list[str], script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a private mount namespace where each path in ``old`` is an empty
    tmpfs (each must exist as a directory)."""
    mounts = "".join(f"mount -t tmpfs tmpfs '{p}'\n" for p in old)
    return subprocess.run(
        ["unshare", "-m", "sh", "-ec", mounts + script],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.tool("unshare", "pkg-config")
def test_relocate_and_check_real_interpreter_with_old_prefixes_hidden(real, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.fail("this test needs root for unshare -m and mount")
    bundle, pub, archive = real
    v = archive.info.version
    minor = f"{v.major}.{v.minor}"
    installs = tmp_path / "installs"
    proc = install(bundle, pub, "--install-dir", str(installs), "--default")
    assert proc.returncode == 0, proc.stderr
    old = installs / archive.artifact.install_name
    exe = f"python{minor}"
    # a package with a console script, installed by the user after the install
    wheel = build_wheel(tmp_path)
    pip = subprocess.run(
        [str(old / "bin" / exe), "-m", "pip", "install", "--no-index", "-q",
         "--disable-pip-version-check", "--no-cache-dir", str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    assert (old / "bin/pybundle-probe").read_text().startswith(f"#!{old}/bin/")

    new = tmp_path / "elsewhere" / "python"
    proc = run_cli("relocate", str(old), "--to", str(new), check=True)
    assert f"relocated {old} -> {new}" in proc.stdout
    assert not old.exists()
    bin_dir = Path(os.environ["PYBUNDLE_BIN_DIR"])
    assert os.readlink(bin_dir / "python3") == str(new / "bin" / exe)

    old.mkdir(parents=True)  # a mount point for the tmpfs that hides it
    probe = (
        "import sysconfig, ssl, sqlite3, ctypes; "
        'print(sysconfig.get_config_var("prefix")); print(sysconfig.get_config_var("LIBDIR"))'
    )
    script = f"""
'{new}/bin/{exe}' -c '{probe}'
'{new}/bin/{exe}-config' --prefix
PKG_CONFIG_PATH='{new}/lib/pkgconfig' pkg-config --variable=prefix python-{minor}
'{new}/bin/pip3' --version
'{new}/bin/pybundle-probe'
'{bin_dir}/python3' -c 'import sys; print(sys.prefix)'
"""
    result = hidden([str(archive.info.prefix), str(old)], script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(new) and lines[1] == f"{new}/lib"
    assert lines[2] == str(new) and lines[3] == str(new)
    assert lines[4].startswith("pip ") and f"{new}/lib" in lines[4]
    assert lines[5] == "probe ok" and lines[6] == str(new)
    os.rmdir(old)

    # check: what pip added is reported as added; nothing pybundle installed changed
    proc = run_cli("check", str(new), "--json")
    assert proc.returncode == 10, proc.stderr
    [report] = json.loads(proc.stdout)
    assert report["modified"] == 0 and report["removed"] == 0, report["changes"]
    added = {c["path"] for c in report["changes"]}
    assert "bin/pybundle-probe" in added
    assert all("pybundle_probe" in p or p == "bin/pybundle-probe" for p in added), added

    # a plain mv: the interpreter, pip3 and console scripts made relative keep working;
    # sysconfig keeps the old prefix until `pybundle relocate OLD NEW`
    moved = tmp_path / "moved"
    os.rename(new, moved)
    new.mkdir()
    script = f"""
'{moved}/bin/{exe}' -c 'import sysconfig, ssl; print(sysconfig.get_config_var("prefix"))'
'{moved}/bin/pip3' --version
'{moved}/bin/{exe}-config' --prefix
"""
    result = hidden([str(archive.info.prefix), str(new)], script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(new)  # stale: needs relocate
    assert f"{moved}/lib" in lines[1] and lines[2] == str(moved)
    os.rmdir(new)
    proc = run_cli("relocate", str(new), str(moved), check=True)
    result = hidden(
        [str(archive.info.prefix)],
        f"'{moved}/bin/{exe}' -c 'import sysconfig; print(sysconfig.get_config_var(\"prefix\"))'",
    )
    assert result.stdout.strip() == str(moved), result.stderr
    assert os.readlink(bin_dir / exe) == str(moved / "bin" / exe)
    shutil.rmtree(moved)
