"""``pybundle keygen``, and the key passwords of encrypted minisign secret keys.

A password comes from ``$PYBUNDLE_KEY_PASSWORD`` (for automation) or, on a terminal, from a
prompt; it is asked for only when a key file turns out to be encrypted.
"""

# No `from __future__ import annotations`: Typer would compile and eval every annotation
# string of every command at each start (about 5 ms; see bench/README.md, start-up).

import getpass
import os
import sys
from pathlib import Path
from typing import Any, Callable

import typer

from pybundle.cli.common import QUIET, VERBOSE, say
from pybundle.errors import UsageError

PASSWORD_ENV = "PYBUNDLE_KEY_PASSWORD"


def _terminal() -> bool:
    return sys.stdin.isatty()


def password_for(path: Path) -> Callable[[], str]:
    """The password of the encrypted secret key file ``path``, asked only when needed:
    ``$PYBUNDLE_KEY_PASSWORD``, else a prompt on the terminal.

    Raises UsageError (when called) if neither is available.
    """

    def ask() -> str:
        env = os.environ.get(PASSWORD_ENV)
        if env is not None:
            return env
        if not _terminal():
            raise UsageError(
                f"{path} is encrypted: set {PASSWORD_ENV} to its password, or run on a terminal "
                "to be asked for it"
            )
        return getpass.getpass(f"Password for {path}: ")

    return ask


def new_password(path: Path) -> str:
    """The password for a new secret key file: ``$PYBUNDLE_KEY_PASSWORD``, else asked twice on
    the terminal. Raises UsageError when there is neither, the two differ, or it is empty."""
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        if not env:
            raise UsageError(f"{PASSWORD_ENV} is empty; use --unencrypted for a key without one")
        return env
    if not _terminal():
        raise UsageError(
            f"keygen encrypts {path} with a password: set {PASSWORD_ENV}, run it on a terminal, "
            "or use --unencrypted"
        )
    first = getpass.getpass(f"Password for the new key {path}: ")
    if not first:
        raise UsageError("an empty password does not protect a key; use --unencrypted instead")
    if getpass.getpass("Password (again): ") != first:
        raise UsageError("the two passwords differ; nothing was written")
    return first


def keygen(
    secret_key: Path = typer.Option(
        ..., "--secret-key", metavar="PATH", help="Where to write the secret key (mode 0600)."
    ),
    public_key: Path = typer.Option(
        ..., "--public-key", metavar="PATH", help="Where to write the public key."
    ),
    unencrypted: bool = typer.Option(
        False,
        "--unencrypted",
        help="Write the secret key without a password (as minisign -G -W does).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing key files."),
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Create an Ed25519 key pair in minisign's file formats.

    The secret key is encrypted with a password (scrypt, as minisign -G does): from
    $PYBUNDLE_KEY_PASSWORD, else asked on the terminal. --unencrypted writes it without one.
    """
    from pybundle.signing import write_keypair

    secret, public = secret_key.expanduser(), public_key.expanduser()
    password: Any = None if unencrypted else new_password(secret)
    key = write_keypair(secret, public, force=force, password=password)
    say(
        f"key id {key.public_key.key_id_hex}",
        f"secret key: {secret_key}" + (" (unencrypted)" if unencrypted else " (encrypted)"),
        f"public key: {public_key}",
    )
