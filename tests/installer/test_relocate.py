"""pybundle.installer.relocate: real pyenv interpreters relocated and run with their build prefix
hidden, plus boundary cases on small synthetic trees.

Real input: pyenv CPython builds under /root/.pyenv/versions (copied, never modified). Their build
prefix is hidden from the relocated interpreter by mounting an empty tmpfs over it in a private
mount namespace (``unshare -m``), which does not affect the real directory.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from pybundle.errors import PrefixError, PybundleError, RelocationError
from pybundle.installer import relocate as relocate_module
from pybundle.installer.elf import read_runpath, set_runpath
from pybundle.installer.relocate import RelocationReport, find_build_prefix, relocate

PYENV = Path("/root/.pyenv/versions")
REPO = Path(__file__).resolve().parents[2]


def _namespace_reason() -> str | None:
    """Why the unshare tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root for unshare -m and mount"
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return f"unshare -m with mount is not permitted: {probe.stderr.decode().strip()}"
    return None


NAMESPACE_REASON = _namespace_reason()
needs_namespace = pytest.mark.skipif(NAMESPACE_REASON is not None, reason=str(NAMESPACE_REASON))


def run_hidden(hide: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace where ``hide`` is an empty tmpfs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    script = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(hide), *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def copy_interpreter(version: str, dest: Path, *, pip_only: bool) -> Path:
    """Copy a pyenv build to ``dest`` (symlinks kept); optionally only pip in site-packages."""
    src = PYENV / version
    if not pip_only:
        subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
        return dest
    site = next((src / "lib").glob("python3.*/site-packages"))

    def ignore(directory: str, names: list[str]) -> list[str]:
        if Path(directory) == site:
            return [n for n in names if not n.startswith("pip")]
        return []

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)
    return dest


def text_files_mentioning(tree: Path, needle: bytes) -> list[Path]:
    """Regular non-.pyc files without NUL bytes (text) under ``tree`` that contain ``needle``."""
    found = []
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_symlink() or name.endswith(".pyc"):
                continue
            data = path.read_bytes()
            if b"\0" not in data and needle in data:
                found.append(path)
    return found


def files_mentioning(tree: Path, needle: bytes) -> list[Path]:
    found = []
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink() and needle in path.read_bytes():
                found.append(path)
    return found


PROBE = """
import json, sys, sysconfig
maps = [l.split()[-1] for l in open('/proc/self/maps') if 'libpython' in l]
import json as _j, ctypes, decimal, sqlite3, zlib  # extension modules from lib-dynload
print(json.dumps({
    'prefix': sys.prefix, 'exec_prefix': sys.exec_prefix, 'executable': sys.executable,
    'LIBDIR': sysconfig.get_config_var('LIBDIR'),
    'INCLUDEPY': sysconfig.get_config_var('INCLUDEPY'),
    'cfg_prefix': sysconfig.get_config_var('prefix'),
    'LIBPL': sysconfig.get_config_var('LIBPL'),
    'stdlib': sysconfig.get_paths()['stdlib'],
    'libpython': sorted(set(maps)),
    'decimal': decimal.__file__,
}))
"""

VERSIONS = [
    pytest.param("3.11.7", True, id="3.11.7"),
    pytest.param("3.12.1", False, id="3.12.1"),
    pytest.param("3.13.0", False, id="3.13.0"),
]


