"""Trust policy beyond the signature: freshness (created / expires) and rollback protection.

A valid signature proves who made a manifest, not that it is current. An attacker who kept an
old signed bundle (with an interpreter that has since had security fixes) could replay it; so
the installer refuses a bundle whose ``expires`` has passed or whose ``created`` lies in the
future beyond a small clock skew, and remembers, per signer key id, the highest ``serial`` it
has installed for each interpreter line, refusing an older one for that line. Overrides:
``--allow-expired``, ``--allow-downgrade``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import platformdirs

from pybundle.errors import IntegrityError, StorageError
from pybundle.jsondoc import load_json
from pybundle.manifest import Artifact, Manifest, format_timestamp

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a bundle's ``created`` time may be (clock differences)."""
STATE_ENV = "PYBUNDLE_STATE_DIR"


class FreshnessError(IntegrityError):
    """The bundle has expired or claims to be created in the future (exit 5)."""


class DowngradeError(IntegrityError):
    """The bundle's serial is lower than one already installed from the same signer (exit 5)."""


def check_freshness(
    manifest: Manifest, source: str, *, now: datetime | None = None, allow_expired: bool = False
) -> None:
    """Refuse an expired manifest or one created more than CLOCK_SKEW in the future.

    Raises FreshnessError naming ``source`` and the times, unless ``allow_expired``.
    """
    if allow_expired:
        return
    now = now or datetime.now(timezone.utc)
    if manifest.expires is not None and now >= manifest.expires:
        raise FreshnessError(
            f"{source}: bundle expired at {format_timestamp(manifest.expires)} "
            f"(now {format_timestamp(now)}); use --allow-expired to install it anyway"
        )
    if manifest.created > now + CLOCK_SKEW:
        raise FreshnessError(
            f"{source}: bundle claims to be created at {format_timestamp(manifest.created)}, "
            f"in the future (now {format_timestamp(now)}); check the clocks, or use "
            "--allow-expired"
        )


def default_state_dir() -> Path:
    """``$PYBUNDLE_STATE_DIR``, else the user state dir (``~/.local/state/pybundle``)."""
    env = os.environ.get(STATE_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_state_dir("pybundle"))


def interpreter_line(artifact: Artifact) -> str:
    """The interpreter line an artifact belongs to, the unit of rollback protection:
    implementation, minor version, variant and target, e.g. ``cpython-3.12-linux-x86_64-gnu``
    or ``cpython-3.13+freethreaded-linux-x86_64_v3-gnu``. Patch version and build are not part
    of it: a newer bundle may bring 3.12.9 after 3.12.8 on the same line."""
    minor = ".".join(artifact.version.split(".")[:2])
    variant = "" if artifact.variant == "default" else f"+{artifact.variant}"
    return f"{artifact.implementation}-{minor}{variant}-{artifact.target.install_key}"


_LINE = re.compile(r"^[a-z]+-[0-9]+\.[0-9]+(\+[a-z+]+)?-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+$")
_KEY_ID = re.compile(r"^[0-9A-F]{16}$")
STATE_VERSION = 2
MAX_STATE_BYTES = 16 * 1024 * 1024


