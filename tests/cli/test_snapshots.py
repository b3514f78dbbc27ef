"""Snapshots of every command's help and of each usage error, as a user sees them.

The expected texts live in ``tests/cli/snapshots/``. Each run uses a fixed terminal width
(``COLUMNS=100``) and a fixed home directory, so the default paths the help names are stable.
After a deliberate change, ``PYBUNDLE_UPDATE_SNAPSHOTS=1 pytest tests/cli/test_snapshots.py``
rewrites them; review the diff before committing it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("PYBUNDLE_UPDATE_SNAPSHOTS") == "1"
REPO = Path(__file__).resolve().parents[2]

COMMANDS = [  # every command: test_every_command_has_a_snapshot keeps this list whole
    (),
    ("keygen",),
    ("bundle",),
    ("versions",),
    ("verify",),
    ("inspect",),
    ("install",),
    ("list",),
    ("uninstall",),
    ("relocate",),
    ("check",),
    ("cache",),
    ("cache", "dir"),
    ("cache", "list"),
    ("cache", "clean"),
    ("cache", "export-uv"),
    ("wheels",),
    ("wheels", "export"),
]

USAGE_ERRORS = [
    ("install",),
    ("install", "--bogus"),
    ("install", "a.pybundle", "--from", "b.pybundle"),
    ("install", "a.pybundle", "--install-dir", "d", "--prefix", "p"),
    ("install", "a.pybundle", "--versions"),
    ("install", "a.pybundle", "--versions", "3.x"),
    ("verify",),
    ("inspect", "--json", "--from"),
    ("keygen",),
    ("keygen", "--secret-key", "k", "--public-key"),
    ("bundle", "--jobs", "x"),
    ("bundle", "--jobs", "99"),
    ("bundle", "--serial", "-1"),
    ("bundle", "--versions", "3.12"),
    ("bundle", "--versions", "3.x", "--dry-run"),
    ("bundle", "--versions", "3.12", "--prerelease", "sometimes", "--dry-run"),
    ("bundle", "--versions", "3.12", "--variant", "jit", "--dry-run"),
    ("bundle", "--versions", "3.12", "--catalog", "c.json", "--pbs-release", "1", "--dry-run"),
    ("bundle", "-o", "x.pybundle"),
    ("bundle", "--expires-in", "soon", "-o", "x.pybundle", "--versions", "3.12"),
    ("versions", "--catalog", "c.json", "--pbs-release", "1"),
    ("cache", "clean", "--older-than", "soon"),
    ("cache", "export-uv"),
    ("cache", "nosuch"),
    ("nosuch",),
    ("-q", "--bogus"),
]


def cli_env(home: Path) -> dict[str, str]:
    """A stable environment: fixed width and home, no XDG or PYBUNDLE variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "PYBUNDLE_", "COLUMNS", "LINES"))
    }
    env.update({"COLUMNS": "100", "HOME": str(home), "TERM": "dumb", "NO_COLOR": "1"})
    return env


def run(args: tuple[str, ...], home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pybundle", *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=cwd,
        timeout=120,
    )


def check_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"{path} is missing: run with PYBUNDLE_UPDATE_SNAPSHOTS=1"
    assert actual == path.read_text(), f"{name} changed (PYBUNDLE_UPDATE_SNAPSHOTS=1 updates it)"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "user"
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c) or "pybundle")
def test_help(command: tuple[str, ...], home: Path, tmp_path: Path) -> None:
    proc = run((*command, "--help"), home, tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    text = proc.stdout
    # no Python types as metavars, no summary cut off with "..."
    assert not re.search(r"<(?:path|str|int|list\[\w+\]|Path)>|\{file\}", text), text
    assert "..." not in text.replace("[ARGS]...", "")
    assert str(home) not in text  # the home directory is written ~
    check_snapshot(f"help-{'-'.join(command) or 'pybundle'}.txt", text)


def test_usage_errors_are_one_line_with_exit_2(home: Path, tmp_path: Path) -> None:
    transcript = []
    for args in USAGE_ERRORS:
        proc = run(args, home, tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == "", (args, proc.stdout)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("pybundle: error: "), (args, proc.stderr)
        transcript.append(f"$ pybundle {' '.join(args)}\n{proc.stderr}")
    check_snapshot("usage-errors.txt", "".join(transcript))


def test_a_bare_command_prints_its_help_as_a_usage_error(home: Path, tmp_path: Path) -> None:
    for args in ((), ("cache",)):
        proc = run(args, home, tmp_path)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith(f"Usage: pybundle {' '.join(args)}".rstrip())


def test_every_option_is_in_the_readme() -> None:
    """Each option of each command appears in README.md's usage section."""
    import typer.main

    from pybundle.cli.app import app

    readme = (REPO / "README.md").read_text()
    usage = readme[readme.index("## Usage") : readme.index("## Exit codes")]
    missing = []

    def walk(command: object, path: str) -> None:
        for param in getattr(command, "params", []):
            for opt in getattr(param, "opts", []):
                shown = re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", usage)
                if opt.startswith("-") and opt != "--help" and not shown:
                    missing.append(f"{path} {opt}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "pybundle")
    assert not missing, f"options missing from README.md's usage section: {missing}"


def test_help_names_the_real_default_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paths the help shows are the ones the library falls back to."""
    from pybundle.bundler.cache import default_cache_dir
    from pybundle.cli import common
    from pybundle.installer.install import default_install_dir
    from pybundle.installer.verify import trusted_keys_dir

    monkeypatch.delenv("PYBUNDLE_INSTALL_DIR", raising=False)
    monkeypatch.delenv("PYBUNDLE_CACHE_DIR", raising=False)
    assert common.default_install_dir_text().endswith(common.shown(default_install_dir()))
    assert common.default_cache_dir_text().endswith(common.shown(default_cache_dir()))
    assert common.trusted_keys_dir_text() == common.shown(trusted_keys_dir())


def test_every_command_has_a_snapshot() -> None:
    """A new command gets its help snapshot (and so a review of its help text)."""
    import typer.main

    from pybundle.cli.app import app

    root = typer.main.get_command(app)
    names = {(name,) for name in root.commands}  # type: ignore[attr-defined]
    cache = root.commands["cache"]  # type: ignore[attr-defined]
    names |= {("cache", name) for name in cache.commands}
    wheels = root.commands["wheels"]  # type: ignore[attr-defined]
    names |= {("wheels", name) for name in wheels.commands}
    assert names | {()} == set(COMMANDS)
