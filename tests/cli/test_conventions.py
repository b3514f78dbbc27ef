"""The conventions every command follows (src/pybundle/cli/common.py), through the real CLI:
-v/-q anywhere, -q silences all but errors and requested output, the bundle as an argument or
with --from, --json documents, install --versions, plurals, `pybundle versions`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_BUILD, make_tar, run_cli, tar_file, tiny_interpreter_members, uv_catalog

CATALOG = uv_catalog()


@pytest.fixture
def trusted(tiny_bundle, key_files):  # type: ignore[no-untyped-def]
    """``(bundle path, public key path)`` of a signed one-interpreter bundle (3.12.1)."""
    return tiny_bundle(), key_files[1]


def test_quiet_and_verbose_work_in_any_position(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    loud = run_cli("cache", "clean", "--cache-dir", cache, check=True)
    assert loud.stdout == "removed 0 files, 0.0 MB\n"
    for args in (
        ("-q", "cache", "clean", "--cache-dir", cache),
        ("cache", "-q", "clean", "--cache-dir", cache),
        ("cache", "clean", "--cache-dir", cache, "--quiet"),
    ):
        proc = run_cli(*args, check=True)
        assert (proc.stdout, proc.stderr) == ("", ""), args
    # requested output is printed whatever -q says
    assert run_cli("cache", "dir", "-q", "--cache-dir", cache).stdout == f"{cache}\n"
    missing = str(tmp_path / "missing.pybundle")
    for args in (("-v", "verify", missing), ("verify", missing, "-v"), ("verify", "-v", missing)):
        proc = run_cli(*args)
        assert proc.returncode == 9 or proc.returncode == 5, proc.stderr
        assert "Traceback (most recent call last)" in proc.stderr, args
        assert proc.stderr.splitlines()[-1].startswith("pybundle: error: ")
    plain = run_cli("verify", missing)
    assert len(plain.stderr.splitlines()) == 1


def test_bundle_as_argument_or_from_and_json(trusted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, pub = trusted
    by_arg = run_cli("verify", str(bundle), "--trusted-key", str(pub), check=True)
    by_from = run_cli("verify", "--from", str(bundle), "--trusted-key", str(pub), check=True)
    assert by_arg.stdout == by_from.stdout
    assert re.fullmatch(
        r"OK .*: signed by key \w{16}, serial \d+, 1 archive verified\n", by_arg.stdout
    )
    assert run_cli("verify", str(bundle), "--trusted-key", str(pub), "-q", check=True).stdout == ""

    doc = json.loads(run_cli("verify", str(bundle), "--trusted-key", str(pub), "--json").stdout)
    assert doc["verified"] is True and doc["file"] == str(bundle)
    assert [a["install_name"] for a in doc["artifacts"]] == ["cpython-3.12.1-linux-x86_64-gnu"]
    assert len(doc["signer_key_id"]) == 16 and doc["serial"] > 0

    a = json.loads(run_cli("inspect", str(bundle), "--json", check=True).stdout)
    b = json.loads(run_cli("inspect", "--from", str(bundle), "--json", check=True).stdout)
    assert a == b and a["verified"] is False

    installs = tmp_path / "installs"
    proc = run_cli(
        "install", str(bundle), "--trusted-key", str(pub), "--install-dir", str(installs), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["installs"]
    assert entry["name"] == "cpython-3.12.1-linux-x86_64-gnu" and entry["replaced"] is False
    assert Path(entry["path"]) == installs / entry["name"] and Path(entry["path"]).is_dir()
    assert entry["files"] == 2 and entry["bytes"] > 0
    assert proc.stderr.startswith(f"verified {bundle}: signed by key ")  # notes go to stderr

    quiet = run_cli(
        "install",
        "--from",
        str(bundle),
        "--trusted-key",
        str(pub),
        "--install-dir",
        str(installs),
        "--force",
        "-q",
    )
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_install_versions_takes_bundle_requests(tmp_path: Path, signing_key, key_files) -> None:  # type: ignore[no-untyped-def]
    from conftest import tiny_artifact
    from pybundle.bundler.pack import write_bundle

    items = []
    for version in ("3.12.1", "3.13.0"):
        archive = make_tar(
            tmp_path
            / f"cpython-{version}+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz",
            tiny_interpreter_members(),
        )
        items.append((tiny_artifact(archive, version=version), archive))
    bundle = tmp_path / "two.pybundle"
    write_bundle(bundle, items, secret_key=signing_key)
    pub = str(key_files[1])

    def names(*extra: str) -> list[str]:
        where = tmp_path / f"i{len(list(tmp_path.iterdir()))}"
        proc = run_cli(
            "install",
            str(bundle),
            "--trusted-key",
            pub,
            "--install-dir",
            str(where),
            "--json",
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        return [e["name"].split("-")[1] for e in json.loads(proc.stdout)["installs"]]

    assert names() == ["3.12.1", "3.13.0"]
    assert names("--versions", "3.13") == ["3.13.0"]
    assert names("--version", "3.12") == ["3.12.1"]  # the old spelling
    assert names("--versions", "3.12-3.13") == ["3.12.1", "3.13.0"]
    assert names("--versions", ">=3.13") == ["3.13.0"]
    assert names("--versions", "cpython@3.12.1") == ["3.12.1"]
    for request in ("pypy@3.12", "3.13t", "3.11"):
        proc = run_cli(
            "install",
            str(bundle),
            "--trusted-key",
            pub,
            "--versions",
            request,
            "--install-dir",
            str(tmp_path / "never"),
        )
        assert proc.returncode == 2, proc.stderr
        assert f"no interpreter matches --versions {request}" in proc.stderr
        assert "cpython-3.12.1, cpython-3.13.0" in proc.stderr
    proc = run_cli("install", str(bundle), "--trusted-key", pub, "--prefix", str(tmp_path / "p"))
    assert proc.returncode == 2 and "choose one with --versions" in proc.stderr


def test_missing_trusted_key_names_both_ways(trusted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, _pub = trusted
    for args in (("verify",), ("install", "--install-dir", str(tmp_path / "i"))):
        proc = run_cli(*args, str(bundle))
        assert proc.returncode == 5
        line = proc.stderr.strip()
        assert "no trusted key was given" in line and "--trusted-key PUB" in line
        trust_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "pybundle" / "trusted-keys"
        assert str(trust_dir) in line


def test_trusted_keys_directory_is_enough(trusted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, pub = trusted
    trust_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "pybundle" / "trusted-keys"
    trust_dir.mkdir(parents=True)
    (trust_dir / "ops.pub").write_bytes(pub.read_bytes())
    assert run_cli("verify", str(bundle)).returncode == 0


def _local_catalog(tmp_path: Path, versions: tuple[str, ...]) -> Path:
    """A directory catalog (PBS file names + SHA256SUMS) of tiny archives."""
    directory = tmp_path / "catalog"
    directory.mkdir()
    sums = []
    for version in versions:
        name = f"cpython-{version}+{TEST_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
        members = [*tiny_interpreter_members(), tar_file("python/VERSION", version.encode())]
        path = make_tar(directory / name, members)
        sums.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
    (directory / "SHA256SUMS").write_text("".join(sums))
    return directory


def test_bundle_quiet_prints_nothing_and_plurals_are_right(tmp_path: Path) -> None:
    catalog = _local_catalog(tmp_path, ("3.12.1", "3.13.0"))
    base = ["bundle", "--catalog", str(catalog), "--platform", "linux-x86_64"]
    base += ["--cache-dir", str(tmp_path / "cache")]
    one = run_cli(*base, "--versions", "3.12", "-o", str(tmp_path / "one.pybundle"), check=True)
    assert "(1 interpreter, " in one.stdout and "1 download, 0 from cache" in one.stdout
    assert "downloads: 1 file, 0 cache hits, " in one.stdout
    assert (
        one.stderr
        == "pybundle: warning: no --sign-key given; the bundle is unsigned and will not install\n"
    )
    two = run_cli(
        *base, "--versions", "3.12,3.13", "-o", str(tmp_path / "two.pybundle"), check=True
    )
    assert "(2 interpreters, " in two.stdout and "downloads: 2 files, 1 cache hit, " in two.stdout
    quiet = run_cli(*base, "--versions", "3.12,3.13", "-q", "-o", str(tmp_path / "q.pybundle"))
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert (tmp_path / "q.pybundle").is_file()
    plan = run_cli(*base, "--versions", "3.13", "--dry-run", "-q", check=True)
    assert plan.stdout.startswith("plan: 1 archive, 1 already cached")  # requested output


def test_versions_lists_what_the_catalog_offers() -> None:
    proc = run_cli("versions", "--catalog", str(CATALOG), "--platform", "linux-x86_64", check=True)
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"{len(lines) - 1} interpreters in the catalog"
    names = [line.split()[0] for line in lines[:-1]]
    assert "cpython-3.12.14-linux-x86_64-gnu" in names
    assert "cpython-3.13.1+freethreaded-linux-x86_64-gnu" in names
    assert all(n.endswith("-linux-x86_64-gnu") for n in names)
    first_pypy = next(i for i, n in enumerate(names) if n.startswith("pypy-"))
    assert all(n.startswith("cpython-") for n in names[:first_pypy])
    doc = json.loads(
        run_cli("versions", "--catalog", str(CATALOG), "--platform", "all-linux", "--json").stdout
    )
    assert len(doc) > len(names)
    assert {d["platform"] for d in doc} >= {"linux-x86_64", "linux-aarch64", "linux-x86_64-musl"}
    cpython = [d for d in doc if d["implementation"] == "cpython" and d["variant"] == "default"]
    from pybundle.versions import PythonVersion

    on_x86 = [PythonVersion.parse(d["version"]) for d in cpython if d["platform"] == "linux-x86_64"]
    assert on_x86 == sorted(on_x86, reverse=True)  # newest first
    entry = next(d for d in doc if d["name"] == "cpython-3.12.14-linux-x86_64-gnu")
    assert entry["build"].isdigit() and entry["flavours"] and entry["prerelease"] is False
    # the requests `bundle --versions` takes resolve to versions listed here
    plan = json.loads(
        run_cli(
            "bundle",
            "--catalog",
            str(CATALOG),
            "--platform",
            "linux-x86_64",
            "--versions",
            "3.12",
            "--json",
        ).stdout
    )
    assert plan["artifacts"][0]["key"] in names


def test_shell_completion() -> None:
    # Typer otherwise reads the shell from the process tree (shellingham) and ignores "bash"
    # when the suite runs under no shell; this variable is Typer's switch for its own tests.
    no_detection = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = run_cli("--show-completion", "bash", env=no_detection, check=True).stdout
    assert "_pybundle_completion" in script and "complete " in script
    env = {"_PYBUNDLE_COMPLETE": "complete_bash", "COMP_WORDS": "pybundle ins", "COMP_CWORD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pybundle"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert proc.stdout.split() == ["inspect", "install"]
