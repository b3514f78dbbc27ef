"""The manifest's ``self_install`` section (schema version 2): what a self-installing bundle
carries for its own installer, and which of it each host platform uses.

JSON form (see ``schemas/manifest-v2.schema.json``)::

    "self_install": {
      "files": [
        {"member": "wheels/pybundle-0.1.0-py3-none-any.whl", "kind": "wheel",
         "size": 181234, "sha256": "..."},
        {"member": "__main__.py", "kind": "python-main", "size": 2048, "sha256": "..."}
      ],
      "bootstraps": [
        {"os": "linux", "arch": "x86_64", "libc": "gnu",
         "artifact": "archives/cpython-3.12.1+local-x86_64-unknown-linux-gnu-install_only.tar.gz",
         "python": "3.12", "executable": "bin/python3.12",
         "wheels": ["wheels/pybundle-0.1.0-py3-none-any.whl", "wheels/cryptography-..."]}
      ]
    }

Every file is a zip member whose bytes the manifest hashes, like an interpreter archive. A
bootstrap names one of the bundle's own interpreter archives (no second copy) and the wheels
that run on it, pybundle's own first.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from pybundle.errors import ManifestError
from pybundle.targets import Target

WHEELS_DIR = "wheels"
MAIN_MEMBER = "__main__.py"
"""The zip member ``python3 FILE`` runs (a zip with a ``__main__.py`` is runnable, PEP 441)."""
KINDS = ("wheel", "python-main")
_WHEEL_MEMBER = re.compile(r"^wheels/[A-Za-z0-9][A-Za-z0-9._+-]*\.whl$")
_EXECUTABLE = re.compile(r"^bin/python3(\.[0-9]+)?$")


class ArtifactLike(Protocol):
    """What the section's checks need of an interpreter archive record
    (:class:`pybundle.manifest.Artifact`)."""

    @property
    def member(self) -> str: ...

    @property
    def target(self) -> Target: ...

    @property
    def archive_format(self) -> str: ...

    @property
    def implementation(self) -> str: ...

    @property
    def version(self) -> str: ...


@dataclass(frozen=True)
class CarriedFile:
    """One member carried for the installer: ``member`` is ``wheels/<file>.whl`` (``kind``
    ``wheel``) or ``__main__.py`` (``python-main``); ``size`` in bytes, ``sha256`` lower-case
    hex of the member's bytes."""

    member: str
    kind: str
    size: int
    sha256: str

    @property
    def file_name(self) -> str:
        """The member's base name (a wheel's file name)."""
        return posixpath.basename(self.member)

    def to_json(self) -> dict[str, Any]:
        """``{"member", "kind", "size", "sha256"}``."""
        return {"member": self.member, "kind": self.kind, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CarriedFile:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(data["member"], data["kind"], data["size"], data["sha256"])


@dataclass(frozen=True)
class Bootstrap:
    """How a host of ``target`` (Linux, an arch and a libc; no CPU level) installs the file:
    unpack the interpreter archive ``artifact`` (a member), run its ``executable`` (relative to
    the archive's strip prefix) of Python ``python`` (``"3.12"``) with ``wheels`` (members,
    pybundle's own first) on its path."""

    target: Target
    artifact: str
    python: str
    executable: str
    wheels: tuple[str, ...]

    @property
    def key(self) -> str:
        """The platform key the stub matches the host against: ``linux-x86_64-gnu``."""
        return self.target.key

    def to_json(self) -> dict[str, Any]:
        """The bootstrap as the manifest's JSON object."""
        return {
            "os": self.target.os,
            "arch": self.target.arch,
            "libc": self.target.libc,
            "artifact": self.artifact,
            "python": self.python,
            "executable": self.executable,
            "wheels": list(self.wheels),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bootstrap:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(
            target=Target(data["os"], data["arch"], data["libc"]),
            artifact=data["artifact"],
            python=data["python"],
            executable=data["executable"],
            wheels=tuple(data["wheels"]),
        )


@dataclass(frozen=True)
class SelfInstall:
    """The ``self_install`` section: the carried ``files`` and one :class:`Bootstrap` per host
    platform the file installs itself on."""

    files: tuple[CarriedFile, ...]
    bootstraps: tuple[Bootstrap, ...]

    @property
    def carried_bytes(self) -> int:
        """Bytes of every carried member together (the overhead over a plain bundle, next to the
        stub itself)."""
        return sum(f.size for f in self.files)

    def file(self, member: str) -> Optional[CarriedFile]:
        """The carried file named ``member``, or None."""
        return next((f for f in self.files if f.member == member), None)

    def bootstrap_for(self, target: Target) -> Optional[Bootstrap]:
        """The bootstrap for a host of ``target`` (os, arch and libc compared; the CPU level
        is ignored), or None."""
        for b in self.bootstraps:
            if (b.target.os, b.target.arch, b.target.libc) == (
                target.os,
                target.arch,
                target.libc,
            ):
                return b
        return None

    def wheel_bytes(self, bootstrap: Bootstrap) -> int:
        """Bytes of the wheels ``bootstrap`` uses."""
        return sum(f.size for f in self.files if f.member in bootstrap.wheels)

    def to_json(self) -> dict[str, Any]:
        """``{"files": [...], "bootstraps": [...]}``."""
        return {
            "files": [f.to_json() for f in self.files],
            "bootstraps": [b.to_json() for b in self.bootstraps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SelfInstall:
        """Read what :meth:`to_json` wrote (schema-valid input)."""
        return cls(
            files=tuple(CarriedFile.from_json(f) for f in data["files"]),
            bootstraps=tuple(Bootstrap.from_json(b) for b in data["bootstraps"]),
        )

    def check(self, artifacts: Sequence[ArtifactLike], source: str) -> None:
        """What the schema cannot express: member names are unique (also against the archives)
        and fit their kind; each bootstrap names one of ``artifacts`` (a CPython ``tar.gz`` of
        the same os, arch and libc), an executable of its Python version, and carried wheels
        only; one bootstrap per platform. Raises ManifestError naming ``source``."""
        seen = {a.member for a in artifacts}
        for f in self.files:
            if f.member in seen:
                raise ManifestError(f"{source}: manifest lists {f.member} twice")
            seen.add(f.member)
            fits = (
                _WHEEL_MEMBER.match(f.member) is not None
                if f.kind == "wheel"
                else f.member == MAIN_MEMBER
            )
            if not fits:
                raise ManifestError(f"{source}: carried file {f.member!r} is not a valid {f.kind}")
        wheels = {f.member for f in self.files if f.kind == "wheel"}
        by_member = {a.member: a for a in artifacts}
        keys: set[str] = set()
        for b in self.bootstraps:
            if b.key in keys:
                raise ManifestError(f"{source}: manifest has two bootstraps for {b.key}")
            keys.add(b.key)
            artifact = by_member.get(b.artifact)
            if artifact is None:
                raise ManifestError(
                    f"{source}: the bootstrap for {b.key} names {b.artifact}, which the "
                    "manifest does not list"
                )
            t = artifact.target
            if (
                (t.os, t.arch, t.libc) != (b.target.os, b.target.arch, b.target.libc)
                or artifact.archive_format != "tar.gz"
                or artifact.implementation != "cpython"
                or not artifact.version.startswith(b.python + ".")
            ):
                raise ManifestError(
                    f"{source}: the bootstrap for {b.key} names {b.artifact}, which is not a "
                    f"CPython {b.python} tar.gz archive for that platform"
                )
            if not _EXECUTABLE.match(b.executable) or b.executable not in (
                "bin/python3",
                f"bin/python{b.python}",
            ):
                raise ManifestError(
                    f"{source}: the bootstrap for {b.key} runs {b.executable!r}, which is not "
                    f"bin/python{b.python}"
                )
            missing = [w for w in b.wheels if w not in wheels]
            if missing:
                raise ManifestError(
                    f"{source}: the bootstrap for {b.key} uses {missing[0]}, which the "
                    "manifest does not carry"
                )
            if not b.wheels or len(set(b.wheels)) != len(b.wheels):
                raise ManifestError(
                    f"{source}: the bootstrap for {b.key} must name each of its wheels once"
                )


@dataclass(frozen=True)
class Overhead:
    """What ``--self-installing`` adds to a bundle, in bytes: the sh ``stub`` in front of the
    zip and the ``carried`` members; ``interpreters`` is the bytes of the interpreter archives,
    which :attr:`percent` compares with."""

    stub: int
    carried: int
    interpreters: int

    @property
    def total(self) -> int:
        """Stub plus carried members."""
        return self.stub + self.carried

    @property
    def percent(self) -> float:
        """:attr:`total` as a percentage of :attr:`interpreters`."""
        return 100.0 * self.total / self.interpreters if self.interpreters else 0.0

    def to_json(self) -> dict[str, Any]:
        """``{"stub_bytes", "carried_bytes", "total_bytes", "interpreter_bytes", "percent"}``."""
        return {
            "stub_bytes": self.stub,
            "carried_bytes": self.carried,
            "total_bytes": self.total,
            "interpreter_bytes": self.interpreters,
            "percent": round(self.percent, 2),
        }


def stub_size(path: str) -> int:
    """Bytes in front of the zip in the file ``path`` (the stub of a self-installing bundle; 0
    for a plain one): the lowest member offset its central directory records. Raises OSError,
    zipfile.BadZipFile."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return min((i.header_offset for i in zf.infolist()), default=0)