# --- real interpreters -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.needs_root
@needs_namespace
@pytest.mark.parametrize(("version", "pip_only"), VERSIONS)
def test_relocated_pyenv_interpreter_runs_with_build_prefix_hidden(
    tmp_path: Path, version: str, pip_only: bool
) -> None:
    build = PYENV / version
    if not (build / "bin").is_dir():
        pytest.skip(f"{build} is not installed")
    short = ".".join(version.split(".")[:2])
    staging = copy_interpreter(version, tmp_path / "staging", pip_only=pip_only)
    final = tmp_path / "installs" / f"cpython-{version}"
    python = f"bin/python{short}"

    # Control: unrelocated, the copy does not run on its own libpython once the build prefix is
    # hidden. It fails (exit 127), or the loader falls back to a system libpython3.X of the same
    # soname (Debian's libpython3.11 is in the ld.so cache here): the hazard RUNPATH must avoid.
    maps = "print([l.split()[-1] for l in open('/proc/self/maps') if 'libpython' in l])"
    control = run_hidden(build, [str(staging / python), "-c", maps])
    if control.returncode == 0:
        assert str(staging) not in control.stdout, control.stdout
    else:
        assert f"libpython{short}.so" in control.stderr

    assert find_build_prefix(staging) == str(build)
    started = time.perf_counter()
    report = relocate(staging, str(build), str(final))
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"relocate took {elapsed:.2f} s"
    final.parent.mkdir()
    os.rename(staging, final)

    # What was changed.
    assert report.build_prefix == str(build) and report.new_prefix == str(final)
    config = next(p for p in report.text_files if p.name == "Makefile").parent
    expected_text = {
        Path(f"bin/python{short}-config"),
        Path(f"lib/pkgconfig/python-{short}.pc"),
        Path(f"lib/pkgconfig/python-{short}-embed.pc"),
        config / "Makefile",
        config / "python-config.py",
        Path("bin/pip3"),
        Path(f"bin/pip{short}"),
        Path(f"bin/pydoc{short}"),
        Path(f"bin/idle{short}"),
    }
    assert expected_text <= set(report.text_files)
    assert any(p.name.startswith("_sysconfigdata_") for p in report.text_files)
    assert all(not p.is_absolute() for p in report.text_files + report.elf_files)
    assert {Path(python), Path(f"lib/libpython{short}.so.1.0"), Path("lib/libpython3.so")} <= set(
        report.elf_files
    )
    assert len(report.elf_files) > 50
    assert any(p.name.startswith("_sysconfigdata_") for p in report.removed_bytecode)
    for pyc in report.removed_bytecode:
        assert not (final / pyc).exists()

    # ELF search paths are $ORIGIN-relative.
    assert read_runpath(final / python) == ("RUNPATH", "$ORIGIN/../lib")
    assert read_runpath(final / f"lib/libpython{short}.so.1.0") == ("RUNPATH", "$ORIGIN")
    json_ext = next((final / f"lib/python{short}/lib-dynload").glob("_json.*.so"))
    assert read_runpath(json_ext) == ("RUNPATH", "$ORIGIN/../..")

    # Nothing textual mentions the build prefix; nothing at all mentions the staging dir.
    assert text_files_mentioning(final, str(build).encode()) == []
    assert files_mentioning(final, str(staging).encode()) == []
    for pc in (final / "lib/pkgconfig").glob("*.pc"):
        assert f"prefix={final}\n" in pc.read_text()
    if shutil.which("pkg-config"):
        pkg = subprocess.run(
            ["pkg-config", "--variable=prefix", f"python-{short}"],
            env={**os.environ, "PKG_CONFIG_PATH": str(final / "lib/pkgconfig")},
            capture_output=True,
            text=True,
            check=True,
        )
        assert pkg.stdout.strip() == str(final)

    # The relocated interpreter runs from the new prefix with the old one hidden.
    probe = run_hidden(build, [str(final / python), "-c", PROBE])
    assert probe.returncode == 0, probe.stderr
    facts = json.loads(probe.stdout)
    for key in ("prefix", "exec_prefix", "executable", "LIBDIR", "INCLUDEPY", "cfg_prefix"):
        assert facts[key].startswith(str(final)), (key, facts[key])
    assert facts["LIBPL"].startswith(str(final)) and facts["stdlib"].startswith(str(final))
    assert facts["libpython"] == [str(final / f"lib/libpython{short}.so.1.0")]
    assert facts["decimal"].startswith(str(final))

    cfg = run_hidden(
        build, [str(final / f"bin/python{short}-config"), "--prefix", "--includes", "--ldflags"]
    )
    assert cfg.returncode == 0, cfg.stderr
    lines = cfg.stdout.splitlines()
    assert lines[0] == str(final)
    assert f"-I{final}/include/python{short}" in lines[1]
    assert f"-L{final}/lib" in lines[2]
    assert str(build) not in cfg.stdout

    pip = run_hidden(build, [str(final / "bin/pip3"), "--version"])
    assert pip.returncode == 0, pip.stderr
    assert f"from {final}/lib/python{short}/site-packages/pip" in pip.stdout

    hidden = run_hidden(build, ["ls", "-A", str(build)])
    assert hidden.returncode == 0 and hidden.stdout == ""


