"""A self-installing bundle, run as users run it: ``sh FILE install ...`` (dash, busybox sh),
``python3 FILE install ...``, and read by pybundle and unzip like a plain bundle. Real files and
real processes: the real pyenv 3.12 as the bootstrap, the real wheels from the index."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from selfkit import (
    BASE_PATH,
    Host,
    SelfKit,
    build_self_kit,
    check_interpreter,
    error_line,
    flip_byte,
    member_offset,
    pybundle_cli,
    run_stub,
    write_keys,
)

from conftest import discover_prefix
from pybundle.errors import HashMismatchError, SignatureError
from pybundle.selfinstall.section import stub_size
from pybundle.signing import generate_secret_key, load_public_key, prehash_file, verify_prehashed

INSTALL_NAME = "cpython-3.12.1-linux-x86_64-gnu"


@pytest.fixture(scope="session")
def self_kit(tmp_path_factory: pytest.TempPathFactory) -> SelfKit:
    """The session's self-installing bundle (see :func:`selfkit.build_self_kit`)."""
    return build_self_kit(tmp_path_factory.mktemp("selfkit"))


@pytest.fixture
def host(tmp_path: Path) -> Host:
    """A user's home and TMPDIR on this machine."""
    return Host(tmp_path / "host")


def one_error_line(stderr: str) -> str:
    """The only line of ``stderr``, a ``pybundle: error:`` line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return error_line(stderr)


def copy_of(kit: SelfKit, tmp_path: Path, name: str = "py.pybundle") -> Path:
    dest = tmp_path / name
    shutil.copyfile(kit.bundle, dest)
    return dest


# ---- the file is a zip and a plain bundle as well -------------------------------------------


def test_file_is_a_shell_script_and_a_zip_that_pybundle_reads_as_a_bundle(
    self_kit: SelfKit, tmp_path: Path
) -> None:
    data = self_kit.bundle.read_bytes()
    assert data.startswith(b"#!/bin/sh\n")
    stub = stub_size(str(self_kit.bundle))
    assert b"\nexit $?\n" in data[:stub]
    with zipfile.ZipFile(self_kit.bundle) as zf:
        names = zf.namelist()
    assert names[0] == "pybundle.json"
    assert "__main__.py" in names
    assert sum(n.startswith("wheels/") for n in names) == len(self_kit.parts.section.files) - 1
    verify = pybundle_cli("verify", "--trusted-key", str(self_kit.public_key), str(self_kit.bundle))
    assert verify.returncode == 0, verify.stderr
    carried = len(self_kit.parts.section.files)
    assert f"1 archive and {carried} carried files verified" in verify.stdout
    inspect = pybundle_cli("inspect", str(self_kit.bundle))
    assert inspect.returncode == 0, inspect.stderr
    assert "self-installing (sh py.pybundle install): stub" in inspect.stdout
    assert "bootstrap linux-x86_64-gnu: cpython-3.12.1-linux-x86_64-gnu" in inspect.stdout


@pytest.mark.tool("unzip")
def test_unzip_lists_it_without_complaint(self_kit: SelfKit) -> None:
    out = subprocess.run(
        ["unzip", "-l", str(self_kit.bundle)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "extra bytes" not in out.stdout + out.stderr
    assert "pybundle.json" in out.stdout
    assert "wheels/pybundle-" in out.stdout
    assert "__main__.py" in out.stdout


@pytest.mark.slow
def test_plain_pybundle_install_installs_it_like_a_plain_bundle(
    self_kit: SelfKit, tmp_path: Path
) -> None:
    dest = tmp_path / "installs"
    out = pybundle_cli(
        "install",
        "--from",
        str(self_kit.bundle),
        "--trusted-key",
        str(self_kit.public_key),
        "--install-dir",
        str(dest),
        "--no-bin",
    )
    assert out.returncode == 0, out.stderr
    check_interpreter(dest / INSTALL_NAME)


# ---- sh FILE ---------------------------------------------------------------------------------


def test_help_says_what_the_file_is_how_to_check_it_and_what_runs_first(
    self_kit: SelfKit, host: Host
) -> None:
    out = run_stub(self_kit.bundle, "--help", env=host.env())
    assert out.returncode == 0
    name = str(self_kit.bundle)
    assert f"{name}: a pybundle self-installing bundle" in out.stdout
    assert f"minisign -Vm {name} -p ops.pub" in out.stdout
    assert "What runs before the manifest's signature is checked" in out.stdout
    assert "cpython 3.12.1 default (linux-x86_64-gnu)  (bootstrap)" in out.stdout
    bare = run_stub(self_kit.bundle, env=host.env())
    assert bare.returncode == 2
    assert "What runs before" in bare.stderr
    assert bare.stderr.rstrip().splitlines()[-1].startswith("pybundle: error: missing command")
    bad = run_stub(self_kit.bundle, "uninstall", env=host.env())
    assert bad.returncode == 2
    assert "unknown command 'uninstall'" in one_error_line(bad.stderr)
    assert host.leftovers() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "shell",
    [
        pytest.param(["dash"], marks=pytest.mark.tool("dash"), id="dash"),
        pytest.param(["busybox", "sh"], marks=pytest.mark.tool("busybox"), id="busybox"),
    ],
)
def test_sh_file_install_installs_with_the_bundled_pybundle(
    self_kit: SelfKit, host: Host, shell: list[str]
) -> None:
    out = subprocess.run(
        [*shell, str(self_kit.bundle), "install", "--trusted-key", str(self_kit.public_key)],
        env=host.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    install = host.installs / INSTALL_NAME
    assert f"installed cpython 3.12.1 (linux-x86_64-gnu) -> {install}" in out.stdout
    assert f"verified {self_kit.bundle}: signed by key" in out.stderr
    assert (host.bin / "python3.12").is_symlink()
    check_interpreter(install)
    assert host.leftovers() == []


def test_a_key_it_was_not_signed_with_installs_nothing(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    _, other = write_keys(tmp_path / "other", generate_secret_key(), "other")
    out = run_stub(self_kit.bundle, "install", "--trusted-key", str(other), env=host.env())
    assert out.returncode == 5, out.stderr
    assert "which is not trusted" in one_error_line(out.stderr)
    assert not host.installs.exists() or not any(host.installs.iterdir())
    assert host.leftovers() == []


def test_the_cli_works_under_the_carried_typer(self_kit: SelfKit, host: Host) -> None:
    out = run_stub(self_kit.bundle, "install", "--bogus", env=host.env())
    assert out.returncode == 2
    line = one_error_line(out.stderr)  # click 8.1 may add "Did you mean ...?" in between
    assert line.startswith("pybundle: error: no such option: --bogus")
    assert line.endswith("(see 'pybundle install --help')")
    helped = run_stub(self_kit.bundle, "install", "--help", env=host.env())
    assert helped.returncode == 0, helped.stderr
    assert "--keep-installer" in helped.stdout and "--trusted-key PUB" in helped.stdout
    assert host.leftovers() == []


def test_sh_file_verify_and_inspect_run_too(self_kit: SelfKit, host: Host) -> None:
    out = run_stub(
        self_kit.bundle, "verify", "--trusted-key", str(self_kit.public_key), env=host.env()
    )
    assert out.returncode == 0, out.stderr
    assert "carried files verified" in out.stdout
    out = run_stub(self_kit.bundle, "inspect", "--json", env=host.env())
    assert out.returncode == 0, out.stderr
    assert '"self_install_overhead"' in out.stdout
    assert host.leftovers() == []


# ---- a damaged or modified file --------------------------------------------------------------


def test_a_truncated_file_is_refused_before_anything_runs(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    bundle = copy_of(self_kit, tmp_path)
    with open(bundle, "r+b") as f:
        f.truncate(bundle.stat().st_size - 4096)
    out = run_stub(bundle, "install", "--trusted-key", str(self_kit.public_key), env=host.env())
    assert out.returncode == 5
    assert "is truncated: it should be" in one_error_line(out.stderr)
    with open(bundle, "ab") as f:
        f.write(b"\0" * 4097)
    out = run_stub(bundle, "install", "--trusted-key", str(self_kit.public_key), env=host.env())
    assert out.returncode == 5
    assert "has data after its end" in one_error_line(out.stderr)
    assert host.leftovers() == []


def test_a_flipped_byte_in_the_stub_fails_the_whole_file_signature(
    self_kit: SelfKit, tmp_path: Path
) -> None:
    bundle = copy_of(self_kit, tmp_path)
    signature = bundle.with_name(bundle.name + ".minisig")
    shutil.copyfile(self_kit.bundle.with_name(self_kit.bundle.name + ".minisig"), signature)
    key = load_public_key(self_kit.public_key)
    verify_prehashed(prehash_file(bundle), signature.read_bytes(), [key], str(bundle))
    flip_byte(bundle, 40)  # a comment line of the stub
    with pytest.raises(SignatureError, match="does not verify"):
        verify_prehashed(prehash_file(bundle), signature.read_bytes(), [key], str(bundle))


@pytest.mark.tool("minisign")
def test_minisign_checks_the_whole_file(self_kit: SelfKit, tmp_path: Path) -> None:
    ok = subprocess.run(
        ["minisign", "-Vm", str(self_kit.bundle), "-p", str(self_kit.public_key)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "pybundle self-installing file py.pybundle" in ok.stdout
    bundle = copy_of(self_kit, tmp_path)
    shutil.copyfile(
        self_kit.bundle.with_name("py.pybundle.minisig"), bundle.with_name("py.pybundle.minisig")
    )
    flip_byte(bundle, 100)
    bad = subprocess.run(
        ["minisign", "-Vm", str(bundle), "-p", str(self_kit.public_key)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0


def test_a_flipped_byte_in_the_bootstrap_interpreter_is_caught_before_it_runs(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    bundle = copy_of(self_kit, tmp_path)
    flip_byte(bundle, member_offset(bundle, self_kit.artifact.member) + 1000)
    out = run_stub(bundle, "install", "--trusted-key", str(self_kit.public_key), env=host.env())
    assert out.returncode == 5
    assert "the bootstrap interpreter archives/" in one_error_line(out.stderr)
    assert "does not match the sha256 written in this file" in out.stderr
    assert host.leftovers() == []
    assert not host.installs.exists()


def test_a_flipped_byte_in_a_carried_wheel_is_caught_by_the_launcher_and_the_manifest(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    bundle = copy_of(self_kit, tmp_path)
    wheel = next(f for f in self_kit.parts.section.files if "cryptography" in f.member)
    flip_byte(bundle, member_offset(bundle, wheel.member) + wheel.size // 2)
    out = run_stub(bundle, "install", "--trusted-key", str(self_kit.public_key), env=host.env())
    assert out.returncode == 5
    assert f"{wheel.member} does not match the sha256" in one_error_line(out.stderr)
    assert host.leftovers() == []
    assert not host.installs.exists() or not any(host.installs.iterdir())
    verify = pybundle_cli("verify", "--trusted-key", str(self_kit.public_key), str(bundle))
    assert verify.returncode == 5
    assert f"{bundle}: {wheel.member}: sha256 is" in one_error_line(verify.stderr)
    install = pybundle_cli(
        "install",
        str(bundle),
        "--trusted-key",
        str(self_kit.public_key),
        "--install-dir",
        str(tmp_path / "plain"),
    )
    assert install.returncode == 5
    assert wheel.member in error_line(install.stderr)
    assert not (tmp_path / "plain").exists() or not any((tmp_path / "plain").iterdir())
    with pytest.raises(HashMismatchError):
        from pybundle.installer.verify import verify_bundle

        verify_bundle(bundle, [load_public_key(self_kit.public_key)])


# ---- temporary directories -------------------------------------------------------------------


def test_no_writable_temporary_directory_is_one_line_and_exit_9(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    env = host.env(TMPDIR=str(not_a_dir))
    out = run_stub(
        self_kit.bundle,
        "install",
        "--trusted-key",
        str(self_kit.public_key),
        "--install-dir",
        str(not_a_dir / "installs"),
        env=env,
    )
    assert out.returncode == 9
    line = one_error_line(out.stderr)
    assert "no usable temporary directory for the bootstrap interpreter" in line
    assert str(not_a_dir) in line


def _unshare_available() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None


needs_unshare = pytest.mark.skipif(
    not _unshare_available(), reason="needs root and unshare(1) to mount a tmpfs"
)


@pytest.mark.needs_root
@needs_unshare
def test_not_enough_space_in_the_temporary_directory(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    env = host.env(TMPDIR=str(small))
    script = (
        f"mount -t tmpfs -o size=4m tmpfs '{small}' && "
        f"dash '{self_kit.bundle}' install --trusted-key '{self_kit.public_key}' "
        f"--install-dir '{small}/installs'; rc=$?; ls -A '{small}'; exit $rc"
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 9, out.stderr
    assert "not enough space in" in one_error_line(out.stderr)
    assert "needs about" in out.stderr
    assert out.stdout.strip() == ""  # nothing left on the full tmpfs


@pytest.mark.slow
@pytest.mark.needs_root
@needs_unshare
def test_a_noexec_tmp_falls_back_to_the_install_directory(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    noexec = tmp_path / "noexec"
    noexec.mkdir()
    env = host.env(TMPDIR=str(noexec))
    script = (
        f"mount -t tmpfs -o noexec tmpfs '{noexec}' && "
        f"dash '{self_kit.bundle}' install --trusted-key '{self_kit.public_key}'; rc=$?; "
        f"ls -A '{noexec}'; exit $rc"
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("  linked")  # nothing listed in noexec
    assert sorted(os.listdir(host.installs)) == [".pybundle.lock", INSTALL_NAME]
    check_interpreter(host.installs / INSTALL_NAME)


def _wait_for(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def _private_dir_has(tmp: Path, name: str) -> bool:
    return any((d / name).exists() for d in tmp.glob("pybundle-self.*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "sig", "code"),
    [
        ("python", signal.SIGINT, 130),  # while tar unpacks the bootstrap
        ("site", signal.SIGINT, 130),  # while the bundled pybundle runs
        ("site", signal.SIGTERM, 143),
    ],
)
def test_interrupted_runs_remove_their_temporary_files(
    self_kit: SelfKit, host: Host, stage: str, sig: signal.Signals, code: int
) -> None:
    proc = subprocess.Popen(
        ["dash", str(self_kit.bundle), "install", "--trusted-key", str(self_kit.public_key)],
        env=host.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # A runner that started us in the background (sh's `&`) leaves SIGINT ignored, and an
        # ignored signal is inherited and cannot be trapped: give the job a terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for(lambda: _private_dir_has(host.tmp, stage) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert host.leftovers() == []
    staging = (
        [p for p in host.installs.glob(".pybundle-staging-*")] if host.installs.exists() else []
    )
    if sig == signal.SIGINT:
        assert staging == []


# ---- python3 FILE ----------------------------------------------------------------------------


@pytest.mark.slow
def test_python3_file_install_works_with_another_python(self_kit: SelfKit, host: Host) -> None:
    python = discover_prefix("9") or discover_prefix("11")
    if python is None:
        pytest.skip("needs a pyenv CPython 3.9 or 3.11")
    out = subprocess.run(
        [str(python / "bin" / "python3"), str(self_kit.bundle), "install", "--trusted-key",
         str(self_kit.public_key)],
        env=host.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    check_interpreter(host.installs / INSTALL_NAME)
    assert host.leftovers() == []
    helped = subprocess.run(
        [str(python / "bin" / "python3"), str(self_kit.bundle), "--help"],
        env=host.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert helped.returncode == 0
    assert "py.pybundle: a pybundle self-installing bundle" in helped.stdout


@pytest.mark.parametrize("minor", ["8", "6"])
def test_python3_file_with_an_old_python_says_to_use_sh(
    self_kit: SelfKit, host: Host, minor: str
) -> None:
    python = discover_prefix(minor)
    if python is None:
        pytest.skip(f"needs a pyenv CPython 3.{minor}")
    out = subprocess.run(
        [str(python / "bin" / "python3"), str(self_kit.bundle), "install"],
        env=host.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "needs Python 3.9 or newer; run it with sh instead" in one_error_line(out.stderr)
    assert host.leftovers() == []


# ---- --keep-installer ------------------------------------------------------------------------


@pytest.mark.slow
def test_keep_installer_leaves_a_pybundle_built_from_the_carried_wheels(
    self_kit: SelfKit, host: Host, tmp_path: Path
) -> None:
    env = host.env()
    out = run_stub(
        self_kit.bundle,
        "install",
        "--trusted-key",
        str(self_kit.public_key),
        "--keep-installer",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    link = host.bin / "pybundle"
    assert link.is_symlink(), out.stdout
    assert f"  linked {link}" in out.stdout
    env_dir = Path(os.readlink(link)).parent.parent
    assert env_dir.parent == host.home / ".local" / "share" / "pybundle" / "installer"
    assert host.leftovers() == []
    # only the carried distributions: none of the online side's
    site = next(env_dir.glob("lib/python3.12/site-packages"))
    names = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"pybundle", "cryptography", "typer_slim", "click", "jsonschema"} <= names
    assert names.isdisjoint({"requests", "tqdm", "pydantic", "rich", "typer", "urllib3"})
    # the kept pybundle verifies and installs, offline, with only what it carries
    kept = {**env, "PATH": f"{host.bin}:{BASE_PATH}"}
    version = subprocess.run(["pybundle", "--version"], env=kept, capture_output=True, text=True)
    assert version.stdout.strip() == "pybundle 0.1.0"
    verify = subprocess.run(
        ["pybundle", "verify", "--trusted-key", str(self_kit.public_key), str(self_kit.bundle)],
        env=kept,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    second = tmp_path / "second"
    again = subprocess.run(
        ["pybundle", "install", "--from", str(self_kit.bundle), "--trusted-key",
         str(self_kit.public_key), "--install-dir", str(second), "--no-bin"],
        env=kept,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    check_interpreter(second / INSTALL_NAME)
    online = subprocess.run(
        ["pybundle", "bundle", "--versions", "3.12", "-o", str(tmp_path / "x.pybundle")],
        env=kept,
        capture_output=True,
        text=True,
        check=False,
    )
    assert online.returncode == 2
    assert "this pybundle has the install side only" in error_line(online.stderr)
    # a second --keep-installer moves the link and removes the older environment
    out = run_stub(
        self_kit.bundle,
        "install",
        "--trusted-key",
        str(self_kit.public_key),
        "--keep-installer",
        "--force",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    new_env = Path(os.readlink(link)).parent.parent
    assert new_env != env_dir
    assert not env_dir.exists()


@pytest.mark.slow
def test_keep_installer_never_replaces_a_pybundle_it_did_not_make(
    self_kit: SelfKit, host: Host
) -> None:
    host.bin.mkdir(parents=True)
    mine = host.bin / "pybundle"
    mine.write_text("#!/bin/sh\necho mine\n")
    out = run_stub(
        self_kit.bundle,
        "install",
        "--trusted-key",
        str(self_kit.public_key),
        "--keep-installer",
        env=host.env(),
    )
    assert out.returncode == 8
    line = error_line(out.stderr)
    assert "pybundle did not create it" in line
    assert "the kept pybundle is" in line
    assert mine.read_text() == "#!/bin/sh\necho mine\n"
    assert host.leftovers() == []


def test_keep_installer_is_refused_before_installing_when_it_cannot_be_done(
    self_kit: SelfKit,
    host: Host,
    tiny_bundle,
    key_files,  # type: ignore[no-untyped-def]
) -> None:
    plain = tiny_bundle()
    out = pybundle_cli(
        "install",
        str(plain),
        "--trusted-key",
        str(key_files[1]),
        "--keep-installer",
        "--install-dir",
        str(host.root / "plain"),
    )
    assert out.returncode == 2
    assert "carries no installer" in one_error_line(out.stderr)
    assert not (host.root / "plain").exists()
    out = run_stub(
        self_kit.bundle,
        "install",
        "--trusted-key",
        str(self_kit.public_key),
        "--keep-installer",
        "--versions",
        "3.13",
        env=host.env(),
    )
    assert out.returncode == 2
    assert not host.installs.exists()
    assert host.leftovers() == []


@pytest.mark.slow
def test_sh_file_install_json_reports_the_kept_installer(self_kit: SelfKit, host: Host) -> None:
    out = run_stub(
        self_kit.bundle,
        "install",
        "--trusted-key",
        str(self_kit.public_key),
        "--keep-installer",
        "--json",
        "--no-bin",
        env=host.env(),
    )
    assert out.returncode == 0, out.stderr
    import json

    doc = json.loads(out.stdout)
    assert doc["installer"]["link"] is None
    assert doc["installer"]["command"].endswith("/bin/pybundle")
    assert os.access(doc["installer"]["command"], os.X_OK)
    assert doc["installs"][0]["name"] == INSTALL_NAME


def test_the_launcher_runs_isolated_from_python_variables(self_kit: SelfKit, host: Host) -> None:
    poison = host.root / "poison"
    poison.mkdir(parents=True)
    # typer: every command imports it (a valid manifest no longer imports jsonschema)
    for name in ("jsonschema", "typer"):
        (poison / f"{name}.py").write_text(f"raise SystemExit('poisoned {name} imported')\n")
    env = host.env(PYTHONPATH=str(poison), PYTHONHOME="/nonexistent", LD_LIBRARY_PATH="/keep")
    out = run_stub(self_kit.bundle, "verify", "--trusted-key", str(self_kit.public_key), env=env)
    assert out.returncode == 0, out.stderr
    assert host.leftovers() == []
