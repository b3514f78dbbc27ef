"""What runs from a self-installing bundle before (and to) install it: the launcher the sh stub
hands to the bootstrap interpreter, and the ``python3 FILE`` route.

Order of events with ``sh FILE install --trusted-key ops.pub`` (the stub: ``stub.sh``):

1. the stub checks the file's size and the sha256 of its zip directory (a truncated or extended
   file stops here), picks this host's bootstrap (``uname -m``; glibc or musl loader), copies
   that interpreter archive out of the file into a private temporary directory, checks its
   sha256, unpacks it with ``gzip``/``tar`` and runs it once (``python -I -S -c ''``) to prove
   the directory allows execution (else it tries beside the install directory);
2. it runs ``python -I -B -c LAUNCHER FILE TMP LDLP LDSET COMMAND SPEC... -- ARGS...``
   (:data:`LAUNCHER`), which copies each wheel of the bootstrap out of the file, checks its
   sha256 against ``SPEC`` (``member=sha256``, written in the stub), unpacks it into
   ``TMP/site``, restores the caller's ``LD_LIBRARY_PATH``, and calls :func:`run`;
3. :func:`run` is ``pybundle COMMAND --from FILE ARGS...``: the signature of the manifest is
   checked against the host's trusted keys, as by an installed pybundle, before anything is
   installed.

``python3 FILE ...`` (a Python >= 3.9 on the host) runs the zip's ``__main__.py``
(:func:`render_main`): it unpacks pybundle's wheel (sha256-checked) with that Python and calls
:func:`python_route`, which does step 1 in Python (pybundle's own safe extractor instead of
tar) and then step 2 unchanged. Both routes remove their temporary directories on success,
failure, Ctrl-C and SIGTERM.

Exit codes are pybundle's (:mod:`pybundle.errors`): 2 usage, 5 a damaged or modified file, 7 no
interpreter for this host, 9 no space or no usable temporary directory; the launched pybundle's
own code otherwise.
"""

from __future__ import annotations

import hashlib
import os
import pprint
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Optional

from pybundle.errors import (
    IntegrityError,
    PlatformMismatchError,
    PybundleError,
    StorageError,
    UsageError,
)

COMMANDS = ("install", "verify", "inspect")
"""The pybundle commands a self-installing file runs (each gets ``--from FILE``)."""
TEMP_PREFIX = "pybundle-self."
"""Name prefix of the private temporary directories (``pybundle-self.XXXXXXXX``)."""
SITE_DIR = "site"
COPY_CHUNK = 1024 * 1024

_UNPACK = r"""
import hashlib, os, sys, zipfile


def _fail(code, text):
    sys.stderr.write("pybundle: error: " + text + "\n")
    sys.exit(code)


def _unpack(bundle, site, specs):
    os.makedirs(site, exist_ok=True)
    part = os.path.join(site, ".wheel.part")
    try:
        with zipfile.ZipFile(bundle) as outer:
            for spec in specs:
                member, want = spec.rsplit("=", 1)
                digest = hashlib.sha256()
                try:
                    with outer.open(member) as src, open(part, "wb") as dst:
                        while True:
                            block = src.read(1048576)
                            if not block:
                                break
                            digest.update(block)
                            dst.write(block)
                except zipfile.BadZipFile:
                    digest = None
                if digest is None or digest.hexdigest() != want:
                    _fail(5, bundle + ": " + member + " does not match the sha256 this file "
                          "records for it: the file was modified or damaged after it was made")
                with zipfile.ZipFile(part) as wheel:
                    wheel.extractall(site)
                os.remove(part)
    except OSError as exc:
        _fail(9, "cannot unpack pybundle into " + site + ": " + str(exc.strerror or exc))
    except (KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        _fail(5, bundle + " is damaged (" + str(exc) + "): copy it again")
"""

LAUNCHER = (
    _UNPACK
    + r"""
bundle, tmp, ldlp, ldset, command = sys.argv[1:6]
rest = sys.argv[6:]
cut = rest.index("--")
if ldset == "set":
    os.environ["LD_LIBRARY_PATH"] = ldlp
else:
    os.environ.pop("LD_LIBRARY_PATH", None)
site = os.path.join(tmp, "site")
_unpack(bundle, site, rest[:cut])
sys.path.insert(0, site)
from pybundle.selfinstall.boot import run
run(bundle, command, rest[cut + 1:])
"""
)
"""Python code the bootstrap interpreter runs with ``-I -B -c`` (argv: FILE TMP LDLP LDSET
COMMAND SPEC... -- ARGS...). Plain enough for every Python >= 3.9, without a single quote so
that the stub can hold it in one sh word."""

MAIN_HEADER = """\
# pybundle self-installing bundle: what `python3 FILE ...` runs (see `sh FILE --help`).
# It unpacks pybundle's own wheel, checked against the sha256 below, into a private temporary
# directory, then pybundle.selfinstall.boot.python_route does what the sh stub does.
"""