@pytest.mark.slow
@pytest.mark.needs_root
@needs_namespace
def test_relocating_twice_into_a_path_with_spaces_uses_trampolines(tmp_path: Path) -> None:
    version, short = "3.13.0", "3.13"
    build = PYENV / version
    if not (build / "bin").is_dir():
        pytest.skip(f"{build} is not installed")
    staging = copy_interpreter(version, tmp_path / "staging", pip_only=True)
    first = tmp_path / "first"
    relocate(staging, str(build), str(first))
    os.rename(staging, first)

    # Second hop: from the first install to a prefix with a space in it.
    assert find_build_prefix(first) == str(first)
    staging2 = tmp_path / "staging2"
    os.rename(first, staging2)
    final = tmp_path / "my pythons" / "cpython 3.13"
    report = relocate(staging2, str(first), str(final))
    assert report.elf_files == []  # already $ORIGIN-relative
    final.parent.mkdir()
    os.rename(staging2, final)

    pip3 = (final / "bin/pip3").read_bytes()
    assert pip3.startswith(b"#!/bin/sh\n# -*- coding: utf-8 -*-\n'''exec' '")
    assert f"'{final}/bin/python{short}' \"$0\" \"$@\"\n' '''\n".encode() in pip3
    assert text_files_mentioning(final, str(first).encode()) == []

    pip = run_hidden(build, [str(final / "bin/pip3"), "--version"])
    assert pip.returncode == 0, pip.stderr
    assert f"from {final}/lib/python{short}/site-packages/pip" in pip.stdout
    pydoc = run_hidden(build, [str(final / f"bin/pydoc{short}"), "json.dumps"])
    assert pydoc.returncode == 0 and "dumps" in pydoc.stdout, pydoc.stderr
    probe = run_hidden(build, [str(final / f"bin/python{short}"), "-c", PROBE])
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["LIBDIR"] == f"{final}/lib"


@pytest.mark.slow
@pytest.mark.needs_root
@needs_namespace
def test_read_only_tree_is_a_storage_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    code = (
        "import sys\n"
        "from pybundle.errors import StorageError\n"
        "from pybundle.installer.relocate import relocate\n"
        "try:\n"
        f"    relocate({str(root)!r}, '/install', '/opt/new')\n"
        "except StorageError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(9)\n"
    )
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(root), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 9, proc.stderr
    message = proc.stdout.strip()
    assert "\n" not in message and str(root) in message and "Read-only file system" in message


# --- synthetic trees -------------------------------------------------------------------------

SYSCONFIG = "lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py"
CONFIG_DIR = "lib/python3.12/config-3.12-x86_64-linux-gnu"


