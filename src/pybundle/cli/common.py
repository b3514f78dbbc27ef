"""Conventions every pybundle command follows, and the shared pieces that implement them.

A command is one plain function: parse its options, call one library function, print the
result (text lines and JSON documents are built in :mod:`pybundle.cli.render`). A module of
commands defines plain functions; :mod:`pybundle.cli.app` registers each with
``app.command("name", short_help="...")(function)`` (or ``app.add_typer`` for a group, whose
callback also takes ``verbose``/``quiet``). Use this module for everything users see the same
way in every command:

**Errors.** Raise a typed error of :mod:`pybundle.errors` whose message is one sentence naming
the file or value at fault (:class:`~pybundle.errors.UsageError` for a bad or contradictory
command line: exit 2). Never print an error or call ``sys.exit``: :func:`pybundle.cli.main`
prints ``pybundle: error: <message>`` on stderr and exits with the error's code. Typer's own
usage errors (missing or unknown option, bad value) become the same single line with exit 2
(:func:`usage_line`).

**Verbosity.** Every command declares ``verbose: bool = VERBOSE, quiet: bool = QUIET`` (values
unused in the body; the options record themselves in :data:`state`), so ``-v``/``-q`` work in
any position, before or after the command name. Print through:

* :func:`say` informational lines on stdout (silenced by ``-q``);
* :func:`note` informational lines on stderr, e.g. progress notes (silenced by ``-q``);
* :func:`warn` ``pybundle: warning: ...`` on stderr (silenced by ``-q``);
* :func:`emit` / :func:`emit_json` the output the user asked for (``cache dir``, ``inspect``,
  ``--json`` documents): always printed.

Progress bars are drawn only when :func:`bars_enabled` (stderr is a terminal and no ``-q``).

**JSON.** ``as_json: bool = JSON``; with it, stdout holds exactly one JSON document
(:func:`emit_json`) and nothing else; errors stay one line on stderr with their exit code.
Keys are snake_case, sizes in bytes, times RFC 3339 UTC. ``install --json`` is built by
:func:`pybundle.cli.render.install_json`: one entry per interpreter under ``installs``, which
commands adding links or layouts extend with their own keys.

**The bundle file.** Commands that read a bundle take it as an argument or with ``--from``:
``file: Optional[Path] = BUNDLE_ARGUMENT, from_: Optional[Path] = FROM_OPTION``, then
``bundle_path(file, from_)``. Typer would list a positional argument with its Python type, so
positional arguments are ``hidden`` and the command's docstring says what FILE is.

**Trusted keys.** ``trusted_key: list[Path] = TRUSTED_KEY``, then ``load_keys(trusted_key)``.

**Help text.** Metavars are capitalised words (``FILE``, ``DIR``, ``PUB``, ``LIST``, ``N``),
never Python types: give ``metavar=`` to every option that takes a value. Defaults name the
real fallback: the environment variable, then the path on this machine (:func:`shown`). Give
each command a ``short_help`` of at most 55 characters so the command list is never cut off.
Every option appears in README.md's usage section. Messages count with :func:`plural`
("1 interpreter", "2 interpreters").
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import platformdirs
import typer

from pybundle.errors import UsageError

__all__ = [
    "BUNDLE_ARGUMENT",
    "FROM_OPTION",
    "JSON",
    "QUIET",
    "TRUSTED_KEY",
    "VERBOSE",
    "bars_enabled",
    "bundle_path",
    "default_cache_dir_text",
    "default_install_dir_text",
    "emit",
    "emit_json",
    "load_keys",
    "note",
    "plural",
    "say",
    "shown",
    "size",
    "state",
    "trusted_keys_dir_text",
    "usage_line",
    "warn",
]


class _State:
    """Process-wide CLI settings, set by the ``-v``/``-q`` options wherever they appear."""

    verbose = False
    quiet = False

    def reset(self) -> None:
        """Back to the defaults (each :func:`pybundle.cli.main` call starts afresh)."""
        self.verbose = False
        self.quiet = False


state = _State()


def _set_verbose(value: bool) -> bool:
    if value:
        state.verbose = True
    return value


def _set_quiet(value: bool) -> bool:
    if value:
        state.quiet = True
    return value


VERBOSE: Any = typer.Option(
    False, "--verbose", "-v", callback=_set_verbose, help="Show tracebacks on errors."
)
QUIET: Any = typer.Option(
    False,
    "--quiet",
    "-q",
    callback=_set_quiet,
    help="Print only errors and the output asked for (no progress, notes or warnings).",
)
JSON: Any = typer.Option(False, "--json", help="Print one JSON document on stdout.")


# ---- paths shown in help texts


def shown(path: Path) -> str:
    """``path`` for a help text or message, with the home directory written ``~``."""
    home = os.path.expanduser("~")
    text = str(path)
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


def trusted_keys_dir_text() -> str:
    """The trusted-keys directory as help texts show it (see
    :func:`pybundle.installer.verify.trusted_keys_dir`)."""
    return shown(Path(platformdirs.user_config_dir("pybundle")) / "trusted-keys")


def default_install_dir_text() -> str:
    """``--install-dir``'s default as help texts show it (see
    :func:`pybundle.installer.install.default_install_dir`)."""
    return "$PYBUNDLE_INSTALL_DIR, else " + shown(
        Path(platformdirs.user_data_dir("pybundle")) / "python"
    )


def default_cache_dir_text() -> str:
    """``--cache-dir``'s default as help texts show it (see
    :func:`pybundle.bundler.cache.default_cache_dir`)."""
    return "$PYBUNDLE_CACHE_DIR, else " + shown(Path(platformdirs.user_cache_dir("pybundle")))


# ---- shared options

BUNDLE_ARGUMENT: Any = typer.Argument(None, metavar="FILE", show_default=False, hidden=True)
FROM_OPTION: Any = typer.Option(
    None, "--from", metavar="FILE", help="The .pybundle file, instead of the FILE argument."
)
TRUSTED_KEY: Any = typer.Option(
    [],
    "--trusted-key",
    metavar="PUB",
    show_default=False,
    help="Trust this minisign public key file (repeatable). Every *.pub file in "
    f"{trusted_keys_dir_text()} is trusted too.",
)


def bundle_path(file: Optional[Path], from_: Optional[Path]) -> Path:
    """The bundle named by the positional argument or ``--from`` (one of them, or both alike).

    Raises UsageError when neither or two different files are given.
    """
    if file is not None and from_ is not None and file != from_:
        raise UsageError(f"two bundles given ({file} and --from {from_}): name one")
    path = file if file is not None else from_
    if path is None:
        raise UsageError("missing the bundle file: give it as an argument or with --from FILE")
    return path


def load_keys(trusted_key: list[Path]) -> list[Any]:
    """The named public keys plus the trusted-keys directory's
    (:func:`pybundle.installer.verify.load_trusted_keys`)."""
    from pybundle.installer.verify import load_trusted_keys

    return load_trusted_keys([p.expanduser() for p in trusted_key])


# ---- output


def say(*lines: str) -> None:
    """Informational lines on stdout; nothing with ``-q``."""
    if not state.quiet:
        for line in lines:
            print(line)


def note(message: str) -> None:
    """An informational line on stderr (what is happening); nothing with ``-q``."""
    if not state.quiet:
        print(message, file=sys.stderr)


def warn(message: str) -> None:
    """``pybundle: warning: <message>`` on stderr; nothing with ``-q``."""
    if not state.quiet:
        print(f"pybundle: warning: {message}", file=sys.stderr)


def emit(*lines: str) -> None:
    """Output the user asked for, on stdout, whatever ``-q`` says."""
    for line in lines:
        print(line)


def emit_json(doc: Any) -> None:
    """One JSON document on stdout (indented, UTF-8 text kept as is)."""
    print(json.dumps(doc, indent=2, ensure_ascii=False))


def bars_enabled() -> bool:
    """Progress bars are drawn: stderr is a terminal and ``-q`` was not given."""
    return not state.quiet and sys.stderr.isatty()


def plural(n: int, singular: str, plural_form: Optional[str] = None) -> str:
    """``"1 interpreter"``, ``"2 interpreters"`` (``plural_form`` for irregular words)."""
    return f"{n} {singular if n == 1 else (plural_form or singular + 's')}"


def size(n: int) -> str:
    """Bytes in decimal megabytes, one decimal: ``"43.9 MB"`` (10^6 bytes, as the progress
    bars count)."""
    return f"{n / 1e6:.1f} MB"


def usage_line(exc: Any, root: Any = None, argv: Sequence[str] = ()) -> str:
    """The one-line message for a Typer/Click usage error (missing or unknown option, bad
    value, unknown command): its message with the first letter lower-cased, the final period
    dropped, line breaks joined, and where to look: ``(see 'pybundle install --help')``.

    The command comes from the error's context, or else from ``argv`` walked through the
    click group ``root`` (errors raised while parsing carry no context)."""
    message = " ".join(str(exc.format_message()).split())
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    message = message.rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "pybundle"
    if where == "pybundle" and root is not None:
        words, command = [], root
        for token in argv:
            subcommands = getattr(command, "commands", {})
            if token.startswith("-"):
                continue
            if token not in subcommands:
                break
            words.append(token)
            command = subcommands[token]
        where = " ".join(["pybundle", *words])
    return f"{message} (see '{where} --help')"