MAIN_BODY = r"""

def _main():
    if sys.version_info < (3, 9):
        sys.stderr.write(
            "pybundle: error: running this file with python3 needs Python 3.9 or newer; "
            "run it with sh instead: sh " + sys.argv[0] + " install ...\n"
        )
        return 2
    import shutil
    import tempfile

    bundle = os.path.abspath(sys.argv[0])
    try:
        tmp = tempfile.mkdtemp(prefix="pybundle-self.")
    except OSError as exc:
        _fail(9, "no writable temporary directory (" + str(exc) + "): set TMPDIR")
    try:
        site = os.path.join(tmp, "site")
        _unpack(bundle, site, [TABLE["pybundle_wheel"]])
        sys.path.insert(0, site)
        from pybundle.selfinstall.boot import python_route

        return python_route(bundle, TABLE, sys.argv[1:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


sys.exit(_main())
"""


def render_main(table: dict[str, Any]) -> bytes:
    """The zip's ``__main__.py`` for ``table`` (see :func:`python_route` for its keys): plain
    code for any Python 3 (it says so and stops below 3.9), no third-party import."""
    body = pprint.pformat(table, width=100, sort_dicts=True)  # a Python literal, sorted
    text = MAIN_HEADER + _UNPACK + "\n\nTABLE = " + body + "\n" + MAIN_BODY
    return text.encode("utf-8")


def run(bundle: str, command: str, args: Sequence[str]) -> None:
    """``pybundle COMMAND --from BUNDLE ARGS...`` in this process (the launcher's last step);
    exits with the command's code."""
    from pybundle.cli import main

    main([command, "--from", bundle, *args])
    sys.exit(0)


# ---- the python3 route ---------------------------------------------------------------------


def python_route(bundle: str, table: dict[str, Any], argv: Sequence[str]) -> int:
    """Do what the sh stub does, with this (host) Python: ``argv`` is ``COMMAND ARGS...``.

    ``table`` (written into ``__main__.py`` by the bundler) holds ``help`` (the text of
    ``--help``, ``FILE`` standing for the file's name), ``pybundle_wheel`` (``member=sha256``)
    and ``bootstraps``: per platform key (``linux-x86_64-gnu``) the interpreter archive's
    ``member``, ``sha256``, ``size``, ``strip_prefix``, ``executable``, ``unpacked_size``,
    ``file_count`` and ``wheels`` (``member=sha256`` each). Returns the exit code.
    """
    stop = _Unwind()
    try:
        command, args = parse_command(argv, table["help"], bundle)
        if command is None:
            return 0
        from pybundle.targets import host_target

        host = host_target().key
        entry = table["bootstraps"].get(host)
        if entry is None:
            have = ", ".join(sorted(table["bootstraps"]))
            raise PlatformMismatchError(
                f"{bundle} holds no interpreter for this host ({host}); it has: {have}"
            )
        return _launch_somewhere(bundle, entry, command, args)
    except PybundleError as exc:
        print(f"pybundle: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pybundle: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # SIGTERM/SIGHUP while no launcher ran: temp files are gone
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        stop.restore()


class _Unwind:
    """SIGTERM and SIGHUP unwind the python3 route (SystemExit 143/129), so that its
    temporary directories are removed as on Ctrl-C."""

    def __init__(self) -> None:
        self._previous = {s: signal.signal(s, self._exit) for s in (signal.SIGTERM, signal.SIGHUP)}

    @staticmethod
    def _exit(signum: int, _frame: Optional[FrameType]) -> None:
        raise SystemExit(128 + signum)

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def parse_command(
    argv: Sequence[str], help_text: str, bundle: str
) -> tuple[Optional[str], list[str]]:
    """``(command, rest)`` from the arguments; ``(None, [])`` after printing the help for
    ``--help``/``-h``/``help``. Raises UsageError for no command (after printing the help on
    stderr) or an unknown one."""
    name = os.path.basename(bundle)
    if not argv or argv[0] in ("-h", "--help", "help"):
        text = help_text.replace("FILE", name)
        if not argv:
            print(text, file=sys.stderr)
            raise UsageError(f"missing command: python3 {name} install|verify|inspect ...")
        print(text)
        return None, []
    if argv[0] not in COMMANDS:
        raise UsageError(
            f"unknown command {argv[0]!r}: this file runs install, verify or inspect "
            f"(see: python3 {name} --help)"
        )
    return argv[0], list(argv[1:])


def install_dir_fallback(args: Sequence[str], environ: Optional[dict[str, str]] = None) -> str:
    """Where the bootstrap goes when the temporary directory does not allow execution: the
    install directory (``--install-dir``, the parent of ``--prefix``, ``$PYBUNDLE_INSTALL_DIR``,
    else ``$XDG_DATA_HOME`` or ``~/.local/share``, then ``pybundle/python``): an interpreter must
    run from there anyway. Mirrors the stub's ``pb_install_dir``."""
    env = os.environ if environ is None else environ
    found: Optional[str] = None
    it = iter(range(len(args)))
    for i in it:
        arg = args[i]
        if arg in ("--install-dir", "--prefix") and i + 1 < len(args):
            found = args[i + 1] if arg == "--install-dir" else os.path.dirname(args[i + 1])
            next(it, None)
        elif arg.startswith("--install-dir="):
            found = arg.partition("=")[2]
        elif arg.startswith("--prefix="):
            found = os.path.dirname(arg.partition("=")[2])
    if found:
        return os.path.abspath(found)
    if env.get("PYBUNDLE_INSTALL_DIR"):
        return os.path.abspath(os.path.expanduser(env["PYBUNDLE_INSTALL_DIR"]))
    data = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "pybundle", "python")