def put(root: Path, rel: str, data: bytes, mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def make_tree(root: Path, prefix: str = "/install") -> Path:
    """A PBS-like tree whose files name ``prefix`` the ways real builds do."""
    p = prefix.encode()
    put(
        root,
        SYSCONFIG,
        b"# system configuration generated and used by the sysconfig module\n"
        b"build_time_vars = {'prefix': '" + p + b"',\n"
        b" 'LDFLAGS': '-L" + p + b"/lib -Wl,-rpath," + p + b"/lib',\n"
        b" 'INCLUDEPY': '" + p + b"/include/python3.12',\n"
        b" 'CONFIG_ARGS': \"'--prefix=" + p + b"' 'CPPFLAGS=-I" + p + b"/include'\",\n"
        b" 'WASM_ASSETS_DIR': '." + p + b"',\n"
        b"}\n",
    )
    put(root, "lib/pkgconfig/python-3.12.pc", b"prefix=" + p + b"\nlibdir=" + p + b"/lib\n")
    put(
        root,
        "bin/python3.12-config",
        b'#!/bin/sh\nprefix="' + p + b'"\nLIBS="-L' + p + b'/lib"\n',
        0o755,
    )
    put(root, f"{CONFIG_DIR}/Makefile", b"prefix=\t\t" + p + b"\nLIBDIR=\t\t" + p + b"/lib\n")
    put(
        root,
        f"{CONFIG_DIR}/python-config.py",
        b"#!" + p + b"/bin/python3.12\nprefix = '" + p + b"'\n",
        0o644,
    )
    put(root, "bin/pip3", b"#!" + p + b"/bin/python3.12\nimport sys\nprint(sys.argv)\n", 0o755)
    return root


def test_find_build_prefix(tmp_path: Path) -> None:
    assert find_build_prefix(make_tree(tmp_path / "pbs")) == "/install"
    quoted = put(
        tmp_path / "quoted",
        "lib/python3.13/_sysconfigdata_t_linux_x86_64-linux-gnu.py",
        b"build_time_vars = {'exec_prefix': '/x',\n \"prefix\": \"/opt/it's\",\n}\n",
    )
    assert find_build_prefix(quoted.parents[2]) == "/opt/it's"
    windows = tmp_path / "windows"
    put(windows, "Lib/sysconfig.py", b"")
    put(windows, "python.exe", b"MZ")
    assert find_build_prefix(windows) is None
    assert find_build_prefix(tmp_path / "empty") is None
    # A symlinked lib/python3.* is not followed.
    linked = tmp_path / "linked"
    (linked / "lib").mkdir(parents=True)
    (linked / "lib" / "python3.12").symlink_to((tmp_path / "pbs" / "lib" / "python3.12").resolve())
    assert find_build_prefix(linked) is None


@pytest.mark.skipif(not (PYENV / "3.12.1").is_dir(), reason="pyenv 3.12.1 is not installed")
def test_find_build_prefix_of_pyenv_builds() -> None:
    for version in ("3.11.7", "3.12.1", "3.13.0"):
        if (PYENV / version).is_dir():
            assert find_build_prefix(PYENV / version) == str(PYENV / version)


def test_install_prefix_tokens_are_all_rewritten(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    new = "/opt/python/3.12"
    report = relocate(root, "/install", new)
    sysconfig = (root / SYSCONFIG).read_text()
    assert "'prefix': '/opt/python/3.12'" in sysconfig
    assert "-L/opt/python/3.12/lib -Wl,-rpath,/opt/python/3.12/lib" in sysconfig
    assert "'--prefix=/opt/python/3.12' 'CPPFLAGS=-I/opt/python/3.12/include'" in sysconfig
    assert "'WASM_ASSETS_DIR': './opt/python/3.12'" in sysconfig
    assert "/install" not in sysconfig
    assert (root / "lib/pkgconfig/python-3.12.pc").read_bytes() == (
        b"prefix=/opt/python/3.12\nlibdir=/opt/python/3.12/lib\n"
    )
    assert (root / "bin/python3.12-config").read_bytes() == (
        b'#!/bin/sh\nprefix="/opt/python/3.12"\nLIBS="-L/opt/python/3.12/lib"\n'
    )
    assert (root / CONFIG_DIR / "Makefile").read_bytes() == (
        b"prefix=\t\t/opt/python/3.12\nLIBDIR=\t\t/opt/python/3.12/lib\n"
    )
    assert (root / CONFIG_DIR / "python-config.py").read_bytes() == (
        b"#!/opt/python/3.12/bin/python3.12\nprefix = '/opt/python/3.12'\n"
    )
    assert (root / "bin/pip3").read_bytes().startswith(b"#!/opt/python/3.12/bin/python3.12\n")
    assert report.text_files == sorted(
        Path(p)
        for p in (
            SYSCONFIG,
            "lib/pkgconfig/python-3.12.pc",
            "bin/python3.12-config",
            f"{CONFIG_DIR}/Makefile",
            f"{CONFIG_DIR}/python-config.py",
            "bin/pip3",
        )
    )
    assert report.elf_files == [] and report.removed_bytecode == []


def test_prefix_matches_only_at_path_boundaries(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    content = (
        b"A = '/foo/install/x build/install/lib ~/install /install2 /install.d /installed'\n"
        b"B = '/install:/install/lib;/install,/install)/install=x /install'\n"
        b"C = ['/install', \"/install\", '--with-x=/install/x', '-isystem/install/i']\n"
        b"D = '/install/install/lib'\n"
        b"E = '\xc3\xbf /install/lib \xc3\xbe/install'\n"
    )
    put(root, SYSCONFIG, content)
    relocate(root, "/install", "/new")
    assert (root / SYSCONFIG).read_bytes() == (
        b"A = '/foo/install/x build/install/lib ~/install /install2 /install.d /installed'\n"
        b"B = '/new:/new/lib;/new,/new)/new=x /new'\n"
        b"C = ['/new', \"/new\", '--with-x=/new/x', '-isystem/new/i']\n"
        b"D = '/new/install/lib'\n"
        b"E = '\xc3\xbf /new/lib \xc3\xbe/install'\n"
    )


def test_patch_release_prefix_is_not_matched_inside_a_longer_one(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    old = "/root/.pyenv/versions/3.12.1"
    put(
        root,
        "lib/pkgconfig/python-3.12.pc",
        f"a={old}0/lib\nb={old}/lib\nc={old}\nd={old}-dbg\ne={old}.d\nf={old}/\n".encode(),
    )
    relocate(root, old + "/", "/srv/py/")  # trailing slashes are ignored
    assert (root / "lib/pkgconfig/python-3.12.pc").read_text() == (
        f"a={old}0/lib\nb=/srv/py/lib\nc=/srv/py\nd={old}-dbg\ne={old}.d\nf=/srv/py/\n"
    )


def test_modes_are_kept_and_only_targets_are_touched(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    (root / SYSCONFIG).chmod(0o640)
    (root / "bin/pip3").chmod(0o751)
    untouched = {
        "lib/python3.12/os.py": b"#!/install/bin/python3.12\nX = '/install/lib'\n",
        "lib/python3.12/site-packages/x/_sysconfigdata_fake.py": b"'prefix': '/install'\n",
        "share/doc/README": b"see /install/lib\n",
        "bin/script-elsewhere": b"#!/usr/bin/env python3\n/install\n",
        "bin/nested/pip3": b"#!/install/bin/python3.12\n",
        "bin/under-foo": b"#!/foo/install/bin/python3.12\n",
    }
    for rel, data in untouched.items():
        put(root, rel, data, 0o755)
    before = {rel: (root / rel).stat().st_mtime_ns for rel in untouched}
    relocate(root, "/install", "/new")
    assert stat.S_IMODE((root / SYSCONFIG).stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "bin/pip3").stat().st_mode) == 0o751
    for rel, data in untouched.items():
        assert (root / rel).read_bytes() == data, rel
        assert (root / rel).stat().st_mtime_ns == before[rel]
    assert not [p for p in root.rglob(".*") if p.is_file()], "temp files left behind"


def test_shebang_arguments_and_line_endings_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    put(root, "bin/a", b"#!/install/bin/python3.12 -E\nbody /install\n", 0o755)
    put(root, "bin/b", b"#! /install/bin/python3.12\r\nbody\r\n", 0o755)
    put(root, "bin/c", b"#!/install/bin/python3.12", 0o755)  # no newline at all
    relocate(root, "/install", "/new")
    assert (root / "bin/a").read_bytes() == b"#!/new/bin/python3.12 -E\nbody /install\n"
    assert (root / "bin/b").read_bytes() == b"#! /new/bin/python3.12\r\nbody\r\n"
    assert (root / "bin/c").read_bytes() == b"#!/new/bin/python3.12"


def test_bytecode_of_rewritten_modules_is_removed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    cache = "lib/python3.12/__pycache__/"
    stale = [
        cache + "_sysconfigdata__linux_x86_64-linux-gnu.cpython-312.pyc",
        cache + "_sysconfigdata__linux_x86_64-linux-gnu.cpython-312.opt-1.pyc",
        cache + "_sysconfigdata__linux_x86_64-linux-gnu.cpython-312.opt-2.pyc",
    ]
    kept = [
        cache + "os.cpython-312.pyc",
        cache + "_sysconfigdata__linux_x86_64-linux-gnu_x.cpython-312.pyc",
    ]
    for rel in stale + kept:
        put(root, rel, b"\xcb\r\r\n" + bytes(12))
    report = relocate(root, "/install", "/new")
    assert report.removed_bytecode == sorted(Path(p) for p in stale)
    assert all(not (root / p).exists() for p in stale)
    assert all((root / p).exists() for p in kept)


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    script = put(outside, "script", b"#!/install/bin/python3.12\n", 0o755)
    pc = put(outside, "pkgconfig/python-3.12.pc", b"prefix=/install\n")
    sysconfig = put(outside, "py/_sysconfigdata_x.py", b"'prefix': '/install'\n")
    root = tmp_path / "tree"
    (root / "bin").mkdir(parents=True)
    (root / "lib/python3.12").mkdir(parents=True)
    (root / "bin/pip3").symlink_to(script)
    (root / "lib/pkgconfig").symlink_to(pc.parent)
    (root / "lib/python3.12/_sysconfigdata_x.py").symlink_to(sysconfig)
    report = relocate(root, "/install", "/new")
    assert report.text_files == []
    assert script.read_bytes() == b"#!/install/bin/python3.12\n"
    assert pc.read_bytes() == b"prefix=/install\n"
    assert sysconfig.read_bytes() == b"'prefix': '/install'\n"


def test_equal_prefixes_do_nothing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = relocate(root, "/install", "/install/")
    assert report == RelocationReport("/install", "/install", [], [], [])
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot


def test_bad_prefixes_are_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    with pytest.raises(PrefixError, match="not an absolute POSIX path"):
        relocate(root, "/install", "relative/dir")
    with pytest.raises(PrefixError, match=r"a newline \('\\n'\), which a Makefile cannot"):
        relocate(root, "/install", "/new\nline")
    # A bad build prefix is the archive's fault (exit 6); the message names the source.
    with pytest.raises(RelocationError, match=r"^bundle: x\.tar\.gz: .*not an absolute POSIX"):
        relocate(root, "C:\\install", "/new", source="bundle: x.tar.gz")
    with pytest.raises(RelocationError, match="'/'"):
        relocate(root, "/", "/new")
    with pytest.raises(RelocationError, match="control character"):
        relocate(root, "/inst\nall", "/new")
    with pytest.raises(PybundleError, match="not a directory"):
        relocate(tmp_path / "missing", "/install", "/new")


# --- shebang trampolines -----------------------------------------------------------------------


def make_runnable_tree(root: Path, body: bytes) -> Path:
    """A tree whose bin/python3.12 is a real interpreter and bin/tool a script using it."""
    put(root, SYSCONFIG, b"build_time_vars = {'prefix': '/install'}\n")
    put(root, "bin/tool", b"#!/install/bin/python3.12\n" + body, 0o755)
    (root / "bin/python3.12").symlink_to(os.path.realpath(sys.executable))
    return root


TOOL_BODY = b"import sys\nprint(repr(sys.argv[1:]))\n"


@pytest.mark.parametrize(
    "final_name",
    [
        pytest.param("with space/py 3.12", id="space"),
        pytest.param("tab\there", id="tab"),
        pytest.param("d" * 130, id="longer-than-127"),
    ],
)
def test_trampoline_when_plain_shebang_cannot_work(tmp_path: Path, final_name: str) -> None:
    staging = make_runnable_tree(tmp_path / "staging", TOOL_BODY)
    final = tmp_path / final_name
    report = relocate(staging, "/install", str(final))
    assert Path("bin/tool") in report.text_files
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, final)
    tool = (final / "bin/tool").read_bytes()
    assert tool == (
        b"#!/bin/sh\n'''exec' '" + os.fsencode(final) + b'/bin/python3.12\' "$0" "$@"\n'
        b"' '''\n" + TOOL_BODY
    )
    out = subprocess.run(
        [str(final / "bin/tool"), "one", "two words", "$HOME"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == repr(["one", "two words", "$HOME"])


def test_trampoline_keeps_coding_declaration_and_argument(tmp_path: Path) -> None:
    body = "# -*- coding: latin-1 -*-\nprint('\xe9', flush=True)\n".encode("latin-1")
    staging = make_runnable_tree(tmp_path / "staging", b"")
    put(staging, "bin/tool", b"#!/install/bin/python3.12 -S\n" + body, 0o755)
    final = tmp_path / "a b"
    relocate(staging, "/install", str(final))
    os.rename(staging, final)
    tool = (final / "bin/tool").read_bytes()
    assert tool.startswith(b"#!/bin/sh\n# -*- coding: latin-1 -*-\n'''exec' '")
    assert b'/bin/python3.12\' \'-S\' "$0" "$@"\n' in tool
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run([str(final / "bin/tool")], capture_output=True, check=True, env=env).stdout
    assert out.decode("utf-8").strip() == "\xe9"


def test_trampoline_refusal_is_a_relocation_error(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    put(root, "bin/shell-tool", b"#!/install/bin/bash\necho hi\n", 0o755)
    with pytest.raises(
        RelocationError, match=r"shell-tool: cannot relocate: .*only works for Python"
    ) as caught:
        relocate(root, "/install", "/with space")
    assert caught.value.exit_code == 6
    # Without whitespace a plain shebang works for any interpreter and any characters.
    relocate(root, "/install", '/odd"$name')
    assert (root / "bin/shell-tool").read_bytes() == b'#!/odd"$name/bin/bash\necho hi\n'


@pytest.mark.parametrize(
    "final_name",
    [
        pytest.param("o'brien/a b", id="quote"),
        pytest.param('with "quotes" and $HOME `x`', id="dollar-backtick"),
        pytest.param("a\\new \\\\'''\"\"\" x", id="backslashes-and-triple-quotes"),
        pytest.param("\u65e5\u672c \u00fc", id="non-ascii"),
    ],
)
def test_trampoline_quotes_any_path(tmp_path: Path, final_name: str) -> None:
    """The trampoline is valid shell and valid Python, without warnings, for hostile paths."""
    staging = make_runnable_tree(tmp_path / "staging", TOOL_BODY)
    final = tmp_path / final_name
    relocate(staging, "/install", str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, final)
    tool = final / "bin/tool"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an invalid escape sequence would warn
        compile(tool.read_bytes(), str(tool), "exec")
    proc = subprocess.run(
        [str(tool), "one", "$HOME"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.stdout.strip() == repr(["one", "$HOME"]) and proc.stderr == ""


# --- ELF files in synthetic trees ----------------------------------------------------------------


@pytest.mark.skipif(not (PYENV / "3.12.1").is_dir(), reason="pyenv 3.12.1 is not installed")
def test_elf_entries_inside_the_prefix_become_origin_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = next((PYENV / "3.12.1/lib/python3.12/lib-dynload").glob("_json.*.so"))
    root = tmp_path / "tree"
    mixed = put(root, f"lib/python3.12/lib-dynload/{ext.name}", ext.read_bytes(), 0o555)
    set_runpath(mixed, "/usr/lib:/install/lib:$ORIGIN/x:/install:/installx/lib", kind="RPATH")
    done = put(root, "lib/python3.12/lib-dynload/_done.so", ext.read_bytes(), 0o755)
    set_runpath(done, "$ORIGIN/../..")
    top = put(root, "tool.so", ext.read_bytes(), 0o755)
    set_runpath(top, "/install/lib/../lib64")
    (root / "bin").mkdir()
    (root / "bin/link.so").symlink_to(mixed)

    calls: list[Path] = []

    def spy(path: Path, value: str, *, kind: str = "RUNPATH") -> None:
        calls.append(path)
        set_runpath(path, value, kind=kind)

    monkeypatch.setattr(relocate_module, "set_runpath", spy)
    report = relocate(root, "/install", "/new")
    assert read_runpath(mixed) == (
        "RPATH",
        "/usr/lib:$ORIGIN/../..:$ORIGIN/x:$ORIGIN/../../..:/installx/lib",
    )
    assert stat.S_IMODE(mixed.stat().st_mode) == 0o555
    assert read_runpath(top) == ("RUNPATH", "$ORIGIN/lib64")
    assert read_runpath(done) == ("RUNPATH", "$ORIGIN/../..")
    assert sorted(calls) == sorted([mixed, top])  # nothing run for files needing no change
    assert report.elf_files == sorted(
        [Path("lib/python3.12/lib-dynload", ext.name), Path("tool.so")]
    )


@pytest.mark.slow
def test_candidates_recorded_while_extracting_give_the_same_relocation(
    real_archives, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Relocating only the files the extractor marked (no second walk of the tree) rewrites
    exactly what a walk of the whole tree rewrites, byte for byte."""
    from pybundle.installer.extract import extract_archive
    from pybundle.installer.receipts import scan_tree

    for archive in real_archives:
        trees = []
        for name in ("walked", "marked"):
            root = tmp_path / f"{archive.artifact.file_name}-{name}"
            root.mkdir()
            with open(archive.path, "rb") as stream:
                stats = extract_archive(
                    stream,
                    archive.artifact.archive_format,
                    "python",
                    root,
                    source=archive.path.name,
                    max_bytes=1 << 40,
                    max_entries=1 << 24,
                )
            build = find_build_prefix(root)
            assert build is not None
            candidates = stats.candidates if name == "marked" else None
            report = relocate(root, build, "/opt/py here", candidates=candidates)
            trees.append((root, report, stats))
        (walked, walk_report, stats), (marked, mark_report, _) = trees
        assert walk_report == mark_report
        assert walk_report.elf_files and walk_report.text_files
        assert len(stats.candidates) < stats.files / 10  # a small part of the tree
        listing = [(e.path, e.kind, e.mode, e.sha256, e.target) for e in scan_tree(walked)]
        assert listing == [(e.path, e.kind, e.mode, e.sha256, e.target) for e in scan_tree(marked)]


def test_the_candidate_prefilter_matches_every_text_kind() -> None:
    """relocation_candidate's cheap length and name-ending test lets every _TEXT_KINDS
    pattern through (a new pattern outside it would be skipped silently)."""
    for pattern, _writer in relocate_module._TEXT_KINDS:
        example = tuple(p.replace("*", "x") for p in pattern)
        assert relocate_module.relocation_candidate(example, b"text"), pattern
