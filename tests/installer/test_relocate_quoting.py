"""Relocation into hostile install paths: every file kind relocation rewrites stays valid and gives
the install path back exactly, or the path is refused before anything is extracted.

Real input: the text files of the newest pyenv CPython 3.12 build (``discover_prefix``), COPIED
into a tree at the generated path (never linked, never modified in place). The readers are the
real ones: Python (compile + exec), dash (``sh``) and bash, pkg-config (pkgconf here), GNU make.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import RealArchive, discover_prefix, run_cli, tar_file, tiny_interpreter_members
from pybundle.bundler.pack import write_bundle
from pybundle.errors import PrefixError, RelocationError
from pybundle.installer.install import install_bundle
from pybundle.installer.policy import SerialStore
from pybundle.installer.relocate import check_prefix, relocate
from pybundle.signing import SecretKey

SRC = discover_prefix("12")
needs_pyenv_312 = pytest.mark.skipif(SRC is None, reason="no pyenv CPython 3.12 build")


def needs_tools(*tools: str) -> pytest.MarkDecorator:
    """Skip, saying why, when a reader binary is absent (unless PYBUNDLE_REQUIRE_TOOLS=1)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    required = os.environ.get("PYBUNDLE_REQUIRE_TOOLS") == "1"
    return pytest.mark.skipif(bool(missing) and not required, reason=f"needs {missing}")


# What docs/security.md ("Escaping install paths") says some file kind cannot hold: NUL, a
# newline (Makefile), a carriage return or "${" (pkg-config), bytes that are not UTF-8 (Python).
REFUSED = frozenset("\0\n\r")


def refused_parts(path: str) -> list[str]:
    """The parts of ``path`` that the documented rules refuse."""
    found = [c for c in path if c in REFUSED or "\ud800" <= c <= "\udfff"]
    return found + (["${"] if "${" in path else [])


def real_files(src: Path) -> list[str]:
    """The files of a pyenv 3.12 build that name its prefix, relative to it."""
    lib = src / "lib/python3.12"
    config = next(lib.glob("config-3.12-*"))
    return [
        str(next(lib.glob("_sysconfigdata_*.py")).relative_to(src)),
        str((config / "python-config.py").relative_to(src)),
        str((config / "Makefile").relative_to(src)),
        "bin/python3.12-config",
        "lib/pkgconfig/python-3.12.pc",
        "lib/pkgconfig/python-3.12-embed.pc",
        "bin/pip3",
    ]


def build_tree(src: Path, tree: Path) -> list[str]:
    """Copies of the real files under ``tree``, plus ``bin/probe`` (a script run by the build's
    interpreter) and ``bin/python3.12`` (a symlink to it, which relocation never follows)."""
    files = real_files(src)
    for rel in files:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, tree / rel)  # a copy: never a hard link into pyenv
        shutil.copymode(src / rel, tree / rel)
    probe = tree / "bin/probe"
    probe.write_bytes(f"#!{src}/bin/python3.12\nimport sys\nprint(sys.argv[1:])\n".encode())
    probe.chmod(0o755)
    (tree / "bin/python3.12").symlink_to(src / "bin/python3.12")
    return [*files, "bin/probe"]