def _launch_somewhere(bundle: str, entry: dict[str, Any], command: str, args: list[str]) -> int:
    """Unpack the bootstrap under the temporary directory, else in the install directory, and
    run the launcher from the first one where it can execute."""
    bases = [tempfile.gettempdir(), install_dir_fallback(args)]
    tried: list[str] = []
    for base in bases:
        try:
            os.makedirs(base, exist_ok=True)
            private = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base)
        except OSError as exc:
            tried.append(f"{base} ({exc.strerror or exc})")
            continue
        try:
            root = unpack_bootstrap(bundle, entry, Path(private))
            executable = root / entry["executable"]
            why = _probe(executable, root / "lib")
            if why is None:
                return _launch(bundle, executable, root / "lib", private, command, entry, args)
            tried.append(f"{base} ({why})")
        finally:
            shutil.rmtree(private, ignore_errors=True)
    raise StorageError(
        "no temporary directory where the bootstrap interpreter can run: " + "; ".join(tried)
    )


def unpack_bootstrap(bundle: str, entry: dict[str, Any], private: Path) -> Path:
    """Copy the bootstrap archive out of ``bundle`` into ``private``, check its sha256, unpack
    it with pybundle's safe extractor and return the interpreter's root (the archive's strip
    prefix removed). Raises IntegrityError (a damaged or modified file), StorageError (no
    space), UnsafeArchiveError."""
    from pybundle.archives import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES
    from pybundle.installer.extract import extract_archive

    member = entry["member"]
    copy = private / "bootstrap.tar.gz"
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(bundle) as outer, outer.open(member) as src, open(copy, "wb") as dst:
            while block := src.read(COPY_CHUNK):
                digest.update(block)
                dst.write(block)
    except OSError as exc:
        raise StorageError(
            f"cannot copy the bootstrap interpreter into {private}: {exc.strerror or exc}"
        ) from exc
    except (KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise IntegrityError(
            f"{bundle}: the bootstrap interpreter {member} cannot be read ({exc}): the file was "
            "modified or damaged after it was made"
        ) from exc
    if digest.hexdigest() != entry["sha256"]:
        raise IntegrityError(
            f"{bundle}: the bootstrap interpreter {member} does not match the sha256 this file "
            "records for it: the file was modified or damaged after it was made"
        )
    root = private / "python"
    root.mkdir()
    with open(copy, "rb") as stream:
        extract_archive(
            stream,
            "tar.gz",
            entry["strip_prefix"],
            root,
            source=f"{bundle}: {member}",
            max_bytes=entry.get("unpacked_size") or DEFAULT_MAX_BYTES,
            max_entries=entry.get("file_count") or DEFAULT_MAX_ENTRIES,
        )
    copy.unlink()
    return root


def _probe(executable: Path, lib: Path) -> Optional[str]:
    """None when ``executable`` runs (``-I -S -c ''``), else why not (one line)."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
    try:
        proc = subprocess.run(
            [str(executable), "-I", "-S", "-c", ""],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return lines[0] if lines else f"exit status {proc.returncode}"
    return None


def _launch(
    bundle: str,
    executable: Path,
    lib: Path,
    private: str,
    command: str,
    entry: dict[str, Any],
    args: list[str],
) -> int:
    """Run the launcher (as the stub does) and return its exit code; Ctrl-C and SIGTERM/SIGHUP
    reach it too, and its temporary directory goes only after it has ended."""
    ldlp = os.environ.get("LD_LIBRARY_PATH")
    argv = [
        str(executable),
        "-I",
        "-B",
        "-c",
        LAUNCHER,
        bundle,
        private,
        ldlp or "",
        "set" if ldlp is not None else "unset",
        command,
        *entry["wheels"],
        "--",
        *args,
    ]
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
    proc = subprocess.Popen(argv, env=env)

    def forward(signum: int, _frame: Optional[FrameType]) -> None:
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                continue  # the launched pybundle got the terminal's SIGINT too: let it finish
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code
