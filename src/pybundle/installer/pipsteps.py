"""The steps shared by everything the installer builds with an interpreter's own tools: a venv
made by ``python -I -m venv``, and pip run offline inside it.

Used by ``install --venv`` (:mod:`pybundle.installer.venv`) and ``install --keep-installer``
(:mod:`pybundle.installer.keep`). pip's options are those of ``pip install --help`` (pip 23+):
``--isolated`` ignores the user's pip configuration and environment variables, ``--no-index``
with ``--find-links`` reads wheels from one directory only, so nothing reaches a network.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from pybundle.errors import StorageError

__all__ = ["SUBPROCESS_TIMEOUT", "make_venv", "offline_pip", "run_step"]

SUBPROCESS_TIMEOUT = 1800.0
"""Seconds one step (venv creation, a pip run, byte-compiling) may take before it is stopped."""


def run_step(argv: Sequence[str], what: str) -> None:
    """Run ``argv`` (no shell), capturing its output. Raises StorageError ``cannot WHAT: WHY``,
    WHY being pip's last ``ERROR:`` line, else the last line the step printed, else its exit
    status, when it cannot start, times out or exits non-zero."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StorageError(f"cannot {what}: {exc}") from exc
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR:")]
        why = (errors or lines or [f"exit status {proc.returncode}"])[-1].strip()
        raise StorageError(f"cannot {what}: {why}")


def make_venv(python: Path, env: Path) -> Path:
    """Make a venv at ``env`` with ``python -I -m venv`` (pip from the interpreter's own
    ensurepip) and return the venv's ``bin/python``. Raises StorageError (see
    :func:`run_step`)."""
    run_step([str(python), "-I", "-m", "venv", str(env)], f"create a venv in {env}")
    return env / "bin" / "python"


def offline_pip(env_python: Path, wheels: Path) -> list[str]:
    """The command line that starts ``pip install`` of the venv whose interpreter is
    ``env_python``, offline, reading wheels from the directory ``wheels`` only; append what to
    install (requirements, wheel paths, ``--require-hashes -r LOCK``)."""
    return [
        str(env_python),
        "-I",
        "-m",
        "pip",
        "install",
        "--isolated",
        "--no-index",
        "--find-links",
        str(wheels),
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--quiet",
    ]
