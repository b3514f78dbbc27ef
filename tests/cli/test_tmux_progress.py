"""The install progress bar on a real terminal (tmux): shown by default, hidden by -q."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TEST_BUILD, make_tar, tar_file, tiny_artifact, tiny_interpreter_members
from pybundle.archives import scan_archive
from pybundle.bundler.pack import write_bundle
from pybundle.signing import SecretKey

pytestmark = pytest.mark.tool("tmux")


def measured_bundle(tmp_path: Path, key: SecretKey) -> tuple[Path, int]:
    """A signed bundle of one tiny interpreter (with a 3 MB library) whose manifest records the
    unpacked size; returns (bundle, unpacked size in bytes)."""
    members = [
        *tiny_interpreter_members(),
        tar_file("python/lib/libbig.so", os.urandom(3_000_000)),
    ]
    name = f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    archive = make_tar(tmp_path / name, members)
    with open(archive, "rb") as stream:
        shape = scan_archive(stream, "tar.gz", str(archive))
    artifact = dataclasses.replace(
        tiny_artifact(archive), unpacked_size=shape.unpacked_size, file_count=shape.file_count
    )
    bundle = tmp_path / "measured.pybundle"
    write_bundle(bundle, [(artifact, archive)], secret_key=key)
    return bundle, shape.unpacked_size


def test_install_bar_shows_on_a_terminal_and_quiet_hides_it(
    tmp_path: Path, signing_key: SecretKey, key_files: tuple[Path, Path]
) -> None:
    bundle, unpacked = measured_bundle(tmp_path, signing_key)
    marker = tmp_path / "done"
    base = [sys.executable, "-m", "pybundle", "install", str(bundle)]
    base += ["--trusted-key", str(key_files[1]), "--install-dir"]
    script = tmp_path / "session.sh"
    script.write_text(
        "\n".join(
            [
                "echo '== loud'",
                shlex.join([*base, str(tmp_path / "one")]),
                "echo '== quiet'",
                shlex.join([*base, str(tmp_path / "two"), "-q"]),
                "echo '== end'",
                f"touch {shlex.quote(str(marker))}",
                "sleep 600",
            ]
        )
        + "\n"
    )
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "150", "-y", "50", "-s", "t", f"sh {script}"],
        check=True,
        env=env,
        timeout=30,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert time.monotonic() < deadline, "the installs did not finish in time"
            time.sleep(0.2)
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p", "-J", "-t", "t", "-S", "-100"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)
    loud = screen[screen.index("== loud") : screen.index("== quiet")]
    quiet = screen[screen.index("== quiet") : screen.index("== end")]
    assert "cpython-3.12.1-linux-x86_64-gnu" in loud and "100%|" in loud, screen
    total = f"{unpacked / 1e6:.2f}M"  # decimal units (tqdm prints the B in the rate only)
    assert f"{total}/{total}" in loud, screen
    assert "installed cpython 3.12.1" in loud
    assert quiet.strip() == "== quiet", screen
    assert (tmp_path / "two" / "cpython-3.12.1-linux-x86_64-gnu").is_dir()


def test_key_passwords_are_asked_on_a_terminal(
    tmp_path: Path, signing_key: SecretKey, key_files: tuple[Path, Path]
) -> None:
    """keygen asks twice for the new key's password; bundle --sign-key asks for it again."""
    import hashlib

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    name = f"cpython-3.12.1+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    archive = make_tar(catalog / name, tiny_interpreter_members())
    (catalog / "SHA256SUMS").write_text(
        f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {name}\n"
    )
    key, pub, out = tmp_path / "k" / "ops.key", tmp_path / "k" / "ops.pub", tmp_path / "o.pybundle"
    py = [sys.executable, "-m", "pybundle"]
    marker = tmp_path / "done"
    script = tmp_path / "session.sh"
    script.write_text(
        "\n".join(
            [
                shlex.join([*py, "keygen", "--secret-key", str(key), "--public-key", str(pub)]),
                shlex.join(
                    [
                        *py,
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
                        str(key),
                        "-o",
                        str(out),
                    ]
                ),
                f"echo exit=$? > {shlex.quote(str(marker))}",
                "sleep 600",
            ]
        )
        + "\n"
    )
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    env = {k: v for k, v in os.environ.items() if k != "PYBUNDLE_KEY_PASSWORD"}
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "150", "-y", "50", "-s", "t", f"sh {script}"],
        check=True,
        env=env,
        timeout=30,
    )

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-J", "-t", "t", "-S", "-100"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    def answer(prompt: str, count: int) -> None:
        deadline = time.monotonic() + 60
        while screen().count(prompt) < count:
            assert time.monotonic() < deadline, f"no prompt {prompt!r}:\n{screen()}"
            time.sleep(0.2)
        subprocess.run([*tmux, "send-keys", "-t", "t", "s3cret pass", "Enter"], check=True)

    try:
        answer("Password for the new key", 1)
        answer("Password (again)", 1)
        answer(f"Password for {key}", 1)
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert time.monotonic() < deadline, screen()
            time.sleep(0.2)
        text = screen()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)
    assert marker.read_text().strip() == "exit=0", text
    assert "s3cret" not in text  # never echoed
    from pybundle.installer.verify import verify_bundle
    from pybundle.signing import load_public_key

    verified = verify_bundle(out, [load_public_key(pub)])
    assert f"signed by key {verified.key.key_id_hex}" in text
