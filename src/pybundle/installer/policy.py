"""Trust policy beyond the signature: freshness (created / expires) and rollback protection.

A valid signature proves who made a manifest, not that it is current. An attacker who kept an
old signed bundle (with an interpreter that has since had security fixes) could replay it; so
the installer refuses a bundle whose ``expires`` has passed or whose ``created`` lies in the
future beyond a small clock skew, and remembers, per signer key id, the highest ``serial`` it
has installed, refusing an older one. Overrides: ``--allow-expired``, ``--allow-downgrade``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import platformdirs
from filelock import FileLock

from pybundle.errors import IntegrityError, StorageError
from pybundle.manifest import Manifest, format_timestamp

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


class SerialStore:
    """The highest serial installed per signer key id, in ``<state dir>/serials.json``
    (``{"<KEY ID HEX>": serial, ...}``), updated under a file lock with an atomic rename."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_state_dir()
        self.path = self.directory / "serials.json"

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"{self.path}: cannot read the installed-serials record: {exc}"
            ) from exc
        if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
            raise StorageError(f"{self.path}: the installed-serials record is malformed")
        return {str(k): int(v) for k, v in data.items()}

    def highest(self, key_id_hex: str) -> int | None:
        """The highest serial recorded for the key, or None."""
        return self._read().get(key_id_hex)

    def check(self, key_id_hex: str, serial: int, source: str, *, allow_downgrade: bool) -> None:
        """Raise DowngradeError if ``serial`` is below the recorded one, unless allowed."""
        highest = self.highest(key_id_hex)
        if highest is not None and serial < highest and not allow_downgrade:
            raise DowngradeError(
                f"{source}: bundle serial {serial} is older than serial {highest} already "
                f"installed from key {key_id_hex}; use --allow-downgrade to install it anyway"
            )

    def record(self, key_id_hex: str, serial: int) -> None:
        """Remember ``serial`` for the key if it is the highest so far."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock"):
                data = self._read()
                if data.get(key_id_hex, -1) >= serial:
                    return
                data[key_id_hex] = serial
                fd, tmp = tempfile.mkstemp(prefix=".serials.", dir=self.directory)
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot record the installed serial: {exc}") from exc