def run(argv: list[str], **env: str) -> bytes:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    clean.update(PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1", **env)
    proc = subprocess.run(argv, capture_output=True, env=clean, timeout=60, check=False)
    assert proc.returncode == 0, (argv, proc.stderr)
    return proc.stdout


def sh_words(out: bytes) -> list[bytes]:
    """Split pkg-config's output as a shell splits unquoted words (it escapes with backslashes)."""
    words: list[bytes] = []
    word = bytearray()
    started = False
    i = 0
    while i < len(out):
        c = out[i : i + 1]
        if c == b"\\" and i + 1 < len(out):
            word += out[i + 1 : i + 2]
            started = True
            i += 2
            continue
        if c in b" \t\n":
            if started:
                words.append(bytes(word))
            word, started = bytearray(), False
        else:
            word += c
            started = True
        i += 1
    if started:
        words.append(bytes(word))
    return words


def make_variables(makefile: Path, work: Path, names: list[str]) -> list[str]:
    """The values GNU make gives ``names`` in ``makefile``'s variable section (the lines before
    its first rule, ``all:``: CPython's rules build CPython and name paths in targets, which
    make cannot spell with ``;`` or spaces)."""
    text = makefile.read_bytes()
    head = work / "head.mk"
    head.write_bytes(text[: text.index(b"\nall:") + 1])
    out = work / "make.out"
    printer = work / "print.mk"
    printer.write_text(
        "".join(f"$(file >>{out},$({name}))\n" for name in names)
        + ".PHONY: pybundle-print\npybundle-print: ;\n"
    )
    out.unlink(missing_ok=True)
    run(["make", "-s", "-f", str(head), "-f", str(printer), "pybundle-print"])
    return out.read_bytes().decode("utf-8").split("\n")[:-1]


def assert_relocated(tree: Path, prefix: str, files: list[str], work: Path) -> None:
    """Every reader gets exactly ``prefix`` back from the relocated copies at ``tree``."""
    raw = os.fsencode(prefix)
    build = os.fsencode(str(SRC))
    for rel in files:
        data = (tree / rel).read_bytes()
        assert build not in data, rel
        if rel.endswith(".py") or (rel.startswith("bin/p") and not rel.endswith("-config")):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. an invalid escape sequence
                compile(data, rel, "exec")
    # Python: the sysconfigdata module.
    namespace: dict[str, object] = {}
    exec(compile((tree / files[0]).read_bytes(), files[0], "exec"), namespace)
    variables = namespace["build_time_vars"]
    assert isinstance(variables, dict)
    assert variables["prefix"] == prefix
    assert variables["LIBDIR"] == prefix + "/lib"
    assert variables["INCLUDEPY"] == prefix + "/include/python3.12"
    # POSIX shell, with dash and bash.
    config = str(tree / "bin/python3.12-config")
    for shell in ("sh", "bash"):
        assert run([shell, config, "--prefix", "--exec-prefix"]) == raw + b"\n" + raw + b"\n"
        include = b"-I" + raw + b"/include/python3.12"
        assert run([shell, config, "--includes"]) == include + b" " + include + b"\n"
    # pkg-config: variables exactly, Cflags/Libs as one argument each.
    env = {"PKG_CONFIG_PATH": str(tree / "lib/pkgconfig")}
    for name in ("python-3.12", "python-3.12-embed"):
        assert run(["pkg-config", "--variable=prefix", name], **env) == raw + b"\n"
        assert run(["pkg-config", "--variable=libdir", name], **env) == raw + b"/lib\n"
        cflags = run(["pkg-config", "--cflags-only-I", name], **env)
        assert sh_words(cflags) == [b"-I" + raw + b"/include/python3.12"]
        libs = run(["pkg-config", "--libs-only-L", name], **env)
        assert sh_words(libs) == [b"-L" + raw + b"/lib"]
    # GNU make.
    makefile = tree / files[2]
    assert make_variables(makefile, work, ["prefix", "LIBDIR"]) == [prefix, prefix + "/lib"]
    # #! lines: the probe runs through its (plain or trampoline) header.
    assert run([str(tree / "bin/probe"), "one", "$HOME"]) == b"['one', '$HOME']\n"


@pytest.fixture(scope="module")
def work_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("quoting")
    yield base
    shutil.rmtree(base, ignore_errors=True)


ACCEPTED = [
    *"'\"\\$` #%\t{}&;*=~()!?[]<>|^-.ab",
    "\x1b",  # a control character that is not a line break
    "\u00fc",  # ü
    "\u65e5",  # 日
    "\u672c",  # 本
]
REFUSED_LETTERS = ["\n", "\r", "\udcff"]  # "\udcff": the byte 0xff, which is not UTF-8


def _fit(component: str) -> str:
    while len(os.fsencode(component)) > 255:
        component = component[:-1]
    return component


# Refused letters are rare (about 1 in 100), so that most generated paths reach the readers.
_letters = st.sampled_from(ACCEPTED * 8 + REFUSED_LETTERS)
_component = st.one_of(
    st.text(_letters, min_size=1, max_size=12),
    st.text(st.sampled_from(ACCEPTED), min_size=100, max_size=255).map(_fit),
).filter(lambda c: c not in (".", ".."))


@needs_pyenv_312
@needs_tools("sh", "bash", "pkg-config", "make")
@settings(
    max_examples=int(os.environ.get("PYBUNDLE_QUOTING_EXAMPLES", "100")),  # more for a long run
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(components=st.lists(_component, min_size=1, max_size=4))
@example(components=["x", "o'brien", "a b", "$HOME`x`"])
@example(components=["a\\new"])
@example(components=["end with space ", "back\\"])
@example(components=["$$x$", "\\#", "%d"])
@example(components=["${x}"])
@example(components=["d" * 255])
@example(components=["a\nb"])
@example(components=["\udcff"])
def test_relocated_files_give_back_any_accepted_path_exactly(
    work_base: Path, components: list[str]
) -> None:
    assert SRC is not None
    work = Path(tempfile.mkdtemp(dir=work_base))
    try:
        prefix = os.path.join(work, "root", *components)
        try:
            check_prefix(prefix)
        except PrefixError as exc:
            message = str(exc)
            assert refused_parts(prefix), message
            assert "\n" not in message and "cannot represent" in message
            assert any(repr(part) in message for part in refused_parts(prefix)), message
            return
        assert not refused_parts(prefix)
        tree = Path(prefix)
        tree.mkdir(parents=True)
        files = build_tree(SRC, tree)
        report = relocate(tree, str(SRC), prefix)
        assert {Path(f) for f in files} <= set(report.text_files)
        assert_relocated(tree, prefix, files, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- through the installer ----------------------------------------------------------------------


def test_unrepresentable_prefix_is_refused_before_extraction(
    tiny_bundle,  # type: ignore[no-untyped-def]
    signing_key: SecretKey,
    key_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    bundle = tiny_bundle()
    parent = tmp_path / "installs"
    parent.mkdir()
    with pytest.raises(PrefixError) as caught:
        install_bundle(
            bundle,
            [signing_key.public_key],
            prefix=parent / "a\nb",
            serials=SerialStore(tmp_path / "state"),
        )
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"{parent}/a\\nb: the install path contains a newline ('\\n'), which a Makefile cannot "
        "represent; choose another --prefix or --install-dir"
    )
    assert list(parent.iterdir()) == []  # nothing extracted, no staging dir
    pub = str(key_files[1])
    proc = run_cli(
        "install", "--from", str(bundle), "--trusted-key", pub, "--prefix", f"{parent}/x\ry"
    )
    assert proc.returncode == 2, proc.stderr
    assert "carriage return ('\\r'), which a pkg-config file cannot represent" in proc.stderr
    assert list(parent.iterdir()) == []


def test_archive_whose_sysconfigdata_says_prefix_is_root_is_exit_6(
    tiny_bundle,  # type: ignore[no-untyped-def]
    signing_key: SecretKey,
    tmp_path: Path,
) -> None:
    bundle = tiny_bundle(members=tiny_interpreter_members(prefix="/"))
    installs = tmp_path / "installs"
    with pytest.raises(RelocationError) as caught:
        install_bundle(
            bundle,
            [signing_key.public_key],
            install_dir=installs,
            serials=SerialStore(tmp_path / "state"),
        )
    assert caught.value.exit_code == 6
    message = str(caught.value)
    assert "\n" not in message and str(bundle) in message and "build prefix is '/'" in message
    assert [p.name for p in installs.iterdir()] == [".pybundle.lock"]  # staging removed


def test_script_whose_shebang_cannot_be_rewritten_is_exit_6(
    tiny_bundle,  # type: ignore[no-untyped-def]
    signing_key: SecretKey,
    tmp_path: Path,
) -> None:
    members = [
        *tiny_interpreter_members(),
        tar_file("python/bin/tool", b"#!/opt/fake/bin/bash\necho hi\n", 0o755),
    ]
    bundle = tiny_bundle(members=members)
    installs = tmp_path / "my installs"  # a space: the #! line would need a trampoline
    with pytest.raises(RelocationError) as caught:
        install_bundle(
            bundle,
            [signing_key.public_key],
            install_dir=installs,
            serials=SerialStore(tmp_path / "state"),
        )
    assert caught.value.exit_code == 6
    assert "bin/tool: cannot relocate" in str(caught.value) and str(bundle) in str(caught.value)
    assert [p.name for p in installs.iterdir()] == [".pybundle.lock"]


# --- end to end: a real interpreter installed into hostile directories --------------------------


def _hidden_run(hide: Path, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` with ``hide`` (the build prefix) under an empty tmpfs, when we can."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if os.geteuid() == 0 and shutil.which("unshare"):
        script = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
        argv = ["unshare", "-m", "sh", "-c", script, "sh", str(hide), *argv]
    return subprocess.run(argv, capture_output=True, env=env, timeout=300, check=False)


PROBE = (
    "import json, sysconfig\n"
    "paths = sysconfig.get_paths()\n"
    "print(json.dumps([sysconfig.get_config_var('prefix'), sysconfig.get_config_var('LIBDIR'),"
    " paths['stdlib'], paths['purelib']]))\n"
)


@pytest.mark.slow
@needs_pyenv_312
def test_real_interpreter_installed_into_hostile_directories(
    real_archives: list[RealArchive], signing_key: SecretKey, tmp_path: Path
) -> None:
    archive = next(a for a in real_archives if a.info.version.minor == 12)
    bundle = tmp_path / "py312.pybundle"
    write_bundle(bundle, [(archive.artifact, archive.path)], secret_key=signing_key)
    hostile = [
        tmp_path / "x" / "o'brien" / "a b" / "$HOME`x`",
        tmp_path / "a\\new",
        tmp_path / ('q"#%;&*' + "\u00fc\u65e5\u672c" + "L" * 120),  # > 127 bytes: trampoline
    ]
    build = str(archive.info.prefix)
    for dest in hostile:
        (result,) = install_bundle(
            bundle,
            [signing_key.public_key],
            prefix=dest,
            serials=SerialStore(tmp_path / "state"),
        )
        assert result.path == dest
        prefix = str(dest)
        python = dest / "bin/python3.12"
        proc = _hidden_run(Path(build), [str(python), "-c", PROBE])
        assert proc.returncode == 0, proc.stderr
        cfg_prefix, libdir, stdlib, purelib = json.loads(proc.stdout)
        assert cfg_prefix == prefix
        assert libdir == prefix + "/lib"
        assert stdlib == prefix + "/lib/python3.12"
        assert purelib == prefix + "/lib/python3.12/site-packages"
        config = _hidden_run(Path(build), [str(dest / "bin/python3.12-config"), "--prefix"])
        assert config.returncode == 0, config.stderr
        assert config.stdout == os.fsencode(prefix) + b"\n"
        pip = _hidden_run(Path(build), [str(dest / "bin/pip3"), "--version"])
        assert pip.returncode == 0, pip.stderr
        assert f"from {prefix}/lib/python3.12/site-packages/pip".encode() in pip.stdout