class SerialStore:
    """Rollback protection: the highest bundle serial installed per signer key id and
    interpreter line (:func:`interpreter_line`), in ``<state dir>/serials.json``::

        {"version": 2, "signers": {"<KEY ID HEX>": {"<line>": <serial>, ...}, ...}}

    The rule (docs/security.md): a bundle may not install an interpreter line for which a
    newer bundle of the same signer was installed before; lines it does not hold are not
    affected, so one key can sign a 3.11 bundle for one team and a 3.12 bundle for another.

    The file is rewritten atomically (temp file, fsync, rename) under a file lock. Reading is
    forgiving, because a broken state file must not lock a host out of every install: an entry
    of the wrong type is ignored (and dropped at the next write); a file that is not valid
    JSON, or of an unknown shape, is moved aside to ``serials.json.damaged-<time>`` and a new
    record is started. Each such repair is reported once through ``warn``, with what was
    done. The old format (one serial per key, version 1) is read as damaged-in-part: its
    entries cannot say which line they protected, so they are dropped with a warning.
    """

    def __init__(
        self, directory: Path | None = None, warn: Callable[[str], None] | None = None
    ) -> None:
        self.directory = directory or default_state_dir()
        self.path = self.directory / "serials.json"
        self._warn = warn or (lambda message: None)
        self._warned: set[str] = set()

    def _report(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def _read(self) -> dict[str, dict[str, int]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(
                f"{self.path}: cannot read the installed-serials record: {exc.strerror}"
            ) from exc
        try:
            doc = load_json(
                data,
                str(self.path),
                "installed-serials record",
                StorageError,
                max_bytes=MAX_STATE_BYTES,
                integers_only=False,
            )
        except StorageError as exc:
            self._set_aside(exc.message)
            return {}
        if isinstance(doc, dict) and "version" not in doc:
            if doc:
                self._report(
                    f"{self.path}: this record is in the old one-serial-per-key format; its "
                    f"{len(doc)} entries are dropped (rollback protection is now kept per "
                    "interpreter line) and the file is rewritten at the next install"
                )
            return {}
        if not (
            isinstance(doc, dict)
            and doc.get("version") == STATE_VERSION
            and isinstance(doc.get("signers"), dict)
        ):
            self._set_aside(f"{self.path}: the installed-serials record has an unknown shape")
            return {}
        result: dict[str, dict[str, int]] = {}
        bad = 0
        for key, lines in doc["signers"].items():
            if not _KEY_ID.match(key) or not isinstance(lines, dict):
                bad += 1
                continue
            for line, serial in lines.items():
                if _LINE.match(line) and type(serial) is int and serial >= 0:
                    result.setdefault(key, {})[line] = serial
                else:
                    bad += 1
        if bad:
            self._report(
                f"{self.path}: {bad} malformed entr{'y' if bad == 1 else 'ies'} ignored "
                "(dropped when the file is next rewritten)"
            )
        return result

    def _set_aside(self, problem: str) -> None:
        """Move a damaged record aside (kept for the user) so that a new one can start."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(
                f"{problem}; it could not be moved aside ({exc.strerror}): remove it to start "
                "a new record"
            ) from exc
        self._report(
            f"{problem}; it was moved to {aside} and a new record started (rollback protection "
            "restarts from the bundles installed from now on)"
        )

    def highest(self, key_id_hex: str, line: str) -> int | None:
        """The highest serial recorded for the key and interpreter line, or None."""
        return self._read().get(key_id_hex, {}).get(line)

    def check(
        self,
        key_id_hex: str,
        lines: Iterable[str],
        serial: int,
        source: str,
        *,
        allow_downgrade: bool,
    ) -> None:
        """Raise DowngradeError if, for one of ``lines``, a newer serial of the same signer was
        installed before (unless ``allow_downgrade``). A serial equal to the recorded one is
        a reinstall, not a downgrade."""
        if allow_downgrade:
            return
        recorded = self._read().get(key_id_hex, {})
        for line in sorted(set(lines)):
            highest = recorded.get(line)
            if highest is not None and serial < highest:
                raise DowngradeError(
                    f"{source}: bundle serial {serial} is older than serial {highest} already "
                    f"installed for {line} from key {key_id_hex}; use --allow-downgrade to "
                    "install it anyway"
                )

    def record(self, key_id_hex: str, lines: Iterable[str], serial: int) -> None:
        """Remember ``serial`` for each of the key's ``lines`` where it is the highest so far."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock  # here: verify reads the rules, never this lock

            with FileLock(str(self.path) + ".lock"):
                data = self._read()
                mine = data.setdefault(key_id_hex, {})
                changed = False
                for line in set(lines):
                    if mine.get(line, -1) < serial:
                        mine[line] = serial
                        changed = True
                if not changed and self.path.exists():
                    return
                doc = {"version": STATE_VERSION, "signers": data}
                fd, tmp = tempfile.mkstemp(prefix=".serials.", dir=self.directory)
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as out:
                        json.dump(doc, out, indent=1, sort_keys=True)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot record the installed serial: {exc}") from exc
