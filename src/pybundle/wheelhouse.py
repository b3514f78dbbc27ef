"""The manifest's ``wheelhouses`` section (schema version 2): the wheels a bundle carries for
its users' packages (``pybundle bundle -r FILE / --with PKG``), one wheelhouse per target
(Python version x platform), with each target's lock.

JSON form (see ``schemas/manifest-v2.schema.json``)::

    "wheelhouses": {
      "wheels": [
        {"member": "wheels/requests-2.32.5-py3-none-any.whl", "size": 64738,
         "sha256": "...", "tags": ["py3-none-any"]}
      ],
      "targets": [
        {"key": "cpython-3.12-linux-x86_64-gnu", "python": "3.12", "abi": "cp312",
         "os": "linux", "arch": "x86_64", "libc": "gnu",
         "artifacts": ["archives/cpython-3.12.1+...-install_only.tar.gz"],
         "wheels": ["wheels/requests-2.32.5-py3-none-any.whl", ...],
         "lock": {"member": "locks/cpython-3.12-linux-x86_64-gnu.txt", "size": 812,
                  "sha256": "..."},
         "missing": [{"requirement": "bcrypt==5.0.0", "reason": "..."}]}
      ]
    }

``os`` is ``linux``, ``darwin`` or ``windows`` (libc ``none`` for the last two), and the key
spells the platform as uv's install directories do (``macos`` for ``darwin``):
``cpython-3.12-macos-aarch64-none``, ``cpython-3.12-windows-x86_64-none``.

A wheel is one zip member however many targets use it (``py3-none-any`` and ``abi3`` wheels
are shared), and it is the same member as a self-installing bundle's carried wheel of the same
file name (:mod:`pybundle.selfinstall.section`): the two must then agree on size and sha256. A
target's lock is a pip requirements file in ``--require-hashes`` form (one ``name==version``
line with its ``--hash=sha256:`` per wheel, pip's documented "hash-checking mode"), so that
``pip install --no-index --find-links DIR --require-hashes -r lock.txt`` installs exactly the
wheelhouse. ``missing`` lists the requirements that had no wheel for the target when the bundle
was made with ``--allow-missing-wheels``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from pybundle.errors import ManifestError
from pybundle.targets import Target, is_known_target

WHEELS_DIR = "wheels"
LOCKS_DIR = "locks"
WHEEL_MEMBER = re.compile(r"^wheels/[A-Za-z0-9][A-Za-z0-9._+-]*\.whl$")
LOCK_MEMBER = re.compile(r"^locks/cpython-3\.[0-9]{1,2}t?-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+\.txt$")
KEY = re.compile(r"^cpython-3\.[0-9]{1,2}t?-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+$")


class ArtifactLike(Protocol):
    """What the section's checks need of an interpreter archive (:class:`pybundle.manifest.
    Artifact`)."""

    @property
    def member(self) -> str: ...

    @property
    def target(self) -> Target: ...

    @property
    def version(self) -> str: ...

    @property
    def implementation(self) -> str: ...


class MemberLike(Protocol):
    """A zip member the manifest hashes (a carried file of a self-installing bundle)."""

    @property
    def member(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...


def wheelhouse_key(python: str, target: Target, freethreaded: bool = False) -> str:
    """``cpython-3.12-linux-x86_64-gnu``: the name of a target's wheelhouse (``3.13t`` for a
    free-threaded build), with uv's install-directory platform key
    (:attr:`pybundle.targets.Target.install_key`, which says ``macos`` for ``darwin``):
    ``cpython-3.12-macos-aarch64-none``, ``cpython-3.12-windows-x86_64-none``."""
    platform = Target(target.os, target.arch, target.libc).install_key
    return f"cpython-{python}{'t' if freethreaded else ''}-{platform}"


@dataclass(frozen=True)
class WheelFile:
    """One wheel the bundle carries: ``member`` is ``wheels/<file name>``, ``size`` in bytes,
    ``sha256`` lower-case hex, ``tags`` the PEP 425 tags its file name expands to
    (``cp39-abi3-manylinux_2_17_x86_64``, ...)."""

    member: str
    size: int
    sha256: str
    tags: tuple[str, ...]

    @property
    def file_name(self) -> str:
        """The wheel's file name."""
        return posixpath.basename(self.member)

    def to_json(self) -> dict[str, Any]:
        """``{"member", "size", "sha256", "tags"}``."""
        return {
            "member": self.member,
            "size": self.size,
            "sha256": self.sha256,
            "tags": list(self.tags),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WheelFile:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(data["member"], data["size"], data["sha256"], tuple(data["tags"]))


@dataclass(frozen=True)
class LockFile:
    """A target's lock: ``member`` ``locks/<key>.txt``, ``size`` in bytes, ``sha256``."""

    member: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """``{"member", "size", "sha256"}``."""
        return {"member": self.member, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockFile:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(data["member"], data["size"], data["sha256"])


@dataclass(frozen=True)
class Missing:
    """A requirement without a wheel for a target (``--allow-missing-wheels``): the
    ``requirement`` as pip named it (``bcrypt==5.0.0``) and a one-line ``reason``."""

    requirement: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """``{"requirement", "reason"}``."""
        return {"requirement": self.requirement, "reason": self.reason}


@dataclass(frozen=True)
class Wheelhouse:
    """The wheels of one target: CPython ``python`` (``"3.12"``) with ABI ``abi``
    (``cp312``) on ``target`` (os, arch, libc); ``artifacts`` the interpreter archives
    (members) it serves; ``wheels`` the members of its wheels; ``lock`` its lock file;
    ``missing`` what had no wheel."""

    key: str
    python: str
    abi: str
    target: Target
    artifacts: tuple[str, ...]
    wheels: tuple[str, ...]
    lock: LockFile
    missing: tuple[Missing, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The target as the manifest's JSON object."""
        return {
            "key": self.key,
            "python": self.python,
            "abi": self.abi,
            "os": self.target.os,
            "arch": self.target.arch,
            "libc": self.target.libc,
            "artifacts": list(self.artifacts),
            "wheels": list(self.wheels),
            "lock": self.lock.to_json(),
            "missing": [m.to_json() for m in self.missing],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Wheelhouse:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(
            key=data["key"],
            python=data["python"],
            abi=data["abi"],
            target=Target(data["os"], data["arch"], data["libc"]),
            artifacts=tuple(data["artifacts"]),
            wheels=tuple(data["wheels"]),
            lock=LockFile.from_json(data["lock"]),
            missing=tuple(Missing(m["requirement"], m["reason"]) for m in data["missing"]),
        )

    def matches(self, name: str) -> bool:
        """True when ``name`` (``--target``) names this wheelhouse: its key, or its key
        without the libc (``cpython-3.12-linux-x86_64``)."""
        return name in (self.key, self.key.rsplit("-", 1)[0])


@dataclass(frozen=True)
class Wheelhouses:
    """The section: every carried ``wheels`` file once, and one :class:`Wheelhouse` per
    target."""

    wheels: tuple[WheelFile, ...]
    targets: tuple[Wheelhouse, ...]

    def wheel(self, member: str) -> WheelFile:
        """The wheel record of ``member`` (KeyError when absent; :meth:`check` guarantees
        every target's members are present)."""
        for w in self.wheels:
            if w.member == member:
                return w
        raise KeyError(member)

    def files(self) -> list[MemberLike]:
        """Every member the section hashes: the wheels, then each target's lock."""
        return [*self.wheels, *(t.lock for t in self.targets)]

    def for_artifact(self, member: str) -> Optional[Wheelhouse]:
        """The wheelhouse serving the interpreter archive ``member``, or None."""
        return next((t for t in self.targets if member in t.artifacts), None)

    def target_bytes(self, house: Wheelhouse) -> int:
        """Bytes of the wheels of ``house``."""
        return sum(self.wheel(m).size for m in house.wheels)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the wheels as stored (each once)."""
        return sum(w.size for w in self.wheels)

    @property
    def unshared_bytes(self) -> int:
        """Bytes the wheels would take with one copy per target (no sharing)."""
        return sum(self.target_bytes(t) for t in self.targets)

    def to_json(self) -> dict[str, Any]:
        """``{"wheels": [...], "targets": [...]}``."""
        return {
            "wheels": [w.to_json() for w in self.wheels],
            "targets": [t.to_json() for t in self.targets],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Wheelhouses:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(
            wheels=tuple(WheelFile.from_json(w) for w in data["wheels"]),
            targets=tuple(Wheelhouse.from_json(t) for t in data["targets"]),
        )

    def check(
        self, artifacts: Sequence[ArtifactLike], carried: Sequence[MemberLike], source: str
    ) -> None:
        """What the schema cannot express: wheel and lock members are unique, fit their
        patterns and are no archive's; a wheel that is also a carried file of the
        self-installing section has the same size and sha256; keys are unique and match their
        target; each target names listed archives of its Python version and platform (each
        archive served by one target at most), listed wheels once each, and no two wheels of
        one project. Raises ManifestError naming ``source``."""
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename

        archives = {a.member: a for a in artifacts}
        others = {m.member: m for m in carried}
        seen: set[str] = set()
        for w in self.wheels:
            if w.member in seen or w.member in archives:
                raise ManifestError(f"{source}: manifest lists {w.member} twice")
            seen.add(w.member)
            if not WHEEL_MEMBER.match(w.member):
                raise ManifestError(f"{source}: {w.member!r} is not a valid wheel member")
            try:
                parse_wheel_filename(w.file_name)
            except InvalidWheelFilename as exc:
                raise ManifestError(f"{source}: {w.member} is not a wheel file name") from exc
            other = others.get(w.member)
            if other is not None and (other.sha256, other.size) != (w.sha256, w.size):
                raise ManifestError(
                    f"{source}: {w.member} is carried twice with different contents"
                )
        projects: dict[str, str] = {}
        for w in self.wheels:
            projects[w.member] = str(parse_wheel_filename(w.file_name)[0])
        keys: set[str] = set()
        served: set[str] = set()
        for t in self.targets:
            if t.key in keys:
                raise ManifestError(f"{source}: manifest has two wheelhouses {t.key}")
            keys.add(t.key)
            freethreaded = t.abi.endswith("t")
            if not is_known_target(t.target):
                raise ManifestError(
                    f"{source}: wheelhouse {t.key} is for {t.target.key}, not a known platform"
                )
            if t.key != wheelhouse_key(t.python, t.target, freethreaded) or not KEY.match(t.key):
                raise ManifestError(f"{source}: wheelhouse key {t.key!r} does not fit its target")
            if t.lock.member != f"{LOCKS_DIR}/{t.key}.txt" or t.lock.member in seen:
                raise ManifestError(
                    f"{source}: the lock of {t.key} is {t.lock.member!r}, not "
                    f"{LOCKS_DIR}/{t.key}.txt"
                )
            seen.add(t.lock.member)
            for member in t.artifacts:
                a = archives.get(member)
                if a is None:
                    raise ManifestError(
                        f"{source}: wheelhouse {t.key} serves {member}, which the manifest "
                        "does not list"
                    )
                at = a.target
                if (
                    a.implementation != "cpython"
                    or not a.version.startswith(t.python + ".")
                    or (at.os, at.arch, at.libc) != (t.target.os, t.target.arch, t.target.libc)
                ):
                    raise ManifestError(
                        f"{source}: wheelhouse {t.key} serves {member}, which is not a "
                        f"CPython {t.python} for {t.target.key}"
                    )
                if member in served:
                    raise ManifestError(f"{source}: two wheelhouses serve {member}")
                served.add(member)
            if len(set(t.wheels)) != len(t.wheels):
                raise ManifestError(f"{source}: wheelhouse {t.key} names a wheel twice")
            names = set()
            for member in t.wheels:
                if member not in projects:
                    raise ManifestError(
                        f"{source}: wheelhouse {t.key} uses {member}, which the manifest does "
                        "not carry"
                    )
                if projects[member] in names:
                    raise ManifestError(
                        f"{source}: wheelhouse {t.key} holds two wheels of {projects[member]}"
                    )
                names.add(projects[member])


def lock_text(key: str, wheels: Sequence[tuple[str, str, str]]) -> str:
    """The lock of wheelhouse ``key`` for ``wheels`` (``(project, version, sha256)``, sorted
    here by project): pip's hash-checking requirements format (pip docs, "Secure installs")."""
    lines = [
        f"# pybundle wheelhouse {key}: install offline with",
        "#   pip install --no-index --find-links DIR --require-hashes -r lock.txt",
    ]
    for project, version, sha256 in sorted(wheels):
        lines.append(f"{project}=={version} \\")
        lines.append(f"    --hash=sha256:{sha256}")
    return "\n".join(lines) + "\n"
